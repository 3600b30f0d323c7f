//! The seen-zxid marker (HDFS's `seen_txid`): a small file beside the log
//! recording a zxid this journal is known to have made durable, so that a
//! log which lost records (a restored backup, a disk that dropped writes,
//! segments deleted by hand) is noticed at start instead of silently
//! serving an older namespace, and voting with it.
//!
//! ```text
//! seen_zxid       "<zxid, 016x>\n"; written as seen_zxid.new, fsynced,
//!                 renamed, directory fsynced
//! ```
//!
//! Cheap to keep: it is raised when a segment opens (to the last zxid before
//! it: every record of the older segments is durable then) and when a
//! snapshot is installed, and lowered before a truncation (TRUNC) or a SNAP
//! removes records on the quorum's behalf. It never covers the open
//! segment, so a torn tail there is cut off as before; only records behind
//! it are guarded.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::error::Error;
use crate::txn::Zxid;

/// The marker's file name in the journal directory.
pub(super) const FILE: &str = "seen_zxid";
/// Where a new marker is written before it is renamed into place.
const NEW_FILE: &str = "seen_zxid.new";

/// The zxid the marker in `dir` records; `None` when there is none (a new
/// journal, or one written before markers existed).
///
/// # Errors
/// The file is unreadable or does not hold a zxid.
pub(super) fn read(dir: &Path) -> Result<Option<Zxid>, Error> {
    let path = dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    u64::from_str_radix(text.trim(), 16)
        .map(|z| Some(Zxid(z)))
        .map_err(|_| Error::JournalCorrupt {
            file: path,
            offset: 0,
            reason: format!("not a zxid: {:.40?}", text.trim()),
        })
}

/// Records `zxid` in `dir` durably and atomically; returns the fsyncs done.
///
/// # Errors
/// Any I/O failure (the old marker then stays in place).
pub(super) fn write(dir: &Path, zxid: Zxid) -> io::Result<u64> {
    let new = dir.join(NEW_FILE);
    let mut file = File::create(&new)?;
    file.write_all(format!("{:016x}\n", zxid.0).as_bytes())?;
    file.sync_all()?;
    fs::rename(&new, dir.join(FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(2)
}

/// Checks that a log ending at `last` holds everything the marker in `dir`
/// records. With `accept_shorter`, a shorter log is accepted (loudly) and
/// the marker lowered to it.
///
/// # Errors
/// `JournalBehindMarker` naming both zxids, or an unreadable marker.
pub(super) fn check(dir: &Path, last: Zxid, accept_shorter: bool) -> Result<Zxid, Error> {
    let Some(marked) = read(dir)? else {
        return Ok(Zxid::ZERO);
    };
    if last >= marked {
        return Ok(marked);
    }
    if !accept_shorter {
        return Err(Error::JournalBehindMarker {
            dir: dir.to_owned(),
            last,
            marked,
        });
    }
    tracing::warn!(
        dir = %dir.display(),
        %last,
        %marked,
        "the journal ends before the zxid it is known to have written; starting anyway \
         (accept_shorter_journal is set): the txns after the log's end are gone from this namenode"
    );
    write(dir, last)?;
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_a_garbled_one_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), Zxid((3 << 32) | 7)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Zxid((3 << 32) | 7)));
        assert!(!dir.path().join(NEW_FILE).exists());
        fs::write(dir.path().join(FILE), "seven").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(Error::JournalCorrupt { .. })
        ));
    }

    #[test]
    fn a_log_ending_before_the_marker_is_refused_unless_accepted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), Zxid(5), false).unwrap(), Zxid::ZERO);
        write(dir.path(), Zxid(9)).unwrap();
        assert_eq!(check(dir.path(), Zxid(9), false).unwrap(), Zxid(9));
        assert_eq!(check(dir.path(), Zxid(12), false).unwrap(), Zxid(9));
        let err = check(dir.path(), Zxid(4), false).unwrap_err();
        assert!(
            matches!(
                err,
                Error::JournalBehindMarker {
                    last: Zxid(4),
                    marked: Zxid(9),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(check(dir.path(), Zxid(4), true).unwrap(), Zxid(4));
        assert_eq!(read(dir.path()).unwrap(), Some(Zxid(4)));
    }
}
