//! [`DfsClient`]: the façade over a dfs cluster. Namespace operations are
//! here; the data path lives in `output_stream`, `input_stream` and
//! `checksum`, which reach the namenode's block calls through the
//! crate-private methods at the end of this file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dfs_proto::ids::GenStamp;
use dfs_proto::status::ErrorKind;
use dfs_proto::v1;
use dfs_proto::v1::data_transfer_client::DataTransferClient;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::blocks::{Block, BlockLocations, Datanode, LocatedBlock};
use crate::checksum::FileChecksum;
use crate::config::ClientConfig;
use crate::error::Error;
use crate::failover::Failover;
use crate::identity::Identity;
use crate::input_stream::InputStream;
use crate::lease_renewer::{DEFAULT_SOFT_LIMIT, LeaseRenewer};
use crate::output_stream::OutputStream;
use dfs_proto::block_token::BlockToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a create or append keeps retrying while the namenode recovers the lease
/// of the file's previous writer.
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// Largest HTTP/2 DATA frame the client accepts from datanodes: a whole
/// 64 KiB packet in one frame rather than five of the default 16 KiB.
const DATANODE_MAX_FRAME: u32 = 256 * 1024;

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

/// A connection to a dfs cluster, acting as one user. Cheap to clone: clones
/// share the connections and the call-id counter.
#[derive(Debug, Clone)]
pub struct DfsClient {
    /// Every namenode RPC goes through here, to whichever namenode leads.
    namenodes: Failover,
    identity: Arc<Identity>,
    next_call: Arc<AtomicU64>,
    bind_address: Option<IpAddr>,
    /// One lazily connected channel per datanode transfer address.
    datanodes: Arc<Mutex<HashMap<String, Channel>>>,
    /// Renews this client's lease while it has files open for writing.
    leases: Arc<LeaseRenewer>,
}

/// Options for [`DfsClient::create`] and [`DfsClient::create_file`].
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

/// Options for [`DfsClient::append`].
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// Start a new block even when the last one has room (HDFS's
    /// `CreateFlag.NEW_BLOCK`); the file then holds a short block in the middle.
    pub new_block: bool,
}

/// Totals of a file or a directory tree (HDFS `ContentSummary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSummary {
    /// Bytes in the files.
    pub length: u64,
    /// Files.
    pub file_count: u64,
    /// Directories, the top one included when it is one.
    pub directory_count: u64,
    /// Bytes of every replica: the sum of length × replication.
    pub space_consumed: u64,
    /// Name quota; -1 = none (dfs keeps no quotas).
    pub quota: i64,
    /// Space quota in bytes; -1 = none.
    pub space_quota: i64,
}

impl DfsClient {
    /// Connects (lazily) to the cluster of `config`, acting as `user`
    /// (`None` = the config's user, else the OS user).
    ///
    /// # Errors
    /// No namenode, or a namenode address that is not `host:port`.
    pub fn connect(config: &ClientConfig, user: Option<String>) -> Result<Self, Error> {
        let namenodes = Failover::new(
            &config.namenodes,
            config.bind_address,
            config.failover_timeout(),
            config.rpc_timeout(),
        )?;
        Ok(DfsClient {
            namenodes,
            identity: Arc::new(Identity::resolve(user.or_else(|| config.user.clone()))),
            next_call: Arc::new(AtomicU64::new(1)),
            bind_address: config.bind_address,
            datanodes: Arc::default(),
            leases: Arc::default(),
        })
    }

    /// The user this client acts as.
    pub fn user(&self) -> &str {
        &self.identity.user
    }

    /// A fresh call id: once per logical call, so every failover attempt of
    /// the call sends the same one (the namenode's retry cache key).
    fn caller(&self) -> Option<v1::CallerContext> {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        Some(self.identity.context(call_id))
    }

    /// Creates a directory (and its missing parents when `create_parent`).
    pub async fn mkdirs(&self, path: &str, create_parent: bool) -> Result<(), Error> {
        let request = v1::MkdirsRequest {
            caller: self.caller(),
            path: path.to_owned(),
            permission: None,
            create_parent,
        };
        self.namenodes
            .call("mkdirs", |mut rpc| {
                let request = request.clone();
                async move { rpc.mkdirs(request).await }
            })
            .await?;
        Ok(())
    }

