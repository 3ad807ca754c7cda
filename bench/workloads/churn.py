# Malloc/free churn from Python (issue 11's "numpy temporaries + bytearrays
# above 512 B"): every step makes numpy temporaries of 8 - 64 KiB and
# bytearrays of 600 B - 4.6 KiB (above pymalloc's 512-byte limit, so each is
# a malloc and a free) and drops them at once. About 2 s plain.
import numpy as np

STEPS = 200_000


def step(x, i):
    a = x * 1.5 + 2.0
    b = np.sqrt(np.abs(a)) - a
    buf = bytearray(600 + (i % 64) * 64)
    copy = bytes(buf)
    return float(b[i % 1000]) + len(copy)


def main():
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(n) for n in (1000, 4000, 8000)]
    total = 0.0
    for i in range(STEPS):
        total += step(xs[i % 3], i)
    return total


main()
