//! Asking the namenodes who leads: `GetPeerStatus` to each (what `dfs admin
//! ha-status` prints), read as the established leader of a quorum.
//!
//! A namenode reports LEADING from the moment it wins an election, while it
//! still runs discovery and sync. It leads once its epoch is established
//! (current epoch = accepted epoch) and a quorum of voters, itself included,
//! follow it in that epoch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dfs_client::ClientConfig;
use dfs_client::peer_status::{self, PeerReport, PeerState, PeerStatus};

/// How long each namenode gets to answer one status poll.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// The namenode that leads among `reports`, if any: LEADING in an
/// established epoch with at least `quorum` voters synced with it.
pub(crate) fn established_leader(reports: &[PeerReport], quorum: usize) -> Option<&PeerReport> {
    let answers = || {
        reports
            .iter()
            .filter_map(|r| r.status.as_ref().ok().map(|s| (r, s)))
    };
    answers()
        .filter(|(_, s)| s.state == PeerState::Leading && s.current_epoch == s.accepted_epoch)
        .find(|(_, leader)| {
            let backers = answers().filter(|(_, s)| backs(s, leader)).count();
            backers >= quorum
        })
        .map(|(report, _)| report)
}

/// Whether `s` is a voter synced with `leader` (or is the leader).
fn backs(s: &PeerStatus, leader: &PeerStatus) -> bool {
    !s.observer
        && s.leader.as_ref().map(|l| l.sid) == Some(leader.sid)
        && s.current_epoch == leader.current_epoch
        && (s.state == PeerState::Following || s.sid == leader.sid)
}

/// Asks every namenode in `namenodes` for its status.
pub(crate) async fn ask(namenodes: &[SocketAddr]) -> Vec<PeerReport> {
    let config = ClientConfig::new(namenodes.iter().map(SocketAddr::to_string).collect());
    peer_status::ensemble_status(&config, ASK_TIMEOUT).await
}

/// Polls every `poll` until a namenode leads a quorum; returns its address
/// as configured, or, after `timeout`, the last reports seen.
pub(crate) async fn wait_for_leader(
    namenodes: &[SocketAddr],
    quorum: usize,
    timeout: Duration,
    poll: Duration,
) -> Result<String, Vec<PeerReport>> {
    let deadline = Instant::now() + timeout;
    loop {
        let reports = ask(namenodes).await;
        if let Some(leader) = established_leader(&reports, quorum) {
            return Ok(leader.address.clone());
        }
        if Instant::now() >= deadline {
            return Err(reports);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Polls every `poll` until the namenode at `node` follows the established
/// leader in its epoch; returns false after `timeout`.
pub(crate) async fn wait_following(
    namenodes: &[SocketAddr],
    node: SocketAddr,
    quorum: usize,
    timeout: Duration,
    poll: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let node = node.to_string();
    loop {
        let reports = ask(namenodes).await;
        let leader = established_leader(&reports, quorum).and_then(|l| l.status.as_ref().ok());
        let me = reports
            .iter()
            .find(|r| r.address == node)
            .and_then(|r| r.status.as_ref().ok());
        if let (Some(leader), Some(me)) = (leader, me)
            && me.sid != leader.sid
            && backs(me, leader)
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(poll).await;
    }
}

/// One line per report: address, state and epoch, or why it did not answer.
pub(crate) fn describe(reports: &[PeerReport]) -> String {
    reports
        .iter()
        .map(|r| match &r.status {
            Ok(s) => format!(
                "{} sid {} {} epoch {}/{}",
                r.address,
                s.sid,
                s.state.as_str(),
                s.current_epoch,
                s.accepted_epoch
            ),
            Err(e) => format!("{}: {e}", r.address),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use dfs_client::peer_status::Leader;
    use dfs_proto::ids::{Epoch, ServerId, Zxid};

    use super::*;

    fn report(sid: u64, state: PeerState, leader: Option<u64>, epochs: (u32, u32)) -> PeerReport {
        PeerReport {
            address: format!("127.0.0.1:900{sid}"),
            status: Ok(PeerStatus {
                sid: ServerId(sid),
                address: format!("127.0.0.1:900{sid}"),
                state,
                current_epoch: Epoch(epochs.0),
                accepted_epoch: Epoch(epochs.1),
                last_zxid: Zxid::ZERO,
                applied_zxid: Zxid::ZERO,
                leader: leader.map(|l| Leader {
                    sid: ServerId(l),
                    address: format!("127.0.0.1:900{l}"),
                }),
                observer: false,
                round: 1,
                namespace_digest: 0,
            }),
        }
    }

    fn down(sid: u64) -> PeerReport {
        PeerReport {
            address: format!("127.0.0.1:900{sid}"),
            status: Err(dfs_client::Error::Namenode {
                namenode: format!("127.0.0.1:900{sid}"),
                reason: "connection refused".into(),
            }),
        }
    }

    fn leader_address(reports: &[PeerReport], quorum: usize) -> Option<&str> {
        established_leader(reports, quorum).map(|r| r.address.as_str())
    }

    #[test]
    fn a_leader_needs_an_established_epoch_and_a_synced_quorum() {
        let led = [
            report(1, PeerState::Following, Some(3), (2, 2)),
            down(2),
            report(3, PeerState::Leading, Some(3), (2, 2)),
        ];
        assert_eq!(leader_address(&led, 2), Some("127.0.0.1:9003"));
        assert_eq!(leader_address(&led, 3), None);
        let syncing = [
            report(1, PeerState::Following, Some(3), (1, 2)),
            down(2),
            report(3, PeerState::Leading, Some(3), (1, 2)),
        ];
        assert_eq!(leader_address(&syncing, 2), None);
        let deposed = [
            report(1, PeerState::Leading, Some(1), (1, 1)),
            report(2, PeerState::Following, Some(3), (2, 2)),
            report(3, PeerState::Leading, Some(3), (2, 2)),
        ];
        assert_eq!(leader_address(&deposed, 2), Some("127.0.0.1:9003"));
    }
}
