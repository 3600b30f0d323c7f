//! `dfs fsck`: the health of the blocks under a path, judged from the
//! namenode's listing and block locations (no data is read).
//!
//! A block is *under-replicated* when it has some, but fewer, live replicas
//! than its file's replication, *corrupt* when it has no healthy replica at all, and
//! *mis-replicated* when its file wants ≥ 2 replicas, the cluster has ≥ 2
//! racks, and every live replica sits on one rack. The path is `CORRUPT`
//! when any block is corrupt (exit status 1), else `MIS_REPLICATED` when
//! any block is mis-replicated (exit status 0: every byte is readable, and
//! the namenode's replication monitor moves a replica to another rack),
//! else `HEALTHY`. Replicas the namenode knows corrupt never count as live,
//! even where it lists them to readers because no other is left.
//!
//! `--json` prints one object (stable shape, fields only ever added):
//! ```text
//! { "path": str, "status": "HEALTHY"|"MIS_REPLICATED"|"CORRUPT", "racks": int,
//!   "summary": { "total_size", "total_dirs", "total_files", "total_blocks",
//!                "under_replicated_blocks", "mis_replicated_blocks",
//!                "corrupt_blocks", "corrupt_replicas", "missing_replicas" },
//!   "files": [ { "path", "length", "replication", "under_construction",
//!                "blocks": [ { "name", "offset", "length", "live_replicas",
//!                              "corrupt_replicas", "under_replicated",
//!                              "mis_replicated", "corrupt",
//!                              "locations": [ { "id", "address", "rack" } ] } ] } ] }
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::Args;
use serde::Serialize;

use super::Outcome;
use super::namespace::walk;
use crate::blocks::{Datanode, LocatedBlock};
use crate::error::Error;
use crate::fs::{DfsClient, FileStatus};

#[derive(Debug, Args)]
pub(super) struct Fsck {
    /// Path to check (a file, or a directory and everything below it).
    path: String,
    /// Print a line per file.
    #[arg(long)]
    files: bool,
    /// Print each file's blocks (implies --files).
    #[arg(long)]
    blocks: bool,
    /// Print each block's datanodes (implies --blocks).
    #[arg(long)]
    locations: bool,
    /// Print each block's datanodes with their racks (implies --blocks).
    #[arg(long)]
    racks: bool,
    /// Print one JSON object for scripts.
    #[arg(long)]
    json: bool,
}

impl Fsck {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some(report) = outcome.check(self.check(client).await) else {
            return;
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string(&report).unwrap_or_else(|_| "{}".into())
            );
        } else {
            let detail = Detail {
                files: self.files || self.blocks || self.locations || self.racks,
                blocks: self.blocks || self.locations || self.racks,
                locations: self.locations,
                racks: self.racks,
            };
            println!("FSCK started by {} for path {}", client.user(), self.path);
            print!("{}", render(&report, detail));
        }
        if report.status == Health::Corrupt {
            outcome.failed = true;
        }
    }

    async fn check(&self, client: &DfsClient) -> Result<Report, Error> {
        let root = client.stat(&self.path).await?;
        let entries = if root.is_dir() {
            let mut entries = vec![root.clone()];
            entries.extend(walk(client, &self.path).await?);
            entries
        } else {
            vec![root]
        };
        let mut files = Vec::new();
        let mut dirs = 0;
        let mut seen_racks = BTreeSet::new();
        for entry in &entries {
            if entry.is_dir() {
                dirs += 1;
                continue;
            }
            let (blocks, under_construction) = all_blocks(client, entry).await?;
            seen_racks.extend(
                blocks
                    .iter()
                    .flat_map(|b| b.locations.iter().map(|d| d.rack.clone())),
            );
            files.push((entry.clone(), blocks, under_construction));
        }
        // The cluster's racks, from the datanode report when we may read it.
        let racks = match client.datanode_report().await {
            Ok(datanodes) => datanodes
                .iter()
                .filter(|d| d.state != "dead")
                .map(|d| d.rack.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            Err(_) => seen_racks.len(),
        };
        let files = files
            .into_iter()
            .map(|(status, blocks, uc)| assess(&status, &blocks, uc, racks))
            .collect();
        Ok(Report::new(&self.path, dirs, files, racks))
    }
}

