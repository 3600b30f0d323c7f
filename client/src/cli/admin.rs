//! `dfs admin`: cluster administration.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Outcome;
use super::format::bytes_string;
use crate::config::ClientConfig;
use crate::error::Error;
use crate::fs::{DatanodeReport, DfsClient};
use crate::peer_status::{self, PeerReport, PeerState};

/// Administration commands.
#[derive(Debug, Subcommand)]
pub(super) enum Admin {
    /// Datanodes grouped by rack: state (live/stale/dead), capacity, used, last contact.
    Report(Report),
    /// The quorum state of every configured namenode, asked of each directly:
    /// state, epochs, zxids, the leader it follows. Exits 1 only when no
    /// namenode answers.
    HaStatus(HaStatus),
}

impl Admin {
    pub(super) async fn run(
        self,
        config: &ClientConfig,
        client: &DfsClient,
        outcome: &mut Outcome,
    ) {
        match self {
            Admin::Report(args) => args.run(client, outcome).await,
            Admin::HaStatus(args) => args.run(config, outcome).await,
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct HaStatus {
    /// Print a JSON array for scripts, one object per namenode: sid, address,
    /// state (LOOKING, FOLLOWING, LEADING, OBSERVING or down), current_epoch,
    /// accepted_epoch, last_zxid, applied_zxid (integers), leader_sid,
    /// leader_address, observer, round, namespace_digest, error; fields a
    /// namenode that is down cannot give are null.
    #[arg(long)]
    json: bool,
    /// Milliseconds to wait for each namenode.
    #[arg(long, default_value_t = peer_status::DEFAULT_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,
}

impl HaStatus {
    async fn run(self, config: &ClientConfig, outcome: &mut Outcome) {
        let reports =
            peer_status::ensemble_status(config, Duration::from_millis(self.timeout_ms)).await;
        let rows: Vec<HaRow> = reports.iter().map(HaRow::from_report).collect();
        if self.json {
            match serde_json::to_string(&rows) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    outcome.check::<()>(Err(Error::Usage(format!("encoding JSON: {e}"))));
                }
            }
        } else {
            print!("{}", render_ha(&rows));
        }
        if rows.iter().all(|r| r.error.is_some()) {
            outcome.check::<()>(Err(Error::Usage(format!(
                "no namenode answered (asked {})",
                config.namenodes.join(", ")
            ))));
        }
    }
}

/// One namenode in `ha-status`: what it answered, or `down` and why.
/// Field names are the `--json` contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct HaRow {
    sid: Option<u64>,
    /// The address asked (as the client config names it).
    address: String,
    /// `LOOKING`, `FOLLOWING`, `LEADING`, `OBSERVING`, `UNKNOWN` or `down`.
    state: &'static str,
    current_epoch: Option<u32>,
    accepted_epoch: Option<u32>,
    last_zxid: Option<u64>,
    applied_zxid: Option<u64>,
    leader_sid: Option<u64>,
    leader_address: Option<String>,
    observer: Option<bool>,
    round: Option<u64>,
    namespace_digest: Option<u64>,
    error: Option<String>,
}

impl HaRow {
    fn from_report(report: &PeerReport) -> Self {
        match &report.status {
            Ok(s) => HaRow {
                sid: Some(s.sid.0),
                address: report.address.clone(),
                state: s.state.as_str(),
                current_epoch: Some(s.current_epoch.0),
                accepted_epoch: Some(s.accepted_epoch.0),
                last_zxid: Some(s.last_zxid.0),
                applied_zxid: Some(s.applied_zxid.0),
                leader_sid: s.leader.as_ref().map(|l| l.sid.0),
                leader_address: s.leader.as_ref().map(|l| l.address.clone()),
                observer: Some(s.observer),
                round: Some(s.round),
                namespace_digest: Some(s.namespace_digest),
                error: None,
            },
            Err(e) => HaRow {
                sid: None,
                address: report.address.clone(),
                state: "down",
                current_epoch: None,
                accepted_epoch: None,
                last_zxid: None,
                applied_zxid: None,
                leader_sid: None,
                leader_address: None,
                observer: None,
                round: None,
                namespace_digest: None,
                // The address is in its own column.
                error: Some(match e {
                    Error::Namenode { reason, .. } => reason.clone(),
                    other => other.to_string(),
                }),
            },
        }
    }
}

