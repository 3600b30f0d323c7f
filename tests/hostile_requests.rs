//! Malformed and hostile requests get clear errors and never take the namenode down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use bytes::{Buf, BufMut, Bytes};
use cluster::MiniCluster;
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use dfs_proto::v1::datanode_protocol_client::DatanodeProtocolClient;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The namenode's superuser: the OS user running it (and this test).
fn su() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map(|u| u.name)
        .unwrap()
}

fn caller(user: &str) -> Option<v1::CallerContext> {
    Some(v1::CallerContext {
        user: user.to_owned(),
        ..Default::default()
    })
}

fn mkdirs(user: &str, path: &str) -> v1::MkdirsRequest {
    v1::MkdirsRequest {
        caller: caller(user),
        path: path.to_owned(),
        permission: None,
        create_parent: true,
    }
}

/// Sends and receives raw bytes, so a test can put garbage on the wire.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[test]
fn hostile_requests_get_clear_errors() {
    // The harness runs its own runtime, so the cluster starts outside ours.
    let cluster = MiniCluster::builder().namenodes(1).rack(1).start();
    let url = format!("http://{}", cluster.namenode_addr());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(send_hostile_requests(url));
}

async fn send_hostile_requests(url: String) {
    let mut client = ClientProtocolClient::connect(url.clone()).await.unwrap();

    eprintln!("--- bad paths are refused as invalid arguments");
    {
        let huge_name = format!("/{}", "x".repeat(300));
        let huge_path = "/a".repeat(10_000);
        for path in [
            "relative/path",
            "/a/../b",
            "/a/./b",
            "",
            "/a\0b",
            &huge_name,
            &huge_path,
        ] {
            let status = client.mkdirs(mkdirs(&su(), path)).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{path:.40?}: {status:?}"
            );
            assert!(
                status.message().contains("Invalid path name"),
                "{}",
                status.message()
            );
            assert!(
                status.message().len() < 400,
                "the echo of a huge path is truncated"
            );
        }
    }

    eprintln!("--- bad callers and out-of-range fields are refused");
    {
        let no_caller = v1::MkdirsRequest {
            caller: None,
            ..mkdirs(&su(), "/x")
        };
        assert_eq!(
            client.mkdirs(no_caller).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        for user in ["", "bad\nuser", "a:b", &"u".repeat(1000)] {
            let status = client.mkdirs(mkdirs(user, "/x")).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "user {user:.20?}");
        }
        let bad_mode = v1::MkdirsRequest {
            permission: Some(0o177_777),
            ..mkdirs(&su(), "/x")
        };
        assert_eq!(
            client.mkdirs(bad_mode).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_replication = v1::CreateRequest {
            caller: caller(&su()),
            path: "/f".into(),
            replication: 100_000,
            ..Default::default()
        };
        assert_eq!(
            client.create(bad_replication).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_block = v1::CreateRequest {
            caller: caller(&su()),
            path: "/f".into(),
            block_size: 1000,
            ..Default::default()
        };
        assert_eq!(
            client.create(bad_block).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    eprintln!("--- datanode calls with hostile ids are refused");
    {
        let mut datanodes = DatanodeProtocolClient::connect(url.clone()).await.unwrap();
        let bad = v1::RegisterDatanodeRequest {
            datanode_id: "../../etc".into(),
            transfer_port: 9866,
            ..Default::default()
        };
        assert_eq!(
            datanodes.register_datanode(bad).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_port = v1::RegisterDatanodeRequest {
            datanode_id: "dn-ok".into(),
            transfer_port: 70_000,
            ..Default::default()
        };
        assert_eq!(
            datanodes
                .register_datanode(bad_port)
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }

    eprintln!("--- garbage bytes in place of a message");
    {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raw = tonic::client::Grpc::new(channel);
        raw.ready().await.unwrap();
        let garbage = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01, 0x02]);
        let path = http::uri::PathAndQuery::from_static("/dfs.v1.ClientProtocol/Mkdirs");
        let status = raw
            .unary(tonic::Request::new(garbage), path, RawCodec)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Internal,
            "undecodable message: {status:?}"
        );
    }

    eprintln!("--- the namenode still serves");
    {
        client.mkdirs(mkdirs(&su(), "/still/alive")).await.unwrap();
        let info = client
            .get_file_info(v1::GetFileInfoRequest {
                caller: caller(&su()),
                path: "/still/alive".into(),
            })
            .await
            .unwrap();
        assert_eq!(info.into_inner().status.unwrap().path, "/still/alive");
    }
}
