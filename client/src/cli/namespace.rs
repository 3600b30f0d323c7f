//! Namespace commands: mkdir, ls, stat, touchz, rm, mv, chmod, chown, setrep.

use clap::Args;

use super::Outcome;
use super::format::{ls_lines, mode_string, time_string};
use crate::error::Error;
use crate::fs::{CreateOptions, DfsClient, FileStatus};

#[derive(Debug, Args)]
pub(super) struct Mkdir {
    /// Create missing parents; an existing directory is not an error.
    #[arg(short = 'p')]
    parents: bool,
    /// Directories to create.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Mkdir {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            outcome.check(client.mkdirs(path, self.parents).await);
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Ls {
    /// List subdirectories recursively.
    #[arg(short = 'R')]
    recursive: bool,
    /// Print a JSON array of entries.
    #[arg(long)]
    json: bool,
    /// Paths to list (default /).
    #[arg(default_value = "/")]
    paths: Vec<String>,
}

impl Ls {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let mut all = Vec::new();
        for path in &self.paths {
            let Some(status) = outcome.check(client.stat(path).await) else {
                continue;
            };
            let entries = if !status.is_dir() {
                vec![status]
            } else if self.recursive {
                let Some(entries) = outcome.check(walk(client, path).await) else {
                    continue;
                };
                entries
            } else {
                let Some(entries) = outcome.check(client.list(path).await) else {
                    continue;
                };
                if !self.json {
                    println!("Found {} items", entries.len());
                }
                entries
            };
            if self.json {
                all.extend(entries);
            } else {
                for line in ls_lines(&entries) {
                    println!("{line}");
                }
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
            );
        }
    }
}

/// Every entry below `root` (not `root` itself), depth first, in name order.
pub(super) async fn walk(client: &DfsClient, root: &str) -> Result<Vec<FileStatus>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![client.list(root).await?];
    while let Some(mut entries) = stack.pop() {
        if entries.is_empty() {
            continue;
        }
        let entry = entries.remove(0);
        let below = if entry.is_dir() {
            Some(client.list(&entry.path).await?)
        } else {
            None
        };
        out.push(entry);
        stack.push(entries);
        if let Some(below) = below {
            stack.push(below);
        }
    }
    Ok(out)
}

/// `path` itself followed by everything below it when `recursive`.
async fn targets(
    client: &DfsClient,
    path: &str,
    recursive: bool,
) -> Result<Vec<FileStatus>, Error> {
    let status = client.stat(path).await?;
    let mut out = Vec::new();
    let is_dir = status.is_dir();
    out.push(status);
    if recursive && is_dir {
        out.extend(walk(client, path).await?);
    }
    Ok(out)
}

