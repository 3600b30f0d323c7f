//! Behaviour of the namespace through its crate API: check, apply, queries.

use proptest::prelude::*;

use super::*;
use crate::retry_cache::Logged;
use crate::txn::{BlockRecord, NewDir, Txn, Zxid};

/// `txn` as it comes back from the journal.
pub(super) fn journaled(txn: &Txn) -> Txn {
    let logged = Logged {
        call: None,
        txn: txn.clone(),
    };
    Logged::decode(Zxid(1), &logged.encode()).unwrap().txn
}

pub(crate) const MIB: u64 = 1 << 20;
/// The client that writes files unless a test says otherwise.
pub(crate) const CLIENT: &str = "c0ffee";

pub(crate) fn policy() -> PermissionPolicy {
    PermissionPolicy {
        superuser: "hdfs".into(),
        supergroup: "supergroup".into(),
        umask: 0o022,
    }
}

pub(crate) fn caller(user: &str, groups: &[&str]) -> Caller {
    Caller {
        user: user.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

pub(crate) fn hdfs() -> Caller {
    caller("hdfs", &["hadoop"])
}
/// A superuser by group membership only.
pub(crate) fn carol() -> Caller {
    caller("carol", &["users", "supergroup"])
}
pub(crate) fn alice() -> Caller {
    caller("alice", &["staff", "users"])
}
pub(crate) fn bob() -> Caller {
    caller("bob", &["staff"])
}
pub(crate) fn eve() -> Caller {
    caller("eve", &["guests"])
}

pub(crate) fn mkdir(path: &str) -> Op {
    Op::Mkdirs {
        path: path.into(),
        mode: None,
        create_parent: false,
    }
}
pub(crate) fn mkdir_p(path: &str) -> Op {
    Op::Mkdirs {
        path: path.into(),
        mode: None,
        create_parent: true,
    }
}
fn mkdir_mode(path: &str, mode: u16) -> Op {
    Op::Mkdirs {
        path: path.into(),
        mode: Some(mode),
        create_parent: false,
    }
}
pub(crate) fn create(path: &str) -> Op {
    Op::Create {
        path: path.into(),
        mode: None,
        overwrite: false,
        create_parent: false,
        replication: 3,
        block_size: 128 * MIB,
        client: CLIENT.into(),
    }
}
pub(crate) fn create_with(
    path: &str,
    overwrite: bool,
    create_parent: bool,
    replication: u16,
) -> Op {
    Op::Create {
        path: path.into(),
        mode: None,
        overwrite,
        create_parent,
        replication,
        block_size: 128 * MIB,
        client: CLIENT.into(),
    }
}
pub(crate) fn complete(path: &str, client: &str, last: Option<BlockRecord>) -> Op {
    Op::Complete {
        path: path.into(),
        client: client.into(),
        last,
    }
}
pub(crate) fn delete(path: &str, recursive: bool) -> Op {
    Op::Delete {
        path: path.into(),
        recursive,
    }
}
pub(crate) fn rename(src: &str, dst: &str) -> Op {
    Op::Rename {
        src: src.into(),
        dst: dst.into(),
    }
}
pub(crate) fn chmod(path: &str, mode: u16) -> Op {
    Op::SetPermission {
        path: path.into(),
        mode,
    }
}
pub(crate) fn chown(path: &str, owner: Option<&str>, group: Option<&str>) -> Op {
    Op::SetOwner {
        path: path.into(),
        owner: owner.map(Into::into),
        group: group.map(Into::into),
    }
}
pub(crate) fn setrep(path: &str, replication: u16) -> Op {
    Op::SetReplication {
        path: path.into(),
        replication,
    }
}
pub(crate) fn touch(path: &str, mtime_ms: Option<u64>, atime_ms: Option<u64>) -> Op {
    Op::SetTimes {
        path: path.into(),
        mtime_ms,
        atime_ms,
    }
}

/// A namespace plus the log of everything applied to it; time advances by
/// one second per request.
pub(crate) struct Fixture {
    pub(crate) ns: Namespace,
    pub(crate) now_ms: u64,
    pub(crate) log: Vec<Txn>,
    /// The blocks the last applied txn freed.
    pub(crate) freed: Vec<BlockRecord>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self::with_policy(policy())
    }

    pub(crate) fn with_policy(policy: PermissionPolicy) -> Self {
        Fixture {
            ns: Namespace::new(policy),
            now_ms: 1_700_000_000_000,
            log: Vec::new(),
            freed: Vec::new(),
        }
    }

    /// check, then apply what it returns.
    pub(crate) fn run(&mut self, op: Op, who: &Caller) -> Result<Option<Txn>, Error> {
        self.now_ms += 1000;
        let before = self.ns.digest();
        let txn = self.ns.check(&op, who, self.now_ms)?;
        match &txn {
            Some(txn) => {
                self.freed = self
                    .ns
                    .apply(txn)
                    .unwrap_or_else(|e| panic!("{op:?}: {txn:?}: {e}"));
                self.log.push(txn.clone());
            }
            None => {
                self.freed.clear();
                assert_eq!(self.ns.digest(), before, "{op:?} returned None");
            }
        }
        Ok(txn)
    }

    pub(crate) fn ok(&mut self, op: Op, who: &Caller) -> Option<Txn> {
        let shown = format!("{op:?} as {}", who.user);
        self.run(op, who).unwrap_or_else(|e| panic!("{shown}: {e}"))
    }

    /// Runs a request that must fail, and checks that it changed nothing.
    pub(crate) fn err(&mut self, op: Op, who: &Caller) -> Error {
        let before = (self.ns.digest(), self.ns.inode_count());
        let shown = format!("{op:?} as {}", who.user);
        let err = match self.run(op, who) {
            Ok(txn) => panic!("{shown} succeeded: {txn:?}"),
            Err(e) => e,
        };
        assert_eq!((self.ns.digest(), self.ns.inode_count()), before);
        err
    }

    pub(crate) fn info(&self, path: &str) -> FileStatus {
        self.ns
            .file_info(path, &hdfs())
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        match self.ns.file_info(path, &hdfs()) {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => panic!("{path}: {e}"),
        }
    }

    /// `/data` owned by `owner:group` with `mode`.
    fn dir(&mut self, path: &str, owner: &str, group: &str, mode: u16) {
        self.ok(mkdir_p(path), &hdfs());
        self.ok(chown(path, Some(owner), Some(group)), &hdfs());
        self.ok(chmod(path, mode), &hdfs());
    }

    /// A file at `path` owned by `owner:group` with `mode`.
    fn file(&mut self, path: &str, owner: &str, group: &str, mode: u16) {
        self.ok(create(path), &hdfs());
        self.ok(chown(path, Some(owner), Some(group)), &hdfs());
        self.ok(chmod(path, mode), &hdfs());
    }
}

fn perm_of(status: &FileStatus) -> (&str, &str, u16) {
    (&status.perm.owner, &status.perm.group, status.perm.mode)
}

// --- the root and new inodes ---

#[test]
fn root_is_owned_by_the_superuser_with_mode_755_and_mtime_0() {
    let f = Fixture::new();
    let root = f.info("/");
    assert_eq!(perm_of(&root), ("hdfs", "supergroup", 0o755));
    assert_eq!(
        (root.kind, root.mtime_ms, root.children),
        (FileKind::Directory, 0, 0)
    );
    assert_eq!(f.ns.inode_count(), 1);
}

#[test]
fn new_inodes_belong_to_the_caller_and_inherit_the_parent_group() {
    let mut f = Fixture::new();
    f.dir("/data", "alice", "analysts", 0o777);
    f.ok(mkdir("/data/x"), &bob());
    f.ok(create("/data/x/f"), &bob());
    assert_eq!(perm_of(&f.info("/data/x")), ("bob", "analysts", 0o755));
    assert_eq!(perm_of(&f.info("/data/x/f")), ("bob", "analysts", 0o644));
}

#[test]
fn the_umask_clears_bits_from_requested_and_default_modes() {
    for (umask, op, want) in [
        (0o022, mkdir("/n"), 0o755),
        (0o022, mkdir_mode("/n", 0o777), 0o755),
        (0o077, mkdir("/n"), 0o700),
        (0o000, mkdir_mode("/n", 0o1777), 0o1777),
        (0o022, create("/n"), 0o644),
        (0o027, create("/n"), 0o640),
        (
            0o002,
            Op::Create {
                path: "/n".into(),
                mode: Some(0o777),
                overwrite: false,
                create_parent: false,
                replication: 1,
                block_size: MIB,
                client: CLIENT.into(),
            },
            0o775,
        ),
    ] {
        let mut f = Fixture::with_policy(PermissionPolicy { umask, ..policy() });
        let who = alice_with_root_write(&mut f);
        f.ok(op.clone(), &who);
        assert_eq!(f.info("/n").perm.mode, want, "umask {umask:o}, {op:?}");
    }
}

/// Opens the root to everyone, as a cluster admin might, and returns alice.
fn alice_with_root_write(f: &mut Fixture) -> Caller {
    f.ok(chmod("/", 0o777), &hdfs());
    alice()
}

#[test]
fn mkdirs_p_creates_missing_parents_with_u_wx_added() {
    let mut f = Fixture::with_policy(PermissionPolicy {
        umask: 0o222,
        ..policy()
    });
    f.dir("/data", "alice", "analysts", 0o755);
    let now = f.now_ms + 1000;
    let txn = f.ok(
        Op::Mkdirs {
            path: "/data/a/b/c".into(),
            mode: Some(0o700),
            create_parent: true,
        },
        &alice(),
    );
    let Some(Txn::Mkdirs { dirs, mtime_ms }) = txn else {
        panic!("no mkdirs txn: {txn:?}");
    };
    let paths: Vec<_> = dirs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/data/a", "/data/a/b", "/data/a/b/c"]);
    assert_eq!(mtime_ms, now);
    // (0o777 & !0o222) | 0o300 for the parents, 0o700 & !0o222 for the target.
    assert_eq!(perm_of(&f.info("/data/a")), ("alice", "analysts", 0o755));
    assert_eq!(perm_of(&f.info("/data/a/b")), ("alice", "analysts", 0o755));
    assert_eq!(
        perm_of(&f.info("/data/a/b/c")),
        ("alice", "analysts", 0o500)
    );
    for path in ["/data", "/data/a", "/data/a/b", "/data/a/b/c"] {
        assert_eq!(f.info(path).mtime_ms, now, "{path}");
    }
}

#[test]
fn create_p_gives_new_parents_the_nearest_ancestors_bits_plus_u_wx() {
    let mut f = Fixture::new();
    f.dir("/data", "alice", "analysts", 0o751);
    f.ok(create_with("/data/x/y/f", false, true, 2), &alice());
    assert_eq!(perm_of(&f.info("/data/x")), ("alice", "analysts", 0o751));
    assert_eq!(perm_of(&f.info("/data/x/y")), ("alice", "analysts", 0o751));
    f.dir("/ro", "alice", "analysts", 0o555);
    f.ok(create_with("/ro/x/f", false, true, 2), &hdfs());
    assert_eq!(perm_of(&f.info("/ro/x")), ("hdfs", "analysts", 0o755));
    let file = f.info("/ro/x/f");
    assert_eq!(
        (file.kind, file.replication, file.block_size),
        (FileKind::File, 2, 128 * MIB)
    );
    assert_eq!((file.length, file.atime_ms), (0, file.mtime_ms));
}

// --- existence rules ---

#[test]
fn mkdirs_of_an_existing_directory_is_a_no_op_with_p_and_an_error_without() {
    let mut f = Fixture::new();
    f.ok(mkdir("/a"), &hdfs());
    assert_eq!(f.ok(mkdir_p("/a"), &alice()), None);
    assert_eq!(f.ok(mkdir_p("//a//"), &alice()), None);
    assert_eq!(f.ok(mkdir_p("/"), &alice()), None);
    let err = f.err(mkdir("/a"), &hdfs());
    assert_eq!(err.to_string(), "'/a': File exists");
    assert!(matches!(f.err(mkdir("/"), &hdfs()), Error::AlreadyExists { path } if path == "/"));
}

#[test]
fn mkdirs_under_a_missing_parent_without_p_names_the_path_asked_for() {
    let mut f = Fixture::new();
    let err = f.err(mkdir("/a/b"), &hdfs());
    assert_eq!(err.to_string(), "'/a/b': No such file or directory");
    assert!(!f.exists("/a"));
}

#[test]
fn mkdirs_through_a_file_names_the_file() {
    let mut f = Fixture::new();
    f.ok(mkdir("/a"), &hdfs());
    f.ok(create("/a/f"), &hdfs());
    let err = f.err(mkdir_p("/a/f/x/y"), &hdfs());
    assert_eq!(err.to_string(), "'/a/f': Not a directory");
    assert!(
        matches!(f.err(mkdir_p("/a/f"), &hdfs()), Error::AlreadyExists { path } if path == "/a/f")
    );
    assert!(matches!(
        f.err(mkdir("/a/f"), &hdfs()),
        Error::AlreadyExists { .. }
    ));
}

#[test]
fn create_follows_hdfs_existence_rules() {
    let mut f = Fixture::new();
    f.ok(mkdir("/d"), &hdfs());
    f.ok(create_with("/d/f", false, false, 3), &hdfs());
    let err = f.err(create("/d/f"), &hdfs());
    assert!(matches!(err, Error::AlreadyBeingCreated { .. }), "{err}");
    f.ok(complete("/d/f", CLIENT, None), &hdfs());
    let err = f.err(create("/d/f"), &hdfs());
    assert_eq!(err.to_string(), "'/d/f': File exists");

    let inodes = f.ns.inode_count();
    f.ok(create_with("/d/f", true, false, 5), &hdfs());
    assert_eq!(f.info("/d/f").replication, 5, "overwrite replaced the file");
    assert_eq!(f.ns.inode_count(), inodes);

    for overwrite in [false, true] {
        let err = f.err(create_with("/d", overwrite, false, 3), &hdfs());
        assert_eq!(err.to_string(), "'/d': Is a directory");
    }
    let err = f.err(create("/missing/f"), &hdfs());
    assert_eq!(err.to_string(), "'/missing/f': No such file or directory");
    let err = f.err(create_with("/d/f/g", false, true, 3), &hdfs());
    assert_eq!(err.to_string(), "'/d/f': Not a directory");
    f.ok(create_with("/missing/f", false, true, 3), &hdfs());
    assert_eq!(f.info("/missing").kind, FileKind::Directory);
    assert!(matches!(f.err(create("/"), &hdfs()), Error::InvalidPath { path, .. } if path == "/"));
}

#[test]
fn create_validates_replication_block_size_and_mode() {
    let mut f = Fixture::new();
    let op = |replication, block_size, mode| Op::Create {
        path: "/f".into(),
        mode,
        overwrite: true,
        create_parent: false,
        replication,
        block_size,
        client: CLIENT.into(),
    };
    for (bad, field) in [
        (op(0, MIB, None), "replication"),
        (op(513, MIB, None), "replication"),
        (op(3, 0, None), "block_size"),
        (op(3, MIB - 512, None), "block_size"),
        (op(3, MIB + 1, None), "block_size"),
        (op(3, (1 << 40) + 512, None), "block_size"),
        (op(3, u64::MAX, None), "block_size"),
        (op(3, MIB, Some(0o10000)), "mode"),
    ] {
        match f.err(bad.clone(), &hdfs()) {
            Error::InvalidArgument { field: got, .. } => assert_eq!(got, field, "{bad:?}"),
            other => panic!("{bad:?}: {other}"),
        }
    }
    for good in [
        op(1, MIB, None),
        op(512, 1 << 40, None),
        op(3, MIB + 512, Some(0o7777)),
    ] {
        f.ok(good, &hdfs());
    }
}

#[test]
fn delete_follows_hdfs_existence_rules() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/a/b/c"), &hdfs());
    f.ok(create("/a/b/c/f"), &hdfs());
    f.ok(mkdir("/empty"), &hdfs());
    assert_eq!(f.ns.inode_count(), 6);

    let err = f.err(delete("/nope", true), &hdfs());
    assert_eq!(err.to_string(), "'/nope': No such file or directory");
    let err = f.err(delete("/a", false), &hdfs());
    assert_eq!(err.to_string(), "'/a': Directory is not empty");
    assert!(matches!(
        f.err(delete("/", true), &hdfs()),
        Error::InvalidPath { .. }
    ));

    f.ok(delete("/empty", false), &hdfs());
    f.ok(delete("/a/b/c/f", false), &hdfs());
    let now = f.now_ms + 1000;
    f.ok(delete("/a/b", true), &hdfs());
    assert!(!f.exists("/a/b") && !f.exists("/a/b/c"));
    assert_eq!(f.info("/a").mtime_ms, now, "the parent's mtime moves");
    assert_eq!(f.ns.inode_count(), 2);
}

