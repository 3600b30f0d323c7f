//! The quorum state of every configured namenode, asked of each one
//! directly (`QuorumProtocol.GetPeerStatus`), never through the failover
//! proxy: an operator wants to hear from followers and the looking too, and
//! a namenode that is down is an answer in itself. `dfs admin ha-status`
//! prints what [`ensemble_status`] returns.
//!
//! ```text
//! config namenodes ──► GetPeerStatus to each, concurrently, short timeout
//!                        ├─ answer ──► PeerStatus (state, epochs, zxids, leader)
//!                        └─ failure ─► the error, in words (`down`)
//! ```

use std::net::IpAddr;
use std::time::Duration;

use dfs_proto::ids::{Epoch, ServerId, Zxid};
use dfs_proto::v1;
use dfs_proto::v1::quorum_protocol_client::QuorumProtocolClient;
use tonic::transport::Endpoint;

use crate::config::ClientConfig;
use crate::error::Error;

/// How long `dfs admin ha-status` waits for each namenode, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a namenode stands in its ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Electing a leader.
    Looking,
    /// Following the leader (a voter).
    Following,
    /// The leader.
    Leading,
    /// Following the leader without a vote.
    Observing,
    /// A state this client does not know (a newer namenode).
    Unknown,
}

impl PeerState {
    /// ZooKeeper's name of the state: `LOOKING`, `FOLLOWING`, …
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Looking => "LOOKING",
            PeerState::Following => "FOLLOWING",
            PeerState::Leading => "LEADING",
            PeerState::Observing => "OBSERVING",
            PeerState::Unknown => "UNKNOWN",
        }
    }

    fn from_wire(state: v1::PeerState) -> Self {
        match state {
            v1::PeerState::Looking => PeerState::Looking,
            v1::PeerState::Following => PeerState::Following,
            v1::PeerState::Leading => PeerState::Leading,
            v1::PeerState::Observing => PeerState::Observing,
            v1::PeerState::Unspecified => PeerState::Unknown,
        }
    }
}

/// One namenode's own account of its quorum state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its server id.
    pub sid: ServerId,
    /// Its client address, as it reports it.
    pub address: String,
    /// Looking, following, leading or observing.
    pub state: PeerState,
    /// The epoch of the leader it last synced with (or leads).
    pub current_epoch: Epoch,
    /// The newest epoch it has promised to follow.
    pub accepted_epoch: Epoch,
    /// The last zxid in its journal.
    pub last_zxid: Zxid,
    /// The last zxid applied to its namespace.
    pub applied_zxid: Zxid,
    /// The leader it follows (itself when leading), `None` while looking.
    pub leader: Option<Leader>,
    /// Whether it is an observer (follows without a vote).
    pub observer: bool,
    /// Its current election round.
    pub round: u64,
    /// Digest of its applied namespace (equal on every up-to-date namenode).
    pub namespace_digest: u64,
}

/// The leader a namenode follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's server id.
    pub sid: ServerId,
    /// The leader's client address (empty when the namenode did not say).
    pub address: String,
}

impl PeerStatus {
    fn from_wire(s: v1::PeerStatus, asked: &str) -> Result<Self, Error> {
        let epoch = |field: &str, value: u64| {
            u32::try_from(value).map(Epoch).map_err(|_| Error::Refused {
                kind: None,
                message: format!("{asked} reported a {field} out of range: {value}"),
            })
        };
        Ok(PeerStatus {
            sid: ServerId(s.sid),
            state: PeerState::from_wire(s.state()),
            current_epoch: epoch("current epoch", s.current_epoch)?,
            accepted_epoch: epoch("accepted epoch", s.accepted_epoch)?,
            last_zxid: Zxid(s.last_zxid),
            applied_zxid: Zxid(s.applied_zxid),
            leader: (s.leader_sid != 0).then_some(Leader {
                sid: ServerId(s.leader_sid),
                address: s.leader_address,
            }),
            observer: s.observer,
            round: s.round,
            namespace_digest: s.namespace_digest,
            address: s.address,
        })
    }
}

/// What one configured namenode answered, or why it did not.
#[derive(Debug)]
pub struct PeerReport {
    /// The address asked, as the client config names it.
    pub address: String,
    /// Its status, or the failure to get it.
    pub status: Result<PeerStatus, Error>,
}

