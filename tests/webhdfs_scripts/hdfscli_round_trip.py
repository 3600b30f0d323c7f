"""Every WebHDFS operation HdfsCLI calls, against dfs, as a user in their
home directory. Fails (exit status 1, the reason on stderr) at the first
answer that is not what Hadoop would give. Environment: URLS (every
namenode, ;-separated), DFS_USER, OTHER_USER, SUPERUSER, DATA (a dir of
local files named after their sizes), BLOCK (the block size)."""

import os
import sys
import tempfile

from hdfs import HdfsError, InsecureClient

urls = os.environ["URLS"]
user = os.environ["DFS_USER"]
other_user = os.environ["OTHER_USER"]
superuser = os.environ["SUPERUSER"]
data_dir = os.environ["DATA"]
block = int(os.environ["BLOCK"])


def check(condition, what):
    if not condition:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def local(name):
    with open(os.path.join(data_dir, name), "rb") as f:
        return f.read()


def refused(call, exception, words=None):
    try:
        call()
    except HdfsError as e:
        check(e.exception == exception, f"expected {exception}, got {e.exception}: {e.message}")
        if words:
            check(words in e.message, f"expected {words!r} in {e.message!r}")
        return e
    check(False, f"expected {exception}, the call succeeded")


client = InsecureClient(urls, user=user)
home = f"/user/{user}"

# GETHOMEDIRECTORY: relative paths resolve against it.
check(client.resolve("x") == f"{home}/x", "home directory")

# MKDIRS with a permission, GETFILESTATUS.
client.makedirs("w/private", permission="700")
status = client.status("w/private")
check(status["type"] == "DIRECTORY", f"mkdirs type: {status}")
check(status["permission"] == "700", f"mkdirs permission: {status}")
check(status["owner"] == user, f"mkdirs owner: {status}")
check(status["pathSuffix"] == "", f"stat pathSuffix: {status}")

# CREATE (two steps: namenode 307, datanode 201) of every size, OPEN back.
sizes = sorted(os.listdir(data_dir))
for name in sizes:
    data = local(name)
    client.write(f"w/{name}", data=data, replication=2, blocksize=block, permission="640")
    st = client.status(f"w/{name}")
    check(st["length"] == len(data), f"{name}: length {st['length']}")
    check(st["blockSize"] == block, f"{name}: blockSize {st['blockSize']}")
    check(st["replication"] == 2, f"{name}: replication {st['replication']}")
    check(st["permission"] == "640", f"{name}: permission {st['permission']}")
    with client.read(f"w/{name}") as reader:
        check(reader.read() == data, f"{name}: content read back")

# CREATE without overwrite over an existing file is refused; with it, replaces.
refused(lambda: client.write("w/" + sizes[0], data=b"again"), "FileAlreadyExistsException")
client.write("w/" + sizes[0], data=b"replaced", overwrite=True)
with client.read("w/" + sizes[0]) as reader:
    check(reader.read() == b"replaced", "overwrite")
client.write("w/" + sizes[0], data=local(sizes[0]), overwrite=True)

# Ranged reads across a block boundary, at the end, and past it.
big = max(sizes, key=int)
data = local(big)
for offset, length in [(0, 10), (block - 10, 20), (block, block), (len(data) - 5, 100), (len(data), 10)]:
    with client.read(f"w/{big}", offset=offset, length=length) as reader:
        got = reader.read()
    check(got == data[offset:offset + length], f"range {offset}+{length}: {len(got)} bytes")
refused(lambda: client.read(f"w/{big}", offset=len(data) + 1).__enter__(), "IllegalArgumentException")

# LISTSTATUS: names and statuses; on a file, HdfsCLI's "not a directory".
names = client.list("w")
check(names == sorted(sizes + ["private"]), f"list: {names}")
listed = dict(client.list("w", status=True))
check(listed["private"]["type"] == "DIRECTORY", "listed dir type")
try:
    client.list(f"w/{big}")
    check(False, "list of a file succeeded")
except HdfsError as e:
    check("not a directory" in e.message, f"list of a file: {e.message}")