#[test]
fn rename_refuses_what_hdfs_refuses() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/a/b"), &hdfs());
    f.ok(mkdir("/c"), &hdfs());
    f.ok(create("/f"), &hdfs());
    for (src, dst, want) in [
        ("/nope", "/x", "'/nope': No such file or directory"),
        ("/a", "/c", "'/c': File exists"),
        (
            "/a",
            "/missing/x",
            "'/missing/x': No such file or directory",
        ),
        ("/a", "/f/x", "'/f': Not a directory"),
        (
            "/a",
            "/a/b/x",
            "invalid dst: cannot move '/a' into itself or its own subdirectory '/a/b/x'",
        ),
        (
            "/",
            "/x",
            "'/': Invalid path name: the root directory cannot be renamed",
        ),
        (
            "/a",
            "/",
            "'/': Invalid path name: cannot rename onto the root directory",
        ),
    ] {
        let err = f.err(rename(src, dst), &hdfs());
        assert_eq!(err.to_string(), want, "{src} -> {dst}");
    }
    assert_eq!(f.ok(rename("/a", "/a/"), &hdfs()), None, "onto itself");
}

#[test]
fn rename_moves_a_whole_subtree_and_touches_both_parents() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/a/b/c"), &hdfs());
    f.ok(create("/a/b/c/f"), &hdfs());
    f.ok(mkdir("/z"), &hdfs());
    let b_before = f.info("/a/b");
    let now = f.now_ms + 1000;
    f.ok(rename("/a/b", "/z/moved"), &hdfs());
    assert!(!f.exists("/a/b"));
    assert_eq!(f.info("/z/moved/c/f").kind, FileKind::File);
    let moved = f.info("/z/moved");
    assert_eq!(
        (moved.perm, moved.mtime_ms),
        (b_before.perm, b_before.mtime_ms)
    );
    assert_eq!((f.info("/a").mtime_ms, f.info("/z").mtime_ms), (now, now));
    // A sibling whose name starts with the source's name is not inside it.
    f.ok(rename("/z", "/zz"), &hdfs());
    f.ok(rename("/zz/moved", "/zz/moved2"), &hdfs());
    assert!(f.exists("/zz/moved2/c/f"));
}

