#!/bin/sh
# Compiles highwater's own Python modules (bootstrap/, highwater/) to
# bytecode, once for every CPython this machine has, next to the sources
# (__pycache__/<name>.cpython-3XY.pyc, where CPython looks for them).
#
# Why: every tracked process imports these modules at start-up. Without a
# .pyc, CPython compiles them from source each time: 26 M of the 32 M
# instructions a tracked `python -c pass` added (3.12), because images and
# CI set PYTHONDONTWRITEBYTECODE=1 and CPython never keeps what it
# compiled. A process pool paid that at every exec'd worker.
#
# Why checked-hash: the bundle is copied into images (COPY, cp -r), which
# changes the sources' mtimes; timestamp .pycs would all look stale there and
# be compiled anew at every start. A checked-hash .pyc is used only while its
# source's hash matches, so an edited source is never run from a stale .pyc.
#
# An interpreter this machine lacks (the application's may be any 3.8+)
# simply compiles from source at start-up, as before. No interpreter at all:
# nothing to do.
set -u
here=$(cd "$(dirname "$0")" && pwd)

candidates() {
  for n in 8 9 10 11 12 13 14 15; do command -v "python3.$n" 2>/dev/null; done
  # The extra interpreters the tests run on (.ci/debian-pythons.sh).
  echo "${HIGHWATER_TEST_PYTHONS:-}" | tr ',' '\n' | while read -r p; do [ -x "$p" ] && echo "$p"; done
  command -v python3 2>/dev/null
  for p in "${PYENV_ROOT:-${HOME:-/nonexistent}/.pyenv}"/versions/*/bin/python3; do
    [ -x "$p" ] && echo "$p"
  done
}

seen=' '
compiled=''
for py in $(candidates); do
  # 3.8 is the oldest CPython the shim supports; --invalidation-mode is 3.7+.
  tag=$("$py" -c 'import sys; assert sys.implementation.name == "cpython" and sys.version_info >= (3, 8); print(sys.implementation.cache_tag)' 2>/dev/null) || continue
  case "$seen" in *" $tag "*) continue ;; esac
  seen="$seen$tag "
  # PYTHONPYCACHEPREFIX would put them elsewhere, where no start looks.
  if env -u PYTHONPYCACHEPREFIX "$py" -m compileall -q -f --invalidation-mode checked-hash "$here/bootstrap" "$here/highwater" >/dev/null; then
    compiled="$compiled $tag"
  else
    echo "compile-bytecode: $py could not compile highwater's modules (they compile at start-up instead)" >&2
  fi
done
echo "compile-bytecode:${compiled:- no CPython found}" >&2
