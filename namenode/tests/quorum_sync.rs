//! Three namenodes in one process (their real gRPC servers on loopback):
//! a follower that missed more than the leader's log keeps is brought back
//! with a SNAP, and a retried write is answered from the retry cache on
//! every namenode. Process-level failover is in the workspace's `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use dfs_namenode::NamenodeConfig;
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use dfs_proto::v1::quorum_protocol_client::QuorumProtocolClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NODES: usize = 3;

struct Node {
    config: NamenodeConfig,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), dfs_namenode::Error>>>,
}

impl Node {
    fn start(&mut self) {
        self.stop = CancellationToken::new();
        let (config, stop) = (self.config.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(dfs_namenode::run(config, stop)));
    }

    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(dir: &Path, sid: usize, addrs: &[SocketAddr]) -> NamenodeConfig {
    let mut text = format!(
        "listen = \"{}\"\ndata_dir = \"{}\"\nserver_id = {}\nsuperuser = \"hdfs\"\n\
         checkpoint_txns = 5\ncluster_secret = \"quorum-sync-test-secret\"\n",
        addrs[sid - 1],
        dir.join(format!("nn{sid}")).display(),
        sid,
    );
    for (i, addr) in addrs.iter().enumerate() {
        text.push_str(&format!(
            "[[ensemble]]\nsid = {}\naddress = \"{addr}\"\n",
            i + 1
        ));
    }
    toml::from_str(&text).unwrap()
}

async fn status(addr: SocketAddr) -> Option<v1::PeerStatus> {
    let mut client = QuorumProtocolClient::connect(format!("http://{addr}"))
        .await
        .ok()?;
    let reply = client.get_peer_status(v1::GetPeerStatusRequest {}).await;
    reply.ok().map(tonic::Response::into_inner)
}

/// Polls until `condition` holds on the statuses of `addrs`.
async fn wait_for(
    what: &str,
    addrs: &[SocketAddr],
    condition: impl Fn(&[v1::PeerStatus]) -> bool,
) -> Vec<v1::PeerStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = Vec::new();
        for &addr in addrs {
            if let Some(s) = status(addr).await {
                all.push(s);
            }
        }
        if all.len() == addrs.len() && condition(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn leading(all: &[v1::PeerStatus]) -> Option<&v1::PeerStatus> {
    all.iter()
        .find(|s| s.state == v1::PeerState::Leading as i32)
}

async fn mkdir_at(leader: SocketAddr, path: &str, call_id: u64) -> Result<(), tonic::Status> {
    let mut client = ClientProtocolClient::connect(format!("http://{leader}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = v1::MkdirsRequest {
        caller: Some(v1::CallerContext {
            user: "hdfs".into(),
            groups: vec![],
            client_id: vec![9; 16].into(),
            call_id,
        }),
        path: path.into(),
        permission: None,
        create_parent: false,
    };
    client.mkdirs(request).await.map(drop)
}

/// A mkdir at whoever leads, retried with the same call id while there is
/// no leader (a loaded machine may hold an election mid-test).
async fn mkdir(addrs: &[SocketAddr], path: &str, call_id: u64) -> Result<(), tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leader = None;
        for &addr in addrs {
            if status(addr)
                .await
                .is_some_and(|s| s.state == v1::PeerState::Leading as i32)
            {
                leader = Some(addr);
            }
        }
        let outcome = match leader {
            Some(leader) => mkdir_at(leader, path, call_id).await,
            None => Err(tonic::Status::unavailable("no leader yet")),
        };
        match outcome {
            Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            outcome => return outcome,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_log_is_synced_by_snapshot_and_retries_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let addrs: Vec<SocketAddr> = (0..NODES).map(|_| free_addr()).collect();
    let mut nodes: Vec<Node> = (1..=NODES)
        .map(|sid| Node {
            config: config(dir.path(), sid, &addrs),
            stop: CancellationToken::new(),
            task: None,
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let all = wait_for("a leader with a quorum", &addrs, |all| {
        leading(all).is_some()
            && all
                .iter()
                .filter(|s| s.state == v1::PeerState::Following as i32)
                .count()
                == NODES - 1
    })
    .await;
    let leader_sid = leading(&all).unwrap().sid as usize;
    let behind = (1..=NODES).find(|&sid| sid != leader_sid).unwrap();

    // A follower stops; the leader checkpoints (every 5 txns) past it.
    nodes[behind - 1].stop().await;
    for i in 0..40 {
        mkdir(&addrs, &format!("/d{i}"), i).await.unwrap();
    }
    // A retry of an applied call answers with its first outcome, even
    // though the directory exists now.
    mkdir(&addrs, "/d7", 7).await.unwrap();
    let again = mkdir(&addrs, "/d7", 1_000).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    nodes[behind - 1].start();
    let all = wait_for("every namenode to hold the same namespace", &addrs, |all| {
        let leader = leading(all);
        leader.is_some()
            && all.iter().all(|s| {
                leader.is_some_and(|l| {
                    s.applied_zxid == l.applied_zxid && s.namespace_digest == l.namespace_digest
                })
            })
    })
    .await;
    let listed = all[0].namespace_digest;
    assert!(all.iter().all(|s| s.namespace_digest == listed));
    let snapshots = std::fs::read_dir(dir.path().join(format!("nn{behind}/journal")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    assert!(snapshots >= 1, "the follower got no snapshot");
    for node in &mut nodes {
        node.stop().await;
    }
}