// --- permissions ---

#[test]
fn permission_denials_name_the_inode_exactly_as_hdfs_does() {
    let mut f = Fixture::new();
    f.ok(mkdir("/data"), &hdfs());
    f.dir("/private", "alice", "staff", 0o700);
    f.dir("/noread", "alice", "staff", 0o311);
    f.file("/data/f", "alice", "staff", 0o644);
    let cases: Vec<(&str, Result<(), Error>)> = vec![
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/data\":hdfs:supergroup:drwxr-xr-x",
            f.ns.check(&mkdir("/data/x"), &bob(), 1).map(drop),
        ),
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/data\":hdfs:supergroup:drwxr-xr-x",
            f.ns.check(&create_with("/data/x/y/f", false, true, 3), &bob(), 1)
                .map(drop),
        ),
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/\":hdfs:supergroup:drwxr-xr-x",
            f.ns.check(&mkdir_p("/new/deep"), &bob(), 1).map(drop),
        ),
        (
            "Permission denied: user=bob, access=EXECUTE, inode=\"/private\":alice:staff:drwx------",
            f.ns.file_info("/private/x", &bob()).map(drop),
        ),
        (
            "Permission denied: user=eve, access=READ, inode=\"/noread\":alice:staff:d-wx--x--x",
            f.ns.list("/noread", &eve(), "", 10).map(drop),
        ),
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/data/f\":alice:staff:-rw-r--r--",
            f.ns.check(&create_with("/data/f", true, false, 3), &bob(), 1)
                .map(drop),
        ),
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/data\":hdfs:supergroup:drwxr-xr-x",
            f.ns.check(&delete("/data/f", false), &bob(), 1).map(drop),
        ),
        (
            "Permission denied: user=alice, access=WRITE, inode=\"/data\":hdfs:supergroup:drwxr-xr-x",
            f.ns.check(&rename("/data/f", "/private/f"), &alice(), 1)
                .map(drop),
        ),
        (
            "Permission denied: user=bob, access=WRITE, inode=\"/data/f\":alice:staff:-rw-r--r--",
            f.ns.check(&setrep("/data/f", 2), &bob(), 1).map(drop),
        ),
    ];
    for (want, got) in cases {
        match got {
            Err(e @ Error::PermissionDenied { .. }) => assert_eq!(e.to_string(), want),
            other => panic!("expected {want}, got {other:?}"),
        }
    }
    // file_info needs only EXECUTE on ancestors, not READ on the directory.
    assert_eq!(f.ns.file_info("/noread", &eve()).unwrap().path, "/noread");
    f.ok(mkdir("/noread/sub"), &hdfs());
    assert!(f.ns.file_info("/noread/sub", &eve()).is_ok());
}

