//! The shape of a cluster: how many nodes, on which racks, with which timers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Error;

/// What to lay out: namenodes, datanodes per rack, and the namenode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of namenodes (default 1), each on 127.0.0.1 with its own port.
    /// More than one form an ensemble: namenode `nnN` gets server id N.
    pub namenodes: usize,
    /// How many of the namenodes are observers (default 0): the last ones,
    /// which follow the leader but never vote.
    pub observers: usize,
    /// The ensemble's timers; `None` leaves the namenode's default.
    pub quorum_timers: QuorumTimers,
    /// Datanodes per rack (default `[3, 3]`); rack r (1-based) is `/dc1/rack{r}`
    /// and its datanodes listen on `127.0.r.1`, `127.0.r.2`, …
    pub racks: Vec<usize>,
    /// How often datanodes heartbeat (default 3 s).
    pub heartbeat_interval: Duration,
    /// Silence after which the namenode calls a datanode stale (default 30 s).
    pub stale_after: Duration,
    /// Silence after which the namenode calls a datanode dead (default 600 s).
    pub dead_after: Duration,
    /// Default replication of new files; `None` = 3, or fewer when there are
    /// fewer datanodes.
    pub replication: Option<u32>,
    /// Default block size of new files, in bytes (default 128 MiB).
    pub block_size: u64,
    /// The superuser's name; `None` = the OS user running the namenode.
    pub superuser: Option<String>,
    /// The superuser group (default `supergroup`).
    pub supergroup: String,
    /// User → groups table given to the namenode.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The namenode's lease soft and hard limits (`lease_soft_limit_ms`,
    /// `lease_hard_limit_ms`); `None` leaves its defaults (60 s, 1 h).
    pub lease_limits: Option<(Duration, Duration)>,
    /// Fixed namenode addresses, one per namenode, instead of free ports on
    /// 127.0.0.1: for namenodes that each run in a network namespace of
    /// their own (see `netns`), where every port is free. `None` (default)
    /// picks free ports.
    pub namenode_addrs: Option<Vec<std::net::SocketAddr>>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            namenodes: 1,
            observers: 0,
            quorum_timers: QuorumTimers::default(),
            racks: vec![3, 3],
            heartbeat_interval: Duration::from_secs(3),
            stale_after: Duration::from_secs(30),
            dead_after: Duration::from_secs(600),
            replication: None,
            block_size: 128 * 1024 * 1024,
            superuser: None,
            supergroup: "supergroup".to_owned(),
            groups: BTreeMap::new(),
            lease_limits: None,
            namenode_addrs: None,
        }
    }
}

/// The ensemble's timers, written into every namenode's config when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumTimers {
    /// How long an election waits for a better vote once a quorum agrees
    /// (`election_finalize_ms`, namenode default 200 ms).
    pub election_finalize: Option<Duration>,
    /// Between the leader's pings to its learners (`ping_interval_ms`,
    /// namenode default 200 ms).
    pub ping_interval: Option<Duration>,
    /// Silence after which leader and learner give up on each other
    /// (`sync_timeout_ms`, namenode default 1 s).
    pub sync_timeout: Option<Duration>,
    /// How long a new leader waits for a quorum to join it
    /// (`init_timeout_ms`, namenode default 5 s).
    pub init_timeout: Option<Duration>,
}

/// At most this many racks (the third octet of 127.0.r.n) and datanodes per
/// rack (the fourth octet).
const MAX_OCTET: usize = 254;

impl ClusterSpec {
    /// `datanodes` spread over `racks` racks as evenly as possible, the first
    /// racks taking the remainder: 5 over 2 is `[3, 2]`.
    pub fn spread(datanodes: usize, racks: usize) -> Vec<usize> {
        if racks == 0 {
            return Vec::new();
        }
        (0..racks)
            .map(|r| datanodes / racks + usize::from(r < datanodes % racks))
            .collect()
    }

    /// Whether the namenodes form an ensemble (more than one of them).
    pub fn is_ensemble(&self) -> bool {
        self.namenodes > 1
    }

