"""python-etcd3gw's own operations against the etcd at ETCD_ENDPOINT
(http://127.0.0.1:PORT): put, get, get_prefix, replace, create, delete,
delete_prefix, transaction, leases (grant, ttl, refresh, keys, revoke),
watches (watch_once, a cancelled watch), locks (acquire, contention,
release), status and members. Each step asserts what etcd3gw returns; the
script prints OK and exits 0 only if every step held."""

import os
import threading
import time

from etcd3gw.client import Etcd3Client

url = os.environ["ETCD_ENDPOINT"]
host, port = url.removeprefix("http://").split(":")
c = Etcd3Client(host=host, port=int(port), timeout=10)

assert c.put("foo", "bar") is True
assert c.get("foo") == [b"bar"], c.get("foo")
(value, meta), = c.get("foo", metadata=True)
assert value == b"bar" and meta["key"] == b"foo" and int(meta["version"]) == 1, meta
for i in range(3):
    c.put(f"/dir/{i}", f"v{i}")
assert sorted(v for v, _ in c.get_prefix("/dir/")) == [b"v0", b"v1", b"v2"]
assert c.replace("foo", "bar", "baz") is True
assert c.replace("foo", "bar", "qux") is False
assert c.get("foo") == [b"baz"]
assert c.create("new", "1") is True
assert c.create("new", "2") is False
assert c.delete("new") is True
assert c.delete("new") is False
assert c.delete_prefix("/dir/") is True
assert c.get_prefix("/dir/") == []
assert c.get_all() != []

lease = c.lease(ttl=30)
assert 0 < lease.ttl() <= 30, lease.ttl()
assert c.put("leased", "x", lease=lease) is True
assert lease.keys() == [b"leased"], lease.keys()
assert lease.refresh() == 30
assert lease.revoke() is True
assert c.get("leased") == []

seen = []
done = threading.Event()


def writer():
    time.sleep(1)
    c.put("watched", "w1")


threading.Thread(target=writer).start()
event = c.watch_once("watched", timeout=10)
assert event["kv"]["value"] == b"w1", event
events, cancel = c.watch("watched")
c.put("watched", "w2")
for e in events:
    seen.append(e["kv"]["value"])
    break
cancel()
assert seen == [b"w2"], seen

lock = c.lock("L1", ttl=30)
assert lock.acquire() is True
other = c.lock("L1", ttl=30)
assert other.is_acquired() is False
assert lock.is_acquired() is True
assert lock.release() is True
assert lock.is_acquired() is False

status = c.status()
assert status["version"].startswith("3."), status
members = c.members()
assert len(members) >= 1 and members[0]["clientURLs"], members
print("OK")