#[derive(Debug, Args)]
pub(super) struct Count {
    /// Paths to count (files or directory trees).
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Count {
    /// HDFS's `count` columns: DIR_COUNT FILE_COUNT CONTENT_SIZE PATHNAME.
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            if let Some(s) = outcome.check(client.content_summary(path).await) {
                println!(
                    "{:>12} {:>12} {:>18} {path}",
                    s.directory_count, s.file_count, s.length
                );
            }
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Stat {
    /// Print a JSON array of entries.
    #[arg(long)]
    json: bool,
    /// Paths to describe.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Stat {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let mut all = Vec::new();
        for path in &self.paths {
            let Some(s) = outcome.check(client.stat(path).await) else {
                continue;
            };
            if self.json {
                all.push(s);
                continue;
            }
            println!("  File: {}", s.path);
            if s.is_dir() {
                println!("  Type: directory  Entries: {}", s.children);
            } else {
                println!(
                    "  Type: regular file  Size: {}  Replication: {}  Block size: {}",
                    s.length, s.replication, s.block_size
                );
            }
            println!(
                "Access: ({:04o}/{})  Owner: {}  Group: {}",
                s.permission,
                mode_string(s.is_dir(), s.permission),
                s.owner,
                s.group
            );
            println!("Modify: {} UTC", time_string(s.modification_time_ms));
            // Directories keep no access time (as in HDFS).
            if !s.is_dir() {
                println!("Access: {} UTC", time_string(s.access_time_ms));
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
            );
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Touchz {
    /// Files to create empty.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Touchz {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            outcome.check(client.create_empty(path, &CreateOptions::default()).await);
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Rm {
    /// Delete directories and their contents.
    #[arg(short = 'r', visible_short_alias = 'R')]
    recursive: bool,
    /// Paths to delete.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Rm {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            let Some(status) = outcome.check(client.stat(path).await) else {
                continue;
            };
            if status.is_dir() && !self.recursive {
                outcome.check::<()>(Err(Error::Usage(format!(
                    "'{}': Is a directory",
                    status.path
                ))));
                continue;
            }
            outcome.check(client.delete(&status.path, self.recursive).await);
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Mv {
    /// Sources, then the destination (a directory when there are several sources).
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

impl Mv {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some((dst, sources)) = self.paths.split_last() else {
            return;
        };
        let dst_is_dir = matches!(client.stat(dst).await, Ok(s) if s.is_dir());
        if sources.len() > 1 && !dst_is_dir {
            outcome.check::<()>(Err(Error::Usage(format!("'{dst}': Is not a directory"))));
            return;
        }
        for src in sources {
            let target = if dst_is_dir {
                let name = src
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                format!("{}/{name}", dst.trim_end_matches('/'))
            } else {
                dst.clone()
            };
            outcome.check(client.rename(src, &target).await);
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Chmod {
    /// Apply to everything below directories too.
    #[arg(short = 'R')]
    recursive: bool,
    /// Octal (755, 1777) or symbolic ([ugoa]*[+-=][rwxXt]*, comma separated).
    mode: String,
    /// Paths to change.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Chmod {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some(change) = outcome.check(ModeChange::parse(&self.mode)) else {
            return;
        };
        for path in &self.paths {
            let Some(entries) = outcome.check(targets(client, path, self.recursive).await) else {
                continue;
            };
            for entry in entries {
                let mode = change.apply(entry.permission, entry.is_dir());
                outcome.check(client.set_permission(&entry.path, mode).await);
            }
        }
    }
}

/// A parsed chmod mode: absolute octal, or symbolic clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModeChange {
    Octal(u16),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// Bits of the classes addressed (e.g. 0o700 for `u`).
    who: u16,
    op: char,
    /// rwx as 0o7 pattern, replicated into `who` when applied.
    perms: u16,
    /// `X`: execute only for directories or when someone already has it.
    conditional_exec: bool,
    sticky: bool,
}

impl ModeChange {
    fn parse(spec: &str) -> Result<Self, Error> {
        let bad = || Error::Usage(format!("invalid mode '{spec}'"));
        if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
            return u16::from_str_radix(spec, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(ModeChange::Octal)
                .ok_or_else(bad);
        }
        let mut clauses = Vec::new();
        for part in spec.split(',') {
            let op_at = part.find(['+', '-', '=']).ok_or_else(bad)?;
            let (who_text, rest) = part.split_at(op_at);
            let mut who = 0;
            for c in who_text.chars() {
                who |= match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    'o' => 0o007,
                    'a' => 0o777,
                    _ => return Err(bad()),
                };
            }
            let mut chars = rest.chars();
            let op = chars.next().ok_or_else(bad)?;
            let mut clause = Clause {
                who: if who == 0 { 0o777 } else { who },
                op,
                perms: 0,
                conditional_exec: false,
                sticky: false,
            };
            for c in chars {
                match c {
                    'r' => clause.perms |= 4,
                    'w' => clause.perms |= 2,
                    'x' => clause.perms |= 1,
                    'X' => clause.conditional_exec = true,
                    't' => clause.sticky = true,
                    _ => return Err(bad()),
                }
            }
            clauses.push(clause);
        }
        Ok(ModeChange::Symbolic(clauses))
    }

    fn apply(&self, current: u16, is_dir: bool) -> u16 {
        let clauses = match self {
            ModeChange::Octal(mode) => return *mode,
            ModeChange::Symbolic(clauses) => clauses,
        };
        let mut mode = current;
        for c in clauses {
            let mut perms = c.perms;
            if c.conditional_exec && (is_dir || mode & 0o111 != 0) {
                perms |= 1;
            }
            let bits = (perms * 0o111) & c.who;
            let sticky = if c.sticky { 0o1000 } else { 0 };
            mode = match c.op {
                '+' => mode | bits | sticky,
                '-' => mode & !(bits | sticky),
                _ => (mode & !c.who & !sticky) | bits | sticky,
            };
        }
        mode
    }
}

#[derive(Debug, Args)]
pub(super) struct Chown {
    /// Apply to everything below directories too.
    #[arg(short = 'R')]
    recursive: bool,
    /// OWNER, OWNER:GROUP or :GROUP.
    owner: String,
    /// Paths to change.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Chown {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let (owner, group) = match self.owner.split_once(':') {
            Some((o, g)) => (
                Some(o).filter(|o| !o.is_empty()),
                Some(g).filter(|g| !g.is_empty()),
            ),
            None => (Some(self.owner.as_str()).filter(|o| !o.is_empty()), None),
        };
        if owner.is_none() && group.is_none() {
            outcome.check::<()>(Err(Error::Usage(format!("invalid owner '{}'", self.owner))));
            return;
        }
        for path in &self.paths {
            let Some(entries) = outcome.check(targets(client, path, self.recursive).await) else {
                continue;
            };
            for entry in entries {
                outcome.check(client.set_owner(&entry.path, owner, group).await);
            }
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Setrep {
    /// Target replicas.
    replication: u16,
    /// Files, or directories whose files all change.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Setrep {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            let Some(entries) = outcome.check(targets(client, path, true).await) else {
                continue;
            };
            for entry in entries.iter().filter(|e| !e.is_dir()) {
                if outcome
                    .check(client.set_replication(&entry.path, self.replication).await)
                    .is_some()
                {
                    println!("Replication {} set: {}", self.replication, entry.path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_replace_the_mode() {
        let m = ModeChange::parse("1777").unwrap();
        assert_eq!(m.apply(0o644, true), 0o1777);
        assert!(ModeChange::parse("8").is_err());
        assert!(ModeChange::parse("17777").is_err());
    }

    #[test]
    fn symbolic_modes_edit_the_mode() {
        let cases = [
            ("u+x", 0o644, false, 0o744),
            ("go-w", 0o666, false, 0o644),
            ("a=r", 0o777, false, 0o444),
            ("+X", 0o644, true, 0o755),
            ("+X", 0o644, false, 0o644),
            ("o+t", 0o777, true, 0o1777),
            ("u=rwx,g=rx,o=", 0o000, true, 0o750),
        ];
        for (spec, from, is_dir, to) in cases {
            let got = ModeChange::parse(spec).unwrap().apply(from, is_dir);
            assert_eq!(got, to, "{spec} on {from:o}: got {got:o}");
        }
        assert!(ModeChange::parse("z+r").is_err());
        assert!(ModeChange::parse("u+q").is_err());
        assert!(ModeChange::parse("").is_err());
    }
}
