#!/bin/sh
# highwater CLI launcher, installed as /opt/highwater/bin/highwater in the
# full bundle: runs the bundled Node on the bundled CLI (no npm at run time).
bundle=${HIGHWATER_HOME:-$(dirname "$(dirname "$(readlink -f "$0")")")}
root=${HIGHWATER_LIBC_ROOT:-}   # tests only: a fixture tree instead of /

# The bundled Node and the shim are built for glibc. On a musl-only image
# (Alpine) say so in one line; `highwater run ... -- CMD` still runs CMD,
# untouched, rather than failing in the loader.
musl=0
for l in "$root"/lib/ld-musl-*; do [ -e "$l" ] && musl=1; done
for l in "$root"/lib/ld-linux* "$root"/lib64/ld-linux*; do [ -e "$l" ] && musl=0; done
if [ "$musl" = 1 ]; then
  echo "highwater: this image's C library is musl; highwater needs glibc (use the highwater sidecar image): running without it" >&2
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
  [ $# -gt 1 ] || exit 127
  shift
  exec "$@"
fi
exec "$bundle/node/bin/node" "$bundle/dist/cli/main.js" "$@"