    /// Creates a file and returns the stream that writes it; the file is
    /// visible (complete) once [`OutputStream::close`] succeeds. While the
    /// stream is open the client renews its lease on the file.
    ///
    /// # Errors
    /// The namenode's refusal (exists, permission, missing parent, ...).
    pub async fn create_file(
        &self,
        path: &str,
        options: &CreateOptions,
    ) -> Result<OutputStream, Error> {
        let (status, soft_limit) = self.create_leased(path, options).await?;
        let lease = self.leases.open_file(self, soft_limit);
        Ok(OutputStream::new(self.clone(), status, lease))
    }

    /// Reopens a complete file for writing at its end and returns the
    /// stream that writes it, the same as [`DfsClient::create_file`] gives
    /// (pipeline recovery works the same): the file is complete again once
    /// [`OutputStream::close`] succeeds. A partial last block is written on
    /// in place unless `options.new_block`.
    ///
    /// When another client's lease on the file expired, the namenode
    /// recovers the file first; the append is retried meanwhile, for up to
    /// about 10 s.
    ///
    /// # Errors
    /// The namenode's refusal (missing, a directory, permission, another
    /// writer holds the lease), or no pipeline to the last block's replicas.
    pub async fn append(&self, path: &str, options: &AppendOptions) -> Result<OutputStream, Error> {
        let reply = self
            .retry_while_recovering(path, || {
                let request = v1::AppendRequest {
                    caller: self.caller(),
                    path: path.to_owned(),
                    new_block: options.new_block,
                };
                self.namenodes.call("append", move |mut rpc| {
                    let request = request.clone();
                    async move { rpc.append(request).await }
                })
            })
            .await?;
        let (status, soft_limit) = opened_status(
            reply.status,
            reply.lease_soft_limit_ms,
            &format!("'{path}'"),
        )?;
        let reopened = reply
            .last_block
            .and_then(LocatedBlock::from_wire)
            .map(|b| (b, GenStamp(reply.previous_gen_stamp)));
        let lease = self.leases.open_file(self, soft_limit);
        // A new block follows the file's last one, which AddBlock must name.
        let last = reply.previous_block.as_ref().map(Block::from_wire);
        OutputStream::append(self.clone(), status, lease, reopened, last).await
    }

    /// Totals of the file or directory tree at `path` (`dfs count`, `du -s`).
    ///
    /// # Errors
    /// The namenode's refusal (missing, permission).
    pub async fn content_summary(&self, path: &str) -> Result<ContentSummary, Error> {
        let request = v1::GetContentSummaryRequest {
            caller: self.caller(),
            path: path.to_owned(),
        };
        let reply = self
            .namenodes
            .call("get_content_summary", |mut rpc| {
                let request = request.clone();
                async move { rpc.get_content_summary(request).await }
            })
            .await?;
        let s = reply.summary.ok_or_else(|| Error::Refused {
            kind: None,
            message: format!("namenode sent no summary for '{path}'"),
        })?;
        Ok(ContentSummary {
            length: s.length,
            file_count: s.file_count,
            directory_count: s.directory_count,
            space_consumed: s.space_consumed,
            quota: s.quota,
            space_quota: s.space_quota,
        })
    }

    /// Opens a file for reading.
    ///
    /// # Errors
    /// The namenode's refusal (missing, a directory, permission).
    pub async fn open(&self, path: &str) -> Result<InputStream, Error> {
        InputStream::open(self.clone(), path).await
    }

    /// The CRC32C of a file's whole content, composed from its blocks'
    /// checksums: equal for equal bytes whatever the block size.
    ///
    /// # Errors
    /// The namenode's refusal, or a block no replica could checksum.
    pub async fn checksum(&self, path: &str) -> Result<FileChecksum, Error> {
        crate::checksum::file_checksum(self, path).await
    }