/// The `ha-status` table: one line per namenode, then who leads.
fn render_ha(rows: &[HaRow]) -> String {
    let dash = || "-".to_owned();
    let hex = |z: Option<u64>| z.map_or_else(dash, |z| format!("{z:#x}"));
    let num = |n: Option<u32>| n.map_or_else(dash, |n| n.to_string());
    let mut table = vec![[
        "SID".to_owned(),
        "ADDRESS".to_owned(),
        "STATE".to_owned(),
        "EPOCH".to_owned(),
        "ACCEPTED".to_owned(),
        "LAST ZXID".to_owned(),
        "APPLIED ZXID".to_owned(),
        "LEADER".to_owned(),
    ]];
    for r in rows {
        let leader = match (r.leader_sid, &r.leader_address) {
            (Some(sid), Some(addr)) if !addr.is_empty() => format!("{sid} ({addr})"),
            (Some(sid), _) => sid.to_string(),
            (None, _) => r.error.clone().unwrap_or_else(dash),
        };
        table.push([
            r.sid.map_or_else(dash, |s| s.to_string()),
            r.address.clone(),
            r.state.to_owned(),
            num(r.current_epoch),
            num(r.accepted_epoch),
            hex(r.last_zxid),
            hex(r.applied_zxid),
            leader,
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let answered = rows.iter().filter(|r| r.error.is_none()).count();
    let leaders: Vec<&HaRow> = rows
        .iter()
        .filter(|r| r.state == PeerState::Leading.as_str())
        .collect();
    let verdict = match leaders.as_slice() {
        [] => "no leader".to_owned(),
        [l] => {
            let followers = rows
                .iter()
                .filter(|r| r.error.is_none() && r.leader_sid == l.sid && r.sid != l.sid)
                .count();
            format!(
                "leader: sid {} at {} (epoch {}), followed by {followers}",
                l.sid.map_or_else(dash, |s| s.to_string()),
                l.address,
                num(l.current_epoch),
            )
        }
        many => {
            let sids: Vec<String> = many
                .iter()
                .map(|l| l.sid.map_or_else(dash, |s| s.to_string()))
                .collect();
            format!(
                "{} namenodes claim to lead: sids {}",
                many.len(),
                sids.join(", ")
            )
        }
    };
    out.push_str(&format!(
        "{verdict}; {answered} of {} namenodes answered\n",
        rows.len()
    ));
    out
}

#[derive(Debug, Args)]
pub(super) struct Report {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

impl Report {
    async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some(datanodes) = outcome.check(client.datanode_report().await) else {
            return;
        };
        if self.json {
            let doc = serde_json::json!({ "datanodes": datanodes });
            println!("{doc}");
            return;
        }
        print!("{}", render(&datanodes));
    }
}

fn render(datanodes: &[DatanodeReport]) -> String {
    let count = |state: &str| datanodes.iter().filter(|d| d.state == state).count();
    let total = |f: fn(&DatanodeReport) -> u64| {
        datanodes
            .iter()
            .filter(|d| d.state != "dead")
            .map(f)
            .sum::<u64>()
    };
    let mut out = format!(
        "Datanodes: {} live, {} stale, {} dead\nCapacity: {}  Used: {}  Remaining: {}\n",
        count("live"),
        count("stale"),
        count("dead"),
        bytes_string(total(|d| d.capacity)),
        bytes_string(total(|d| d.used)),
        bytes_string(total(|d| d.remaining)),
    );
    let mut rack: Option<&str> = None;
    for d in datanodes {
        if rack != Some(d.rack.as_str()) {
            out.push_str(&format!("\nRack {}\n", d.rack));
            rack = Some(d.rack.as_str());
        }
        out.push_str(&format!(
            "  {:<22} {:<21} {:<5}  capacity {:>10}  used {:>10}  remaining {:>10}  last contact {:.1}s ago\n",
            d.id,
            d.address,
            d.state,
            bytes_string(d.capacity),
            bytes_string(d.used),
            bytes_string(d.remaining),
            d.last_contact_ms as f64 / 1000.0,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use dfs_proto::ids::{Epoch, ServerId, Zxid};

    use super::*;
    use crate::peer_status::{Leader, PeerStatus};

    fn node(id: &str, rack: &str, state: &'static str) -> DatanodeReport {
        DatanodeReport {
            id: id.into(),
            address: "127.0.1.1:1".into(),
            rack: rack.into(),
            state,
            capacity: 1024,
            used: 0,
            remaining: 512,
            last_contact_ms: 1500,
        }
    }

    #[test]
    fn report_groups_datanodes_by_rack() {
        let text = render(&[
            node("dn-a", "/dc1/rack1", "live"),
            node("dn-b", "/dc1/rack1", "stale"),
            node("dn-c", "/dc1/rack2", "dead"),
        ]);
        assert!(
            text.starts_with("Datanodes: 1 live, 1 stale, 1 dead\n"),
            "{text}"
        );
        assert_eq!(text.matches("\nRack ").count(), 2, "{text}");
        assert!(text.find("dn-b").unwrap() < text.find("Rack /dc1/rack2").unwrap());
    }

    fn answered(sid: u64, state: PeerState, leader: Option<u64>) -> PeerReport {
        PeerReport {
            address: format!("127.0.0.1:900{sid}"),
            status: Ok(PeerStatus {
                sid: ServerId(sid),
                address: format!("127.0.0.1:900{sid}"),
                state,
                current_epoch: Epoch(2),
                accepted_epoch: Epoch(2),
                last_zxid: Zxid::new(Epoch(2), 0x1f),
                applied_zxid: Zxid::new(Epoch(2), 0x1e),
                leader: leader.map(|l| Leader {
                    sid: ServerId(l),
                    address: format!("127.0.0.1:900{l}"),
                }),
                observer: false,
                round: 4,
                namespace_digest: 0xabcd,
            }),
        }
    }

    fn down(sid: u64) -> PeerReport {
        PeerReport {
            address: format!("127.0.0.1:900{sid}"),
            status: Err(Error::Namenode {
                namenode: format!("127.0.0.1:900{sid}"),
                reason: "connection refused".into(),
            }),
        }
    }

    fn rows(reports: &[PeerReport]) -> Vec<HaRow> {
        reports.iter().map(HaRow::from_report).collect()
    }

    #[test]
    fn ha_status_table_shows_zxids_in_hex_and_who_leads() {
        let text = render_ha(&rows(&[
            answered(1, PeerState::Following, Some(3)),
            down(2),
            answered(3, PeerState::Leading, Some(3)),
        ]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("SID  ADDRESS"), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "1",
                "127.0.0.1:9001",
                "FOLLOWING",
                "2",
                "2",
                "0x20000001f",
                "0x20000001e",
                "3",
                "(127.0.0.1:9003)"
            ],
            "{text}"
        );
        assert!(lines[2].contains("down"), "{text}");
        assert!(lines[2].contains("connection refused"), "{text}");
        // Columns line up: every row's state starts where the header's does.
        let column = lines[0].find("STATE").unwrap();
        assert!(
            lines[1..4]
                .iter()
                .all(|l| l[column..].starts_with(|c: char| c.is_ascii_uppercase() || c == 'd'))
        );
        assert_eq!(
            lines[4],
            "leader: sid 3 at 127.0.0.1:9003 (epoch 2), followed by 1; 2 of 3 namenodes answered"
        );
    }

    #[test]
    fn ha_status_table_without_a_leader_says_so() {
        let text = render_ha(&rows(&[answered(1, PeerState::Looking, None), down(2)]));
        assert!(
            text.ends_with("no leader; 1 of 2 namenodes answered\n"),
            "{text}"
        );
        assert!(text.lines().nth(1).unwrap().contains("LOOKING"), "{text}");
    }

    #[test]
    fn ha_status_json_has_stable_fields_with_nulls_for_a_namenode_that_is_down() {
        let json = serde_json::to_value(rows(&[answered(3, PeerState::Leading, Some(3)), down(2)]))
            .unwrap();
        let up = &json[0];
        let mut keys: Vec<&str> = up.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "accepted_epoch",
                "address",
                "applied_zxid",
                "current_epoch",
                "error",
                "last_zxid",
                "leader_address",
                "leader_sid",
                "namespace_digest",
                "observer",
                "round",
                "sid",
                "state"
            ]
        );
        assert_eq!(up["state"], "LEADING");
        assert_eq!(up["last_zxid"], (2u64 << 32) | 0x1f);
        assert_eq!(up["leader_address"], "127.0.0.1:9003");
        assert!(up["error"].is_null());
        let gone = &json[1];
        assert_eq!(gone.as_object().unwrap().len(), keys.len());
        assert_eq!(gone["state"], "down");
        assert!(gone["sid"].is_null() && gone["last_zxid"].is_null());
        assert!(
            gone["error"]
                .as_str()
                .unwrap()
                .contains("connection refused")
        );
    }
}