/// Asks the namenode at `address` (`host:port`) for its quorum state,
/// connecting from `bind` if given; gives up after `timeout`.
///
/// # Errors
/// [`Error::Namenode`] when it cannot be reached or does not answer in
/// time, or its refusal (a namenode without the quorum service answers
/// `Unimplemented`).
pub async fn peer_status(
    address: &str,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<PeerStatus, Error> {
    let unreachable = |reason: String| Error::Namenode {
        namenode: address.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Error::Usage(format!("bad namenode address {address:?}: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .local_address(bind);
    let call = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        QuorumProtocolClient::new(channel)
            .get_peer_status(v1::GetPeerStatusRequest {})
            .await
            .map_err(|status| match Error::from_status(status, address) {
                Error::Unreachable { reason, .. } => unreachable(reason),
                refused => refused,
            })
    };
    // One deadline for connecting and asking together.
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))??;
    PeerStatus::from_wire(reply.into_inner(), address)
}

/// Asks every namenode of `config` at once; one report per configured
/// address, in the config's order.
pub async fn ensemble_status(config: &ClientConfig, timeout: Duration) -> Vec<PeerReport> {
    let asks = config.namenodes.iter().map(|address| async move {
        PeerReport {
            address: address.clone(),
            status: peer_status(address, config.bind_address, timeout).await,
        }
    });
    futures::future::join_all(asks).await
}

/// An error and its sources, `: `-separated (tonic's transport errors say
/// little at the top: "transport error"); a source that repeats the one
/// before it is left out.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use dfs_proto::v1::quorum_protocol_server::{QuorumProtocol, QuorumProtocolServer};
    use futures::Stream;
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::owned_task::OwnedTask;

    /// A namenode that only answers GetPeerStatus, always with `status`.
    struct FakePeer {
        status: v1::PeerStatus,
    }

    #[tonic::async_trait]
    impl QuorumProtocol for FakePeer {
        async fn notify(
            &self,
            _: Request<v1::Notification>,
        ) -> Result<Response<v1::NotifyResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        type FollowStream =
            Pin<Box<dyn Stream<Item = Result<v1::LeaderMessage, Status>> + Send + 'static>>;

        async fn follow(
            &self,
            _: Request<Streaming<v1::LearnerMessage>>,
        ) -> Result<Response<Self::FollowStream>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn get_peer_status(
            &self,
            _: Request<v1::GetPeerStatusRequest>,
        ) -> Result<Response<v1::PeerStatus>, Status> {
            Ok(Response::new(self.status.clone()))
        }
    }

    async fn spawn_peer(status: v1::PeerStatus) -> (String, OwnedTask) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = OwnedTask::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(QuorumProtocolServer::new(FakePeer { status }))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        (address, server)
    }

    /// An address nobody listens on (bound, then released).
    fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn every_configured_namenode_gets_a_report_in_config_order() {
        let (follower, _server) = spawn_peer(v1::PeerStatus {
            sid: 2,
            address: "127.0.0.1:9002".into(),
            state: v1::PeerState::Following.into(),
            current_epoch: 3,
            accepted_epoch: 3,
            last_zxid: (3 << 32) | 7,
            applied_zxid: (3 << 32) | 6,
            leader_sid: 3,
            leader_address: "127.0.0.1:9003".into(),
            observer: false,
            round: 5,
            namespace_digest: 0xfeed,
            http_address: String::new(),
        })
        .await;
        let down = closed_address();
        let config = ClientConfig::new(vec![down.clone(), follower.clone()]);
        let reports = ensemble_status(&config, Duration::from_secs(2)).await;

        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].address, down);
        let err = reports[0].status.as_ref().unwrap_err();
        assert!(matches!(err, Error::Namenode { .. }), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");

        assert_eq!(reports[1].address, follower);
        let status = reports[1].status.as_ref().unwrap();
        assert_eq!(status.sid, ServerId(2));
        assert_eq!(status.state, PeerState::Following);
        assert_eq!(status.last_zxid, Zxid::new(Epoch(3), 7));
        assert_eq!(
            status.leader,
            Some(Leader {
                sid: ServerId(3),
                address: "127.0.0.1:9003".into()
            })
        );
    }

    #[tokio::test]
    async fn a_looking_namenode_follows_nobody() {
        let (looking, _server) = spawn_peer(v1::PeerStatus {
            sid: 1,
            state: v1::PeerState::Looking.into(),
            ..Default::default()
        })
        .await;
        let status = peer_status(&looking, None, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(status.state, PeerState::Looking);
        assert_eq!(status.leader, None);
    }

    #[tokio::test]
    async fn an_epoch_beyond_32_bits_is_a_malformed_answer() {
        let (odd, _server) = spawn_peer(v1::PeerStatus {
            sid: 1,
            current_epoch: u64::from(u32::MAX) + 1,
            ..Default::default()
        })
        .await;
        let err = peer_status(&odd, None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("current epoch"), "{err}");
    }
}
