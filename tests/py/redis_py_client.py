"""redis-py (PyPI `redis`) against `evnet resp`: pipelines, WATCH
transactions, blocking pops with timeouts, SCAN over 10,000 keys.

Usage: python3 redis_py_client.py PORT   (exits non-zero on any failure)
"""
import sys
import threading
import time

import redis

port = int(sys.argv[1])
# evnet speaks RESP2; redis-py 8 asks for RESP3 unless told.
def client():
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=2)


r = client()
r.flushall()

# Pipelines: one round trip, replies in order, with and without MULTI.
p = r.pipeline(transaction=False)
for i in range(1000):
    p.set(f"p:{i}", i)
    p.incr("p:count")
results = p.execute()
assert results[1::2] == list(range(1, 1001)), results[:6]
assert r.mget("p:0", "p:999") == [b"0", b"999"]
with r.pipeline() as p:  # MULTI/EXEC
    p.rpush("l", "a", "b").lrange("l", 0, -1).hset("h", mapping={"f": "v", "g": "w"})
    assert p.execute() == [2, [b"a", b"b"], 2]

# WATCH: a transfer retried until no other client touched the balance
# between WATCH and EXEC; a second client interferes once.
r.set("balance", 100)
interfered = False
attempts = 0
with r.pipeline() as p:
    while True:
        attempts += 1
        try:
            p.watch("balance")
            bal = int(p.get("balance"))
            if not interfered:
                client().incr("balance", 5)
                interfered = True
            p.multi()
            p.set("balance", bal - 30)
            p.execute()
            break
        except redis.WatchError:
            continue
assert attempts == 2, attempts
assert int(r.get("balance")) == 75, r.get("balance")

# Blocking pops: a timeout gives None after the time; a push from another
# thread wakes the waiter.
t = time.monotonic()
assert r.blpop(["empty"], timeout=0.3) is None
assert time.monotonic() - t >= 0.3
def push_later():
    time.sleep(0.2)
    client().rpush("jobs", "job-1")
threading.Thread(target=push_later).start()
assert r.blpop(["other", "jobs"], timeout=5) == (b"jobs", b"job-1")
threading.Thread(target=push_later).start()
assert r.blmove("jobs", "done", 5, "LEFT", "RIGHT") == b"job-1"
assert r.lrange("done", 0, -1) == [b"job-1"]

# SCAN over 10,000 keys: each comes back at least once.
with r.pipeline(transaction=False) as p:
    for i in range(10000):
        p.set(f"scan:{i}", "x")
    p.execute()
seen = set(r.scan_iter(match="scan:*", count=100))
missing = [i for i in range(10000) if f"scan:{i}".encode() not in seen]
assert not missing, missing[:10]
assert len(seen) == 10000

# Sorted sets and the rest through the client's own reply parsing.
r.zadd("z", {"a": 1, "b": 2.5, "c": 3})
assert r.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.5), (b"c", 3.0)]
assert r.zrangebyscore("z", "(1", "+inf") == [b"b", b"c"]
assert r.zpopmin("z") == [(b"a", 1.0)]
assert r.hgetall("h") == {b"f": b"v", b"g": b"w"}
assert r.type("z") == b"zset"
print("redis-py: ok")
