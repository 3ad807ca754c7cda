# Where do a BLAS/LAPACK job's bytes land? Every line below allocates a known
# result in the calling thread; the BLAS pool's own buffers are allocated by
# its worker threads (charged to whoever started the pool: `import numpy`).
import numpy as np  # import line
import scipy.linalg  # import line

rng = np.random.default_rng(1)
a = rng.standard_normal((2000, 2000))  # compute line
b = a @ a  # compute line
c = a @ b.T  # compute line
lu, piv = scipy.linalg.lu_factor(a)  # compute line
x = scipy.linalg.solve(a, b[:, :500])  # compute line
q, r = np.linalg.qr(a[:, :1000])  # compute line
w = np.linalg.eigvalsh(b[:1000, :1000] + b[:1000, :1000].T)  # compute line
