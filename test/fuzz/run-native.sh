#!/bin/sh
# Builds the shim's native fuzz targets (test/fuzz/native/*.c over
# native/shim/parse.c) with ASan+UBSan and runs each for SECONDS (default 10)
# from its seeds in test/fuzz/seeds/<target>/. libFuzzer (clang) when the
# toolchain has it, else a plain mutation loop. Exits non-zero on the first
# crash, leak, sanitizer report or hang; the input is kept in $OUT.
# Usage: test/fuzz/run-native.sh [SECONDS] [TARGET...]
# HW_FUZZ_ENGINE=loop forces the mutation loop; HW_FUZZ_OUT moves the build.
set -eu
SECS=${1:-10}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${HW_FUZZ_OUT:-$ROOT/native/build/fuzz}
TARGETS=${*:-"control_line cgroup_files stat_files floor_env"}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=gnu11 -g -O1 -Wall -Wextra -I$ROOT/native/shim"
mkdir -p "$OUT"

engine=loop
if [ "${HW_FUZZ_ENGINE:-}" != loop ] && command -v clang >/dev/null 2>&1 &&
   echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' |
     clang -x c -fsanitize=fuzzer -o "$OUT/.probe" - >/dev/null 2>&1; then
  engine=libfuzzer
fi
rm -f "$OUT/.probe"

for t in $TARGETS; do
  src=$ROOT/test/fuzz/native/$t.c
  seeds=$ROOT/test/fuzz/seeds/$t
  bin=$OUT/$t
  [ -f "$src" ] || { echo "no fuzz target $t" >&2; exit 2; }
  if [ $engine = libfuzzer ]; then
    clang $CFLAGS -fsanitize=fuzzer $SAN -o "$bin" "$src" "$ROOT/native/shim/parse.c"
    corpus=$OUT/corpus-$t
    rm -rf "$corpus" && mkdir -p "$corpus"
    # New inputs go to a scratch corpus: the checked-in seeds stay as they are.
    "$bin" -max_total_time="$SECS" -timeout=5 -rss_limit_mb=1024 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$OUT/$t-" "$corpus" "$seeds" 2>"$OUT/$t.log" || {
      tail -40 "$OUT/$t.log" >&2
      echo "fuzz $t: FAILED (libFuzzer; input kept under $OUT/$t-*)" >&2
      exit 1
    }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
  else
    ${CC:-cc} $CFLAGS $SAN -o "$bin" "$src" "$ROOT/test/fuzz/native/driver.c" "$ROOT/native/shim/parse.c"
    "$bin" "$SECS" "$seeds" >"$OUT/$t.log" 2>&1 || {
      tail -40 "$OUT/$t.log" >&2
      echo "fuzz $t: FAILED (mutation loop)" >&2
      exit 1
    }
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$OUT/$t.log")
  fi
  echo "fuzz $t: ok, $runs inputs in ${SECS}s ($engine)"
done
