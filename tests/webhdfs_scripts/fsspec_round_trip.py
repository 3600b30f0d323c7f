"""fsspec's webhdfs filesystem and pandas through it, against dfs. Fails
(exit status 1, the reason on stderr) at the first wrong answer.
Environment: HOST, PORT (a namenode's WebHDFS), DFS_USER, OTHER_USER,
FROM_DFS (a local copy of what `dfs put` wrote to ~/from-dfs), BLOCK."""

import os
import sys

import fsspec
import pandas as pd

host, port = os.environ["HOST"], int(os.environ["PORT"])
user, other_user = os.environ["DFS_USER"], os.environ["OTHER_USER"]
block = int(os.environ["BLOCK"])
home = f"/user/{user}"


def check(condition, what):
    if not condition:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def expect(exception, call, what):
    try:
        call()
    except exception:
        return
    except Exception as e:  # noqa: BLE001 - the wrong kind is the failure
        check(False, f"{what}: expected {exception.__name__}, got {type(e).__name__}: {e}")
    check(False, f"{what}: expected {exception.__name__}, the call succeeded")


def splitmix(seed, n):
    """The bytes tests/cluster's random_bytes(seed, n) gives."""
    mask = (1 << 64) - 1
    state, out = seed, bytearray()
    while len(out) < n:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:n])


fs = fsspec.filesystem("webhdfs", host=host, port=port, user=user)

check(fs.home_directory() == home, "home_directory")

# mkdir, info, exists.
fs.mkdir(f"{home}/fs")
info = fs.info(f"{home}/fs")
check(info["type"] == "directory", f"info {info}")
check(not fs.exists(f"{home}/fs/missing"), "exists of a missing path")
expect(FileNotFoundError, lambda: fs.info(f"{home}/fs/missing"), "info of a missing path")

# Write through open('wb'): CREATE with an empty body, then one APPEND per buffer.
big = splitmix(7, 3 * block + 100)
with fs.open(f"{home}/fs/big", "wb", block_size=block) as f:
    for at in range(0, len(big), 300_000):
        f.write(big[at:at + 300_000])
check(fs.info(f"{home}/fs/big")["size"] == len(big), "size after write")
check(fs.cat_file(f"{home}/fs/big") == big, "cat_file of the whole file")

# Ranged reads: OPEN with offset and length.
for start, end in [(0, 1), (block - 3, block + 3), (2 * block, 3 * block + 100), (len(big) - 1, len(big))]:
    check(fs.cat_file(f"{home}/fs/big", start=start, end=end) == big[start:end], f"range {start}-{end}")
with fs.open(f"{home}/fs/big", "rb", block_size=65536) as f:
    f.seek(block + 11)
    check(f.read(1000) == big[block + 11:block + 1011], "seek and read")

# Empty files, append mode, ls.
fs.touch(f"{home}/fs/empty")
check(fs.info(f"{home}/fs/empty")["size"] == 0, "touch")
check(fs.cat_file(f"{home}/fs/empty") == b"", "read an empty file")
# (fsspec 2026.9.0's "ab" mode never sets its upload location: "wb", which
# appends every buffer after an empty CREATE, is what exercises APPEND.)
with fs.open(f"{home}/fs/log", "wb", block_size=5) as f:
    f.write(b"one\n")
    f.flush()
    f.write(b"two\n")
check(fs.cat_file(f"{home}/fs/log") == b"one\ntwo\n", "appended buffers")
names = fs.ls(f"{home}/fs")
check(names == sorted(f"{home}/fs/{n}" for n in ["big", "empty", "log"]), f"ls {names}")

# What dfs put wrote, read through fsspec.
with open(os.environ["FROM_DFS"], "rb") as f:
    put = f.read()
check(fs.cat_file(f"{home}/from-dfs") == put, "a file dfs put wrote")

# ukey (GETFILECHECKSUM), content_summary, chmod, set_replication, mv, rm.
check(fs.ukey(f"{home}/fs/big")["algorithm"] == "COMPOSITE-CRC32C", "ukey")
summary = fs.content_summary(f"{home}/fs")
check(summary["fileCount"] == 3 and summary["length"] == len(big) + 8, f"content_summary {summary}")
# As a string: fsspec sends an int in decimal, which Hadoop (and dfs) read as octal.
fs.chmod(f"{home}/fs/log", "600")
check(fs.info(f"{home}/fs/log")["permission"] == "600", "chmod")
fs.set_replication(f"{home}/fs/log", 2)
check(fs.info(f"{home}/fs/log")["replication"] == 2, "set_replication")
fs.mv(f"{home}/fs/log", f"{home}/fs/log2")
check(not fs.exists(f"{home}/fs/log") and fs.exists(f"{home}/fs/log2"), "mv")
fs.rm(f"{home}/fs/log2")
check(not fs.exists(f"{home}/fs/log2"), "rm")

# Another user is refused.
other = fsspec.filesystem("webhdfs", host=host, port=port, user=other_user, skip_instance_cache=True)
expect(PermissionError, lambda: other.mkdir(f"{home}/intruder"), "another user's mkdir")
# fsspec sends the datanode step itself and raises requests' HTTPError for
# its 403 (an AccessControlException) without reading the body.
try:
    other.pipe_file(f"{home}/fs/intruder", b"x")
    check(False, "another user's write succeeded")
except Exception as e:  # noqa: BLE001
    response = getattr(e, "response", None)
    check(response is not None and response.status_code == 403, f"another user's write: {e!r}")
    check(response.json()["RemoteException"]["exception"] == "AccessControlException", response.text)
check(not fs.exists(f"{home}/fs/intruder"), "a refused write left a file")

# pandas writes and reads a CSV through fsspec webhdfs.
url = f"webhdfs://{host}:{port}{home}/fs/table.csv"
options = {"user": user}
frame = pd.DataFrame({"n": range(1000), "square": [n * n for n in range(1000)]})
frame.to_csv(url, index=False, storage_options=options)
back = pd.read_csv(url, storage_options=options)
check(back.equals(frame), "pandas round trip")
check(int(back["square"].sum()) == sum(n * n for n in range(1000)), "pandas sum")

print("ok")
