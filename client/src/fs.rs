//! [`DfsClient`]: the namespace operations of a dfs cluster.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::config::ClientConfig;
use crate::error::Error;
use crate::identity::Identity;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether an entry is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
}

/// One file or directory, as the namenode describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// Absolute path.
    pub path: String,
    /// Directory or file.
    #[serde(rename = "type")]
    pub kind: FileKind,
    /// Mode bits.
    pub permission: u16,
    /// Owning user.
    pub owner: String,
    /// Owning group.
    pub group: String,
    /// Bytes (0 for directories).
    pub length: u64,
    /// Target replicas (0 for directories).
    pub replication: u16,
    /// Bytes per block (0 for directories).
    pub block_size: u64,
    /// Milliseconds since the Unix epoch.
    pub modification_time_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub access_time_ms: u64,
    /// Entries of a directory (0 for files).
    pub children: u64,
}

impl FileStatus {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }

    fn from_wire(s: v1::FileStatus) -> Self {
        FileStatus {
            kind: if s.file_type() == v1::FileType::Directory {
                FileKind::Directory
            } else {
                FileKind::File
            },
            path: s.path,
            permission: u16::try_from(s.permission & 0o7777).unwrap_or(0),
            owner: s.owner,
            group: s.group,
            length: s.length,
            replication: u16::try_from(s.replication).unwrap_or(u16::MAX),
            block_size: s.block_size,
            modification_time_ms: s.modification_time_ms,
            access_time_ms: s.access_time_ms,
            children: s.children_count,
        }
    }
}

/// One datanode as the namenode sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatanodeReport {
    /// The datanode's persistent id.
    pub id: String,
    /// Its data-transfer address.
    pub address: String,
    /// Its rack, from the namenode's topology table.
    pub rack: String,
    /// `live`, `stale` or `dead`.
    pub state: &'static str,
    /// Bytes of its file system.
    pub capacity: u64,
    /// Bytes of replicas it holds.
    pub used: u64,
    /// Bytes still free.
    pub remaining: u64,
    /// Milliseconds since its last heartbeat.
    pub last_contact_ms: u64,
}

/// A connection to a dfs cluster, acting as one user.
#[derive(Debug)]
pub struct DfsClient {
    namenode: String,
    rpc: ClientProtocolClient<Channel>,
    identity: Identity,
    next_call: AtomicU64,
}

/// Options for [`DfsClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Replace an existing file.
    pub overwrite: bool,
    /// Create missing parent directories.
    pub create_parent: bool,
    /// Replicas; `None` = the namenode's default.
    pub replication: Option<u16>,
    /// Bytes per block; `None` = the namenode's default.
    pub block_size: Option<u64>,
    /// Mode before the umask; `None` = 0o666.
    pub permission: Option<u16>,
}

impl DfsClient {
    /// Connects (lazily) to the cluster of `config`, acting as `user`
    /// (`None` = the config's user, else the OS user).
    ///
    /// # Errors
    /// A namenode address that is not `host:port`.
    pub fn connect(config: &ClientConfig, user: Option<String>) -> Result<Self, Error> {
        let namenode = config
            .namenodes
            .first()
            .ok_or_else(|| Error::Usage("no namenode configured".into()))?
            .clone();
        let channel = endpoint(&namenode, config.bind_address)?.connect_lazy();
        Ok(DfsClient {
            namenode,
            rpc: ClientProtocolClient::new(channel),
            identity: Identity::resolve(user.or_else(|| config.user.clone())),
            next_call: AtomicU64::new(1),
        })
    }

    /// The user this client acts as.
    pub fn user(&self) -> &str {
        &self.identity.user
    }

    fn caller(&self) -> Option<v1::CallerContext> {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        Some(self.identity.context(call_id))
    }

