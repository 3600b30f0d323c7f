//! Component tests of the DataTransfer service: in-process datanodes on
//! 127.0.0.1:0 with temp dirs and no namenode, each on its own runtime so
//! that a test can kill one (every task and connection of it) mid-block.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use bytes::Bytes;
use dfs_proto::checksum::{chunk_checksums, verify_chunks};
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::v1;
use dfs_proto::v1::data_transfer_client::DataTransferClient;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;

use crate::block_store::{self, BlockStore, ReplicaInfo};
use crate::data_path::{DataPath, TransferSettings, Writers};
use crate::pipeline::Target;
use crate::reports::{Change, ReportHub, ReportQueue};
use crate::server::serve_transfers;
use crate::test_files::find_file;

const PACKET: usize = 64 * 1024;
/// The largest packet a read sends.
const READ_PACKET: usize = 1024 * 1024;
const S: i32 = v1::PipelineStatus::Success as i32;
const E: i32 = v1::PipelineStatus::Error as i32;
const EC: i32 = v1::PipelineStatus::ErrorChecksum as i32;

/// One datanode's data path on its own runtime.
struct Node {
    dir: TempDir,
    dp: Arc<DataPath>,
    addr: SocketAddr,
    reports: Arc<ReportQueue>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Node {
    fn start() -> Node {
        Node::start_in(&std::env::temp_dir())
    }

    fn start_in(base: &std::path::Path) -> Node {
        let dir = tempfile::tempdir_in(base).expect("temp dir");
        let (store, _) = BlockStore::open(dir.path()).expect("open store");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (hub, mut queues) = ReportHub::new(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut settings = TransferSettings::new(addr.ip(), format!("dn-{}", addr.port()));
        settings.ack_timeout = Duration::from_secs(3);
        settings.connect_timeout = Duration::from_secs(1);
        settings.idle_timeout = Duration::from_secs(10);
        let dp = Arc::new(DataPath {
            store: Arc::new(store),
            reports: hub,
            writers: Arc::new(Writers::default()),
            active: Arc::new(AtomicU32::new(0)),
            settings,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            access: crate::block_access::BlockAccess::new(false),
            events: crate::metrics::Events::default(),
        });
        let served = Arc::clone(&dp);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            serve_transfers(listener, served, CancellationToken::new()).await;
        });
        Node {
            dir,
            dp,
            addr,
            reports: queues.remove(0),
            runtime: Some(runtime),
        }
    }

    fn location(&self) -> v1::DatanodeLocation {
        v1::DatanodeLocation {
            datanode_id: format!("dn-{}", self.addr.port()),
            transfer_address: self.addr.to_string(),
            rack: "/r1".to_owned(),
        }
    }

    /// Kills the node: every task and connection of its runtime goes away at once.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    async fn client(&self) -> DataTransferClient<Channel> {
        DataTransferClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Waits until no pipeline holds a replica (so finalizes are done or never happen).
    async fn wait_idle(&self) {
        wait_until("pipelines finish", || {
            self.dp.active.load(std::sync::atomic::Ordering::Relaxed) == 0
        })
        .await;
    }

    fn read_finalized(&self, block: BlockId, gs: GenStamp) -> Vec<u8> {
        let mut r = self.dp.store.open_finalized(block, gs).expect("finalized");
        let (_, data, sums) = r.read_chunks(0, usize::MAX / 2).expect("read");
        verify_chunks(&data, &sums).expect("stored checksums verify");
        data
    }

    fn block_file(&self, block: BlockId) -> PathBuf {
        find_file(self.dir.path(), &format!("blk_{}", block.0)).expect("block file")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).rotate_right(11) as u8) ^ seed)
        .collect()
}

fn extended(block: BlockId, gs: GenStamp) -> Option<v1::ExtendedBlock> {
    Some(v1::ExtendedBlock {
        block_id: block.0,
        gen_stamp: gs.0,
        length: 0,
    })
}

fn header(block: BlockId, gs: GenStamp, downstream: &[&Node]) -> v1::WriteBlockHeader {
    v1::WriteBlockHeader {
        block: extended(block, gs),
        downstream: downstream.iter().map(|n| n.location()).collect(),
        client_name: "test".to_owned(),
        ..Default::default()
    }
}

