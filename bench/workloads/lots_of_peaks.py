# Thousands of new peaks and thousands of distinct call stacks: memory grows
# in small steps from ever-changing recursion depths, freeing a bit each time.
held = []

def grow(depth, i):
    if depth == 0:
        held.append(bytearray(1024 + (i % 7) * 512))
        if i % 3 == 0 and len(held) > 10:
            held.pop(0)
        return
    return grow(depth - 1, i)

def branch_a(i): return grow(i % 40, i)
def branch_b(i): return grow((i * 7) % 40, i)
def branch_c(i): return grow((i * 13) % 40, i)

def main():
    for i in range(300000):
        (branch_a, branch_b, branch_c)[i % 3](i)

main()
