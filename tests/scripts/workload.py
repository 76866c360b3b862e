"""A build-tool-like Python workload: JSON, regular expressions, hashing, threads with a
queue and locks, a subprocess, float formatting. Output is deterministic."""
import collections
import hashlib
import itertools
import json
import math
import queue
import re
import struct
import subprocess
import sys
import threading
import zlib

LOG = """\
2026-11-25 10:00:01 INFO  build started target=kiln jobs=2
2026-11-25 10:00:02 WARN  cache miss module=cc1 units=1532
2026-11-25 10:00:04 INFO  compiled file=lvm.c ms=812
2026-11-25 10:00:05 ERROR link failed code=1 symbol=luaV_execute
2026-11-25 10:00:07 INFO  compiled file=lapi.c ms=304
2026-11-25 10:00:09 WARN  cache miss module=as units=211
2026-11-25 10:00:11 INFO  build finished status=0 ms=10234
"""

LINE = re.compile(r"^(\S+) (\S+) (\w+)\s+(.*?)((?:\s+\w+=\S+)*)$")
PAIR = re.compile(r"(\w+)=(\S+)")


def parse(text):
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        date, time, level, msg, rest = m.groups()
        fields = {k: (int(v) if v.isdigit() else v) for k, v in PAIR.findall(rest)}
        out.append({"when": f"{date}T{time}", "level": level, "msg": msg, **fields})
    return out


records = parse(LOG)
by_level = collections.Counter(r["level"] for r in records)
print(json.dumps(by_level, sort_keys=True))
doc = json.dumps({"records": records, "total_ms": sum(r.get("ms", 0) for r in records)},
                 sort_keys=True, indent=1)
again = json.loads(doc)
assert again["records"] == records
print(len(doc), hashlib.md5(doc.encode()).hexdigest())

digests = {}
for name in ("sha1", "sha256", "sha512", "blake2b", "sha3_256"):
    h = hashlib.new(name)
    for i in range(200):
        h.update(struct.pack("<Id", i, i / 7))
    digests[name] = h.hexdigest()[:32]
print(json.dumps(digests, sort_keys=True))
print(zlib.crc32(doc.encode()), len(zlib.compress(doc.encode() * 20, 9)))

work = queue.Queue()
results = {}
lock = threading.Lock()


def worker(wid):
    while True:
        item = work.get()
        if item is None:
            work.task_done()
            return
        acc = 0
        for k in range(item * 500, item * 500 + 4000):
            acc = (acc * 31 + k * k) % 1000000007
        with lock:
            results[item] = acc
        work.task_done()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
for t in threads:
    t.start()
for item in range(60):
    work.put(item)
for _ in threads:
    work.put(None)
work.join()
for t in threads:
    t.join()
print(len(results), sum(results.values()) % 1000003, results[0], results[59])

cond = threading.Condition()
turns = ["b"]  # "a" goes first, whichever thread starts first


def pinger(me, other, n):
    for _ in range(n):
        with cond:
            while turns and turns[-1] == me:
                cond.wait()
            turns.append(me)
            cond.notify_all()


a = threading.Thread(target=pinger, args=("a", "b", 50))
b = threading.Thread(target=pinger, args=("b", "a", 50))
a.start(); b.start(); a.join(); b.join()
print(len(turns), "".join(turns[:10]), all(x != y for x, y in zip(turns, turns[1:])))

vals = [math.sin(i) * 1e6 / (i + 1) for i in range(1, 400)]
print(f"{sum(vals):.12e} {max(vals):.17g} {min(vals)!r}")
print(sorted(itertools.islice(itertools.permutations("kiln"), 5)))
print("%.3f %g %e" % (math.pi, 1e-300 * 1e-10, math.fsum(vals)), 2 ** 100 % 97, divmod(-7, 3))

r = subprocess.run(["/bin/echo", "from", "a", "child"], capture_output=True, text=True)
print(r.returncode, r.stdout.strip())
sys.stdout.flush()
sys.exit(3)
