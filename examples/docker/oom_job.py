"""A job that runs out of memory: it keeps NumPy arrays in a list, one step
per loop iteration, until the container's memory limit stops it.

Each kind of step is its own named line, so a peak-memory report can say
which line ate the memory (`load_batch`, line marked HW-OOM-LINE).

Environment knobs (used by the tests):
  STEP_MIB       size of one batch                           (default 20)
  STEPS          stop after this many steps; 0 = never       (default 0)
  HOLD_SECONDS   after the steps, wait this long             (default 0)
  EXIT_CODE      exit code after a normal finish             (default 0)
SIGTERM (docker stop) makes it stop cleanly with exit code 143.
"""
import os
import signal
import sys
import time

import numpy as np

STEP_MIB = int(os.environ.get("STEP_MIB", "20"))
STEPS = int(os.environ.get("STEPS", "0"))
HOLD_SECONDS = float(os.environ.get("HOLD_SECONDS", "0"))
EXIT_CODE = int(os.environ.get("EXIT_CODE", "0"))


def load_batch(step):
    # np.ones writes every page, so the memory is really used (np.zeros would not be).
    return np.ones(STEP_MIB * 1024 * 1024 // 8, dtype=np.float64)  # HW-OOM-LINE


def lookup_table():
    return np.arange(4 * 1024 * 1024 // 8, dtype=np.float64)  # a small, steady allocation


def on_sigterm(signum, frame):
    print("stopping on SIGTERM", flush=True)
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    table = lookup_table()
    batches = []
    step = 0
    while STEPS == 0 or step < STEPS:
        batches.append(load_batch(step))
        step += 1
        print(f"step {step}: holding {step * STEP_MIB} MiB", flush=True)
    print(f"finished {step} steps ({table.size} table entries)", flush=True)
    if HOLD_SECONDS:
        print("holding", flush=True)
        time.sleep(HOLD_SECONDS)
    return EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
