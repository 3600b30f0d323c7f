//! The namenode's Zab epochs, persisted before they are used.
//!
//! As in ZooKeeper, two epochs live next to the journal:
//!
//! ```text
//! accepted_epoch   the newest epoch we promised to (LEADERINFO / our own
//!                  choice as leader): never take part in an older one again
//! current_epoch    the epoch whose leader we last synced with (NEWLEADER)
//! ```
//!
//! Each file holds one decimal number and a newline. Each write goes to
//! `<file>.tmp`, is fsynced, renamed over the file, and the directory is
//! fsynced. Neither epoch ever goes backwards, and the current epoch never
//! passes the accepted one.
//!
//! A journal that holds an epoch newer than the files (they were lost or
//! restored from an older copy) raises them at start-up ([`at_least`]), so
//! a new epoch is always above every zxid already logged.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::txn::Epoch;

/// The file holding the current epoch.
const CURRENT_FILE: &str = "current_epoch";
/// The file holding the accepted epoch.
const ACCEPTED_FILE: &str = "accepted_epoch";

/// Reads the persisted `(accepted, current)` epochs, each 0 when never persisted.
///
/// The accepted epoch is never below the current one: a directory written
/// before `accepted_epoch` existed reads its current epoch as accepted too.
///
/// # Errors
/// `SnapshotCorrupt` naming the file when it does not hold an epoch number;
/// `Io` when it cannot be read.
pub(crate) fn read_epochs(dir: &Path) -> Result<(Epoch, Epoch), Error> {
    let current = read_one(dir, CURRENT_FILE)?;
    let accepted = read_one(dir, ACCEPTED_FILE)?.max(current);
    Ok((accepted, current))
}

/// Durably records `epoch` as the accepted epoch (Zab discovery), before
/// any LEADERINFO or ACKEPOCH that carries it is sent.
///
/// # Errors
/// `JournalFailed` when `epoch` is below the accepted epoch already
/// persisted; the errors of [`read_epochs`]; `Io` when it cannot be written.
pub(crate) fn persist_accepted(dir: &Path, epoch: Epoch) -> Result<(), Error> {
    let (accepted, _) = read_epochs(dir)?;
    if epoch < accepted {
        return Err(Error::JournalFailed {
            reason: format!("refusing to move the accepted epoch back from {accepted} to {epoch}"),
        });
    }
    write_one(dir, ACCEPTED_FILE, epoch)
}

/// Durably records `epoch` as the current epoch (Zab synchronization),
/// before the leader syncs anyone or a follower ACKs NEWLEADER.
///
/// # Errors
/// `JournalFailed` when `epoch` is below the current epoch already persisted
/// or above the accepted one (an epoch must be accepted before it is
/// current); the errors of [`read_epochs`]; `Io` when it cannot be written.
pub(crate) fn persist_current(dir: &Path, epoch: Epoch) -> Result<(), Error> {
    let (accepted, current) = read_epochs(dir)?;
    if epoch < current {
        return Err(Error::JournalFailed {
            reason: format!("refusing to move the current epoch back from {current} to {epoch}"),
        });
    }
    if epoch > accepted {
        return Err(Error::JournalFailed {
            reason: format!(
                "refusing to make epoch {epoch} current: the accepted epoch is only {accepted}"
            ),
        });
    }
    write_one(dir, CURRENT_FILE, epoch)
}

/// Raises both persisted epochs to `logged` (the epoch of the journal's
/// last zxid) when they are below it, and returns `(accepted, current)`.
///
/// # Errors
/// The errors of [`read_epochs`], [`persist_accepted`] and [`persist_current`].
pub(crate) fn at_least(dir: &Path, logged: Epoch) -> Result<(Epoch, Epoch), Error> {
    let (accepted, current) = read_epochs(dir)?;
    if accepted < logged {
        persist_accepted(dir, logged)?;
    }
    if current < logged {
        persist_current(dir, logged)?;
    }
    read_epochs(dir)
}

/// Reads one epoch file; 0 when it does not exist.
fn read_one(dir: &Path, name: &str) -> Result<Epoch, Error> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .map(Epoch)
            .map_err(|_| Error::SnapshotCorrupt {
                file: path,
                reason: format!("not an epoch number: {:?}", text.trim()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Epoch(0)),
        Err(e) => Err(e.into()),
    }
}

