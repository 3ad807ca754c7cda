# A 4-worker pool (start method argv[1]) doing allocation-heavy pure Python
# work for a few seconds: 16 tasks, each building and dropping lists, dicts,
# strings and bytearrays of many sizes.
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
        total = sum(pool.map(task, range(16), chunksize=1))
    # CPU of the whole job (this process and its workers, all joined by now).
    cpu = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        cpu += ru.ru_utime + ru.ru_stime
    print(total, "%.0f" % (cpu * 1000))
