#!/usr/bin/env node
// Thin launcher: the CLI is compiled from sidecar/src into dist/ by `npm run build`.
import '../dist/cli/main.js';
