//! `put` and `get` of directories: walks a local or a dfs tree and copies
//! each file through the single-file path of `data` (so each file stays
//! `._COPYING_` until it is complete), one after another, creating the
//! directories, empty ones too, on the way (HDFS FsShell's recursive copy).
//!
//! ```text
//!   put_dir(local D, dest T)                 get_dir(dfs D, local T)
//!     T missing: mkdir T (parent must exist)   T missing: mkdir T (parent must exist)
//!     T a file: "Is not a directory"           T a file: "Is not a directory"
//!     each entry of D, in name order:          each entry of D, in name order:
//!       directory -> the same, one level down    directory -> the same, one level down
//!       file      -> data::put_one(T/name)       file      -> data::get_one(T/name)
//! ```
//!
//! As in HDFS, an error on one entry is printed and the walk goes on with
//! the next; the command then exits non-zero. Walks are iterative (no
//! recursion however deep the tree), and a local directory reached twice
//! through symbolic links is copied once.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dfs_proto::status::ErrorKind;

use super::Outcome;
use super::data::{get_one, join, local_error, put_one};
use crate::error::Error;
use crate::fs::{CreateOptions, DfsClient};

/// Copies the local directory `source` to the dfs directory `target`.
pub(super) async fn put_dir(
    client: &DfsClient,
    source: &Path,
    target: &str,
    force: bool,
    options: &CreateOptions,
    outcome: &mut Outcome,
) {
    let mut visited = HashSet::new();
    let mut pending = vec![(source.to_owned(), target.to_owned())];
    while let Some((dir, target)) = pending.pop() {
        if outcome.check(dfs_dir(client, &target).await).is_none() {
            continue;
        }
        let listed = local_entries(&dir, &mut visited);
        let Some(entries) = outcome.check(listed) else {
            continue;
        };
        let mut subdirs = Vec::new();
        for (name, is_dir) in entries {
            let (path, target) = (dir.join(&name), join(&target, &name));
            if is_dir {
                subdirs.push((path, target));
            } else {
                let source = path.to_string_lossy();
                outcome.check(put_one(client, &source, &target, force, options).await);
            }
        }
        // Reversed, so the stack hands them out in name order.
        pending.extend(subdirs.into_iter().rev());
    }
}

/// Copies the dfs directory `source` to the local directory `target`.
pub(super) async fn get_dir(
    client: &DfsClient,
    source: &str,
    target: &Path,
    force: bool,
    outcome: &mut Outcome,
) {
    let mut pending = vec![(source.to_owned(), target.to_owned())];
    while let Some((dir, target)) = pending.pop() {
        if outcome.check(local_dir(&target).await).is_none() {
            continue;
        }
        let Some(entries) = outcome.check(client.list(&dir).await) else {
            continue;
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.path.rsplit('/').next().unwrap_or_default();
            if !is_plain_name(name) {
                outcome.check::<()>(Err(Error::Refused {
                    kind: None,
                    message: format!("'{}': not a name to copy to a local disk", entry.path),
                }));
                continue;
            }
            let local = target.join(name);
            if entry.is_dir() {
                subdirs.push((entry.path, local));
            } else {
                outcome.check(get_one(client, &entry.path, entry.length, &local, force).await);
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
}

/// Makes sure `path` is a dfs directory: creates it (its parent must
/// exist) unless it is one already.
async fn dfs_dir(client: &DfsClient, path: &str) -> Result<(), Error> {
    match client.stat(path).await {
        Ok(status) if status.is_dir() => Ok(()),
        Ok(_) => Err(Error::Refused {
            kind: Some(ErrorKind::NotADirectory),
            message: format!("'{path}': Is not a directory"),
        }),
        Err(e) if e.kind() == Some(ErrorKind::NotFound) => client.mkdirs(path, false).await,
        Err(e) => Err(e),
    }
}

/// Makes sure `path` is a local directory: creates it (its parent must
/// exist) unless it is one already.
async fn local_dir(path: &Path) -> Result<(), Error> {
    let shown = || path.display().to_string();
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Local {
            path: shown(),
            reason: "Is not a directory".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => tokio::fs::create_dir(path)
            .await
            .map_err(|e| local_error(&shown(), &e)),
        Err(e) => Err(local_error(&shown(), &e)),
    }
}

/// The entries of local directory `dir` in name order, each with whether
/// it is a directory (symbolic links followed). Fails for a directory
/// already in `visited` (a link loop), and records `dir` there.
fn local_entries(
    dir: &Path,
    visited: &mut HashSet<(u64, u64)>,
) -> Result<Vec<(String, bool)>, Error> {
    let shown = |path: &Path| path.display().to_string();
    let meta = std::fs::metadata(dir).map_err(|e| local_error(&shown(dir), &e))?;
    if !visited.insert((meta.dev(), meta.ino())) {
        return Err(Error::Local {
            path: shown(dir),
            reason: "directory reached twice through symbolic links; copied once".into(),
        });
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| local_error(&shown(dir), &e))? {
        let entry = entry.map_err(|e| local_error(&shown(dir), &e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(Error::Local {
                path: shown(&path),
                reason: "name is not UTF-8".into(),
            });
        };
        let meta = std::fs::metadata(&path).map_err(|e| local_error(&shown(&path), &e))?;
        entries.push((name, meta.is_dir()));
    }
    entries.sort();
    Ok(entries)
}

/// Whether `name` is one path component that stays inside its directory.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_their_directory_are_not_plain() {
        for bad in ["", ".", "..", "a/b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(is_plain_name("..."));
        assert!(is_plain_name("a b"));
    }

    #[test]
    fn local_entries_come_in_name_order_and_a_link_loop_is_walked_once() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("b")).unwrap();
        std::fs::write(root.path().join("a"), b"x").unwrap();
        std::fs::write(root.path().join("c"), b"").unwrap();
        std::os::unix::fs::symlink(root.path(), root.path().join("b").join("up")).unwrap();
        let mut visited = HashSet::new();
        let entries = local_entries(root.path(), &mut visited).unwrap();
        assert_eq!(
            entries,
            vec![("a".into(), false), ("b".into(), true), ("c".into(), false)]
        );
        let inner = local_entries(&root.path().join("b"), &mut visited).unwrap();
        assert_eq!(inner, vec![("up".into(), true)]);
        let again = local_entries(&root.path().join("b").join("up"), &mut visited);
        assert!(again.is_err(), "the loop back to the root is refused");
    }
}
