# A numpy pipeline of 2000x2000 matmuls (BLAS-bound: the thread pool matters).
import numpy as np

rng = np.random.default_rng(3)
a = rng.standard_normal((2000, 2000))
b = rng.standard_normal((2000, 2000))
for _ in range(8):
    c = a @ b
    a = c / np.abs(c).max()
print(float(a.sum()))
