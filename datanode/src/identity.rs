//! The datanode id: random on first start, then read from the data dir, so
//! that a restarted datanode is the same node to the namenode.

use std::fs;
use std::io::Write;
use std::path::Path;

use dfs_proto::ids::DatanodeId;
use rand::RngExt;

use crate::error::Error;

const FILE: &str = "datanode_id";

/// Loads the id stored in `data_dir`, creating and persisting one if there is none.
pub(crate) fn load_or_create(data_dir: &Path) -> Result<DatanodeId, Error> {
    let path = data_dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) => DatanodeId::parse(text.trim()).ok_or_else(|| Error::CorruptIdentity {
            path,
            content: text.chars().take(64).collect(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 8] = rand::rng().random();
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let id =
                DatanodeId::parse(&format!("dn-{text}")).ok_or_else(|| Error::CorruptIdentity {
                    path: path.clone(),
                    content: text.clone(),
                })?;
            let tmp = data_dir.join(format!("{FILE}.tmp"));
            let mut file = fs::File::create(&tmp)?;
            writeln!(file, "{id}")?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(data_dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
    }

    #[test]
    fn a_garbled_id_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "../../etc/passwd").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(Error::CorruptIdentity { .. })
        ));
    }
}
