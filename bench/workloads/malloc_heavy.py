# Allocation-heavy C: millions of malloc/free from 16 B to 1 MiB in native
# code (called through ctypes, which releases the GIL, like most extensions).
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.bench_malloc_free.restype = ctypes.c_long
lib.bench_malloc_free.argtypes = [ctypes.c_long]

def run():
    return lib.bench_malloc_free(3_000_000)

run()