/// Every block of a file, fetching more locations while they fall short.
async fn all_blocks(
    client: &DfsClient,
    file: &FileStatus,
) -> Result<(Vec<LocatedBlock>, bool), Error> {
    let mut blocks: Vec<LocatedBlock> = Vec::new();
    loop {
        let from = blocks.last().map_or(0, LocatedBlock::end);
        let located = client.block_locations(&file.path, from, 0).await?;
        let before = blocks.len();
        blocks.extend(located.blocks.into_iter().filter(|b| b.end() > from));
        let covered = blocks.last().map_or(0, LocatedBlock::end);
        if covered >= located.file_length || blocks.len() == before {
            return Ok((blocks, located.under_construction));
        }
    }
}

/// Healthy, every block readable but one on too few racks, or a block lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Health {
    #[serde(rename = "HEALTHY")]
    Healthy,
    #[serde(rename = "MIS_REPLICATED")]
    MisReplicated,
    #[serde(rename = "CORRUPT")]
    Corrupt,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::MisReplicated => "MIS_REPLICATED",
            Health::Corrupt => "CORRUPT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct BlockReport {
    name: String,
    offset: u64,
    length: u64,
    live_replicas: usize,
    corrupt_replicas: usize,
    under_replicated: bool,
    mis_replicated: bool,
    corrupt: bool,
    locations: Vec<Datanode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct FileReport {
    path: String,
    length: u64,
    replication: u16,
    under_construction: bool,
    blocks: Vec<BlockReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct Summary {
    total_size: u64,
    total_dirs: usize,
    total_files: usize,
    total_blocks: usize,
    under_replicated_blocks: usize,
    mis_replicated_blocks: usize,
    corrupt_blocks: usize,
    corrupt_replicas: usize,
    /// Replicas short of the files' replication, summed over blocks.
    missing_replicas: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Report {
    path: String,
    status: Health,
    racks: usize,
    summary: Summary,
    files: Vec<FileReport>,
}

impl Report {
    fn new(path: &str, dirs: usize, files: Vec<FileReport>, racks: usize) -> Self {
        let mut summary = Summary {
            total_dirs: dirs,
            total_files: files.len(),
            ..Summary::default()
        };
        for file in &files {
            summary.total_size += file.length;
            for block in &file.blocks {
                summary.total_blocks += 1;
                summary.under_replicated_blocks += usize::from(block.under_replicated);
                summary.mis_replicated_blocks += usize::from(block.mis_replicated);
                summary.corrupt_blocks += usize::from(block.corrupt);
                summary.corrupt_replicas += block.corrupt_replicas;
                summary.missing_replicas +=
                    usize::from(file.replication).saturating_sub(block.live_replicas);
            }
        }
        let status = if summary.corrupt_blocks > 0 {
            Health::Corrupt
        } else if summary.mis_replicated_blocks > 0 {
            Health::MisReplicated
        } else {
            Health::Healthy
        };
        Report {
            path: path.to_owned(),
            status,
            racks,
            summary,
            files,
        }
    }
}

/// Judges one file's blocks; `racks` = racks in the cluster.
fn assess(
    file: &FileStatus,
    blocks: &[LocatedBlock],
    under_construction: bool,
    racks: usize,
) -> FileReport {
    let wanted = usize::from(file.replication);
    let blocks = blocks
        .iter()
        .map(|b| {
            // Corrupt replicas are in `locations` too when no other is left.
            let healthy: Vec<Datanode> = b.healthy().cloned().collect();
            let live = healthy.len();
            let replica_racks: BTreeSet<&str> = healthy.iter().map(|d| d.rack.as_str()).collect();
            BlockReport {
                name: b.block.name(),
                offset: b.offset,
                length: b.block.length,
                live_replicas: live,
                corrupt_replicas: b.corrupt.len(),
                under_replicated: live > 0 && live < wanted,
                mis_replicated: wanted >= 2 && racks >= 2 && replica_racks.len() == 1,
                corrupt: live == 0,
                locations: healthy,
            }
        })
        .collect();
    FileReport {
        path: file.path.clone(),
        length: file.length,
        replication: file.replication,
        under_construction,
        blocks,
    }
}

/// How much to print per file.
#[derive(Debug, Clone, Copy)]
struct Detail {
    files: bool,
    blocks: bool,
    locations: bool,
    racks: bool,
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// HDFS-fsck-like text.
fn render(report: &Report, detail: Detail) -> String {
    let mut out = String::new();
    for file in &report.files {
        let bad: Vec<&str> = file
            .blocks
            .iter()
            .filter_map(|b| {
                if b.corrupt {
                    Some("CORRUPT")
                } else if b.under_replicated {
                    Some("Under replicated")
                } else if b.mis_replicated {
                    Some("Replica placement policy is violated")
                } else {
                    None
                }
            })
            .collect();
        if detail.files || bad.contains(&"CORRUPT") {
            let _ = writeln!(
                out,
                "{} {} bytes, replicated: replication={}, {} block(s){}:  {}",
                file.path,
                file.length,
                file.replication,
                file.blocks.len(),
                if file.under_construction {
                    ", under construction"
                } else {
                    ""
                },
                if bad.is_empty() { "OK" } else { bad[0] }
            );
        }
        if !detail.blocks {
            continue;
        }
        for (i, block) in file.blocks.iter().enumerate() {
            let _ = write!(
                out,
                "{i}. {} len={} Live_repl={}",
                block.name, block.length, block.live_replicas
            );
            if block.corrupt_replicas > 0 {
                let _ = write!(out, " Corrupt_repl={}", block.corrupt_replicas);
            }
            if detail.locations || detail.racks {
                let nodes: Vec<String> = block
                    .locations
                    .iter()
                    .map(|d| {
                        if detail.racks {
                            format!("{}/{}", d.rack.trim_end_matches('/'), d.address)
                        } else {
                            format!("DatanodeInfo[{},{}]", d.address, d.id)
                        }
                    })
                    .collect();
                let _ = write!(out, " [{}]", nodes.join(", "));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let s = &report.summary;
    let avg = if s.total_blocks == 0 {
        0
    } else {
        s.total_size / s.total_blocks as u64
    };
    let _ = writeln!(out, "\nStatus: {}", report.status.as_str());
    let _ = writeln!(out, " Number of racks:\t\t{}", report.racks);
    let _ = writeln!(out, " Total size:\t{} B", s.total_size);
    let _ = writeln!(out, " Total dirs:\t{}", s.total_dirs);
    let _ = writeln!(out, " Total files:\t{}", s.total_files);
    let _ = writeln!(
        out,
        " Total blocks (validated):\t{} (avg. block size {avg} B)",
        s.total_blocks
    );
    let _ = writeln!(
        out,
        " Under-replicated blocks:\t{} ({:.1} %)",
        s.under_replicated_blocks,
        percent(s.under_replicated_blocks, s.total_blocks)
    );
    let _ = writeln!(
        out,
        " Mis-replicated blocks:\t\t{} ({:.1} %)",
        s.mis_replicated_blocks,
        percent(s.mis_replicated_blocks, s.total_blocks)
    );
    let _ = writeln!(out, " Missing replicas:\t\t{}", s.missing_replicas);
    let _ = writeln!(out, " Corrupt blocks:\t\t{}", s.corrupt_blocks);
    let _ = writeln!(out, " Corrupt replicas:\t\t{}", s.corrupt_replicas);
    let _ = writeln!(
        out,
        "\nThe filesystem under path '{}' is {}",
        report.path,
        report.status.as_str()
    );
    out
}

#[cfg(test)]
mod tests {
    use dfs_proto::ids::{BlockId, GenStamp};

    use super::*;
    use crate::blocks::Block;
    use crate::fs::FileKind;

    fn node(id: &str, rack: &str) -> Datanode {
        Datanode {
            id: id.into(),
            address: format!("{id}:9866"),
            rack: rack.into(),
        }
    }

    fn block(id: u64, offset: u64, locations: Vec<Datanode>, corrupt: usize) -> LocatedBlock {
        LocatedBlock {
            block: Block {
                id: BlockId(id),
                gen_stamp: GenStamp(1001),
                length: 100,
            },
            offset,
            locations,
            corrupt: (0..corrupt)
                .map(|i| node(&format!("bad{i}"), "/r9"))
                .collect(),
            token: None,
        }
    }

    fn file(path: &str, replication: u16, length: u64) -> FileStatus {
        FileStatus {
            path: path.into(),
            kind: FileKind::File,
            permission: 0o644,
            owner: "u".into(),
            group: "g".into(),
            length,
            replication,
            block_size: 100,
            modification_time_ms: 0,
            access_time_ms: 0,
            children: 0,
        }
    }

    #[test]
    fn a_well_spread_file_is_healthy() {
        let blocks = [
            block(
                1,
                0,
                vec![node("a", "/r1"), node("b", "/r2"), node("c", "/r2")],
                0,
            ),
            block(
                2,
                100,
                vec![node("a", "/r1"), node("d", "/r1"), node("c", "/r2")],
                0,
            ),
        ];
        let f = assess(&file("/f", 3, 200), &blocks, false, 2);
        let report = Report::new("/", 1, vec![f], 2);
        assert_eq!(report.status, Health::Healthy);
        assert_eq!(
            report.summary,
            Summary {
                total_size: 200,
                total_dirs: 1,
                total_files: 1,
                total_blocks: 2,
                ..Summary::default()
            }
        );
        let text = render(
            &report,
            Detail {
                files: true,
                blocks: true,
                locations: false,
                racks: true,
            },
        );
        assert!(
            text.contains("/f 200 bytes, replicated: replication=3, 2 block(s):  OK"),
            "{text}"
        );
        assert!(
            text.contains("0. blk_1_1001 len=100 Live_repl=3 [/r1/a:9866, /r2/b:9866, /r2/c:9866]"),
            "{text}"
        );
        assert!(
            text.ends_with("The filesystem under path '/' is HEALTHY\n"),
            "{text}"
        );
    }

    #[test]
    fn short_one_rack_and_replica_less_blocks_are_counted_apart() {
        let blocks = [
            block(1, 0, vec![node("a", "/r1"), node("b", "/r2")], 0),
            block(
                2,
                100,
                vec![node("a", "/r1"), node("d", "/r1"), node("e", "/r1")],
                0,
            ),
            block(3, 200, vec![], 2),
        ];
        let f = assess(&file("/f", 3, 300), &blocks, false, 2);
        let report = Report::new("/f", 0, vec![f], 2);
        let s = &report.summary;
        assert_eq!(
            (
                s.under_replicated_blocks,
                s.mis_replicated_blocks,
                s.corrupt_blocks
            ),
            (1, 1, 1)
        );
        assert_eq!((s.corrupt_replicas, s.missing_replicas), (2, 1 + 3));
        assert_eq!(report.status, Health::Corrupt);
        let text = render(
            &report,
            Detail {
                files: false,
                blocks: false,
                locations: false,
                racks: false,
            },
        );
        assert!(
            text.contains("/f 300 bytes"),
            "a corrupt file is always listed: {text}"
        );
        assert!(text.contains("is CORRUPT"), "{text}");
    }

    #[test]
    fn a_block_on_one_rack_of_two_is_not_healthy() {
        let blocks = [block(
            1,
            0,
            vec![node("a", "/r1"), node("d", "/r1"), node("e", "/r1")],
            0,
        )];
        let report = Report::new(
            "/f",
            0,
            vec![assess(&file("/f", 3, 100), &blocks, false, 2)],
            2,
        );
        assert_eq!(report.status, Health::MisReplicated);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["status"], "MIS_REPLICATED");
        let text = render(
            &report,
            Detail {
                files: true,
                blocks: false,
                locations: false,
                racks: false,
            },
        );
        assert!(
            text.contains("Replica placement policy is violated"),
            "{text}"
        );
        assert!(text.ends_with("is MIS_REPLICATED\n"), "{text}");
    }

    #[test]
    fn corrupt_replicas_listed_for_readers_do_not_count_as_live() {
        // No healthy replica left: the namenode lists the corrupt ones to read.
        let mut only_corrupt = block(1, 0, Vec::new(), 2);
        only_corrupt.locations = only_corrupt.corrupt.clone();
        let f = assess(&file("/f", 2, 100), &[only_corrupt], false, 1);
        assert_eq!(f.blocks[0].live_replicas, 0);
        assert!(f.blocks[0].corrupt && f.blocks[0].locations.is_empty());
        assert_eq!(Report::new("/f", 0, vec![f], 1).status, Health::Corrupt);
    }

    #[test]
    fn one_rack_is_not_mis_replication_in_a_one_rack_cluster_or_for_one_replica() {
        let blocks = [block(1, 0, vec![node("a", "/r1"), node("b", "/r1")], 0)];
        let f = assess(&file("/f", 2, 100), &blocks, false, 1);
        assert!(!f.blocks[0].mis_replicated);
        let blocks = [block(1, 0, vec![node("a", "/r1")], 0)];
        let f = assess(&file("/f", 1, 100), &blocks, false, 2);
        assert!(!f.blocks[0].mis_replicated && !f.blocks[0].under_replicated);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let blocks = [block(1, 0, vec![node("a", "/r1")], 0)];
        let report = Report::new(
            "/",
            0,
            vec![assess(&file("/f", 1, 100), &blocks, false, 1)],
            1,
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["status"], "HEALTHY");
        assert_eq!(json["summary"]["total_blocks"], 1);
        assert_eq!(json["files"][0]["blocks"][0]["name"], "blk_1_1001");
        assert_eq!(json["files"][0]["blocks"][0]["locations"][0]["rack"], "/r1");
    }
}
