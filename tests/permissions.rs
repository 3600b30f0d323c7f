//! Permission and existence rules through the real binaries, as two users
//! (alice and bob) and the superuser (the OS user that runs the namenode).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::process::Output;

use cluster::MiniCluster;

fn superuser() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map(|u| u.name)
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "expected success, got {:?}: {}",
        out.status,
        stderr(out)
    );
}

#[track_caller]
fn assert_fails_with(out: &Output, message: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        stdout(out)
    );
    assert_eq!(stderr(out), message);
}

#[test]
fn users_are_held_to_hdfs_permissions() {
    let cluster = MiniCluster::builder().namenodes(1).rack(1).start();
    let root = superuser();

    eprintln!("--- the superuser makes /data and gives it to alice");
    {
        assert_ok(&cluster.dfs(&root, &["mkdir", "/data"]));
        assert_ok(&cluster.dfs(&root, &["chown", "alice", "/data"]));
        assert_fails_with(
            &cluster.dfs("alice", &["mkdir", "/elsewhere"]),
            &format!(
                "mkdir: Permission denied: user=alice, access=WRITE, inode=\"/\":{root}:supergroup:drwxr-xr-x"
            ),
        );
    }

    eprintln!("--- alice writes in /data; bob may read but not write");
    {
        assert_ok(&cluster.dfs("alice", &["mkdir", "/data/a"]));
        assert_ok(&cluster.dfs("alice", &["touchz", "/data/a/f"]));
        assert_fails_with(
            &cluster.dfs("bob", &["mkdir", "/data/b"]),
            "mkdir: Permission denied: user=bob, access=WRITE, inode=\"/data\":alice:supergroup:drwxr-xr-x",
        );
        assert_fails_with(
            &cluster.dfs("bob", &["rm", "-r", "/data/a"]),
            "rm: Permission denied: user=bob, access=WRITE, inode=\"/data\":alice:supergroup:drwxr-xr-x",
        );
        let listing = cluster.dfs("bob", &["ls", "/data"]);
        assert_ok(&listing);
        assert!(stdout(&listing).contains("/data/a"), "{}", stdout(&listing));
        let f = cluster.dfs("bob", &["stat", "--json", "/data/a/f"]);
        assert_ok(&f);
        let entries: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
        assert_eq!(entries[0]["owner"], "alice");
        assert_eq!(
            entries[0]["group"], "supergroup",
            "group comes from the parent"
        );
        assert_eq!(entries[0]["permission"], 0o644, "0666 less the umask 022");
    }

    eprintln!("--- alice closes /data: bob can neither list nor traverse it");
    {
        assert_ok(&cluster.dfs("alice", &["chmod", "700", "/data"]));
        assert_fails_with(
            &cluster.dfs("bob", &["ls", "/data"]),
            "ls: Permission denied: user=bob, access=READ, inode=\"/data\":alice:supergroup:drwx------",
        );
        assert_fails_with(
            &cluster.dfs("bob", &["stat", "/data/a"]),
            "stat: Permission denied: user=bob, access=EXECUTE, inode=\"/data\":alice:supergroup:drwx------",
        );
        assert_ok(&cluster.dfs(&root, &["ls", "/data"]));
    }

    eprintln!("--- only the owner changes modes; only the superuser gives files away");
    {
        let chmod = cluster.dfs("bob", &["chmod", "777", "/data"]);
        assert!(!chmod.status.success());
        assert!(
            stderr(&chmod).starts_with("chmod: Permission denied: user=bob"),
            "{}",
            stderr(&chmod)
        );
        let chown = cluster.dfs("alice", &["chown", "bob", "/data/a"]);
        assert!(!chown.status.success());
        assert!(
            stderr(&chown).starts_with("chown: Permission denied: user=alice"),
            "{}",
            stderr(&chown)
        );
        assert_ok(&cluster.dfs(&root, &["chown", "-R", "bob:staff", "/data/a"]));
        let f = cluster.dfs(&root, &["stat", "--json", "/data/a/f"]);
        let entries: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
        assert_eq!(entries[0]["owner"], "bob");
        assert_eq!(entries[0]["group"], "staff");
    }
}

#[test]
fn existence_rules_hold_through_the_cli() {
    let cluster = MiniCluster::builder().namenodes(1).rack(1).start();
    let root = superuser();
    let dfs = |args: &[&str]| cluster.dfs(&root, args);

    eprintln!("--- mkdir needs a parent unless -p; an existing directory fails without -p");
    {
        assert_fails_with(
            &dfs(&["mkdir", "/a/b"]),
            "mkdir: '/a/b': No such file or directory",
        );
        assert_ok(&dfs(&["mkdir", "-p", "/a/b/c"]));
        assert_ok(&dfs(&["mkdir", "-p", "/a/b/c"]));
        assert_fails_with(&dfs(&["mkdir", "/a/b"]), "mkdir: '/a/b': File exists");
    }

    eprintln!("--- files: no overwrite, no directory below a file");
    {
        assert_ok(&dfs(&["touchz", "/a/f"]));
        assert_fails_with(&dfs(&["touchz", "/a/f"]), "touchz: '/a/f': File exists");
        assert_fails_with(
            &dfs(&["mkdir", "-p", "/a/f/g"]),
            "mkdir: '/a/f': Not a directory",
        );
    }

    eprintln!("--- rename refuses an existing destination; rm needs -r for directories");
    {
        assert_ok(&dfs(&["touchz", "/a/g"]));
        assert_fails_with(&dfs(&["mv", "/a/f", "/a/g"]), "mv: '/a/g': File exists");
        assert_ok(&dfs(&["mv", "/a/f", "/a/h"]));
        assert_fails_with(
            &dfs(&["stat", "/a/f"]),
            "stat: '/a/f': No such file or directory",
        );
        assert_fails_with(&dfs(&["rm", "/a"]), "rm: '/a': Is a directory");
        assert_ok(&dfs(&["rm", "-r", "/a"]));
        assert_fails_with(&dfs(&["ls", "/a"]), "ls: '/a': No such file or directory");
    }

    eprintln!("--- setrep changes files and refuses nonsense");
    {
        assert_ok(&dfs(&["touchz", "/r"]));
        assert_ok(&dfs(&["setrep", "2", "/r"]));
        let ls = dfs(&["ls", "--json", "/r"]);
        let entries: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        assert_eq!(entries[0]["replication"], 2);
        assert!(!dfs(&["setrep", "0", "/r"]).status.success());
    }
}
