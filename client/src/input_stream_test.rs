use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;
use crate::fake_cluster::FakeCluster;
use crate::fs::CreateOptions;

const BLOCK: usize = 200 * 1024;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 1000) as u8).collect()
}

#[tokio::test]
async fn reads_every_block_in_order_in_any_piece_size() {
    let cluster = FakeCluster::start(3).await;
    let content = data(3 * BLOCK + 1234);
    cluster.put_file("/f", &content, BLOCK, &["dn0", "dn1"]);

    let mut input = cluster.client.open("/f").await.unwrap();
    assert_eq!(input.len(), content.len() as u64);
    let mut got = Vec::new();
    let mut buf = vec![0; 3000];
    loop {
        let n = input.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        assert_eq!(input.position(), got.len() as u64);
    }
    assert_eq!(got, content);

    let mut via_async_read = Vec::new();
    let mut input = cluster.client.open("/f").await.unwrap();
    input.read_to_end(&mut via_async_read).await.unwrap();
    assert_eq!(via_async_read, content);

    let mut sink = Vec::new();
    let mut input = cluster.client.open("/f").await.unwrap();
    let copied = input.read_all_to(&mut sink).await.unwrap();
    assert_eq!((copied, sink), (content.len() as u64, content));
}

#[tokio::test]
async fn a_corrupt_chunk_is_reported_and_the_read_continues_from_it_on_the_next_replica() {
    let cluster = FakeCluster::start(3).await;
    let content = data(2 * BLOCK);
    cluster.put_file("/f", &content, BLOCK, &["dn0", "dn1"]);
    cluster.state().corrupt.insert(("dn0".into(), 2), 70_000);

    let mut got = Vec::new();
    let mut input = cluster.client.open("/f").await.unwrap();
    input.read_all_to(&mut got).await.unwrap();
    assert!(got == content, "the data read is the data written");

    let state = cluster.state();
    assert_eq!(state.bad_reports, [(2, "dn0".to_owned())]);
    let bad_chunk = 70_000 / 512 * 512;
    assert!(
        state.reads.contains(&("dn1".to_owned(), 2, bad_chunk)),
        "resumes at the bad chunk on dn1: {:?}",
        state.reads
    );
    assert!(
        !state
            .reads
            .iter()
            .any(|(dn, block, _)| dn == "dn1" && *block == 1),
        "block 1 was healthy on dn0"
    );
}

#[tokio::test]
async fn an_unreachable_replica_is_skipped_without_a_report() {
    let cluster = FakeCluster::start(3).await;
    let content = data(BLOCK + 10);
    cluster.put_file("/f", &content, BLOCK, &["dn0", "dn1"]);
    cluster.state().replicas.remove(&("dn0".to_owned(), 1));

    let mut got = Vec::new();
    let mut input = cluster.client.open("/f").await.unwrap();
    input.read_all_to(&mut got).await.unwrap();
    assert!(got == content);
    assert!(cluster.state().bad_reports.is_empty());
}

#[tokio::test]
async fn a_block_with_every_replica_corrupt_fails_naming_it() {
    let cluster = FakeCluster::start(2).await;
    cluster.put_file("/f", &data(BLOCK + 10), BLOCK, &["dn0", "dn1"]);
    cluster.state().corrupt.insert(("dn0".into(), 2), 3);
    cluster.state().corrupt.insert(("dn1".into(), 2), 5);

    let mut input = cluster.client.open("/f").await.unwrap();
    let error = input.read_all_to(&mut Vec::new()).await.unwrap_err();
    assert!(
        matches!(&error, Error::AllReplicasFailed { block, .. } if block.0 == 2),
        "{error}"
    );
    assert!(error.to_string().contains("blk_2"), "{error}");
    assert_eq!(cluster.state().bad_reports.len(), 2);
}

