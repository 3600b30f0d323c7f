//! Whole-file checksums: each block's CRC32C from one of its replicas
//! (`BlockChecksum`, no data moved), composed with `crc32c_combine` into the
//! CRC32C of the file's bytes, so equal content gives an equal checksum
//! whatever the block size (like HDFS's COMPOSITE-CRC mode).

use std::time::Duration;

use dfs_proto::v1;

use crate::blocks::{LocatedBlock, token_to_wire};
use crate::error::Error;
use crate::fs::DfsClient;

const CHECKSUM_TIMEOUT: Duration = Duration::from_secs(30);

/// A file's composite CRC32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileChecksum {
    /// CRC32C of the file's whole content.
    pub crc32c: u32,
    /// Bytes covered.
    pub length: u64,
}

impl FileChecksum {
    /// HDFS's name for the algorithm, as `dfs checksum` prints it.
    pub const ALGORITHM: &'static str = "COMPOSITE-CRC32C";

    /// The checksum as 8 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:08x}", self.crc32c)
    }
}

pub(crate) async fn file_checksum(client: &DfsClient, path: &str) -> Result<FileChecksum, Error> {
    let mut total = FileChecksum {
        crc32c: 0,
        length: 0,
    };
    loop {
        let located = client.block_locations(path, total.length, 0).await?;
        if total.length >= located.file_length {
            return Ok(total);
        }
        let mut progressed = false;
        for block in &located.blocks {
            if block.end() <= total.length {
                continue;
            }
            if block.offset != total.length {
                return Err(Error::Refused {
                    kind: None,
                    message: format!(
                        "'{path}': block {} starts at {} where {} was expected",
                        block.block.id, block.offset, total.length
                    ),
                });
            }
            let (crc, length) = block_checksum(client, path, block).await?;
            total = FileChecksum {
                crc32c: crc32c::crc32c_combine(
                    total.crc32c,
                    crc,
                    usize::try_from(length).unwrap_or(usize::MAX),
                ),
                length: total.length + length,
            };
            progressed = true;
        }
        if !progressed {
            return Err(Error::Refused {
                kind: None,
                message: format!(
                    "'{path}': the namenode located no block at offset {} of {}",
                    total.length, located.file_length
                ),
            });
        }
    }
}

/// One block's CRC32C and length, from the first replica that answers with
/// the length the namenode expects.
async fn block_checksum(
    client: &DfsClient,
    path: &str,
    located: &LocatedBlock,
) -> Result<(u32, u64), Error> {
    let mut reasons = Vec::new();
    for replica in &located.locations {
        let request = v1::BlockChecksumRequest {
            block: Some(located.block.to_wire()),
            token: token_to_wire(located.token.as_ref()),
        };
        let answer = match client.datanode(&replica.address) {
            Ok(mut rpc) => {
                tokio::time::timeout(CHECKSUM_TIMEOUT, rpc.block_checksum(request)).await
            }
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        match answer {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                if reply.length == located.block.length {
                    return Ok((reply.crc32c, reply.length));
                }
                reasons.push(format!(
                    "datanode {}: replica has {} bytes, expected {}",
                    replica.address, reply.length, located.block.length
                ));
            }
            Ok(Err(status)) => {
                reasons.push(format!(
                    "datanode {}: {}",
                    replica.address,
                    status.message()
                ));
            }
            Err(_) => reasons.push(format!("datanode {}: no answer", replica.address)),
        }
    }
    if reasons.is_empty() {
        reasons.push("no live replica".into());
    }
    Err(Error::AllReplicasFailed {
        path: path.to_owned(),
        block: located.block.id,
        reasons: reasons.join("; "),
    })
}
