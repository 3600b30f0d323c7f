//! Where the `namenode`, `datanode` and `dfs` binaries are.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::node::Role;

/// Paths of the three shipped binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The `namenode` binary.
    pub namenode: PathBuf,
    /// The `datanode` binary.
    pub datanode: PathBuf,
    /// The `dfs` client binary.
    pub dfs: PathBuf,
}

impl Binaries {
    /// The binaries in the directory of the running executable, where cargo
    /// puts every binary of the `dfs` package next to `dfs-cluster`. Whether
    /// they exist is checked only when a node is started ([`Binaries::check`]).
    pub fn next_to_current_exe() -> Result<Self, Error> {
        let exe =
            std::env::current_exe().map_err(Error::io("locating", "the current executable"))?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Ok(Binaries {
            namenode: dir.join("namenode"),
            datanode: dir.join("datanode"),
            dfs: dir.join("dfs"),
        })
    }

    /// The binary a node of `role` runs.
    pub fn for_role(&self, role: Role) -> &Path {
        match role {
            Role::Namenode => &self.namenode,
            Role::Datanode => &self.datanode,
        }
    }

    /// Fails on the first binary that does not exist.
    pub fn check(&self) -> Result<(), Error> {
        for path in [&self.namenode, &self.datanode, &self.dfs] {
            if !path.is_file() {
                return Err(Error::MissingBinary { path: path.clone() });
            }
        }
        Ok(())
    }
}
