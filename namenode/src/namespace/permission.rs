//! HDFS's `FSPermissionChecker`: owner/group/other mode bits, a superuser
//! who bypasses them, the sticky bit, and `ls`-style mode strings.
//!
//! It knows permissions and names only; which inode to check for which
//! operation is decided by the namespace.

use crate::error::{Access, Error};
use crate::txn::PermissionStatus;

use super::{Caller, PermissionPolicy};

/// Most characters in a user or group name.
pub(crate) const MAX_PRINCIPAL_CHARS: usize = 256;
/// Highest valid mode: permission bits plus setuid, setgid and sticky.
pub(crate) const MAX_MODE: u16 = 0o7777;
/// The sticky bit: on a directory, only owners may delete or rename entries.
pub(crate) const STICKY: u16 = 0o1000;

/// Checks that a user or group name is 1 to 256 characters without NUL, `/`,
/// `:`, whitespace or other control characters.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field`.
pub(crate) fn validate_principal(field: &'static str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.chars().count() > MAX_PRINCIPAL_CHARS {
        "longer than 256 characters"
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        "contains '/', ':', whitespace or a control character"
    } else {
        return Ok(());
    };
    let shown: String = name
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    Err(Error::InvalidArgument {
        field,
        reason: format!("'{shown}' {reason}"),
    })
}

/// Checks that mode bits fit in `0o7777`.
///
/// # Errors
/// [`Error::InvalidArgument`] for anything larger.
pub(crate) fn validate_mode(mode: u16) -> Result<u16, Error> {
    if mode > MAX_MODE {
        return Err(Error::InvalidArgument {
            field: "mode",
            reason: format!("{mode:#o} is above 0o7777"),
        });
    }
    Ok(mode)
}