    fn status_error(&self) -> impl Fn(tonic::Status) -> Error + '_ {
        |status| Error::from_status(status, &self.namenode)
    }

    /// Creates a directory (and its missing parents when `create_parent`).
    pub async fn mkdirs(&self, path: &str, create_parent: bool) -> Result<(), Error> {
        let request = v1::MkdirsRequest {
            caller: self.caller(),
            path: path.to_owned(),
            permission: None,
            create_parent,
        };
        self.rpc
            .clone()
            .mkdirs(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Creates an empty file.
    pub async fn create(&self, path: &str, options: &CreateOptions) -> Result<FileStatus, Error> {
        let request = v1::CreateRequest {
            caller: self.caller(),
            path: path.to_owned(),
            permission: options.permission.map(u32::from),
            overwrite: options.overwrite,
            create_parent: options.create_parent,
            replication: options.replication.map_or(0, u32::from),
            block_size: options.block_size.unwrap_or(0),
        };
        let reply = self
            .rpc
            .clone()
            .create(request)
            .await
            .map_err(self.status_error())?;
        reply
            .into_inner()
            .status
            .map(FileStatus::from_wire)
            .ok_or_else(|| Error::Refused {
                kind: None,
                message: "namenode sent no status for the new file".into(),
            })
    }

    /// Creates an empty, complete file (`touchz`).
    pub async fn create_empty(
        &self,
        path: &str,
        options: &CreateOptions,
    ) -> Result<FileStatus, Error> {
        let status = self.create(path, options).await?;
        let request = v1::CompleteRequest {
            caller: self.caller(),
            path: status.path.clone(),
            last: None,
        };
        self.rpc
            .clone()
            .complete(request)
            .await
            .map_err(self.status_error())?;
        Ok(status)
    }

    /// Deletes a file, or a directory (with its contents when `recursive`).
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), Error> {
        let request = v1::DeleteRequest {
            caller: self.caller(),
            path: path.to_owned(),
            recursive,
        };
        self.rpc
            .clone()
            .delete(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Moves `src` to `dst`, which must not exist.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<(), Error> {
        let request = v1::RenameRequest {
            caller: self.caller(),
            src: src.to_owned(),
            dst: dst.to_owned(),
        };
        self.rpc
            .clone()
            .rename(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Describes one path.
    pub async fn stat(&self, path: &str) -> Result<FileStatus, Error> {
        let request = v1::GetFileInfoRequest {
            caller: self.caller(),
            path: path.to_owned(),
        };
        let reply = self
            .rpc
            .clone()
            .get_file_info(request)
            .await
            .map_err(self.status_error())?;
        reply
            .into_inner()
            .status
            .map(FileStatus::from_wire)
            .ok_or_else(|| Error::Refused {
                kind: None,
                message: format!("namenode sent no status for '{path}'"),
            })
    }

    /// Lists a directory (every page), or describes a file.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>, Error> {
        let mut entries = Vec::new();
        let mut start_after = String::new();
        loop {
            let request = v1::GetListingRequest {
                caller: self.caller(),
                path: path.to_owned(),
                start_after: start_after.clone(),
                limit: 0,
            };
            let page = self
                .rpc
                .clone()
                .get_listing(request)
                .await
                .map_err(self.status_error())?
                .into_inner();
            let last = page.entries.last().map(|e| e.path.clone());
            entries.extend(page.entries.into_iter().map(FileStatus::from_wire));
            match (page.has_more, last) {
                (true, Some(last)) => {
                    start_after = last.rsplit('/').next().unwrap_or_default().to_owned();
                }
                _ => return Ok(entries),
            }
        }
    }

    /// Changes mode bits.
    pub async fn set_permission(&self, path: &str, mode: u16) -> Result<(), Error> {
        let request = v1::SetPermissionRequest {
            caller: self.caller(),
            path: path.to_owned(),
            permission: u32::from(mode),
        };
        self.rpc
            .clone()
            .set_permission(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Changes owner and/or group.
    pub async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), Error> {
        let request = v1::SetOwnerRequest {
            caller: self.caller(),
            path: path.to_owned(),
            owner: owner.map(str::to_owned),
            group: group.map(str::to_owned),
        };
        self.rpc
            .clone()
            .set_owner(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Changes a file's target replica count.
    pub async fn set_replication(&self, path: &str, replication: u16) -> Result<(), Error> {
        let request = v1::SetReplicationRequest {
            caller: self.caller(),
            path: path.to_owned(),
            replication: u32::from(replication),
        };
        self.rpc
            .clone()
            .set_replication(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Changes modification and/or access time (ms since the Unix epoch).
    pub async fn set_times(
        &self,
        path: &str,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    ) -> Result<(), Error> {
        let request = v1::SetTimesRequest {
            caller: self.caller(),
            path: path.to_owned(),
            modification_time_ms: mtime_ms,
            access_time_ms: atime_ms,
        };
        self.rpc
            .clone()
            .set_times(request)
            .await
            .map_err(self.status_error())?;
        Ok(())
    }

    /// Every datanode the namenode knows, ordered by rack.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeReport>, Error> {
        let request = v1::GetDatanodeReportRequest {
            caller: self.caller(),
        };
        let reply = self
            .rpc
            .clone()
            .get_datanode_report(request)
            .await
            .map_err(self.status_error())?;
        Ok(reply
            .into_inner()
            .datanodes
            .into_iter()
            .map(|d| {
                let storage = d.storage.unwrap_or_default();
                DatanodeReport {
                    state: match d.state() {
                        v1::DatanodeState::Live => "live",
                        v1::DatanodeState::Stale => "stale",
                        v1::DatanodeState::Dead => "dead",
                        v1::DatanodeState::Unspecified => "unknown",
                    },
                    id: d.datanode_id,
                    address: d.transfer_address,
                    rack: d.rack,
                    capacity: storage.capacity,
                    used: storage.used,
                    remaining: storage.remaining,
                    last_contact_ms: d.last_contact_ms_ago,
                }
            })
            .collect())
    }
}

fn endpoint(namenode: &str, bind: Option<IpAddr>) -> Result<Endpoint, Error> {
    let endpoint = Endpoint::from_shared(format!("http://{namenode}"))
        .map_err(|e| Error::Usage(format!("bad namenode address {namenode:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true);
    Ok(endpoint.local_address(bind))
}
