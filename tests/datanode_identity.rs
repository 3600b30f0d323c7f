//! Only the cluster's own datanodes speak DatanodeProtocol: a registration,
//! heartbeat or block report that does not prove the cluster secret is
//! refused (an invented datanode is never shown live), and a live
//! datanode's id registered from another address is refused while the
//! original keeps heartbeating, so readers are never sent elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes};
use dfs_proto::cluster_proof::{self, Claim, RequestKind};
use dfs_proto::v1;
use dfs_proto::v1::datanode_protocol_client::DatanodeProtocolClient;
use dfs_proto::wall_clock;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A DatanodeProtocol client whose connections come from `source`.
async fn connect(namenode: SocketAddr, source: IpAddr) -> DatanodeProtocolClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{namenode}"))
        .unwrap()
        .local_address(Some(source))
        .connect()
        .await
        .unwrap();
    DatanodeProtocolClient::new(channel)
}

fn register(id: &str, port: u32, proof: Option<v1::DatanodeProof>) -> v1::RegisterDatanodeRequest {
    v1::RegisterDatanodeRequest {
        datanode_id: id.to_owned(),
        transfer_port: port,
        storage: Some(v1::StorageReport {
            capacity: 1 << 40,
            used: 0,
            remaining: 1 << 40,
        }),
        software_version: "attacker".into(),
        proof,
        ..Default::default()
    }
}

fn prove(secret: &str, kind: RequestKind, id: &str, port: u32, at_ms: u64) -> v1::DatanodeProof {
    let claim = Claim {
        kind,
        datanode_id: id,
        transfer_port: port,
    };
    cluster_proof::prove(secret.as_bytes(), &claim, at_ms)
}

#[test]
fn datanode_requests_must_prove_the_secret_and_a_live_id_stays_where_it_is() {
    let cluster = MiniCluster::builder().rack(3).replication(3).start();
    let su = cluster.superuser();
    let bytes = random_bytes(9, 200_000);
    cluster.put_bytes(&su, &bytes, "/f");

    let victim = "dn1";
    let victim_addr = cluster.addr(victim);
    let victim_id = std::fs::read_to_string(cluster.data_dir(victim).join("datanode_id"))
        .unwrap()
        .trim()
        .to_owned();
    let other_port = u32::from(victim_addr.port()) + 1;
    let now = wall_clock::now_ms();
    let namenode = cluster.namenode_addr();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // From the victim's own host, so only the port differs.
        let mut nn = connect(namenode, victim_addr.ip()).await;

        eprintln!("--- the victim's id and another port, without a proof: refused");
        let status = nn
            .register_datanode(register(&victim_id, other_port, None))
            .await
            .expect_err("a registration without a proof must be refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(
            status.message().contains("no cluster-secret proof"),
            "{}",
            status.message()
        );

        let secret = cluster.cluster_secret();
        eprintln!("--- a proof under another secret, or a replayed old one: refused");
        let wrong = prove(
            "not this cluster's secret at all",
            RequestKind::Register,
            &victim_id,
            other_port,
            now,
        );
        let status = nn
            .register_datanode(register(&victim_id, other_port, Some(wrong)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let old = prove(
            &secret,
            RequestKind::Register,
            &victim_id,
            other_port,
            now - 3_600_000,
        );
        let status = nn
            .register_datanode(register(&victim_id, other_port, Some(old)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        // A heartbeat's proof does not pass for a registration.
        let heartbeat_proof = prove(&secret, RequestKind::Heartbeat, &victim_id, 0, now);
        let status = nn
            .register_datanode(register(&victim_id, other_port, Some(heartbeat_proof)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

        eprintln!("--- even with the secret, a live datanode's id from another port: refused");
        let good = prove(&secret, RequestKind::Register, &victim_id, other_port, now);
        let status = nn
            .register_datanode(register(&victim_id, other_port, Some(good)))
            .await
            .expect_err("a live datanode's id from another address must be refused");
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(
            status.message().contains(&victim_addr.to_string()),
            "{}",
            status.message()
        );

        eprintln!("--- an invented datanode, its heartbeats and reports: refused");
        let status = nn
            .register_datanode(register("dn-invented", 40_000, None))
            .await
            .expect_err("an invented datanode without a proof must be refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let status = nn
            .heartbeat(v1::HeartbeatRequest {
                datanode_id: victim_id.clone(),
                storage: None,
                active_transfers: 0,
                proof: None,
            })
            .await
            .expect_err("a heartbeat without a proof must be refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let status = nn
            .block_report(v1::BlockReportRequest {
                datanode_id: victim_id.clone(),
                blocks: vec![],
                full: true,
                corrupt: vec![],
                verified: vec![],
                proof: None,
            })
            .await
            .expect_err("a full report without a proof must be refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    });

    eprintln!("--- the namenode still knows the real datanodes where they are");
    let report = cluster.datanode_report();
    assert_eq!(report.len(), 3, "{report:?}");
    for node in cluster.datanodes() {
        let row = &report[&cluster.addr(&node).to_string()];
        assert_eq!(row["state"], "live", "{node}: {row}");
    }
    assert!(
        !report.contains_key(&format!("{}:{other_port}", victim_addr.ip())),
        "{report:?}"
    );
    let target = cluster.dir().join("back");
    cluster.dfs_ok(&su, &["get", "/f", target.to_str().unwrap()]);
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    // A real heartbeat or two later, the victim is still live at its address.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cluster.datanode_state(victim), "live");

    let log = std::fs::read_to_string(cluster.log("nn1")).unwrap();
    assert!(
        log.contains("refused a datanode request") && log.contains(&victim_addr.ip().to_string()),
        "the namenode logs each refusal with the peer's address"
    );
}
