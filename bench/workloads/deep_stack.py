# Deep stacks: recursion 400 frames deep that allocates a small object above
# pymalloc's 512-byte limit (so it goes through malloc) at every level, on the
# way down and on the way back up. Stack cost grows with depth for a profiler
# that reads the whole stack at each allocation.
#
# HIGHWATER_BENCH_DEPTH changes the depth (default 400) and keeps the number
# of levels run, and so of allocations, the same: what depth itself costs is
# then the difference between two depths (bench/stacks.mjs deep-stack@4).
import os
import sys

sys.setrecursionlimit(2000)
DEPTH = os.environ.get("HIGHWATER_BENCH_DEPTH", "400")
# A negative depth would run no descent at all and time nothing; over 999 the
# recursion limit ends the run half way.
if not DEPTH.isdecimal() or not 1 <= int(DEPTH) <= 999:
    print(f"deep_stack.py: HIGHWATER_BENCH_DEPTH must be 1 - 999 frames, not {DEPTH!r}", file=sys.stderr)
    sys.exit(2)
DEPTH = int(DEPTH)
held = []


def descend(depth):
    block = bytearray(600)
    if depth:
        descend(depth - 1)
    held.append(bytearray(600 + (depth & 7)))
    if len(held) > 64:
        del held[:32]
    return block


def main():
    # 12 000 descents at depth 400 (4.8 M levels): about 2 s plain, so that a
    # process's start (the shim's and the bootstrap's ~10 ms) is not a
    # percent of the ratio.
    for _ in range(12000 * 401 // (DEPTH + 1)):
        descend(DEPTH)


main()