#[test]
fn rename_needs_write_on_the_destination_parent_too() {
    let mut f = Fixture::new();
    f.dir("/mine", "alice", "staff", 0o755);
    f.ok(mkdir("/theirs"), &hdfs());
    f.ok(create("/mine/f"), &alice());
    let err = f.err(rename("/mine/f", "/theirs/f"), &alice());
    assert_eq!(
        err.to_string(),
        "Permission denied: user=alice, access=WRITE, inode=\"/theirs\":hdfs:supergroup:drwxr-xr-x"
    );
    f.ok(rename("/mine/f", "/mine/g"), &alice());
}

#[test]
fn the_owner_class_wins_over_the_group_class() {
    let mut f = Fixture::new();
    // Owner alice has no rights; her group staff has all.
    f.dir("/d", "alice", "staff", 0o070);
    assert!(matches!(
        f.err(mkdir("/d/x"), &alice()),
        Error::PermissionDenied {
            access: Access::Execute,
            ..
        }
    ));
    f.ok(mkdir("/d/x"), &bob());
    // Neither owner nor in the group: other class, which has nothing.
    let err = f.err(mkdir("/d/y"), &eve());
    assert!(
        err.to_string().contains("user=eve, access=EXECUTE"),
        "{err}"
    );
}

#[test]
fn superuser_and_supergroup_members_bypass_every_check() {
    for admin in [hdfs(), carol()] {
        let mut f = Fixture::new();
        f.dir("/locked", "alice", "staff", 0o000);
        f.ok(mkdir("/locked/sub"), &hdfs());
        f.ok(create("/locked/sub/f"), &admin);
        assert_eq!(f.ns.list("/locked", &admin, "", 10).unwrap().0.len(), 1);
        f.ok(chmod("/locked/sub", 0o000), &admin);
        f.ok(chown("/locked", Some("bob"), Some("nobodys-group")), &admin);
        f.ok(touch("/locked/sub/f", Some(5), Some(6)), &admin);
        f.ok(setrep("/locked/sub/f", 1), &admin);
        f.ok(rename("/locked/sub", "/locked/sub2"), &admin);
        f.ok(delete("/locked", true), &admin);
        assert!(!f.exists("/locked"), "{}", admin.user);
    }
    // Others do get checked.
    let mut f = Fixture::new();
    f.dir("/locked", "alice", "staff", 0o000);
    f.err(mkdir("/locked/x"), &caller("carol", &["users"]));
}

