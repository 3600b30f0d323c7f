//! Block access tokens against real processes: a forged recovery WriteBlock
//! (issue 9's attack) is refused and the replica stays whole; tokens of the
//! old and the new leader both work across a kill -9 of the leader while a
//! multi-block put streams and a reader reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use bytes::Bytes;
use cluster::{MiniCluster, random_bytes, wait_until};
use dfs_client::{ClientConfig, CreateOptions, DfsClient};
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use dfs_proto::v1::data_transfer_client::DataTransferClient;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const BLOCK: usize = 1024 * 1024;
const ELECTION: Duration = Duration::from_secs(30);

fn caller(user: &str) -> Option<v1::CallerContext> {
    Some(v1::CallerContext {
        user: user.to_owned(),
        ..Default::default()
    })
}

/// Issue 9's attack: "recovery" to `gen_stamp` with acked length 0 and one
/// empty last packet, which used to truncate a finalized replica to 0 bytes.
async fn forged_recovery(
    datanode: &str,
    block: &v1::ExtendedBlock,
    gen_stamp: u64,
    token: Option<v1::BlockToken>,
) -> Result<Vec<v1::PacketAck>, tonic::Status> {
    let mut client = DataTransferClient::connect(format!("http://{datanode}"))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let header = v1::WriteBlockHeader {
        block: Some(v1::ExtendedBlock {
            gen_stamp,
            length: 0,
            ..*block
        }),
        client_name: "mallory".to_owned(),
        recovery: true,
        previous_gen_stamp: block.gen_stamp,
        acked_length: 0,
        token,
        ..Default::default()
    };
    let last = v1::Packet {
        seqno: 0,
        offset_in_block: 0,
        data: Bytes::new(),
        checksums: Bytes::new(),
        last_packet_in_block: true,
    };
    for m in [
        v1::write_block_message::Message::Header(header),
        v1::write_block_message::Message::Packet(last),
    ] {
        tx.send(v1::WriteBlockMessage { message: Some(m) })
            .await
            .unwrap();
    }
    drop(tx);
    let mut acks = client
        .write_block(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(ack) = acks.message().await? {
        out.push(ack);
    }
    Ok(out)
}

async fn read_first_bytes(
    datanode: &str,
    block: &v1::ExtendedBlock,
    token: Option<v1::BlockToken>,
) -> Result<usize, tonic::Status> {
    let mut client = DataTransferClient::connect(format!("http://{datanode}"))
        .await
        .unwrap();
    let mut packets = client
        .read_block(v1::ReadBlockRequest {
            block: Some(*block),
            offset: 0,
            length: 4096,
            client_name: "test".to_owned(),
            token,
        })
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(p) = packets.message().await? {
        n += p.data.len();
    }
    Ok(n)
}

#[test]
fn a_forged_recovery_write_block_is_refused_and_the_replica_stays_whole() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(91, 300_000);
    cluster.put_bytes(&su, &bytes, "/f");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    eprintln!("--- mallory (who may read /f) learns its block and gets a READ token");
    let located = runtime.block_on(async {
        let mut nn = ClientProtocolClient::connect(format!("http://{}", cluster.namenode_addr()))
            .await
            .unwrap();
        nn.get_block_locations(v1::GetBlockLocationsRequest {
            caller: caller("mallory"),
            path: "/f".to_owned(),
            offset: 0,
            length: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .blocks
        .remove(0)
    });
    let block = located.block.unwrap();
    assert_eq!(block.length, bytes.len() as u64);
    let read_token = located.token.clone().expect("the namenode issues tokens");
    assert_eq!(located.locations.len(), 3);

    eprintln!(
        "--- the forged recovery is refused by every replica, with or without the READ token"
    );
    for location in &located.locations {
        let address = location.transfer_address.as_str();
        let attempts = [
            (
                "no token",
                block.gen_stamp + 1,
                None,
                "no block access token",
            ),
            (
                "a READ token, higher gen stamp",
                block.gen_stamp + 1,
                Some(read_token.clone()),
                "gen stamp",
            ),
            (
                "a READ token, same gen stamp",
                block.gen_stamp,
                Some(read_token.clone()),
                "not write",
            ),
        ];
        for (what, gen_stamp, token, reason) in attempts {
            let refused = runtime
                .block_on(forged_recovery(address, &block, gen_stamp, token))
                .expect_err(&format!("{address} accepted a recovery with {what}"));
            assert_eq!(
                refused.code(),
                Code::PermissionDenied,
                "{what}: {refused:?}"
            );
            assert!(
                refused.message().contains(reason),
                "{what}: {}",
                refused.message()
            );
        }
        eprintln!("--- a ReadBlock needs a token too; the READ token works");
        let refused = runtime
            .block_on(read_first_bytes(address, &block, None))
            .expect_err("a read without a token");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        let read = runtime
            .block_on(read_first_bytes(address, &block, Some(read_token.clone())))
            .unwrap();
        assert_eq!(read, 4096);
    }

    eprintln!("--- every replica is intact, the refusals are logged with the requester");
    for node in cluster.datanodes() {
        let replica = cluster
            .finalized_replica(&node, block.block_id)
            .unwrap_or_else(|| panic!("{node} lost its finalized replica"));
        assert_eq!(
            std::fs::metadata(&replica).unwrap().len(),
            bytes.len() as u64,
            "{node}'s replica changed length"
        );
        let log = std::fs::read_to_string(cluster.log(&node)).unwrap();
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("refused: block access token"))
            .collect();
        assert!(refusals.len() >= 4, "{node}: {refusals:#?}");
        assert!(
            refusals.iter().all(|l| l.contains("peer=127.")),
            "{node}: {refusals:#?}"
        );
    }
    let back = cluster.dir().join("back");
    cluster.dfs_ok(&su, &["get", "/f", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "get returned other bytes"
    );
}

#[test]
fn tokens_of_the_old_and_the_new_leader_both_work_across_a_leader_kill() {
    let mut cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .start();
    let old_leader = cluster.wait_for_leader(ELECTION);
    cluster.wait_converged(ELECTION);
    let su = cluster.superuser();
    let before = random_bytes(5, 6 * BLOCK + 777);
    cluster.put_bytes(&su, &before, "/before");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let config = ClientConfig::new(
        cluster
            .namenode_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
    );
    let client = DfsClient::connect(&config, Some(su.clone())).unwrap();
    let during = random_bytes(6, 7 * BLOCK + 4321);

    eprintln!("--- {old_leader} leads: a reader and a writer start, holding its tokens");
    let old_locations = runtime
        .block_on(client.block_locations("/before", 0, 0))
        .unwrap();
    let old_sid = cluster.sid(&old_leader);
    for b in &old_locations.blocks {
        let key = b.token.as_ref().expect("a token").key;
        assert_eq!(key.0 >> 32, old_sid, "signed by the leader's key");
    }
    let mut reader = runtime.block_on(client.open("/before")).unwrap();
    let mut read = vec![0u8; BLOCK + BLOCK / 2];
    runtime.block_on(read_exact(&mut reader, &mut read));
    let options = CreateOptions {
        overwrite: false,
        create_parent: true,
        replication: None,
        block_size: Some(BLOCK as u64),
        permission: None,
    };
    let mut writer = runtime
        .block_on(client.create_file("/during", &options))
        .unwrap();
    let half = during.len() / 2;
    runtime.block_on(writer.write(&during[..half])).unwrap();

    eprintln!("--- kill -9 {old_leader}; a new leader takes over");
    cluster.kill(&old_leader);
    let new_leader = {
        let mut leader = String::new();
        wait_until("a new leader", ELECTION, || {
            leader = cluster.leader().unwrap_or_default();
            !leader.is_empty() && leader != old_leader
        });
        leader
    };

    eprintln!("--- the writer finishes on {new_leader}, the reader finishes on old tokens");
    runtime.block_on(async {
        writer.write(&during[half..]).await.unwrap();
        writer.close().await.unwrap();
    });
    let mut rest = vec![0u8; before.len() - read.len()];
    runtime.block_on(read_exact(&mut reader, &mut rest));
    read.extend_from_slice(&rest);
    assert!(read == before, "the reader got other bytes");

    eprintln!("--- an old-leader token and a new-leader token are both accepted");
    let new_locations = runtime
        .block_on(client.block_locations("/before", 0, 0))
        .unwrap();
    let new_sid = cluster.sid(&new_leader);
    for (old, new) in old_locations.blocks.iter().zip(&new_locations.blocks) {
        let new_token = new.token.as_ref().expect("a token");
        assert_eq!(new_token.key.0 >> 32, new_sid, "signed by the new leader");
        for token in [old.token.as_ref(), Some(new_token)] {
            let replica = &new.locations[0];
            let block = v1::ExtendedBlock {
                block_id: new.block.id.0,
                gen_stamp: new.block.gen_stamp.0,
                length: new.block.length,
            };
            let n = runtime
                .block_on(read_first_bytes(
                    &replica.address,
                    &block,
                    token.map(v1::BlockToken::from),
                ))
                .unwrap();
            assert_eq!(n as u64, new.block.length.min(4096));
        }
    }

    eprintln!("--- nothing was lost");
    for (path, want) in [("/before", &before), ("/during", &during)] {
        let back = cluster
            .dir()
            .join(format!("back{}", path.replace('/', "_")));
        cluster.dfs_ok(&su, &["get", path, back.to_str().unwrap()]);
        assert!(std::fs::read(&back).unwrap() == *want, "{path} differs");
    }
}

async fn read_exact(reader: &mut dfs_client::InputStream, buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        let n = reader.read(&mut buf[at..]).await.unwrap();
        assert!(n > 0, "end of file at {at} of {}", buf.len());
        at += n;
    }
}
