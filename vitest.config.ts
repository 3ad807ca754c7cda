import { defineConfig } from 'vitest/config';

// Tests spawn real Python processes and real cgroups; keep files serial-ish so
// two memory-hungry suites do not share the 2-core CI machine at once.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file writes under its own TMPDIR, removed when it ends.
    setupFiles: ['test/helpers/scratch-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