/// `data` from block offset `from` in 64 KiB packets, seqnos from `seqno`; the last is flagged.
fn packets(data: &[u8], from: usize, seqno: i64) -> Vec<v1::Packet> {
    let mut out = Vec::new();
    let mut at = from;
    let mut seq = seqno;
    while at < data.len() {
        let end = (at + PACKET).min(data.len());
        let chunk = &data[at..end];
        out.push(v1::Packet {
            seqno: seq,
            offset_in_block: at as u64,
            data: Bytes::copy_from_slice(chunk),
            checksums: le_sums(&chunk_checksums(chunk)),
            last_packet_in_block: end == data.len(),
        });
        at = end;
        seq += 1;
    }
    out
}

fn le_sums(sums: &[u32]) -> Bytes {
    sums.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn message(m: v1::write_block_message::Message) -> v1::WriteBlockMessage {
    v1::WriteBlockMessage { message: Some(m) }
}

/// A test client's WriteBlock stream.
struct Writer {
    tx: mpsc::Sender<v1::WriteBlockMessage>,
    acks: tonic::Streaming<v1::PacketAck>,
}

impl Writer {
    async fn open(to: &Node, header: v1::WriteBlockHeader) -> Writer {
        let (tx, rx) = mpsc::channel(256);
        tx.send(message(v1::write_block_message::Message::Header(header)))
            .await
            .expect("send header");
        let acks = to
            .client()
            .await
            .write_block(ReceiverStream::new(rx))
            .await
            .expect("write block accepted")
            .into_inner();
        Writer { tx, acks }
    }

    async fn send(&self, packets: &[v1::Packet]) {
        for p in packets {
            // A closed stream is the server's business: the acks tell.
            let _ = self
                .tx
                .send(message(v1::write_block_message::Message::Packet(p.clone())))
                .await;
        }
    }

    async fn ack(&mut self) -> Option<v1::PacketAck> {
        tokio::time::timeout(Duration::from_secs(10), self.acks.message())
            .await
            .expect("an ack or the end within 10 s")
            .expect("the ack stream is ok")
    }

    /// Every ack until the stream ends, and how it ended.
    async fn rest(mut self) -> (Vec<v1::PacketAck>, Result<(), tonic::Status>) {
        drop(self.tx);
        let mut acks = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.acks.message())
                .await
                .expect("acks end within 10 s")
            {
                Ok(Some(ack)) => acks.push(ack),
                Ok(None) => return (acks, Ok(())),
                Err(status) => return (acks, Err(status)),
            }
        }
    }
}

/// Writes a whole block through `nodes` (the first receives) and returns its acks.
async fn write_block(
    nodes: &[&Node],
    block: BlockId,
    gs: GenStamp,
    data: &[u8],
) -> Vec<v1::PacketAck> {
    let w = Writer::open(nodes[0], header(block, gs, &nodes[1..])).await;
    w.send(&packets(data, 0, 0)).await;
    let (acks, end) = w.rest().await;
    end.expect("stream ends ok");
    acks
}

async fn read_all(
    node: &Node,
    block: BlockId,
    gs: GenStamp,
    offset: u64,
    length: u64,
) -> (u64, Vec<u8>) {
    let mut stream = node
        .client()
        .await
        .read_block(v1::ReadBlockRequest {
            block: extended(block, gs),
            offset,
            length,
            client_name: "test".to_owned(),
            token: None,
        })
        .await
        .expect("read accepted")
        .into_inner();
    let mut out = Vec::new();
    let mut first = None;
    while let Some(p) = stream.message().await.expect("read packet") {
        let sums: Vec<u32> = p
            .checksums
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        verify_chunks(&p.data, &sums).expect("every read packet verifies");
        assert_eq!(p.offset_in_block % 512, 0, "chunk aligned");
        assert!(p.data.len() <= READ_PACKET);
        let start = *first.get_or_insert(p.offset_in_block);
        assert_eq!(p.offset_in_block, start + out.len() as u64, "contiguous");
        out.extend_from_slice(&p.data);
    }
    (first.unwrap_or(offset), out)
}

