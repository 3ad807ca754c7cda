# A 4-worker pool (start method argv[1]) doing allocation-heavy pure Python
# work for a few seconds (about 4 s of wall time plain here, 2 cores): 160
# tasks (argv[2]), each
# building and dropping lists, dicts, strings and bytearrays of many sizes.
# 16 tasks ran for under a second, where the workers' start-up weighed as
# much as the work.
import multiprocessing as mp
import resource
import sys


def task(seed):
    total = 0
    for r in range(30):
        rows = [{"k": i, "v": str(i * seed), "b": bytearray((i * 37 + r) % 4000 + 1)} for i in range(2000)]
        total += sum(len(x["b"]) for x in rows)
        del rows
    return total


if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")
    with ctx.Pool(4) as pool:
        total = sum(pool.map(task, range(int(sys.argv[2]) if len(sys.argv) > 2 else 160), chunksize=1))
    # CPU of the whole job (this process and its workers, all joined by now).
    cpu = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        cpu += ru.ru_utime + ru.ru_stime
    print(total, "%.0f" % (cpu * 1000))
