"""HdfsCLI given every namenode's URL keeps working across a kill -9 of the
leader: one client writes and reads, prints "before", waits for a line on
stdin (the test kills the leader meanwhile and waits for a new one), then
writes, reads, lists and deletes with the same client and prints "ok".
Environment: URLS, DFS_USER."""

import os
import sys

from hdfs import InsecureClient

client = InsecureClient(os.environ["URLS"], user=os.environ["DFS_USER"])


def check(condition, what):
    if not condition:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


client.write("before", data=b"written before the failover")
with client.read("before") as reader:
    check(reader.read() == b"written before the failover", "read before")
print("before", flush=True)

sys.stdin.readline()

check(client.status("before")["length"] == 27, "stat after the failover")
client.write("after", data=b"written after the failover")
with client.read("after") as reader:
    check(reader.read() == b"written after the failover", "read after")
with client.read("before") as reader:
    check(reader.read() == b"written before the failover", "old file after")
check(sorted(client.list("")) == ["after", "before"], f"list {client.list('')}")
client.makedirs("tmp")
check(client.delete("tmp") is True, "delete after")
print("ok", flush=True)