# GETCONTENTSUMMARY.
summary = client.content("w")
total = sum(int(s) for s in sizes)
check(summary["length"] == total, f"content length {summary}")
check(summary["fileCount"] == len(sizes), f"content files {summary}")
check(summary["directoryCount"] == 2, f"content dirs {summary}")
check(summary["spaceConsumed"] == 2 * total, f"content space {summary}")

# GETFILECHECKSUM (redirected): equal bytes, equal checksum, whatever the block size.
checksum = client.checksum(f"w/{big}")
check(checksum["algorithm"] == "COMPOSITE-CRC32C", f"checksum {checksum}")
client.write("w/copy", data=data, blocksize=block * 2)
check(client.checksum("w/copy") == checksum, "checksum of a copy with another block size")
client.delete("w/copy")

# APPEND onto a partial last block, and an empty append.
one_less = str(block - 1)
client.write(f"w/{one_less}", data=b"xyz", append=True)
client.write(f"w/{one_less}", data=b"", append=True)
with client.read(f"w/{one_less}") as reader:
    check(reader.read() == local(one_less) + b"xyz", "append")
with open(os.path.join(data_dir, one_less), "ab") as f:
    f.write(b"xyz")

# A chunked upload: a generator body goes out with Transfer-Encoding: chunked.
def chunks():
    for i in range(40):
        yield bytes([i]) * 50_000


client.write("w/chunked", data=chunks())
with client.read("w/chunked") as reader:
    check(reader.read() == b"".join(chunks()), "chunked upload")

# RENAME, then the old name is gone.
client.rename("w/chunked", "w/renamed")
check(client.status("w/chunked", strict=False) is None, "renamed source still there")
check(client.status("w/renamed")["length"] == 2_000_000, "renamed length")

# SETPERMISSION, SETREPLICATION, SETTIMES, SETOWNER (as the superuser).
client.set_permission("w/renamed", "604")
check(client.status("w/renamed")["permission"] == "604", "set_permission")
client.set_replication("w/renamed", 1)
check(client.status("w/renamed")["replication"] == 1, "set_replication")
client.set_times("w/renamed", access_time=1_000_000, modification_time=2_000_000)
st = client.status("w/renamed")
check(st["accessTime"] == 1_000_000 and st["modificationTime"] == 2_000_000, f"set_times {st}")
admin = InsecureClient(urls, user=superuser)
admin.set_owner(f"{home}/w/renamed", owner=other_user, group="staff")
st = client.status("w/renamed")
check(st["owner"] == other_user and st["group"] == "staff", f"set_owner {st}")

# HdfsCLI's own upload and download helpers, over the same operations.
client.upload("w/uploaded", os.path.join(data_dir, big), chunk_size=100_000)
with tempfile.TemporaryDirectory() as tmp:
    downloaded = client.download("w/uploaded", os.path.join(tmp, "down"))
    with open(downloaded, "rb") as f:
        check(f.read() == local(big), "upload then download")
check(client.delete("w/uploaded") is True, "delete uploaded")

# A missing path: HdfsCLI's "does not exist", and its strict=False.
error = refused(lambda: client.status("w/missing"), "FileNotFoundException", "does not exist")
check(client.status("w/missing", strict=False) is None, "status strict=False")
refused(lambda: client.read("w/missing").__enter__(), "FileNotFoundException", "does not exist")

# DELETE: true, then false for the missing path; a non-empty dir needs recursive.
check(client.delete("w/renamed") is True, "delete")
check(client.delete("w/renamed") is False, "delete of a missing path")
client.write("w/private/secret", data=b"s3cret")
refused(lambda: client.delete("w/private"), "PathIsNotEmptyDirectoryException")

# Another user: no entry into the 700 directory, no write into the home.
other = InsecureClient(urls, user=other_user)
refused(lambda: other.read(f"{home}/w/private/secret").__enter__(), "AccessControlException", "Permission denied")
refused(lambda: other.write(f"{home}/w/intruder", data=b"x"), "AccessControlException", "Permission denied")
refused(lambda: other.delete(f"{home}/w", recursive=True), "AccessControlException")
check(client.status("w/intruder", strict=False) is None, "a refused create left a file")
check(client.delete("w/private", recursive=True) is True, "recursive delete")

print("ok")