#[test]
fn sticky_directories_only_let_owners_delete_or_rename_entries() {
    let mut f = Fixture::new();
    f.dir("/tmp", "dave", "staff", 0o1777);
    assert_eq!(f.info("/tmp").perm.mode, 0o1777);
    f.ok(create("/tmp/a"), &alice());
    f.ok(create("/tmp/b"), &alice());
    f.ok(create("/tmp/c"), &alice());
    let err = f.err(delete("/tmp/a", false), &bob());
    assert_eq!(
        err.to_string(),
        "Permission denied: user=bob is not the owner of inode=\"/tmp/a\""
    );
    f.err(rename("/tmp/a", "/tmp/bobs"), &bob());
    f.ok(delete("/tmp/a", false), &alice());
    f.ok(delete("/tmp/b", false), &caller("dave", &[]));
    f.ok(rename("/tmp/c", "/tmp/c2"), &carol());
    // Without the sticky bit, write on the directory is enough.
    f.ok(chmod("/tmp", 0o777), &hdfs());
    f.ok(delete("/tmp/c2", false), &bob());
}

#[test]
fn recursive_delete_needs_full_access_to_every_non_empty_subdirectory() {
    let mut f = Fixture::new();
    f.dir("/home/alice", "alice", "staff", 0o755);
    f.ok(mkdir("/home/alice/d"), &alice());
    f.ok(mkdir_mode("/home/alice/d/empty", 0o000), &alice());
    f.ok(mkdir("/home/alice/d2"), &alice());
    f.ok(mkdir("/home/alice/d2/a"), &alice());
    f.ok(mkdir("/home/alice/d2/s"), &alice());
    f.ok(create("/home/alice/d2/s/f"), &alice());
    f.ok(chmod("/home/alice/d2/s", 0o500), &alice());

    // An empty 000 directory does not stop the delete.
    f.ok(delete("/home/alice/d", true), &alice());
    let err = f.err(delete("/home/alice/d2", true), &alice());
    assert_eq!(
        err.to_string(),
        "Permission denied: user=alice, access=WRITE, inode=\"/home/alice/d2/s\":alice:staff:dr-x------"
    );
    // The top directory itself is checked too.
    f.ok(chmod("/home/alice/d2/s", 0o700), &alice());
    f.ok(chmod("/home/alice/d2", 0o300), &alice());
    let err = f.err(delete("/home/alice/d2", true), &alice());
    assert!(
        err.to_string()
            .contains("access=READ, inode=\"/home/alice/d2\""),
        "{err}"
    );
    f.ok(chmod("/home/alice/d2", 0o700), &alice());
    f.ok(delete("/home/alice/d2", true), &alice());
    assert!(!f.exists("/home/alice/d2"));
}

#[test]
fn chmod_and_set_times_are_for_the_owner_or_a_superuser() {
    let mut f = Fixture::new();
    f.file("/f", "alice", "staff", 0o666);
    for op in [chmod("/f", 0o600), touch("/f", Some(1), None)] {
        let err = f.err(op.clone(), &bob());
        assert_eq!(
            err.to_string(),
            "Permission denied: user=bob is not the owner of inode=\"/f\"",
            "{op:?}"
        );
    }
    f.ok(chmod("/f", 0o600), &alice());
    f.ok(touch("/f", Some(7), Some(8)), &alice());
    let file = f.info("/f");
    assert_eq!(
        (file.perm.mode, file.mtime_ms, file.atime_ms),
        (0o600, 7, 8)
    );
    f.ok(touch("/f", None, Some(9)), &alice());
    assert_eq!((f.info("/f").mtime_ms, f.info("/f").atime_ms), (7, 9));
    assert_eq!(f.ok(chmod("/f", 0o600), &alice()), None, "unchanged mode");
    assert_eq!(f.ok(touch("/f", None, None), &alice()), None);
    assert!(matches!(
        f.err(chmod("/f", 0o17777), &alice()),
        Error::InvalidArgument { field: "mode", .. }
    ));
    f.ok(chmod("/", 0o1777), &hdfs());
    assert_eq!(
        f.ns.list("/", &hdfs(), "", 1).unwrap().0[0].perm.mode,
        0o600
    );
    assert_eq!(f.info("/").perm.mode, 0o1777, "chmod of the root");
}

