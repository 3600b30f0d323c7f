//! The quorum's gRPC plumbing: the `QuorumProtocol` server, election
//! notifications to peers, and a learner's session stream to its leader.
//!
//! Everything here only moves messages between the network and the peer
//! task's event queue (`peer::Event`); it decides nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dfs_proto::ids::{Epoch, ServerId, Zxid};
use dfs_proto::v1;
use dfs_proto::v1::quorum_protocol_client::QuorumProtocolClient;
use dfs_proto::v1::quorum_protocol_server::QuorumProtocol;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use super::election::{Notification, PeerState, Round, Vote};
use super::peer::Event;

/// Largest quorum message: a sync txn may carry a 64 MiB journal record.
pub(crate) const MAX_MESSAGE: usize = 80 * 1024 * 1024;
/// Messages queued toward one learner or leader before it counts as stuck.
pub(crate) const SESSION_QUEUE: usize = 16 * 1024;
/// Notifications queued toward one peer; older ones are dropped when full
/// (the election resends).
const NOTIFY_QUEUE: usize = 64;
/// Connecting to a peer gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// One notification gives up after this long.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// The leader's side of one learner's session stream.
pub(crate) type ToLearner = mpsc::Sender<Result<v1::LeaderMessage, Status>>;

/// Serves `QuorumProtocol` by handing everything to the peer task.
#[derive(Debug, Clone)]
pub(crate) struct QuorumService {
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) next_conn: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl QuorumProtocol for QuorumService {
    async fn notify(
        &self,
        request: Request<v1::Notification>,
    ) -> Result<Response<v1::NotifyResponse>, Status> {
        let notification = notification_from_wire(&request.into_inner())
            .ok_or_else(|| Status::invalid_argument("notification without a peer state"))?;
        // A full queue drops it: the sender resends with backoff.
        let _ = self.events.try_send(Event::Notification(notification));
        Ok(Response::new(v1::NotifyResponse {}))
    }

    type FollowStream = ReceiverStream<Result<v1::LeaderMessage, Status>>;

    async fn follow(
        &self,
        request: Request<Streaming<v1::LearnerMessage>>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut inbound = request.into_inner();
        let (to_learner, outbound) = mpsc::channel(SESSION_QUEUE);
        let stopped = || Status::unavailable("namenode is shutting down");
        self.events
            .send(Event::Join { conn, to_learner })
            .await
            .map_err(|_| stopped())?;
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                if events.send(Event::FromLearner { conn, msg }).await.is_err() {
                    return;
                }
            }
            let _ = events.send(Event::LearnerGone { conn }).await;
        });
        Ok(Response::new(ReceiverStream::new(outbound)))
    }

    async fn get_peer_status(
        &self,
        _request: Request<v1::GetPeerStatusRequest>,
    ) -> Result<Response<v1::PeerStatus>, Status> {
        self.peer_status().await.map(Response::new)
    }
}

impl QuorumService {
    /// This namenode's quorum status, from the peer task (what
    /// `GetPeerStatus` answers; `/metrics` reads it too).
    ///
    /// # Errors
    /// `UNAVAILABLE` when the peer task is busy or stopping.
    pub(crate) async fn peer_status(&self) -> Result<v1::PeerStatus, Status> {
        let (reply, status) = oneshot::channel();
        let busy = || Status::unavailable("the quorum peer is busy or stopping");
        self.events
            .send(Event::Status(reply))
            .await
            .map_err(|_| busy())?;
        status.await.map_err(|_| busy())
    }
}

/// Sends election notifications to the other members, one queue each.
#[derive(Debug)]
pub(crate) struct Notifier {
    queues: BTreeMap<ServerId, mpsc::Sender<v1::Notification>>,
}

impl Notifier {
    /// Starts one sender task per member other than `me`.
    pub(crate) fn start(me: ServerId, members: &BTreeMap<ServerId, SocketAddr>) -> Self {
        let queues = members
            .iter()
            .filter(|(sid, _)| **sid != me)
            .map(|(&sid, &address)| {
                let (queue, pending) = mpsc::channel(NOTIFY_QUEUE);
                tokio::spawn(send_notifications(address, pending));
                (sid, queue)
            })
            .collect();
        Notifier { queues }
    }

    /// Queues `n` for `to`; dropped when its queue is full.
    pub(crate) fn send(&self, to: ServerId, n: &Notification) {
        if let Some(queue) = self.queues.get(&to) {
            let _ = queue.try_send(notification_to_wire(n));
        }
    }
}

/// Delivers one peer's notifications in order; a failed one is dropped.
async fn send_notifications(address: SocketAddr, mut pending: mpsc::Receiver<v1::Notification>) {
    let mut client = match endpoint(address) {
        Ok(endpoint) => QuorumProtocolClient::new(endpoint.connect_lazy()),
        Err(e) => {
            tracing::error!(%address, error = %e, "bad peer address; not notifying it");
            return;
        }
    };
    while let Some(n) = pending.recv().await {
        let mut request = Request::new(n);
        request.set_timeout(NOTIFY_TIMEOUT);
        if let Err(e) = client.notify(request).await {
            tracing::trace!(%address, error = %e, "notification not delivered");
        }
    }
}