    /// Whether namenode `index` (1-based, its server id) is an observer.
    pub fn is_observer(&self, index: usize) -> bool {
        index > self.namenodes.saturating_sub(self.observers)
    }

    /// Total number of datanodes.
    pub fn datanodes(&self) -> usize {
        self.racks.iter().sum()
    }

    /// The replication written into the namenode's config.
    pub fn effective_replication(&self) -> u32 {
        let datanodes = u32::try_from(self.datanodes()).unwrap_or(u32::MAX);
        self.replication.unwrap_or(datanodes.clamp(1, 3))
    }

    /// Refuses shapes that cannot be laid out or would confuse the namenode.
    pub fn validate(&self) -> Result<(), Error> {
        if self.namenodes == 0 {
            return Err(Error::BadSpec("a cluster needs at least one namenode"));
        }
        if self.namenodes > 100 {
            return Err(Error::BadSpec("at most 100 namenodes"));
        }
        if self.observers >= self.namenodes {
            return Err(Error::BadSpec(
                "at least one namenode must be a voter, not an observer",
            ));
        }
        if self.racks.len() > MAX_OCTET {
            return Err(Error::BadSpec("at most 254 racks"));
        }
        if self.racks.iter().any(|&n| n > MAX_OCTET) {
            return Err(Error::BadSpec("at most 254 datanodes per rack"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(Error::BadSpec("the heartbeat interval must be positive"));
        }
        if self.stale_after <= self.heartbeat_interval {
            return Err(Error::BadSpec(
                "stale-after must exceed the heartbeat interval",
            ));
        }
        if self.dead_after <= self.stale_after {
            return Err(Error::BadSpec("dead-after must exceed stale-after"));
        }
        if self.replication == Some(0) {
            return Err(Error::BadSpec("replication must be at least 1"));
        }
        if self
            .namenode_addrs
            .as_ref()
            .is_some_and(|a| a.len() != self.namenodes)
        {
            return Err(Error::BadSpec("give one fixed address per namenode"));
        }
        if self.block_size == 0 {
            return Err(Error::BadSpec("block size must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_with_the_remainder_first() {
        assert_eq!(ClusterSpec::spread(6, 2), vec![3, 3]);
        assert_eq!(ClusterSpec::spread(5, 2), vec![3, 2]);
        assert_eq!(ClusterSpec::spread(3, 2), vec![2, 1]);
        assert_eq!(ClusterSpec::spread(2, 3), vec![1, 1, 0]);
        assert_eq!(ClusterSpec::spread(4, 0), Vec::<usize>::new());
    }

    #[test]
    fn default_is_one_namenode_and_six_datanodes_on_two_racks() {
        let spec = ClusterSpec::default();
        assert_eq!(spec.namenodes, 1);
        assert_eq!(spec.datanodes(), 6);
        assert_eq!(spec.racks.len(), 2);
        assert_eq!(spec.effective_replication(), 3);
        spec.validate().unwrap();
    }

    #[test]
    fn replication_shrinks_to_the_datanodes_available() {
        let spec = ClusterSpec {
            racks: vec![1, 1],
            ..ClusterSpec::default()
        };
        assert_eq!(spec.effective_replication(), 2);
    }

    #[test]
    fn observers_are_the_last_namenodes() {
        let spec = ClusterSpec {
            namenodes: 5,
            observers: 2,
            ..ClusterSpec::default()
        };
        spec.validate().unwrap();
        let observers: Vec<usize> = (1..=5).filter(|&i| spec.is_observer(i)).collect();
        assert_eq!(observers, vec![4, 5]);
        assert!(!ClusterSpec::default().is_observer(1));
    }

    #[test]
    fn an_ensemble_needs_a_voter() {
        let spec = ClusterSpec {
            namenodes: 2,
            observers: 2,
            ..ClusterSpec::default()
        };
        assert!(spec.validate().is_err());
    }

    #[test]
    fn inconsistent_timers_are_refused() {
        let spec = ClusterSpec {
            stale_after: Duration::from_secs(700),
            ..ClusterSpec::default()
        };
        assert!(spec.validate().is_err());
    }
}
