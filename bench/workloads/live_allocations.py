# Holds one million 64-byte blocks live and prints the shim's bookkeeping
# bytes per live allocation (read through the shim's hw_stat).
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.bench_hold.argtypes = [ctypes.c_long, ctypes.c_long]
N = 1_000_000
lib.bench_hold(N, 64)
try:
    shim = ctypes.PyDLL(None)
    shim.hw_stat.restype = ctypes.c_longlong
    shim.hw_stat.argtypes = [ctypes.c_char_p]
    live = shim.hw_stat(b"live_allocations")
    overhead = shim.hw_stat(b"overhead_bytes")
    print(f"live_allocations={live} overhead_bytes={overhead} bytes_per_allocation={overhead / max(live, 1):.1f}")
except AttributeError:
    print("shim not loaded")
lib.bench_release()