/// Formats mode bits as `ls` does: `drwxr-xr-x`, `-rw-r--r--`, and the sticky
/// bit as `t` (other may execute) or `T` in the last position.
pub(crate) fn mode_string(is_dir: bool, mode: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        s.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        let execute = bits & 0o1 != 0;
        s.push(match (shift == 0 && mode & STICKY != 0, execute) {
            (true, true) => 't',
            (true, false) => 'T',
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// A caller's rights, resolved once per request.
#[derive(Debug)]
pub(crate) struct Checker<'a> {
    caller: &'a Caller,
    is_superuser: bool,
}

impl<'a> Checker<'a> {
    /// Validates the caller's names and decides whether it is a superuser.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed user or group name.
    pub(crate) fn new(caller: &'a Caller, policy: &PermissionPolicy) -> Result<Self, Error> {
        validate_principal("user", &caller.user)?;
        for group in &caller.groups {
            validate_principal("group", group)?;
        }
        // An unset (empty) policy name matches nobody: caller names are never empty.
        let is_superuser =
            caller.user == policy.superuser || caller.groups.contains(&policy.supergroup);
        Ok(Checker {
            caller,
            is_superuser,
        })
    }

    /// Whether permission checks are bypassed.
    pub(crate) fn is_superuser(&self) -> bool {
        self.is_superuser
    }

    /// The caller's user name.
    pub(crate) fn user(&self) -> &str {
        &self.caller.user
    }

    /// Whether the caller belongs to `group`.
    pub(crate) fn is_member_of(&self, group: &str) -> bool {
        self.caller.groups.iter().any(|g| g == group)
    }

    /// Requires `access` on the inode at `path`, using the owner class when the
    /// caller owns it, else the group class when the caller is in its group,
    /// else the other class.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] describing the inode.
    pub(crate) fn check(
        &self,
        perm: &PermissionStatus,
        is_dir: bool,
        path: &str,
        access: Access,
    ) -> Result<(), Error> {
        if self.is_superuser {
            return Ok(());
        }
        let shift = if self.caller.user == perm.owner {
            6
        } else if self.is_member_of(&perm.group) {
            3
        } else {
            0
        };
        let class = (perm.mode >> shift) & 0o7;
        let needed = match access {
            Access::Read => 0o4,
            Access::Write => 0o2,
            Access::Execute => 0o1,
        };
        if class & needed != 0 {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            user: self.caller.user.clone(),
            access,
            inode: path.to_owned(),
            owner: perm.owner.clone(),
            group: perm.group.clone(),
            mode: mode_string(is_dir, perm.mode),
        })
    }

    /// Requires the caller to own the inode at `path` (or be a superuser).
    ///
    /// # Errors
    /// [`Error::NotOwner`].
    pub(crate) fn check_owner(&self, perm: &PermissionStatus, path: &str) -> Result<(), Error> {
        if self.is_superuser || self.caller.user == perm.owner {
            return Ok(());
        }
        Err(Error::NotOwner {
            user: self.caller.user.clone(),
            inode: path.to_owned(),
        })
    }

    /// In a sticky directory, only the entry's owner, the directory's owner
    /// or a superuser may delete or rename the entry at `child_path`.
    ///
    /// # Errors
    /// [`Error::NotOwner`] naming the entry.
    pub(crate) fn check_sticky(
        &self,
        parent: &PermissionStatus,
        child: &PermissionStatus,
        child_path: &str,
    ) -> Result<(), Error> {
        if self.is_superuser
            || parent.mode & STICKY == 0
            || self.caller.user == parent.owner
            || self.caller.user == child.owner
        {
            return Ok(());
        }
        Err(Error::NotOwner {
            user: self.caller.user.clone(),
            inode: child_path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_ls() {
        for (is_dir, mode, want) in [
            (true, 0o755, "drwxr-xr-x"),
            (false, 0o644, "-rw-r--r--"),
            (true, 0o1777, "drwxrwxrwt"),
            (true, 0o1770, "drwxrwx--T"),
            (false, 0, "----------"),
            (false, 0o7777, "-rwxrwxrwt"),
            (true, 0o421, "dr---w---x"),
        ] {
            assert_eq!(mode_string(is_dir, mode), want, "{mode:o}");
        }
    }

    #[test]
    fn principal_names_are_validated() {
        let long = "u".repeat(257);
        for bad in [
            "",
            "a b",
            "a/b",
            "a:b",
            "a\0b",
            "tab\t",
            "nl\n",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    validate_principal("owner", bad),
                    Err(Error::InvalidArgument { field: "owner", .. })
                ),
                "{bad:?} accepted"
            );
        }
        for good in ["alice", "hdfs-admins", "u".repeat(256).as_str(), "ünïcode"] {
            assert!(
                validate_principal("owner", good).is_ok(),
                "{good:?} refused"
            );
        }
    }

    #[test]
    fn modes_above_0o7777_are_refused() {
        assert_eq!(validate_mode(0o7777).unwrap(), 0o7777);
        assert!(matches!(
            validate_mode(0o10000),
            Err(Error::InvalidArgument { field: "mode", .. })
        ));
    }

    fn perm(owner: &str, group: &str, mode: u16) -> PermissionStatus {
        PermissionStatus {
            owner: owner.into(),
            group: group.into(),
            mode,
        }
    }

    #[test]
    fn the_class_is_owner_then_group_then_other() {
        let policy = PermissionPolicy {
            superuser: "hdfs".into(),
            supergroup: "supergroup".into(),
            umask: 0o022,
        };
        let alice = Caller {
            user: "alice".into(),
            groups: vec!["staff".into()],
        };
        let bob = Caller {
            user: "bob".into(),
            groups: vec!["staff".into()],
        };
        let eve = Caller {
            user: "eve".into(),
            groups: vec!["other".into()],
        };
        // Owner may only read; group may only write; other may only execute.
        let p = perm("alice", "staff", 0o421);
        for (caller, allowed) in [
            (&alice, Access::Read),
            (&bob, Access::Write),
            (&eve, Access::Execute),
        ] {
            let checker = Checker::new(caller, &policy).unwrap();
            for access in [Access::Read, Access::Write, Access::Execute] {
                let result = checker.check(&p, false, "/f", access);
                assert_eq!(
                    result.is_ok(),
                    access == allowed,
                    "{} {access}",
                    caller.user
                );
            }
        }
    }
}