    /// The blocks overlapping `[offset, offset + length)` of a file
    /// (`length` 0 = to the end), with their replicas nearest first.
    ///
    /// # Errors
    /// The namenode's refusal (missing, a directory, permission).
    pub async fn block_locations(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<BlockLocations, Error> {
        let request = v1::GetBlockLocationsRequest {
            caller: self.caller(),
            path: path.to_owned(),
            offset,
            length,
        };
        let reply = self
            .namenodes
            .call("get_block_locations", |mut rpc| {
                let request = request.clone();
                async move { rpc.get_block_locations(request).await }
            })
            .await?;
        Ok(BlockLocations::from_wire(reply))
    }

    /// Creates an empty file (under construction until completed).
    ///
    /// When the file exists and its writer's lease expired, the namenode
    /// recovers the file first; the create is retried meanwhile, for up to
    /// about 10 s.
    pub async fn create(&self, path: &str, options: &CreateOptions) -> Result<FileStatus, Error> {
        Ok(self.create_leased(path, options).await?.0)
    }

    /// [`DfsClient::create`], also returning the namenode's lease soft limit.
    async fn create_leased(
        &self,
        path: &str,
        options: &CreateOptions,
    ) -> Result<(FileStatus, Duration), Error> {
        let reply = self
            .retry_while_recovering(path, || {
                // A new call id per attempt: a refused create leaves nothing to replay.
                let request = v1::CreateRequest {
                    caller: self.caller(),
                    path: path.to_owned(),
                    permission: options.permission.map(u32::from),
                    overwrite: options.overwrite,
                    create_parent: options.create_parent,
                    replication: options.replication.map_or(0, u32::from),
                    block_size: options.block_size.unwrap_or(0),
                };
                self.namenodes.call("create", move |mut rpc| {
                    let request = request.clone();
                    async move { rpc.create(request).await }
                })
            })
            .await?;
        opened_status(reply.status, reply.lease_soft_limit_ms, "the new file")
    }

    /// Runs a create or append `attempt`, again while the namenode recovers
    /// the lease of the file's previous writer, with backoff for up to
    /// [`RECOVERY_WAIT`]; any other outcome is returned as it is.
    async fn retry_while_recovering<T, F, Fut>(
        &self,
        path: &str,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match attempt().await {
                Err(e)
                    if e.kind() == Some(ErrorKind::RecoveryInProgress)
                        && started.elapsed() + backoff <= RECOVERY_WAIT =>
                {
                    tracing::debug!(%path, error = %e, "the previous writer's lease is being recovered; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                outcome => return outcome,
            }
        }
    }

    /// Tells the namenode this client is alive, so the files it writes stay its own.
    pub(crate) async fn renew_lease(&self) -> Result<(), Error> {
        let request = v1::RenewLeaseRequest {
            caller: self.caller(),
        };
        self.namenodes
            .call("renew_lease", |mut rpc| {
                let request = request.clone();
                async move { rpc.renew_lease(request).await }
            })
            .await?;
        Ok(())
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
        self.namenodes
            .call("complete", |mut rpc| {
                let request = request.clone();
                async move { rpc.complete(request).await }
            })
            .await?;
        Ok(status)
    }

    /// Deletes a file, or a directory (with its contents when `recursive`).
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), Error> {
        let request = v1::DeleteRequest {
            caller: self.caller(),
            path: path.to_owned(),
            recursive,
        };
        self.namenodes
            .call("delete", |mut rpc| {
                let request = request.clone();
                async move { rpc.delete(request).await }
            })
            .await?;
        Ok(())
    }

    /// Moves `src` to `dst`, which must not exist.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<(), Error> {
        let request = v1::RenameRequest {
            caller: self.caller(),
            src: src.to_owned(),
            dst: dst.to_owned(),
        };
        self.namenodes
            .call("rename", |mut rpc| {
                let request = request.clone();
                async move { rpc.rename(request).await }
            })
            .await?;
        Ok(())
    }

    /// Describes one path.
    pub async fn stat(&self, path: &str) -> Result<FileStatus, Error> {
        let request = v1::GetFileInfoRequest {
            caller: self.caller(),
            path: path.to_owned(),
        };
        let reply = self
            .namenodes
            .call("get_file_info", |mut rpc| {
                let request = request.clone();
                async move { rpc.get_file_info(request).await }
            })
            .await?;
        reply
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
                .namenodes
                .call("get_listing", |mut rpc| {
                    let request = request.clone();
                    async move { rpc.get_listing(request).await }
                })
                .await?;
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
        self.namenodes
            .call("set_permission", |mut rpc| {
                let request = request.clone();
                async move { rpc.set_permission(request).await }
            })
            .await?;
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
        self.namenodes
            .call("set_owner", |mut rpc| {
                let request = request.clone();
                async move { rpc.set_owner(request).await }
            })
            .await?;
        Ok(())
    }

