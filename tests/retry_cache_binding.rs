//! The retry cache answers a retry only with the result of the same request:
//! a request that reuses another request's client id and call id is refused
//! (on the leader that took the first one and on its successor), and every
//! RPC bounds client ids the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use bytes::Bytes;
use cluster::MiniCluster;
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use tonic::Code;
use tonic::transport::Channel;

/// A caller context of `user` with `client_id` and `call_id`.
fn context(user: &str, client_id: &[u8], call_id: u64) -> Option<v1::CallerContext> {
    Some(v1::CallerContext {
        user: user.to_owned(),
        groups: vec![],
        client_id: Bytes::copy_from_slice(client_id),
        call_id,
    })
}

fn mkdirs(caller: Option<v1::CallerContext>, path: &str) -> v1::MkdirsRequest {
    v1::MkdirsRequest {
        caller,
        path: path.to_owned(),
        permission: None,
        create_parent: true,
    }
}

async fn connect(addr: std::net::SocketAddr) -> ClientProtocolClient<Channel> {
    ClientProtocolClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn exists(client: &mut ClientProtocolClient<Channel>, user: &str, path: &str) -> bool {
    let info = v1::GetFileInfoRequest {
        caller: context(user, &[1; 16], 0),
        path: path.to_owned(),
    };
    match client.get_file_info(info).await {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("get_file_info {path}: {status:?}"),
    }
}

#[test]
fn a_reused_call_id_is_refused_not_answered_with_another_result() {
    let mut cluster = MiniCluster::builder()
        .namenodes(3)
        .without_datanodes()
        .start();
    let su = cluster.superuser();
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client_id = [7u8; 16];

    rt.block_on(async {
        let mut nn = connect(cluster.addr(&leader)).await;
        nn.mkdirs(mkdirs(context(&su, &client_id, 5), "/first"))
            .await
            .unwrap();
        // The same request again is a retry: answered, nothing applied twice.
        nn.mkdirs(mkdirs(context(&su, &client_id, 5), "/first"))
            .await
            .unwrap();

        // Another request under the same client id and call id.
        let status = nn
            .mkdirs(mkdirs(context(&su, &client_id, 5), "/second"))
            .await
            .expect_err("a different request under a used call id must be refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status
                .message()
                .contains("was already used for a different request"),
            "{}",
            status.message()
        );
        assert!(exists(&mut nn, &su, "/first").await);
        assert!(!exists(&mut nn, &su, "/second").await);

        // Another user reusing someone's call: refused as well.
        let status = nn
            .mkdirs(mkdirs(context("mallory", &client_id, 5), "/first"))
            .await
            .expect_err("another user's request under a used call id must be refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

        // A fresh call id applies the request.
        nn.mkdirs(mkdirs(context(&su, &client_id, 6), "/second"))
            .await
            .unwrap();
        assert!(exists(&mut nn, &su, "/second").await);
    });

    // The binding travels with the logged txn: the next leader checks it too.
    cluster.kill(&leader);
    let next = cluster.wait_for_leader(Duration::from_secs(60));
    assert_ne!(next, leader);
    rt.block_on(async {
        let mut nn = connect(cluster.addr(&next)).await;
        let status = nn
            .mkdirs(mkdirs(context(&su, &client_id, 5), "/third"))
            .await
            .expect_err("the new leader must refuse the reused call id too");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(!exists(&mut nn, &su, "/third").await);
        // While the true retry is still answered.
        nn.mkdirs(mkdirs(context(&su, &client_id, 5), "/first"))
            .await
            .unwrap();
    });
}

#[test]
fn every_rpc_bounds_the_client_id_the_same_way() {
    let cluster = MiniCluster::builder()
        .namenodes(1)
        .without_datanodes()
        .start();
    let su = cluster.superuser();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut nn = connect(cluster.namenode_addr()).await;
        let long = [9u8; 33];
        let bad = || context(&su, &long, 1);

        let status = nn.mkdirs(mkdirs(bad(), "/long")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "mkdirs: {status:?}");
        assert!(
            status.message().contains("caller.client_id"),
            "{}",
            status.message()
        );
        let status = nn
            .get_file_info(v1::GetFileInfoRequest {
                caller: bad(),
                path: "/".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "get_file_info: {status:?}"
        );
        let status = nn
            .get_listing(v1::GetListingRequest {
                caller: bad(),
                path: "/".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "get_listing: {status:?}"
        );
        let status = nn
            .delete(v1::DeleteRequest {
                caller: bad(),
                path: "/long".into(),
                recursive: true,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "delete: {status:?}");
        let status = nn
            .create(v1::CreateRequest {
                caller: bad(),
                path: "/long-file".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "create: {status:?}");

        // A call id without a client id cannot key the retry cache.
        let status = nn
            .mkdirs(mkdirs(context(&su, &[], 3), "/orphan"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

        // Nothing was applied; 32 bytes (the bound) and none at all still work.
        assert!(!exists(&mut nn, &su, "/long").await);
        assert!(!exists(&mut nn, &su, "/orphan").await);
        nn.mkdirs(mkdirs(context(&su, &[9; 32], 1), "/bounded"))
            .await
            .unwrap();
        nn.mkdirs(mkdirs(context(&su, &[], 0), "/anonymous"))
            .await
            .unwrap();
        assert!(exists(&mut nn, &su, "/bounded").await);
    });
}
