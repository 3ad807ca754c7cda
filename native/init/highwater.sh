#!/bin/sh
# highwater CLI launcher, installed as /opt/highwater/bin/highwater in the
# full bundle: runs the bundled Node on the bundled CLI (no npm at run time).
bundle=${HIGHWATER_HOME:-$(dirname "$(dirname "$(readlink -f "$0")")")}
exec "$bundle/node/bin/node" "$bundle/dist/cli/main.js" "$@"
