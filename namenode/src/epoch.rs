//! The namenode's current epoch, persisted before any zxid of it is issued.
//!
//! Every start of a single namenode begins a new epoch (as every new
//! ZooKeeper leader does), so zxids never repeat even if the log's tail was
//! lost. The quorum issue replaces the bump with discovery.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::txn::Epoch;

const FILE: &str = "current_epoch";

/// Reads the persisted epoch (0 when none), picks one above it and above
/// `at_least`, and persists it durably before returning it.
pub(crate) fn bump(dir: &Path, at_least: Epoch) -> Result<Epoch, Error> {
    let path = dir.join(FILE);
    let stored = match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .map_err(|_| Error::SnapshotCorrupt {
                file: path.clone(),
                reason: format!("not an epoch number: {:?}", text.trim()),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    let next = stored
        .max(at_least.0)
        .checked_add(1)
        .ok_or_else(|| Error::JournalFailed {
            reason: "epoch counter exhausted".into(),
        })?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    writeln!(file, "{next}")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(Epoch(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bump_is_above_the_stored_epoch_and_the_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(bump(dir.path(), Epoch(0)).unwrap(), Epoch(1));
        assert_eq!(bump(dir.path(), Epoch(0)).unwrap(), Epoch(2));
        assert_eq!(bump(dir.path(), Epoch(9)).unwrap(), Epoch(10));
    }

    #[test]
    fn a_garbled_epoch_file_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "banana").unwrap();
        assert!(bump(dir.path(), Epoch(0)).is_err());
    }
}
