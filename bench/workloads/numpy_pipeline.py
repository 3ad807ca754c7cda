# A numpy pipeline: large arrays, vectorised maths, reductions.
import numpy as np

def stage(rng, n):
    a = rng.standard_normal(n)
    b = np.sqrt(np.abs(a)) * 3.0 + 1.0
    c = np.sort(b)[: n // 2]
    return float(np.cumsum(c).sum())

def main():
    rng = np.random.default_rng(7)
    total = 0.0
    for _ in range(12):
        total += stage(rng, 4_000_000)
    m = rng.standard_normal((600, 600))
    total += float((m @ m.T).trace())
    return total

main()
