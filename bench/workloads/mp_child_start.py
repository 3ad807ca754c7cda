# Cost of starting a child: argv[1] = "subprocess" (python -c pass, waited
# for) or "spawn" (a multiprocessing spawn Process that returns at once),
# argv[2] = how many. Prints the mean ms per child start.
import multiprocessing as mp
import resource
import subprocess
import sys
import time


def nothing():
    pass


if __name__ == "__main__":
    how, n = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    for _ in range(n):
        if how == "subprocess":
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        else:
            p = ctx.Process(target=nothing)
            p.start()
            p.join()
    wall = (time.perf_counter() - t0) * 1000 / n
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("%.1f %.1f" % (wall, (ru.ru_utime + ru.ru_stime) * 1000 / n))
