//! `dfs put LOCALDIR DEST` and `dfs get SRCDIR LOCAL` copy whole trees, as
//! `hdfs dfs -put/-get` do: into DEST/basename when DEST is a directory,
//! else as DEST; nested directories, empty files and empty directories
//! arrive as they were, every file through its own `._COPYING_` file; a
//! file in the way is reported in HDFS's words and the rest still copied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use cluster::{MiniCluster, random_bytes};

const BLOCK: usize = 1024 * 1024;

/// A tree as path (relative, `/`-separated) → `None` for a directory,
/// `Some(bytes)` for a file.
type Tree = BTreeMap<String, Option<Vec<u8>>>;

fn sample_tree() -> Tree {
    let mut tree = Tree::new();
    let mut file = |path: &str, bytes: Vec<u8>| tree.insert(path.to_owned(), Some(bytes));
    file("a.txt", random_bytes(1, 3000));
    file("empty", Vec::new());
    file("nested/b.txt", random_bytes(2, 70_000));
    file(
        "nested/deep/big.bin",
        random_bytes(3, 2 * BLOCK + BLOCK / 2),
    );
    file("nested/deep/empty too", Vec::new());
    tree.insert("nested".into(), None);
    tree.insert("nested/deep".into(), None);
    tree.insert("void".into(), None);
    tree
}

fn write_local(root: &Path, tree: &Tree) {
    std::fs::create_dir_all(root).unwrap();
    for (path, content) in tree {
        let at = root.join(path);
        match content {
            None => std::fs::create_dir_all(&at).unwrap(),
            Some(bytes) => {
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::write(&at, bytes).unwrap();
            }
        }
    }
}

fn read_local(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if path.is_dir() {
                tree.insert(name, None);
                pending.push(path);
            } else {
                tree.insert(name, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    tree
}

/// The dfs tree below `root`, from `ls -R --json` and `cat`.
fn read_dfs(cluster: &MiniCluster, root: &str) -> Tree {
    let text = cluster.dfs_ok(&cluster.superuser(), &["ls", "-R", "--json", root]);
    let listing: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut tree = Tree::new();
    for entry in listing.as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let name = path
            .strip_prefix(root)
            .unwrap()
            .trim_start_matches('/')
            .to_owned();
        let content = if entry["type"] == "directory" {
            None
        } else {
            let out = cluster.dfs(&cluster.superuser(), &["cat", path]);
            assert!(out.status.success(), "cat {path}: {out:?}");
            Some(out.stdout)
        };
        tree.insert(name, content);
    }
    tree
}

#[track_caller]
fn assert_same_tree(what: &str, got: &Tree, want: &Tree) {
    let names = |t: &Tree| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}: other entries");
    for (path, content) in want {
        assert!(got[path] == *content, "{what}: {path} differs");
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn directory_trees_go_up_and_come_back_whole() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(1)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let local = cluster.dir().join("local");
    let tree = sample_tree();
    let source = local.join("photos");
    write_local(&source, &tree);
    let source_str = source.to_str().unwrap();
    cluster.dfs_ok(&su, &["mkdir", "/up"]);

    eprintln!("--- put DIR into an existing directory: it lands under its own name");
    {
        cluster.dfs_ok(&su, &["put", source_str, "/up"]);
        assert_same_tree("/up/photos", &read_dfs(&cluster, "/up/photos"), &tree);
        let fsck = cluster.fsck("/up");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
        assert_eq!(fsck["summary"]["total_files"], 5, "{fsck}");
        assert_eq!(fsck["summary"]["total_blocks"], 5, "{fsck}");
    }

    eprintln!("--- put DIR onto a missing path: the copy is that path");
    {
        cluster.dfs_ok(&su, &["put", source_str, "/copy"]);
        assert_same_tree("/copy", &read_dfs(&cluster, "/copy"), &tree);
    }

    eprintln!("--- put again: each file is in the way, directories merge; -f replaces");
    {
        let changed = random_bytes(9, 500);
        std::fs::write(source.join("nested/b.txt"), &changed).unwrap();
        let out = cluster.dfs(&su, &["put", source_str, "/up"]);
        assert!(!out.status.success());
        let refusals: Vec<String> = stderr(&out).lines().map(|l| l.trim().to_owned()).collect();
        assert_eq!(
            refusals,
            [
                "put: '/up/photos/a.txt': File exists",
                "put: '/up/photos/empty': File exists",
                "put: '/up/photos/nested/b.txt': File exists",
                "put: '/up/photos/nested/deep/big.bin': File exists",
                "put: '/up/photos/nested/deep/empty too': File exists",
            ]
        );
        cluster.dfs_ok(&su, &["put", "-f", source_str, "/up"]);
        let mut want = tree.clone();
        want.insert("nested/b.txt".into(), Some(changed));
        assert_same_tree(
            "/up/photos after -f",
            &read_dfs(&cluster, "/up/photos"),
            &want,
        );
        let listing = cluster.dfs_ok(&su, &["ls", "-R", "/up"]);
        assert!(!listing.contains("._COPYING_"), "{listing}");
    }

    eprintln!("--- get DIR to a missing local path, then into an existing directory");
    {
        let want = read_dfs(&cluster, "/copy");
        let back = local.join("back");
        cluster.dfs_ok(&su, &["get", "/copy", back.to_str().unwrap()]);
        assert_same_tree("local back", &read_local(&back), &want);
        let into = local.join("into");
        std::fs::create_dir(&into).unwrap();
        cluster.dfs_ok(&su, &["get", "/copy", into.to_str().unwrap()]);
        assert_same_tree("local into/copy", &read_local(&into.join("copy")), &want);
        assert_eq!(std::fs::read_dir(&into).unwrap().count(), 1, "only copy/");
    }

    eprintln!("--- a directory onto a file, either way, is refused in HDFS's words");
    {
        cluster.dfs_ok(
            &su,
            &["put", source.join("a.txt").to_str().unwrap(), "/file"],
        );
        let out = cluster.dfs(&su, &["put", source_str, "/file"]);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).trim(), "put: '/file': Is not a directory");
        let file = local.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let file = file.to_str().unwrap();
        let out = cluster.dfs(&su, &["get", "/copy", file]);
        assert!(!out.status.success());
        assert_eq!(
            stderr(&out).trim(),
            format!("get: '{file}': Is not a directory")
        );
        assert_eq!(std::fs::read(file).unwrap(), b"x");
    }
}