fn statuses(acks: &[v1::PacketAck]) -> Vec<Vec<i32>> {
    acks.iter().map(|a| a.statuses.clone()).collect()
}

const B: BlockId = BlockId(0x0004_2001);
const GS: GenStamp = GenStamp(1001);

#[tokio::test]
async fn three_node_pipeline_acks_every_packet_and_finalizes_identical_replicas() {
    let nodes = [Node::start(), Node::start(), Node::start()];
    let refs: Vec<&Node> = nodes.iter().collect();
    let data = pattern(5 * PACKET - 700, 1);

    // --- write a 5-packet block through 3 nodes
    let acks = write_block(&refs, B, GS, &data).await;
    assert_eq!(
        acks.iter().map(|a| a.seqno).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(statuses(&acks), vec![vec![S, S, S]; 5]);

    // --- every replica is finalized, identical, and reported
    for node in &nodes {
        node.wait_idle().await;
        assert_eq!(node.read_finalized(B, GS), data);
        let pending = node.reports.take();
        assert_eq!(
            pending.changes.get(&B),
            Some(&Change::Received(ReplicaInfo {
                block: B,
                gen_stamp: GS,
                length: data.len() as u64
            }))
        );
    }

    // --- reads: whole, a middle range, a wrong gen stamp
    let (start, whole) = read_all(&nodes[1], B, GS, 0, 0).await;
    assert_eq!((start, whole.as_slice()), (0, data.as_slice()));
    let (start, part) = read_all(&nodes[2], B, GS, 1000, 70_000).await;
    assert_eq!(start, 512);
    assert_eq!(part, data[512..(71_000usize).div_ceil(512) * 512]);
    let err = nodes[0]
        .client()
        .await
        .read_block(v1::ReadBlockRequest {
            block: extended(B, GenStamp(7)),
            ..Default::default()
        })
        .await
        .expect_err("wrong gen stamp");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // --- the block checksum is the CRC32C of the content
    let sum = nodes[0]
        .client()
        .await
        .block_checksum(v1::BlockChecksumRequest {
            block: extended(B, GS),
            token: None,
        })
        .await
        .expect("checksum")
        .into_inner();
    assert_eq!(
        (sum.crc32c, sum.length),
        (crc32c::crc32c(&data), data.len() as u64)
    );
}

#[tokio::test]
async fn reads_span_several_packets_and_start_inside_a_chunk() {
    let node = Node::start();
    let data = pattern(2 * READ_PACKET + READ_PACKET / 2 + 300, 9);
    let acks = write_block(&[&node], B, GS, &data).await;
    assert!(statuses(&acks).iter().all(|s| s == &vec![S]));
    node.wait_idle().await;

    let (start, whole) = read_all(&node, B, GS, 0, 0).await;
    assert_eq!((start, whole.len()), (0, data.len()));
    assert!(whole == data, "whole block differs");
    // From inside a chunk of the second packet to inside the third one.
    let from = READ_PACKET + 1000;
    let len = READ_PACKET + 5;
    let (start, part) = read_all(&node, B, GS, from as u64, len as u64).await;
    let chunk_start = from / 512 * 512;
    assert_eq!(start, chunk_start as u64);
    assert!(
        part == data[chunk_start..(from + len).div_ceil(512) * 512],
        "range differs"
    );
}

#[tokio::test]
async fn a_bad_crc_gets_error_checksum_from_the_last_node_and_nothing_is_finalized() {
    let nodes = [Node::start(), Node::start(), Node::start()];
    let data = pattern(4 * PACKET, 2);
    let mut ps = packets(&data, 0, 0);
    let mut corrupt = ps[1].data.to_vec();
    corrupt[777] ^= 1;
    ps[1].data = Bytes::from(corrupt);

    let w = Writer::open(&nodes[0], header(B, GS, &[&nodes[1], &nodes[2]])).await;
    w.send(&ps).await;
    let (acks, end) = w.rest().await;
    end.expect("ends ok after the error ack");
    assert_eq!(statuses(&acks)[..2], [vec![S, S, S], vec![S, S, EC]]);
    for node in &nodes {
        node.wait_idle().await;
        assert!(node.dp.store.replicas().is_empty(), "nothing finalized");
    }
}

#[tokio::test]
async fn killing_the_last_node_mid_block_acks_success_error_and_recovery_finishes_the_block() {
    let mut nodes = [Node::start(), Node::start(), Node::start()];
    let data = pattern(6 * PACKET + 100, 3);
    let ps = packets(&data, 0, 0);

    // --- two packets through all three
    let mut w = Writer::open(&nodes[0], header(B, GS, &[&nodes[1], &nodes[2]])).await;
    w.send(&ps[..2]).await;
    for seqno in 0..2 {
        let ack = w.ack().await.expect("ack");
        assert_eq!((ack.seqno, ack.statuses), (seqno, vec![S, S, S]));
    }

    // --- kill the third node; the rest of the packets are acked [S, S, E]
    nodes[2].kill();
    w.send(&ps[2..]).await;
    let (acks, end) = w.rest().await;
    end.expect("ends ok");
    assert!(!acks.is_empty(), "the failure is reported in an ack");
    for ack in &acks {
        assert_eq!(ack.statuses, vec![S, S, E], "seqno {}", ack.seqno);
    }
    let seqnos: Vec<i64> = acks.iter().map(|a| a.seqno).collect();
    assert_eq!(
        seqnos,
        (2..2 + acks.len() as i64).collect::<Vec<_>>(),
        "in order from the first unacked"
    );
    for node in &nodes[..2] {
        node.wait_idle().await;
    }

    // --- recovery: new gen stamp, the two survivors, resend after the acked bytes
    let acked = 2 * PACKET;
    let new_gs = GenStamp(GS.0 + 1);
    let mut h = header(B, new_gs, &[&nodes[1]]);
    h.recovery = true;
    h.previous_gen_stamp = GS.0;
    h.acked_length = acked as u64;
    let w = Writer::open(&nodes[0], h).await;
    w.send(&packets(&data, acked, 2)).await;
    let (acks, end) = w.rest().await;
    end.expect("recovery stream ends ok");
    assert_eq!(statuses(&acks), vec![vec![S, S]; 5]);
    for node in &nodes[..2] {
        node.wait_idle().await;
        assert_eq!(node.read_finalized(B, new_gs), data);
        assert!(
            node.dp.store.open_finalized(B, GS).is_err(),
            "old gen stamp gone"
        );
    }
}

#[tokio::test]
async fn killing_the_middle_node_acks_success_error_from_the_first() {
    let mut nodes = [Node::start(), Node::start(), Node::start()];
    let data = pattern(4 * PACKET, 4);
    let ps = packets(&data, 0, 0);
    let mut w = Writer::open(&nodes[0], header(B, GS, &[&nodes[1], &nodes[2]])).await;
    w.send(&ps[..1]).await;
    assert_eq!(w.ack().await.expect("ack").statuses, vec![S, S, S]);
    nodes[1].kill();
    w.send(&ps[1..]).await;
    let (acks, end) = w.rest().await;
    end.expect("ends ok");
    assert!(!acks.is_empty());
    assert!(acks.iter().all(|a| a.statuses == vec![S, E]), "{acks:?}");
}

#[tokio::test]
async fn an_unresponsive_downstream_times_out_into_an_error_ack() {
    // Accepts TCP connections and never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let node = Node::start();
    let mut h = header(B, GS, &[]);
    h.downstream.push(v1::DatanodeLocation {
        datanode_id: "silent".to_owned(),
        transfer_address: silent_addr.to_string(),
        rack: String::new(),
    });
    let data = pattern(3 * PACKET, 5);
    let w = Writer::open(&node, h).await;
    w.send(&packets(&data, 0, 0)).await;
    let (acks, end) = w.rest().await;
    end.expect("ends ok");
    assert!(!acks.is_empty());
    assert!(acks.iter().all(|a| a.statuses == vec![S, E]), "{acks:?}");
    drop(silent);
}

#[tokio::test]
async fn malformed_packets_get_invalid_argument() {
    let node = Node::start();
    let data = pattern(3 * PACKET, 6);

    // --- one checksum short
    let mut ps = packets(&data, 0, 0);
    ps[1].checksums = ps[1].checksums.slice(4..);
    let w = Writer::open(&node, header(B, GS, &[])).await;
    w.send(&ps).await;
    let (acks, end) = w.rest().await;
    assert_eq!(statuses(&acks), vec![vec![S]]);
    assert_eq!(
        end.expect_err("rejected").code(),
        tonic::Code::InvalidArgument
    );

    // --- a gap in the offsets
    let mut ps = packets(&data, 0, 0);
    ps.remove(1);
    let w = Writer::open(&node, header(BlockId(2), GS, &[])).await;
    w.send(&ps).await;
    let (_, end) = w.rest().await;
    assert_eq!(
        end.expect_err("rejected").code(),
        tonic::Code::InvalidArgument
    );

    // --- no header first
    let (tx, rx) = mpsc::channel(4);
    tx.send(message(v1::write_block_message::Message::Packet(
        packets(&data, 0, 0).remove(0),
    )))
    .await
    .expect("send");
    let err = node
        .client()
        .await
        .write_block(ReceiverStream::new(rx))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    node.wait_idle().await;
    assert!(node.dp.store.replicas().is_empty());
}

#[tokio::test]
async fn a_replica_being_written_is_not_readable() {
    let node = Node::start();
    let data = pattern(2 * PACKET, 7);
    let w = Writer::open(&node, header(B, GS, &[])).await;
    w.send(&packets(&data, 0, 0)[..1]).await;
    let mut w = w;
    assert_eq!(w.ack().await.expect("ack").statuses, vec![S]);
    let err = node
        .client()
        .await
        .read_block(v1::ReadBlockRequest {
            block: extended(B, GS),
            ..Default::default()
        })
        .await
        .expect_err("rbw is not served");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let (_, end) = w.rest().await;
    end.expect("client closed early: ok");
    node.wait_idle().await;
    assert!(
        node.dp.store.replicas().is_empty(),
        "not finalized without the last packet"
    );
}

#[tokio::test]
async fn a_flipped_byte_is_served_as_stored_and_caught_by_verify_all() {
    let node = Node::start();
    let data = pattern(3 * PACKET, 8);
    write_block(&[&node], B, GS, &data).await;
    node.wait_idle().await;
    let path = node.block_file(B);
    let mut bytes = std::fs::read(&path).expect("read block file");
    bytes[70_000] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write block file");

    let mut stream = node
        .client()
        .await
        .read_block(v1::ReadBlockRequest {
            block: extended(B, GS),
            ..Default::default()
        })
        .await
        .expect("still served")
        .into_inner();
    let mut served = Vec::new();
    let mut bad_packets = 0;
    while let Some(p) = stream.message().await.expect("packet") {
        let sums: Vec<u32> = p
            .checksums
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        if verify_chunks(&p.data, &sums).is_err() {
            bad_packets += 1;
        }
        served.extend_from_slice(&p.data);
    }
    assert_eq!(served, bytes, "served as stored, not verified");
    assert_eq!(bad_packets, 1, "the client's verification catches it");
    let mut reader = node.dp.store.open_finalized(B, GS).expect("open");
    assert!(matches!(
        reader.verify_all(|_| std::ops::ControlFlow::Continue(())),
        Err(block_store::Error::ChecksumMismatch { offset: 69_632, .. })
    ));
}

#[tokio::test]
async fn a_truncated_replica_is_refused_as_data_loss_and_reported_corrupt() {
    let node = Node::start();
    let data = pattern(2 * PACKET, 9);
    write_block(&[&node], B, GS, &data).await;
    node.wait_idle().await;
    node.reports.take();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(node.block_file(B))
        .expect("open");
    file.set_len(1000).expect("truncate");
    let err = node
        .client()
        .await
        .read_block(v1::ReadBlockRequest {
            block: extended(B, GS),
            ..Default::default()
        })
        .await
        .expect_err("corrupt");
    assert_eq!(err.code(), tonic::Code::DataLoss);
    assert!(node.reports.take().corrupt.contains_key(&B));
}

#[tokio::test]
async fn a_replacement_gets_the_rbw_prefix_and_the_recovery_pipeline_finishes_the_block() {
    let nodes = [Node::start(), Node::start(), Node::start()];
    let data = pattern(5 * PACKET + 300, 10);
    let ps = packets(&data, 0, 0);

    // --- three packets through nodes 0 -> 1, then the client abandons the pipeline
    let mut w = Writer::open(&nodes[0], header(B, GS, &[&nodes[1]])).await;
    w.send(&ps[..3]).await;
    for _ in 0..3 {
        assert_eq!(w.ack().await.expect("ack").statuses, vec![S, S]);
    }
    drop(w);

    // --- node 0 copies the acked prefix to node 2 under the new gen stamp
    let new_gs = GenStamp(GS.0 + 1);
    let acked = 3 * PACKET as u64;
    nodes[0]
        .client()
        .await
        .transfer_rbw(v1::TransferRbwRequest {
            block: extended(B, new_gs),
            length: acked,
            targets: vec![nodes[2].location()],
            client_name: "test".to_owned(),
            token: None,
        })
        .await
        .expect("transfer rbw");
    assert!(
        nodes[2].dp.store.replicas().is_empty(),
        "the copy stays rbw"
    );

    // --- recovery over all three; the replacement is last (it verifies)
    let mut h = header(B, new_gs, &[&nodes[1], &nodes[2]]);
    h.recovery = true;
    h.previous_gen_stamp = GS.0;
    h.acked_length = acked;
    let w = Writer::open(&nodes[0], h).await;
    w.send(&packets(&data, acked as usize, 3)).await;
    let (acks, end) = w.rest().await;
    end.expect("ok");
    assert_eq!(statuses(&acks), vec![vec![S, S, S]; 3]);
    for node in &nodes {
        node.wait_idle().await;
        assert_eq!(node.read_finalized(B, new_gs), data);
    }
}

#[tokio::test]
async fn replicating_a_finalized_replica_finalizes_it_on_every_target() {
    let nodes = [Node::start(), Node::start(), Node::start()];
    let data = pattern(3 * PACKET + 5, 11);
    write_block(&[&nodes[0]], B, GS, &data).await;
    nodes[0].wait_idle().await;
    let reader = nodes[0].dp.store.open_finalized(B, GS).expect("open");
    let order = crate::transfer::CopyOrder {
        block: B,
        gen_stamp: GS,
        targets: vec![
            Target::from(nodes[1].location()),
            Target::from(nodes[2].location()),
        ],
        keep_rbw: false,
        token: None,
    };
    crate::transfer::copy_replica(&nodes[0].dp, reader, order)
        .await
        .expect("copied");
    for node in &nodes[1..] {
        node.wait_idle().await;
        assert_eq!(node.read_finalized(B, GS), data);
    }
}

/// Peak resident set of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Throughput of a 3-node in-process pipeline: 256 MiB as two 128 MiB
/// blocks, a client keeping 80 packets unacknowledged. Data dirs under
/// `DFS_BENCH_DIR` (default the temp dir; a tmpfs such as /dev/shm takes
/// the disk out). Run:
/// `DFS_BENCH_DIR=/dev/shm cargo test -p dfs-datanode --release -- --ignored --nocapture pipeline_throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement, not a test: run in release with --ignored --nocapture"]
async fn pipeline_throughput() {
    const BLOCK: usize = 128 * 1024 * 1024;
    const WINDOW: usize = 80;
    let base = std::env::var_os("DFS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nodes = [
        Node::start_in(&base),
        Node::start_in(&base),
        Node::start_in(&base),
    ];
    let data = Bytes::from(pattern(BLOCK, 12));
    let sums: Vec<Bytes> = data
        .chunks(PACKET)
        .map(|c| le_sums(&chunk_checksums(c)))
        .collect();
    let rss_before = peak_rss_kib();
    let started = std::time::Instant::now();
    for b in 0..2u64 {
        let block = BlockId(100 + b);
        let (tx, rx) = mpsc::channel(8);
        tx.send(message(v1::write_block_message::Message::Header(header(
            block,
            GS,
            &[&nodes[1], &nodes[2]],
        ))))
        .await
        .expect("header");
        let mut acks = nodes[0]
            .client()
            .await
            .write_block(ReceiverStream::new(rx))
            .await
            .expect("accepted")
            .into_inner();
        let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
        let sender = {
            let (data, sums, window) = (data.clone(), sums.clone(), Arc::clone(&window));
            tokio::spawn(async move {
                let n = sums.len();
                for (i, sum) in sums.into_iter().enumerate() {
                    window.acquire().await.expect("open").forget();
                    let at = i * PACKET;
                    let p = v1::Packet {
                        seqno: i as i64,
                        offset_in_block: at as u64,
                        data: data.slice(at..(at + PACKET).min(data.len())),
                        checksums: sum,
                        last_packet_in_block: i + 1 == n,
                    };
                    if tx
                        .send(message(v1::write_block_message::Message::Packet(p)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Keep the stream open until the last ack.
                let _ = window.acquire_many(WINDOW as u32).await;
            })
        };
        let mut count = 0;
        while let Some(ack) = acks.message().await.expect("ack") {
            assert_eq!(ack.statuses, vec![S, S, S]);
            window.add_permits(1);
            count += 1;
        }
        assert_eq!(count, sums.len());
        sender.await.expect("sender");
    }
    let elapsed = started.elapsed();
    let mib = 2.0 * BLOCK as f64 / (1024.0 * 1024.0);
    for node in &nodes {
        node.wait_idle().await;
        assert_eq!(node.dp.store.replicas().len(), 2);
    }
    println!(
        "pipeline_throughput dir={} 3 nodes, {mib} MiB in {:.2} s = {:.0} MiB/s; peak RSS grew {} KiB",
        base.display(),
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64(),
        peak_rss_kib().saturating_sub(rss_before)
    );
}

#[tokio::test]
async fn a_recovery_stops_an_old_pipeline_that_still_holds_the_replica() {
    let nodes = [Node::start(), Node::start()];
    let data = pattern(4 * PACKET, 13);
    let ps = packets(&data, 0, 0);

    // --- the old stream stays open after two acked packets
    let mut old = Writer::open(&nodes[0], header(B, GS, &[&nodes[1]])).await;
    old.send(&ps[..2]).await;
    for _ in 0..2 {
        assert_eq!(old.ack().await.expect("ack").statuses, vec![S, S]);
    }

    // --- recovery without closing it first
    let new_gs = GenStamp(GS.0 + 1);
    let mut h = header(B, new_gs, &[&nodes[1]]);
    h.recovery = true;
    h.previous_gen_stamp = GS.0;
    h.acked_length = 2 * PACKET as u64;
    let w = Writer::open(&nodes[0], h).await;
    w.send(&packets(&data, 2 * PACKET, 2)).await;
    let (acks, end) = w.rest().await;
    end.expect("ok");
    assert_eq!(statuses(&acks), vec![vec![S, S]; 2]);
    let (_, old_end) = old.rest().await;
    old_end.expect("the old stream just ends");
    for node in &nodes {
        node.wait_idle().await;
        assert_eq!(node.read_finalized(B, new_gs), data);
    }
}

#[tokio::test]
async fn a_pipeline_left_before_its_last_packet_reports_its_rbw_and_length_on_every_node() {
    let nodes = [Node::start(), Node::start()];
    let data = pattern(3 * PACKET, 4);
    let mut w = Writer::open(&nodes[0], header(B, GS, &[&nodes[1]])).await;
    // Two of three packets, acked by both nodes; then the client goes away.
    w.send(&packets(&data, 0, 0)[..2]).await;
    for _ in 0..2 {
        assert_eq!(w.ack().await.expect("ack").statuses, vec![S, S]);
    }
    let (_, end) = w.rest().await;
    end.expect("client closed early: ok");
    let left = ReplicaInfo {
        block: B,
        gen_stamp: GS,
        length: 2 * PACKET as u64,
    };
    for node in &nodes {
        wait_until("the rbw is reported", || {
            let pending = node.reports.take();
            let reported = pending.changes.get(&B) == Some(&Change::RbwLeft(left));
            if !reported {
                node.reports.put_back(pending);
            }
            reported
        })
        .await;
        assert_eq!(node.dp.store.abandoned_rbw(), vec![left]);
        assert!(node.dp.store.replicas().is_empty());
    }
}