#[tokio::test]
async fn the_next_block_is_requested_before_the_current_one_is_consumed() {
    let cluster = FakeCluster::start(1).await;
    let block = 1 << 20; // many more packets than the read-ahead holds
    cluster.put_file("/f", &data(3 * block), block, &["dn0"]);

    let mut input = cluster.client.open("/f").await.unwrap();
    let mut byte = [0];
    input.read(&mut byte).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let blocks: Vec<u64> = cluster.state().reads.iter().map(|r| r.1).collect();
    assert_eq!(
        blocks,
        [1, 2],
        "block 2 streams while block 1 is read; block 3 waits"
    );
}

#[tokio::test]
async fn locations_beyond_the_first_reply_are_fetched_as_needed() {
    let cluster = FakeCluster::start(1).await;
    let content = data(4 * BLOCK - 7);
    cluster.put_file("/f", &content, BLOCK, &["dn0"]);
    cluster.state().blocks_per_reply = Some(1);

    let mut got = Vec::new();
    let mut input = cluster.client.open("/f").await.unwrap();
    input.read_all_to(&mut got).await.unwrap();
    assert!(got == content);
    let locates = cluster
        .state()
        .calls
        .iter()
        .filter(|c| *c == "GetBlockLocations")
        .count();
    assert_eq!(locates, 4);
}

#[tokio::test]
async fn seek_restarts_the_read_at_any_offset() {
    let cluster = FakeCluster::start(1).await;
    let content = data(2 * BLOCK);
    cluster.put_file("/f", &content, BLOCK, &["dn0"]);

    let mut input = cluster.client.open("/f").await.unwrap();
    for at in [BLOCK + 513, 7, 2 * BLOCK - 1] {
        input.seek(at as u64).await.unwrap();
        let mut got = Vec::new();
        input.read_all_to(&mut got).await.unwrap();
        assert!(got == content[at..], "from {at}");
    }
}

#[tokio::test]
async fn a_written_file_reads_back_and_its_checksum_ignores_the_block_size() {
    let cluster = FakeCluster::start(3).await;
    let content = data(5 * 64 * 1024 + 999);
    let mut sums = Vec::new();
    for (i, block_size) in [64 * 1024u64, 150 * 512, 1 << 20].into_iter().enumerate() {
        let path = format!("/f{i}");
        let options = CreateOptions {
            replication: Some(2),
            block_size: Some(block_size),
            ..CreateOptions::default()
        };
        let mut out = cluster.client.create_file(&path, &options).await.unwrap();
        out.write(&content).await.unwrap();
        out.close().await.unwrap();

        let mut got = Vec::new();
        let mut input = cluster.client.open(&path).await.unwrap();
        input.read_all_to(&mut got).await.unwrap();
        assert!(got == content, "{path} reads back");
        sums.push(cluster.client.checksum(&path).await.unwrap());
    }
    let whole = crc32c::crc32c(&content);
    for sum in sums {
        assert_eq!(sum.crc32c, whole);
        assert_eq!(sum.length, content.len() as u64);
    }
}

#[tokio::test]
async fn checksum_falls_back_to_another_replica() {
    let cluster = FakeCluster::start(2).await;
    let content = data(BLOCK + 5);
    cluster.put_file("/f", &content, BLOCK, &["dn0", "dn1"]);
    cluster.state().replicas.remove(&("dn0".to_owned(), 2));
    let sum = cluster.client.checksum("/f").await.unwrap();
    assert_eq!(sum.crc32c, crc32c::crc32c(&content));
    assert_eq!(sum.hex().len(), 8);

    cluster.state().replicas.remove(&("dn1".to_owned(), 2));
    let error = cluster.client.checksum("/f").await.unwrap_err();
    assert!(matches!(error, Error::AllReplicasFailed { .. }), "{error}");
}

#[tokio::test]
async fn an_empty_file_reads_nothing_and_checksums_to_zero() {
    let cluster = FakeCluster::start(1).await;
    cluster.put_file("/empty", &[], BLOCK, &["dn0"]);
    let mut input = cluster.client.open("/empty").await.unwrap();
    assert!(input.is_empty());
    assert_eq!(input.read(&mut [0; 10]).await.unwrap(), 0);
    assert_eq!(cluster.client.checksum("/empty").await.unwrap().crc32c, 0);
}
