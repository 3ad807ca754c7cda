# Deep stacks: recursion 400 frames deep that allocates a small object above
# pymalloc's 512-byte limit (so it goes through malloc) at every level, on the
# way down and on the way back up. Stack cost grows with depth for a profiler
# that reads the whole stack at each allocation.
import sys

sys.setrecursionlimit(2000)
DEPTH = 400
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
    # 12 000 descents: about 2 s plain, so that a process's start (the shim's
    # and the bootstrap's ~10 ms) is not a percent of the ratio.
    for _ in range(12000):
        descend(DEPTH)


main()