#[test]
fn chown_gives_away_files_only_as_superuser_and_groups_only_to_members() {
    let mut f = Fixture::new();
    f.file("/f", "alice", "staff", 0o644);
    let err = f.err(chown("/f", Some("bob"), None), &alice());
    assert_eq!(
        err.to_string(),
        "Permission denied: user=alice is not a superuser: cannot change the owner of '/f' to 'bob'"
    );
    let err = f.err(chown("/f", None, Some("admins")), &alice());
    assert!(matches!(err, Error::NotSuperuser { .. }), "{err}");
    let err = f.err(chown("/f", None, Some("staff")), &bob());
    assert!(matches!(err, Error::NotOwner { .. }), "{err}");

    f.ok(chown("/f", None, Some("users")), &alice());
    assert_eq!(
        f.ok(chown("/f", Some("alice"), None), &alice()),
        None,
        "to herself"
    );
    f.ok(chown("/f", Some("bob"), Some("admins")), &carol());
    assert_eq!(perm_of(&f.info("/f")), ("bob", "admins", 0o644));
    f.ok(chown("/", Some("root"), Some("wheel")), &hdfs());
    assert_eq!(perm_of(&f.info("/")), ("root", "wheel", 0o755));

    let huge = "x".repeat(257);
    for (owner, group) in [
        (Some(""), None),
        (Some("a b"), None),
        (Some("a:b"), None),
        (Some("a/b"), None),
        (Some("a\0"), None),
        (Some(huge.as_str()), None),
        (None, Some("g h")),
        (None, None),
    ] {
        assert!(
            matches!(
                f.err(chown("/f", owner, group), &hdfs()),
                Error::InvalidArgument { .. }
            ),
            "{owner:?} {group:?}"
        );
    }
}

#[test]
fn set_replication_changes_files_and_ignores_directories() {
    let mut f = Fixture::new();
    f.dir("/d", "alice", "staff", 0o755);
    f.ok(create("/d/f"), &alice());
    f.ok(setrep("/d/f", 7), &alice());
    assert_eq!(f.info("/d/f").replication, 7);
    assert_eq!(f.ok(setrep("/d", 2), &hdfs()), None);
    assert_eq!(f.ok(setrep("/d/f", 7), &hdfs()), None);
    for bad in [0, 513] {
        assert!(matches!(
            f.err(setrep("/d/f", bad), &hdfs()),
            Error::InvalidArgument {
                field: "replication",
                ..
            }
        ));
    }
    assert!(matches!(
        f.err(setrep("/d/nope", 2), &hdfs()),
        Error::NotFound { .. }
    ));
}

// --- hostile input ---

