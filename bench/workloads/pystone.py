# Function-call-heavy pure Python (pystone-like): calls, attribute access,
# small objects; almost no malloc (pymalloc serves it).
class Record:
    __slots__ = ("ptr", "discr", "enum", "num", "text")
    def __init__(self, ptr=None, discr=0, enum=0, num=0, text=""):
        self.ptr, self.discr, self.enum, self.num, self.text = ptr, discr, enum, num, text
    def copy(self):
        return Record(self.ptr, self.discr, self.enum, self.num, self.text)

def proc7(a, b):
    return a + 2 + b

def proc3(rec):
    if rec.ptr is not None:
        rec.num = proc7(10, rec.num)
    return rec

def func1(c1, c2):
    return 1 if c1 == c2 else 0

def proc1(rec):
    nxt = rec.copy()
    nxt.num = 5
    proc3(nxt)
    return nxt

def main(loops=4000000):  # about 2 s plain (3.12): start-up is not a percent of the ratio
    glob = Record(Record(), 0, 2, 40, "DHRYSTONE")
    total = 0
    for i in range(loops):
        glob = proc1(glob)
        total += func1("A", "B" if i & 1 else "A") + proc7(i, 3)
    return total

main()
