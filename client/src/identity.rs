//! Who the caller is: HDFS "simple" identity, sent with every request.

use dfs_proto::v1::CallerContext;
use rand::RngExt;

/// The caller's user and groups, and the ids that key the namenode's retry cache.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    client_id: [u8; 16],
}

impl Identity {
    /// `user` if given, else the OS user. Groups are the OS groups when the
    /// caller acts as the OS user, else none (the namenode's table may add some).
    pub(crate) fn resolve(user: Option<String>) -> Self {
        let os_user = os_user();
        let groups = match (&user, &os_user) {
            (Some(asked), Some((name, _))) if asked != name => Vec::new(),
            (_, Some((_, groups))) => groups.clone(),
            (_, None) => Vec::new(),
        };
        let user = user
            .or_else(|| os_user.map(|(name, _)| name))
            .unwrap_or_else(|| nix::unistd::getuid().to_string());
        Identity {
            user,
            groups,
            client_id: rand::rng().random(),
        }
    }

    /// The context to attach to call number `call_id`.
    pub(crate) fn context(&self, call_id: u64) -> CallerContext {
        CallerContext {
            user: self.user.clone(),
            groups: self.groups.clone(),
            client_id: bytes::Bytes::copy_from_slice(&self.client_id),
            call_id,
        }
    }
}

fn os_user() -> Option<(String, Vec<String>)> {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok()??;
    let mut groups: Vec<String> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .chain(std::iter::once(user.gid))
        .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect();
    groups.sort();
    groups.dedup();
    Some((user.name, groups))
}