#[test]
fn malformed_callers_are_refused_everywhere() {
    let mut f = Fixture::new();
    let long = "u".repeat(300);
    for bad in [
        caller("", &[]),
        caller("a b", &[]),
        caller("a:b", &[]),
        caller("a\0", &[]),
        caller(&long, &[]),
        caller("ok", &["bad group"]),
        caller("hdfs", &[""]),
    ] {
        assert!(
            matches!(f.err(mkdir_p("/x"), &bad), Error::InvalidArgument { .. }),
            "{bad:?}"
        );
        assert!(
            matches!(
                f.ns.file_info("/", &bad),
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                f.ns.list("/", &bad, "", 1),
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn hostile_paths_get_invalid_path_from_every_entry_point() {
    let mut f = Fixture::new();
    f.ok(mkdir("/a"), &hdfs());
    let huge = format!("/{}", "x/".repeat(1 << 20));
    for bad in [
        "",
        "a",
        "a/b",
        "/a/../b",
        "/a/./b",
        "/..",
        "/a\0b",
        huge.as_str(),
    ] {
        let ops = [
            mkdir_p(bad),
            create(bad),
            delete(bad, true),
            rename(bad, "/b"),
            rename("/a", bad),
            chmod(bad, 0o755),
            chown(bad, Some("x"), None),
            setrep(bad, 1),
            touch(bad, Some(1), None),
        ];
        for op in ops {
            match f.err(op.clone(), &hdfs()) {
                Error::InvalidPath { path, .. } => assert!(path.len() <= 103, "{}", path.len()),
                other => panic!("{op:?}: {other}"),
            }
        }
        assert!(matches!(
            f.ns.file_info(bad, &hdfs()),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            f.ns.list(bad, &hdfs(), "", 1),
            Err(Error::InvalidPath { .. })
        ));
    }
}

#[test]
fn a_path_through_a_file_is_not_a_directory_for_queries() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let err = f.ns.file_info("/f/x", &hdfs()).unwrap_err();
    assert_eq!(err.to_string(), "'/f': Not a directory");
    assert!(matches!(
        f.ns.list("/f/x", &hdfs(), "", 1),
        Err(Error::NotADirectory { .. })
    ));
    assert!(matches!(
        f.ns.list("/nope", &hdfs(), "", 1),
        Err(Error::NotFound { .. })
    ));
}

// --- listing ---

#[test]
fn listing_pages_through_entries_in_name_order() {
    let mut f = Fixture::new();
    f.ok(mkdir("/d"), &hdfs());
    for name in ["e", "c", "a", "d", "b"] {
        f.ok(create(&format!("/d/{name}")), &hdfs());
    }
    f.ok(mkdir("/d/sub"), &hdfs());
    f.ok(create("/d/sub/x"), &hdfs());
    let page = |after: &str, limit| {
        let (entries, more) = f.ns.list("/d", &hdfs(), after, limit).unwrap();
        let paths: Vec<String> = entries.into_iter().map(|e| e.path).collect();
        (paths, more)
    };
    assert_eq!(page("", 2), (vec!["/d/a".into(), "/d/b".into()], true));
    assert_eq!(page("b", 2), (vec!["/d/c".into(), "/d/d".into()], true));
    assert_eq!(page("bb", 2), (vec!["/d/c".into(), "/d/d".into()], true));
    assert_eq!(page("d", 2), (vec!["/d/e".into(), "/d/sub".into()], false));
    assert_eq!(page("sub", 2), (vec![], false));
    assert_eq!(page("", 100).0.len(), 6);

    let (entries, _) = f.ns.list("/d", &hdfs(), "s", 1).unwrap();
    assert_eq!(
        (entries[0].kind, entries[0].children),
        (FileKind::Directory, 1)
    );
    let (entries, more) = f.ns.list("/d/a", &hdfs(), "", 1).unwrap();
    assert_eq!(
        (entries.len(), entries[0].kind, more),
        (1, FileKind::File, false)
    );
    assert!(matches!(
        f.ns.list("/d", &hdfs(), "", 0),
        Err(Error::InvalidArgument { field: "limit", .. })
    ));
}

// --- determinism, images and corrupt logs ---

/// A workload touching every op, with failures mixed in.
fn workload(f: &mut Fixture) {
    f.dir("/home/alice", "alice", "staff", 0o755);
    f.dir("/tmp", "hdfs", "supergroup", 0o1777);
    f.ok(mkdir_p("/home/alice/a/b/c"), &alice());
    f.ok(create_with("/home/alice/a/f", false, false, 2), &alice());
    f.ok(create_with("/home/alice/x/y/f", false, true, 1), &alice());
    f.ok(create_with("/home/alice/a/f", true, false, 4), &alice());
    f.ok(create("/tmp/t"), &bob());
    let _ = f.run(delete("/tmp/t", false), &alice());
    f.ok(rename("/home/alice/a/b", "/home/alice/x/b2"), &alice());
    f.ok(chmod("/home/alice/x", 0o700), &alice());
    f.ok(chown("/home/alice/x", None, Some("users")), &alice());
    f.ok(setrep("/home/alice/a/f", 2), &alice());
    f.ok(touch("/home/alice/a/f", Some(42), Some(43)), &alice());
    f.ok(delete("/home/alice/x/y", true), &alice());
    let _ = f.run(mkdir("/home/alice"), &alice());
    f.ok(mkdir_p("/home/alice/a/b"), &alice());
}

#[test]
fn replaying_the_log_on_a_fresh_namespace_rebuilds_the_same_tree() {
    let mut f = Fixture::new();
    let empty = f.ns.digest();
    workload(&mut f);
    assert_ne!(f.ns.digest(), empty);

    let mut replica = Namespace::new(policy());
    for txn in &f.log {
        replica.apply(txn).unwrap();
    }
    assert_eq!(replica.digest(), f.ns.digest());
    assert_eq!(replica.inode_count(), f.ns.inode_count());
    // Replaying through the wire encoding gives the same tree too.
    let mut decoded = Namespace::new(policy());
    for txn in &f.log {
        decoded.apply(&journaled(txn)).unwrap();
    }
    assert_eq!(decoded.digest(), f.ns.digest());
}

#[test]
fn the_digest_sees_every_kind_of_change() {
    let mut f = Fixture::new();
    f.ok(mkdir("/d"), &hdfs());
    f.ok(create("/d/f"), &hdfs());
    let mut seen = vec![f.ns.digest()];
    for op in [
        chmod("/d/f", 0o600),
        chown("/d/f", Some("bob"), None),
        chown("/d/f", None, Some("g")),
        touch("/d/f", Some(1), None),
        touch("/d/f", None, Some(1)),
        setrep("/d/f", 9),
        rename("/d/f", "/d/g"),
        chmod("/d", 0o700),
        create_with("/d/g", true, false, 9),
        mkdir("/e"),
    ] {
        f.ok(op.clone(), &hdfs());
        let digest = f.ns.digest();
        assert!(!seen.contains(&digest), "{op:?} left the digest unchanged");
        seen.push(digest);
    }
    // A file and a directory with the same attributes differ.
    let mut a = Fixture::new();
    let mut b = Fixture::new();
    a.ok(mkdir_mode("/x", 0o644), &hdfs());
    b.ok(create("/x"), &hdfs());
    a.ok(touch("/x", Some(1), Some(1)), &hdfs());
    b.ok(touch("/x", Some(1), Some(1)), &hdfs());
    assert_ne!(a.ns.digest(), b.ns.digest());
}

#[test]
fn a_postcard_image_round_trip_keeps_the_tree_but_not_the_policy() {
    let mut f = Fixture::new();
    workload(&mut f);
    let bytes = f.ns.to_image().unwrap();
    let loaded = Namespace::from_image(&bytes, PermissionPolicy::default()).unwrap();
    assert_eq!(loaded.digest(), f.ns.digest());
    assert_eq!(loaded.inode_count(), f.ns.inode_count());
    assert_eq!(
        loaded.list("/home/alice", &alice(), "", 10).unwrap(),
        f.ns.list("/home/alice", &alice(), "", 10).unwrap()
    );
    // The policy is configuration, not part of the image.
    assert!(loaded.check(&mkdir("/x"), &carol(), 1).is_err());
    let loaded = Namespace::from_image(&bytes, policy()).unwrap();
    assert!(loaded.check(&mkdir("/x"), &carol(), 1).unwrap().is_some());
    // Truncated images are refused, not half loaded.
    let cut = bytes.get(..bytes.len() / 2).unwrap();
    assert!(Namespace::from_image(cut, policy()).is_err());
}

fn new_dir(path: &str) -> NewDir {
    NewDir {
        path: path.into(),
        perm: PermissionStatus {
            owner: "o".into(),
            group: "g".into(),
            mode: 0o755,
        },
    }
}

#[test]
fn a_txn_that_does_not_fit_the_tree_is_an_error_and_changes_nothing() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/a/b"), &hdfs());
    f.ok(create("/a/f"), &hdfs());
    let file_with = |path: &str, overwrite, replication, block_size| Txn::Create {
        path: path.into(),
        perm: new_dir("/").perm,
        overwrite,
        replication,
        block_size,
        mtime_ms: 1,
        client: CLIENT.into(),
    };
    let file = |path: &str, overwrite| file_with(path, overwrite, 3, MIB);
    let bad_perm = PermissionStatus {
        owner: "a b".into(),
        ..new_dir("/").perm
    };
    let corrupt = [
        Txn::Mkdirs {
            dirs: vec![],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("/x/y")],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("/a")],
            mtime_ms: 1,
        },
        // The first directory fits; the second does not, so neither is made.
        Txn::Mkdirs {
            dirs: vec![new_dir("/n"), new_dir("/m/o")],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("/n"), new_dir("/n")],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("/a/f/x")],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![NewDir {
                path: "/n".into(),
                perm: bad_perm.clone(),
            }],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("/")],
            mtime_ms: 1,
        },
        Txn::Mkdirs {
            dirs: vec![new_dir("relative")],
            mtime_ms: 1,
        },
        file("/a/f", false),
        file("/a/b", true),
        file("/a/f/g", true),
        file("/", true),
        file_with("/z", false, 0, MIB),
        file_with("/z", false, 3, 1),
        Txn::Delete {
            path: "/nope".into(),
            mtime_ms: 1,
        },
        Txn::Delete {
            path: "/".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/a".into(),
            dst: "/a/b/c".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/a".into(),
            dst: "/a".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/a/f".into(),
            dst: "/a/b".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/nope".into(),
            dst: "/x".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/a/b".into(),
            dst: "/a/f/b".into(),
            mtime_ms: 1,
        },
        Txn::Rename {
            src: "/a/b".into(),
            dst: "/q/b".into(),
            mtime_ms: 1,
        },
        Txn::SetPermission {
            path: "/a".into(),
            mode: 0o10000,
        },
        Txn::SetPermission {
            path: "/nope".into(),
            mode: 0o700,
        },
        Txn::SetOwner {
            path: "/a".into(),
            owner: Some(String::new()),
            group: None,
        },
        Txn::SetReplication {
            path: "/a".into(),
            replication: 2,
        },
        Txn::SetReplication {
            path: "/a/f".into(),
            replication: 600,
        },
        Txn::SetTimes {
            path: "/nope".into(),
            mtime_ms: Some(1),
            atime_ms: None,
        },
    ];
    let before = (f.ns.digest(), f.ns.inode_count());
    for txn in corrupt {
        assert!(f.ns.apply(&txn).is_err(), "{txn:?} applied");
        assert_eq!((f.ns.digest(), f.ns.inode_count()), before, "{txn:?}");
    }
}