fn endpoint(address: SocketAddr) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2)))
}

/// A learner's open session with its leader.
#[derive(Debug)]
pub(crate) struct LeaderLink {
    /// Messages to the leader, in order.
    pub(crate) to_leader: mpsc::Sender<v1::LearnerMessage>,
    task: AbortHandle,
}

impl Drop for LeaderLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens session `session` with the leader at `address`, sending `first`
/// (the learner's info) first. Every message from the leader comes back as
/// `Event::FromLeader`; the session's end as `Event::LeaderGone`.
pub(crate) fn follow(
    address: SocketAddr,
    session: u64,
    first: v1::LearnerMessage,
    events: mpsc::Sender<Event>,
) -> LeaderLink {
    let (to_leader, outbound) = mpsc::channel(SESSION_QUEUE);
    // Cannot fail: the queue is new and empty.
    let _ = to_leader.try_send(first);
    let task = tokio::spawn(async move {
        let reason = match run_session(address, session, outbound, &events).await {
            Ok(()) => "the leader closed the session".to_owned(),
            Err(e) => e,
        };
        let _ = events.send(Event::LeaderGone { session, reason }).await;
    });
    LeaderLink {
        to_leader,
        task: task.abort_handle(),
    }
}

async fn run_session(
    address: SocketAddr,
    session: u64,
    outbound: mpsc::Receiver<v1::LearnerMessage>,
    events: &mpsc::Sender<Event>,
) -> Result<(), String> {
    let channel: Channel = endpoint(address)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connecting to the leader at {address}: {e}"))?;
    let mut client = QuorumProtocolClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let mut inbound = client
        .follow(ReceiverStream::new(outbound))
        .await
        .map_err(|e| {
            format!(
                "the leader at {address} refused the session: {}",
                e.message()
            )
        })?
        .into_inner();
    loop {
        match inbound.message().await {
            Ok(Some(msg)) => {
                if events
                    .send(Event::FromLeader { session, msg })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("session with {address} broke: {}", e.message())),
        }
    }
}

/// The wire form of an election notification.
pub(crate) fn notification_to_wire(n: &Notification) -> v1::Notification {
    v1::Notification {
        from_sid: n.from.0,
        round: n.round.0,
        state: state_to_wire(n.state).into(),
        leader: n.vote.leader.0,
        zxid: n.vote.zxid.0,
        peer_epoch: epoch_to_wire(n.vote.peer_epoch),
    }
}

/// An election notification from the wire; `None` without a valid state.
pub(crate) fn notification_from_wire(n: &v1::Notification) -> Option<Notification> {
    let state = match v1::PeerState::try_from(n.state).ok()? {
        v1::PeerState::Looking => PeerState::Looking,
        v1::PeerState::Following => PeerState::Following,
        v1::PeerState::Leading => PeerState::Leading,
        v1::PeerState::Observing => PeerState::Observing,
        v1::PeerState::Unspecified => return None,
    };
    Some(Notification {
        from: ServerId(n.from_sid),
        round: Round(n.round),
        state,
        vote: Vote {
            leader: ServerId(n.leader),
            zxid: Zxid(n.zxid),
            peer_epoch: epoch_from_wire(n.peer_epoch)?,
        },
    })
}

/// The wire form of a peer state.
pub(crate) fn state_to_wire(state: PeerState) -> v1::PeerState {
    match state {
        PeerState::Looking => v1::PeerState::Looking,
        PeerState::Following => v1::PeerState::Following,
        PeerState::Leading => v1::PeerState::Leading,
        PeerState::Observing => v1::PeerState::Observing,
    }
}

/// The wire form of an epoch.
pub(crate) fn epoch_to_wire(epoch: Epoch) -> u64 {
    u64::from(epoch.0)
}

/// An epoch from the wire; `None` when it does not fit.
pub(crate) fn epoch_from_wire(epoch: u64) -> Option<Epoch> {
    u32::try_from(epoch).ok().map(Epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_round_trip_and_garbage_is_refused() {
        let n = Notification {
            from: ServerId(2),
            round: Round(7),
            state: PeerState::Following,
            vote: Vote {
                leader: ServerId(3),
                zxid: Zxid::new(Epoch(4), 9),
                peer_epoch: Epoch(4),
            },
        };
        assert_eq!(notification_from_wire(&notification_to_wire(&n)), Some(n));
        let mut bad = notification_to_wire(&n);
        bad.state = 0;
        assert_eq!(notification_from_wire(&bad), None);
        let mut bad = notification_to_wire(&n);
        bad.peer_epoch = u64::MAX;
        assert_eq!(notification_from_wire(&bad), None);
    }
}
