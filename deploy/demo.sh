#!/usr/bin/env bash
# Builds dfs, starts a local cluster (3 namenodes, 6 datanodes on 2 fake
# racks) in ./dfs-demo and runs a short job against it: namespace commands,
# then a 20 MB file put in 4 MiB blocks, read back, compared and checked,
# which namenode leads, and the file read again over WebHDFS with curl. The
# cluster keeps running afterwards; the last line says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
bin="$PWD/target/release"
dir="${DFS_DEMO_DIR:-$PWD/dfs-demo}"
if [ -f "$dir/cluster.json" ]; then "$bin/dfs-cluster" down --dir "$dir"; fi
rm -rf "$dir"
"$bin/dfs-cluster" up --dir "$dir"
export DFS_CONFIG="$dir/dfs.toml"
me="$(id -un)"
set -x
"$bin/dfs" mkdir -p "/user/$me/demo/logs" /tmp
"$bin/dfs" chmod 1777 /tmp
"$bin/dfs" touchz "/user/$me/demo/README"
"$bin/dfs" setrep 2 "/user/$me/demo/README"
"$bin/dfs" mv "/user/$me/demo/logs" "/user/$me/demo/archive"
head -c 20000000 /dev/urandom > "$dir/sample.bin"
"$bin/dfs" put --block-size 4M "$dir/sample.bin" "/user/$me/demo/sample.bin"
"$bin/dfs" get "/user/$me/demo/sample.bin" "$dir/sample.copy"
cmp "$dir/sample.bin" "$dir/sample.copy"
"$bin/dfs" checksum "/user/$me/demo/sample.bin"
"$bin/dfs" fsck "/user/$me/demo" --racks
"$bin/dfs" ls -R /
"$bin/dfs" stat "/user/$me/demo"
"$bin/dfs" admin report
"$bin/dfs" admin ha-status
# The same file over WebHDFS with curl: followers answer StandbyException, the leader redirects to a datanode.
namenode_urls="$("$bin/dfs-cluster" status --dir "$dir" --json |
  python3 -c 'import json, sys; print(" ".join(n["http_url"] for n in json.load(sys.stdin) if n["kind"] == "namenode"))')"
for url in $namenode_urls; do
  if curl -sSf -L -o "$dir/sample.webhdfs" "$url/webhdfs/v1/user/$me/demo/sample.bin?op=OPEN&user.name=$me"; then break; fi
done
cmp "$dir/sample.bin" "$dir/sample.webhdfs"
{ set +x; } 2>/dev/null
echo
echo "Status pages: $namenode_urls (any namenode; followers link to the leader)"
echo "The cluster is still up. Try: export DFS_CONFIG=$dir/dfs.toml; $bin/dfs ls /"
echo "Stop it with: $bin/dfs-cluster down --dir $dir"
