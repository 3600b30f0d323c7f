use std::time::Duration;

use dfs_proto::v1::PipelineStatus;

use super::*;
use crate::fake_cluster::{FakeCluster, WriteFault};
use crate::fs::CreateOptions;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 511) as u8).collect()
}

fn options(replication: u16, block_size: u64) -> CreateOptions {
    CreateOptions {
        replication: Some(replication),
        block_size: Some(block_size),
        ..CreateOptions::default()
    }
}

/// Writes `content` in uneven pieces and closes.
async fn write_file(cluster: &FakeCluster, path: &str, content: &[u8], options: &CreateOptions) {
    let mut out = cluster.client.create_file(path, options).await.unwrap();
    for piece in content.chunks(1000) {
        out.write(piece).await.unwrap();
    }
    out.close().await.unwrap();
    assert_eq!(out.bytes_written(), content.len() as u64);
}

#[tokio::test]
async fn packets_respect_chunk_packet_and_block_boundaries() {
    let cluster = FakeCluster::start(3).await;
    let block_size = 150 * 512; // not a multiple of the packet size
    for len in [
        0,
        1,
        511,
        512,
        513,
        PACKET_SIZE - 1,
        PACKET_SIZE,
        PACKET_SIZE + 1,
        2 * PACKET_SIZE,
        block_size,
        3 * block_size + 100,
    ] {
        let path = format!("/f{len}");
        let content = data(len);
        write_file(&cluster, &path, &content, &options(3, block_size as u64)).await;

        assert_eq!(cluster.stored(&path), content, "content of {path}");
        let state = cluster.state();
        let file = &state.files[&path];
        assert!(file.completed);
        assert_eq!(
            file.blocks.len(),
            len.div_ceil(block_size),
            "blocks of {path}"
        );
        for (block, _) in &file.blocks {
            let packets: Vec<_> = state
                .packets
                .iter()
                .filter(|p| p.block == block.block_id)
                .collect();
            let mut offset = 0;
            for (i, p) in packets.iter().enumerate() {
                assert_eq!(p.seqno, i as i64);
                assert_eq!(p.offset, offset);
                assert_eq!(p.offset % 512, 0, "chunk-aligned");
                assert!(p.len <= PACKET_SIZE);
                assert_eq!(p.last, i + 1 == packets.len(), "only the last is last");
                offset += p.len as u64;
            }
            assert_eq!(offset, block.length);
        }
    }
}

#[tokio::test]
async fn a_block_ending_on_a_packet_boundary_at_close_gets_an_empty_last_packet() {
    let cluster = FakeCluster::start(1).await;
    write_file(&cluster, "/f", &data(2 * PACKET_SIZE), &options(1, 1 << 20)).await;
    let state = cluster.state();
    let lens: Vec<_> = state.packets.iter().map(|p| (p.len, p.last)).collect();
    assert_eq!(
        lens,
        [(PACKET_SIZE, false), (PACKET_SIZE, false), (0, true)]
    );
}

#[tokio::test]
async fn unacked_packets_never_exceed_the_window() {
    let cluster = FakeCluster::start(3).await;
    cluster.hold_acks.send_replace(true);
    let mut out = cluster
        .client
        .create_file("/big", &options(3, 64 << 20))
        .await
        .unwrap();
    let content = data(100 * PACKET_SIZE);
    let writer = tokio::spawn(async move {
        out.write(&content).await.unwrap();
        out.close().await.unwrap();
    });
    // Wait until the writer has been stuck for a while.
    let mut seen = 0;
    let mut still = 0;
    while still < 10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = cluster.state().packets.len();
        still = if now == seen { still + 1 } else { 0 };
        seen = now;
    }
    assert_eq!(cluster.state().packets.len(), WINDOW);
    assert!(!writer.is_finished());

    cluster.hold_acks.send_replace(false);
    writer.await.unwrap();
    assert_eq!(cluster.stored("/big").len(), 100 * PACKET_SIZE);
}

#[tokio::test]
async fn a_failed_middle_datanode_is_dropped_and_unacked_packets_are_resent() {
    let cluster = FakeCluster::start(4).await;
    cluster.state().faults.push(WriteFault {
        datanode: "dn1".into(),
        seqno: 5,
        status: PipelineStatus::Error,
    });
    let content = data(20 * PACKET_SIZE + 77);
    write_file(&cluster, "/f", &content, &options(3, 64 << 20)).await;

    assert_eq!(cluster.stored("/f"), content);
    let state = cluster.state();
    let (block, nodes) = &state.files["/f"].blocks[0];
    assert_eq!(nodes, &["dn0", "dn2"]);
    assert!(
        block.gen_stamp > 1000,
        "recovery bumped the generation stamp"
    );
    let (_, gen_stamp, acked, pipeline) = &state.recoveries[0];
    assert_eq!(*gen_stamp, block.gen_stamp);
    assert_eq!(*acked, 5 * PACKET_SIZE as u64, "packets 0..5 were acked");
    assert_eq!(pipeline, &["dn0", "dn2"]);
    let resent = state
        .packets
        .iter()
        .filter(|p| p.seqno == 5)
        .map(|p| p.offset)
        .collect::<Vec<_>>();
    assert_eq!(
        resent, [*acked; 2],
        "packet 5 sent, then resent from acked_length"
    );
    let calls = state.calls.join(",");
    assert!(
        calls.contains("UpdateBlockForPipeline,UpdatePipeline"),
        "{calls}"
    );
    assert!(
        !calls.contains("GetAdditionalDatanode"),
        "2 of 3 is enough: {calls}"
    );
}