/// Replaces one epoch file durably: tmp, fsync, rename, directory fsync.
fn write_one(dir: &Path, name: &str, epoch: Epoch) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    writeln!(file, "{epoch}")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason of a `JournalFailed` refusal.
    fn refusal(result: Result<(), Error>) -> String {
        match result {
            Err(Error::JournalFailed { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The files in `dir`, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn epochs_are_zero_until_persisted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(0), Epoch(0)));
    }

    #[test]
    fn accepted_then_current_are_persisted_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        persist_accepted(dir.path(), Epoch(3)).unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(3), Epoch(0)));
        persist_current(dir.path(), Epoch(3)).unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(3), Epoch(3)));
        persist_accepted(dir.path(), Epoch(5)).unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(5), Epoch(3)));
        assert_eq!(
            files(dir.path()),
            vec![ACCEPTED_FILE.to_owned(), CURRENT_FILE.to_owned()],
            "no tmp file is left behind"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(ACCEPTED_FILE)).unwrap(),
            "5\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(CURRENT_FILE)).unwrap(),
            "3\n"
        );
    }

    #[test]
    fn persisting_the_same_epoch_again_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        persist_accepted(dir.path(), Epoch(2)).unwrap();
        persist_accepted(dir.path(), Epoch(2)).unwrap();
        persist_current(dir.path(), Epoch(2)).unwrap();
        persist_current(dir.path(), Epoch(2)).unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(2), Epoch(2)));
    }

    #[test]
    fn epochs_never_go_backwards() {
        let dir = tempfile::tempdir().unwrap();
        persist_accepted(dir.path(), Epoch(7)).unwrap();
        persist_current(dir.path(), Epoch(6)).unwrap();
        let accepted = refusal(persist_accepted(dir.path(), Epoch(6)));
        assert!(
            accepted.contains("accepted epoch back from 7 to 6"),
            "{accepted}"
        );
        let current = refusal(persist_current(dir.path(), Epoch(5)));
        assert!(
            current.contains("current epoch back from 6 to 5"),
            "{current}"
        );
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(7), Epoch(6)));
    }

    #[test]
    fn an_epoch_must_be_accepted_before_it_is_current() {
        let dir = tempfile::tempdir().unwrap();
        persist_accepted(dir.path(), Epoch(4)).unwrap();
        let reason = refusal(persist_current(dir.path(), Epoch(5)));
        assert!(reason.contains("accepted epoch is only 4"), "{reason}");
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(4), Epoch(0)));
    }

    #[test]
    fn a_directory_without_an_accepted_epoch_reads_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CURRENT_FILE), "5\n").unwrap();
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(5), Epoch(5)));
        assert!(persist_accepted(dir.path(), Epoch(4)).is_err());
    }

    #[test]
    fn epochs_below_the_journal_are_raised_to_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            at_least(dir.path(), Epoch(0)).unwrap(),
            (Epoch(0), Epoch(0))
        );
        persist_accepted(dir.path(), Epoch(3)).unwrap();
        assert_eq!(
            at_least(dir.path(), Epoch(2)).unwrap(),
            (Epoch(3), Epoch(2))
        );
        assert_eq!(
            at_least(dir.path(), Epoch(9)).unwrap(),
            (Epoch(9), Epoch(9))
        );
        assert_eq!(read_epochs(dir.path()).unwrap(), (Epoch(9), Epoch(9)));
    }

    #[test]
    fn a_garbled_epoch_file_is_an_error_naming_it() {
        for name in [CURRENT_FILE, ACCEPTED_FILE] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            fs::write(&path, "banana").unwrap();
            match read_epochs(dir.path()) {
                Err(Error::SnapshotCorrupt { file, reason }) => {
                    assert_eq!(file, path);
                    assert!(reason.contains("banana"), "{reason}");
                }
                other => panic!("expected SnapshotCorrupt, got {other:?}"),
            }
            assert!(at_least(dir.path(), Epoch(1)).is_err());
            assert!(persist_accepted(dir.path(), Epoch(9)).is_err());
            assert!(persist_current(dir.path(), Epoch(0)).is_err());
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                "banana",
                "{name} untouched"
            );
        }
    }
}
