//! Which groups a caller is in: the namenode's own table first, then the
//! namenode host's OS (cached, as HDFS's group mapping is), and only for
//! users neither knows, the groups the request claims.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an OS lookup is trusted (HDFS `hadoop.security.groups.cache.secs`).
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Resolves a user's groups.
#[derive(Debug)]
pub(crate) struct GroupMapping {
    table: BTreeMap<String, Vec<String>>,
    cache: Mutex<HashMap<String, CachedLookup>>,
}

/// A user's OS groups (`None`: the OS does not know the user) and when they were looked up.
type CachedLookup = (Option<Vec<String>>, Instant);

impl GroupMapping {
    /// A mapping that consults `table` before the OS.
    pub(crate) fn new(table: BTreeMap<String, Vec<String>>) -> Self {
        GroupMapping {
            table,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The groups of `user`; `claimed` counts only when neither the table nor the OS knows the user.
    pub(crate) fn groups(&self, user: &str, claimed: Vec<String>) -> Vec<String> {
        if let Some(groups) = self.table.get(user) {
            return groups.clone();
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = cache
            .get(user)
            .filter(|(_, at)| now.duration_since(*at) < CACHE_TTL)
            .map(|(groups, _)| groups.clone());
        let os_groups = match fresh {
            Some(groups) => groups,
            None => {
                let groups = os_groups(user);
                cache.insert(user.to_owned(), (groups.clone(), now));
                groups
            }
        };
        os_groups.unwrap_or(claimed)
    }
}

/// The OS groups of `user` on this host, or `None` if the OS has no such user.
fn os_groups(user: &str) -> Option<Vec<String>> {
    let account = nix::unistd::User::from_name(user).ok()??;
    let name = CString::new(user).ok()?;
    let gids = nix::unistd::getgrouplist(&name, account.gid).ok()?;
    let mut groups: Vec<String> = gids
        .into_iter()
        .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect();
    groups.sort();
    groups.dedup();
    Some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_beats_the_os_and_the_claim() {
        let table = BTreeMap::from([("alice".to_owned(), vec!["staff".to_owned()])]);
        let mapping = GroupMapping::new(table);
        assert_eq!(
            mapping.groups("alice", vec!["supergroup".into()]),
            vec!["staff"]
        );
    }

    #[test]
    fn os_users_get_their_os_groups_not_their_claims() {
        let mapping = GroupMapping::new(BTreeMap::new());
        // root exists on every Linux host and is in group root.
        let groups = mapping.groups("root", vec!["claimed".into()]);
        assert!(groups.contains(&"root".to_owned()), "{groups:?}");
        assert!(!groups.contains(&"claimed".to_owned()));
    }

    #[test]
    fn unknown_users_keep_their_claimed_groups() {
        let mapping = GroupMapping::new(BTreeMap::new());
        let claimed = vec!["staff".to_owned()];
        assert_eq!(
            mapping.groups("no-such-user-dfs-test", claimed.clone()),
            claimed
        );
    }
}
