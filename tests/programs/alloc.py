# alloc.py -- the python workload of tests/programs: an allocation-heavy
# script with a deterministic output (a few counts and digests).
#
# What it exercises in an allocator: millions of small, short-lived
# objects (ints, floats, tuples, strings, instances, their dicts), dicts
# and lists growing by doubling (realloc of ever larger blocks, up to
# megabytes), strings built, split and joined, a JSON round trip of a
# nested document (a burst of allocation, then of frees), a tree of
# objects freed all at once and, with PYTHONMALLOC=malloc, every one of
# those through malloc itself (with the default, pymalloc, objects of up
# to 512 bytes come from pymalloc's arenas and only larger blocks, and
# the arenas, from malloc).
#
# The output must not depend on the allocator, the address of anything,
# or the hash seed: random numbers come from a local generator, sets are
# never printed unsorted, digests are of sorted or ordered data.
import hashlib
import json
import sys


class Lcg:
    """A 64-bit LCG: the same numbers on every Python version."""

    def __init__(self, seed):
        self.s = seed

    def next(self, n):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & (
            (1 << 64) - 1)
        return (self.s >> 33) % n


class Node:
    def __init__(self, key, left, right):
        self.key = key
        self.left = left
        self.right = right


class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def words(rng, n):
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(n):
        k = 1 + rng.next(12)
        out.append("".join(letters[rng.next(26)] for _ in range(k)))
    return out


def dict_churn(rng):
    # A word index: dict of lists, grown, trimmed, rebuilt.
    index = {}
    vocab = words(rng, 20000)
    for i in range(200000):
        w = vocab[rng.next(len(vocab))]
        index.setdefault(w, []).append(i)
        if i % 1000 == 999:
            # Drop some keys: frees lists of all sizes.
            for _ in range(50):
                index.pop(vocab[rng.next(len(vocab))], None)
    sizes = sorted((len(v), k) for k, v in index.items())
    return "dict keys %d longest %d:%s digest %s" % (
        len(index), sizes[-1][0], sizes[-1][1],
        digest(",".join("%s=%d" % (k, n) for n, k in sizes)))


def strings(rng):
    # Formatting, splitting, joining, replacing: many string objects.
    total = 0
    acc = []
    for i in range(45000):
        s = "%d:%s:%x:%.3f" % (i, "ab" * rng.next(400), rng.next(1 << 30),
                               rng.next(100000) / 7.0)
        parts = s.split(":")
        t = "-".join(reversed(parts)).replace("ab", "BA").upper()
        total += len(t)
        acc.append(t)
        if len(acc) > 2000:
            acc = acc[1000:]
    return "strings total %d digest %s" % (total, digest("|".join(acc)))


def objects(rng):
    # Instances with and without __slots__, tuples, a sorted list.
    pts = [Point(rng.next(1000), rng.next(1000), "p%d" % i)
           for i in range(80000)]
    pts.sort(key=lambda p: (p.x, p.y, p.tag))
    pairs = [(p.x * p.y, p.tag) for p in pts if (p.x + p.y) % 3 == 0]
    del pts

    def build(lo, hi):
        if lo >= hi:
            return None
        mid = (lo + hi) // 2
        return Node(mid, build(lo, mid), build(mid + 1, hi))

    def depth_sum(n, d):
        return 0 if n is None else d + depth_sum(n.left, d + 1) + \
            depth_sum(n.right, d + 1)

    trees = 0
    for r in range(3):
        root = build(0, 40000 + r)
        trees += depth_sum(root, 0)
        del root
    return "objects pairs %d first %s last %s trees %d" % (
        len(pairs), pairs[0], pairs[-1], trees)


def json_round_trip(rng):
    doc = {
        "records": [
            {
                "id": i,
                "name": "rec%05d" % i,
                "tags": ["t%d" % rng.next(50) for _ in range(rng.next(8))],
                "score": rng.next(10 ** 6) / 1000.0,
                "nested": {"a": [rng.next(100) for _ in range(5)],
                           "b": {"c": "x" * rng.next(40)}},
            }
            for i in range(15000)
        ]
    }
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    again = json.dumps(back, sort_keys=True)
    if again != text:
        print("json round trip differs", file=sys.stderr)
        sys.exit(1)
    return "json bytes %d digest %s" % (len(text), digest(text))


def main():
    rng = Lcg(20240601)
    print(dict_churn(rng))
    print(strings(rng))
    print(objects(rng))
    print(json_round_trip(rng))
    # A big list of floats and ints: one huge realloc'd block.
    big = []
    for i in range(600000):
        big.append(i * 0.5 if i % 2 else i)
    print("big len %d sum %s" % (len(big), sum(big)))


main()