#[test]
fn a_deep_tree_survives_an_image_round_trip() {
    let mut f = Fixture::new();
    let depth = super::path::MAX_PATH_DEPTH;
    f.ok(mkdir_p(&"/d".repeat(depth)), &hdfs());
    f.ok(mkdir_p(&"/e".repeat(depth - 1)), &hdfs());
    // Moving one deep chain under another makes a tree deeper than any path.
    f.ok(
        rename("/d", &format!("{}/d", "/e".repeat(depth - 1))),
        &hdfs(),
    );
    assert_eq!(f.ns.inode_count(), 1 + 2 * depth as u64 - 1);
    let bytes = postcard::to_stdvec(&f.ns).unwrap();
    let loaded: Namespace = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.digest(), f.ns.digest());
    f.ok(delete("/e", true), &hdfs());
    assert_eq!(f.ns.inode_count(), 1);
}

// --- property: check then apply always fits, and replay is exact ---

fn arb_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..4)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn arb_caller() -> impl Strategy<Value = Caller> {
    prop::sample::select(vec![hdfs(), alice(), bob(), eve()])
}

fn arb_op() -> impl Strategy<Value = Op> {
    let mode = prop::option::of(prop::sample::select(vec![
        0o755u16, 0o700, 0o1777, 0o000, 0o644,
    ]));
    prop_oneof![
        (arb_path(), mode.clone(), any::<bool>()).prop_map(|(path, mode, create_parent)| {
            Op::Mkdirs {
                path,
                mode,
                create_parent,
            }
        }),
        (arb_path(), mode, any::<bool>(), any::<bool>(), 1u16..4).prop_map(
            |(path, mode, overwrite, create_parent, replication)| Op::Create {
                path,
                mode,
                overwrite,
                create_parent,
                replication,
                block_size: MIB,
                client: CLIENT.into(),
            }
        ),
        (arb_path(), any::<bool>()).prop_map(|(path, recursive)| Op::Delete { path, recursive }),
        (arb_path(), arb_path()).prop_map(|(src, dst)| Op::Rename { src, dst }),
        (
            arb_path(),
            prop::sample::select(vec![0o777u16, 0o1777, 0o000, 0o500])
        )
            .prop_map(|(path, mode)| Op::SetPermission { path, mode }),
        (
            arb_path(),
            prop::sample::select(vec!["alice", "bob"]),
            prop::sample::select(vec!["staff", "guests"])
        )
            .prop_map(|(path, o, g)| chown(&path, Some(o), Some(g))),
        (arb_path(), 1u16..5).prop_map(|(path, r)| setrep(&path, r)),
        (arb_path(), prop::option::of(0u64..3)).prop_map(|(path, t)| touch(&path, t, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_checked_txn_applies_and_the_log_replays_exactly(
        ops in proptest::collection::vec((arb_op(), arb_caller()), 1..40)
    ) {
        let mut f = Fixture::new();
        f.ok(chmod("/", 0o777), &hdfs());
        for (op, who) in ops {
            // run() panics if a checked txn fails to apply.
            let _ = f.run(op, &who);
        }
        let mut replica = Namespace::new(policy());
        for txn in &f.log {
            prop_assert!(replica.apply(txn).is_ok(), "{:?}", txn);
        }
        prop_assert_eq!(replica.digest(), f.ns.digest());
        prop_assert_eq!(replica.inode_count(), f.ns.inode_count());
        let image: Namespace = postcard::from_bytes(&postcard::to_stdvec(&f.ns).unwrap()).unwrap();
        prop_assert_eq!(image.digest(), f.ns.digest());
    }
}