    /// Changes a file's target replica count.
    pub async fn set_replication(&self, path: &str, replication: u16) -> Result<(), Error> {
        let request = v1::SetReplicationRequest {
            caller: self.caller(),
            path: path.to_owned(),
            replication: u32::from(replication),
        };
        self.namenodes
            .call("set_replication", |mut rpc| {
                let request = request.clone();
                async move { rpc.set_replication(request).await }
            })
            .await?;
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
        self.namenodes
            .call("set_times", |mut rpc| {
                let request = request.clone();
                async move { rpc.set_times(request).await }
            })
            .await?;
        Ok(())
    }

    /// Every datanode the namenode knows, ordered by rack.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeReport>, Error> {
        let request = v1::GetDatanodeReportRequest {
            caller: self.caller(),
        };
        let reply = self
            .namenodes
            .call("get_datanode_report", |mut rpc| {
                let request = request.clone();
                async move { rpc.get_datanode_report(request).await }
            })
            .await?;
        Ok(reply
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

/// The status and lease soft limit a create or append reply carries;
/// `what` names the file in the error when the status is missing.
fn opened_status(
    status: Option<v1::FileStatus>,
    lease_soft_limit_ms: u64,
    what: &str,
) -> Result<(FileStatus, Duration), Error> {
    let soft_limit = match lease_soft_limit_ms {
        0 => DEFAULT_SOFT_LIMIT,
        ms => Duration::from_millis(ms),
    };
    let status = status
        .map(FileStatus::from_wire)
        .ok_or_else(|| Error::Refused {
            kind: None,
            message: format!("namenode sent no status for {what}"),
        })?;
    Ok((status, soft_limit))
}

/// The namenode's block calls, for the streams.
impl DfsClient {
    /// A channel to a datanode's DataTransfer service (shared per address).
    pub(crate) fn datanode(&self, address: &str) -> Result<DataTransferClient<Channel>, Error> {
        let mut channels = self
            .datanodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel = Endpoint::from_shared(format!("http://{address}"))
                    .map_err(|e| Error::Datanode {
                        datanode: address.to_owned(),
                        reason: format!("bad address: {e}"),
                    })?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .max_frame_size(DATANODE_MAX_FRAME)
                    .local_address(self.bind_address)
                    .connect_lazy();
                channels.insert(address.to_owned(), channel.clone());
                channel
            }
        };
        Ok(DataTransferClient::new(channel)
            .max_decoding_message_size(MAX_TRANSFER_MESSAGE)
            .max_encoding_message_size(MAX_TRANSFER_MESSAGE))
    }

    /// Forgets a datanode's channel, so the next use reconnects.
    pub(crate) fn forget_datanode(&self, address: &str) {
        self.datanodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(address);
    }

    /// The client's name as datanodes log it.
    pub(crate) fn client_name(&self) -> String {
        format!("dfs-client-{}", self.identity.user)
    }

    /// Allocates the file's next block; `previous` is the finished last block.
    pub(crate) async fn add_block(
        &self,
        path: &str,
        previous: Option<Block>,
        excluded: &[String],
    ) -> Result<LocatedBlock, Error> {
        let request = v1::AddBlockRequest {
            caller: self.caller(),
            path: path.to_owned(),
            previous: previous.map(Block::to_wire),
            excluded_datanodes: excluded.to_vec(),
        };
        let reply = self
            .namenodes
            .call("add_block", |mut rpc| {
                let request = request.clone();
                async move { rpc.add_block(request).await }
            })
            .await?;
        reply
            .block
            .and_then(LocatedBlock::from_wire)
            .ok_or_else(|| Error::Refused {
                kind: None,
                message: format!("namenode sent no block for '{path}'"),
            })
    }

