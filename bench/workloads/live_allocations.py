# Holds N 64-byte blocks live, for several N, and prints the shim's
# bookkeeping bytes per live allocation at each (read through hw_stat).
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.bench_hold.argtypes = [ctypes.c_long, ctypes.c_long]
sizes = [int(n) for n in sys.argv[2:]] or [1_000_000]
try:
    shim = ctypes.PyDLL(None)
    shim.hw_stat.restype = ctypes.c_longlong
    shim.hw_stat.argtypes = [ctypes.c_char_p]
except AttributeError:
    shim = None
for n in sizes:
    lib.bench_hold(n, 64)
    if shim is None:
        print("shim not loaded")
        break
    live = shim.hw_stat(b"live_allocations")
    overhead = shim.hw_stat(b"overhead_bytes")
    print(f"held={n} live_allocations={live} overhead_bytes={overhead} bytes_per_allocation={overhead / max(live, 1):.1f}")
    lib.bench_release()