#[tokio::test]
async fn a_first_datanode_error_and_a_last_datanode_checksum_error_are_both_recovered() {
    let cluster = FakeCluster::start(3).await;
    cluster.state().faults.extend([
        WriteFault {
            datanode: "dn0".into(),
            seqno: 0,
            status: PipelineStatus::Error,
        },
        WriteFault {
            datanode: "dn2".into(),
            seqno: 3,
            status: PipelineStatus::ErrorChecksum,
        },
    ]);
    let content = data(6 * PACKET_SIZE);
    write_file(&cluster, "/f", &content, &options(3, 64 << 20)).await;

    assert_eq!(cluster.stored("/f"), content);
    let state = cluster.state();
    assert_eq!(state.files["/f"].blocks[0].1, ["dn1"]);
    let acked: Vec<_> = state.recoveries.iter().map(|r| r.2).collect();
    assert_eq!(acked, [0, 3 * PACKET_SIZE as u64]);
    assert!(
        state.calls.iter().any(|c| c == "GetAdditionalDatanode"),
        "1 of 3 left asks for a replacement"
    );
}

#[tokio::test]
async fn a_pipeline_down_to_one_of_three_gets_a_replacement_filled_by_a_survivor() {
    let cluster = FakeCluster::start(4).await;
    cluster.state().faults.extend([
        WriteFault {
            datanode: "dn1".into(),
            seqno: 2,
            status: PipelineStatus::Error,
        },
        WriteFault {
            datanode: "dn2".into(),
            seqno: 4,
            status: PipelineStatus::Error,
        },
    ]);
    let content = data(8 * PACKET_SIZE + 3);
    write_file(&cluster, "/f", &content, &options(3, 64 << 20)).await;

    assert_eq!(cluster.stored("/f"), content, "every replica, dn3's too");
    let state = cluster.state();
    assert_eq!(state.files["/f"].blocks[0].1, ["dn0", "dn3"]);
    let calls = state.calls.join(",");
    assert!(
        calls.contains("GetAdditionalDatanode,TransferRbw from dn0,UpdatePipeline"),
        "{calls}"
    );
    let last = state.recoveries.last().unwrap();
    assert_eq!(
        (last.2, &last.3),
        (
            4 * PACKET_SIZE as u64,
            &vec!["dn0".to_owned(), "dn3".to_owned()]
        )
    );
}

#[tokio::test]
async fn a_pipeline_without_survivors_fails_the_write() {
    let cluster = FakeCluster::start(1).await;
    cluster.state().faults.push(WriteFault {
        datanode: "dn0".into(),
        seqno: 1,
        status: PipelineStatus::Error,
    });
    let mut out = cluster
        .client
        .create_file("/f", &options(1, 64 << 20))
        .await
        .unwrap();
    let mut result = out.write(&data(4 * PACKET_SIZE)).await;
    if result.is_ok() {
        result = out.close().await;
    }
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::PipelineFailed { block, .. } if block.0 == 1),
        "{error}"
    );
    assert!(error.to_string().contains("no datanode"), "{error}");
    assert!(matches!(out.close().await, Err(Error::StreamClosed { .. })));
    assert!(!cluster.state().files["/f"].completed);
}

#[tokio::test]
async fn close_retries_complete_until_the_namenode_agrees() {
    let cluster = FakeCluster::start(1).await;
    cluster.state().complete_not_yet = 3;
    write_file(&cluster, "/f", &data(10), &options(1, 1 << 20)).await;
    let state = cluster.state();
    assert_eq!(state.calls.iter().filter(|c| *c == "Complete").count(), 4);
    assert!(state.files["/f"].completed);
}

#[tokio::test]
async fn close_gives_up_on_complete_with_a_clear_error() {
    let cluster = FakeCluster::start(1).await;
    cluster.state().complete_not_yet = u32::MAX;
    let mut out = cluster
        .client
        .create_file("/f", &options(1, 1 << 20))
        .await
        .unwrap();
    out.set_tuning(Tuning {
        complete_timeout: Duration::from_secs(1),
        ..Tuning::default()
    });
    out.write(b"x").await.unwrap();
    let error = out.close().await.unwrap_err();
    assert!(matches!(error, Error::CompleteTimedOut { .. }), "{error}");
}

#[test]
fn checksums_are_little_endian_per_chunk() {
    let content = data(1025);
    let sums = encode_checksums(&content);
    assert_eq!(sums.len(), 12);
    assert_eq!(&sums[..4], crc32c::crc32c(&content[..512]).to_le_bytes());
    assert_eq!(&sums[8..], crc32c::crc32c(&content[1024..]).to_le_bytes());
}