    /// Gives up a block the client could not write to any datanode.
    pub(crate) async fn abandon_block(&self, path: &str, block: Block) -> Result<(), Error> {
        let request = v1::AbandonBlockRequest {
            caller: self.caller(),
            path: path.to_owned(),
            block: Some(block.to_wire()),
        };
        self.namenodes
            .call("abandon_block", |mut rpc| {
                let request = request.clone();
                async move { rpc.abandon_block(request).await }
            })
            .await?;
        Ok(())
    }

    /// Asks to close the file; `false` = the last block lacks its minimum replicas yet.
    pub(crate) async fn complete(&self, path: &str, last: Option<Block>) -> Result<bool, Error> {
        let request = v1::CompleteRequest {
            caller: self.caller(),
            path: path.to_owned(),
            last: last.map(Block::to_wire),
        };
        let reply = self
            .namenodes
            .call("complete", |mut rpc| {
                let request = request.clone();
                async move { rpc.complete(request).await }
            })
            .await?;
        Ok(reply.completed)
    }

    /// A new generation stamp for a block whose pipeline is being recovered,
    /// with the token to write and copy the block under it.
    pub(crate) async fn update_block_for_pipeline(
        &self,
        path: &str,
        block: Block,
    ) -> Result<(Block, Option<BlockToken>), Error> {
        let request = v1::UpdateBlockForPipelineRequest {
            caller: self.caller(),
            path: path.to_owned(),
            block: Some(block.to_wire()),
        };
        let reply = self
            .namenodes
            .call("update_block_for_pipeline", |mut rpc| {
                let request = request.clone();
                async move { rpc.update_block_for_pipeline(request).await }
            })
            .await?;
        let token = reply.token.map(BlockToken::from);
        reply
            .block
            .map(|b| (Block::from_wire(&b), token))
            .ok_or_else(|| Error::Refused {
                kind: None,
                message: format!("namenode sent no new generation stamp for {}", block.id),
            })
    }

    /// Replacement datanodes for a shrunken pipeline.
    pub(crate) async fn additional_datanodes(
        &self,
        path: &str,
        block: Block,
        existing: &[Datanode],
        excluded: &[String],
        count: u32,
    ) -> Result<Vec<Datanode>, Error> {
        let request = v1::GetAdditionalDatanodeRequest {
            caller: self.caller(),
            path: path.to_owned(),
            block: Some(block.to_wire()),
            existing: existing.iter().map(|d| d.id.clone()).collect(),
            excluded: excluded.to_vec(),
            count,
        };
        let reply = self
            .namenodes
            .call("get_additional_datanode", |mut rpc| {
                let request = request.clone();
                async move { rpc.get_additional_datanode(request).await }
            })
            .await?;
        Ok(reply
            .datanodes
            .into_iter()
            .map(Datanode::from_wire)
            .collect())
    }

    /// Records the recovered pipeline of a block under its new generation stamp.
    pub(crate) async fn update_pipeline(
        &self,
        path: &str,
        old: Block,
        new: Block,
        nodes: &[Datanode],
    ) -> Result<(), Error> {
        let request = v1::UpdatePipelineRequest {
            caller: self.caller(),
            path: path.to_owned(),
            old_block: Some(old.to_wire()),
            new_block: Some(new.to_wire()),
            datanodes: nodes.iter().map(|d| d.id.clone()).collect(),
        };
        self.namenodes
            .call("update_pipeline", |mut rpc| {
                let request = request.clone();
                async move { rpc.update_pipeline(request).await }
            })
            .await?;
        Ok(())
    }

    /// Tells the namenode a replica failed its checksum.
    pub(crate) async fn report_bad_replica(
        &self,
        block: Block,
        datanode: &Datanode,
    ) -> Result<(), Error> {
        let request = v1::ReportBadBlocksRequest {
            caller: self.caller(),
            replicas: vec![v1::BadReplica {
                block: Some(block.to_wire()),
                datanode_id: datanode.id.clone(),
            }],
        };
        self.namenodes
            .call("report_bad_blocks", |mut rpc| {
                let request = request.clone();
                async move { rpc.report_bad_blocks(request).await }
            })
            .await?;
        Ok(())
    }
}

/// Largest DataTransfer message: a 64 KiB packet with its checksums and
/// framing, with room to spare (tonic's default limit is 4 MiB).
const MAX_TRANSFER_MESSAGE: usize = 16 * 1024 * 1024;
