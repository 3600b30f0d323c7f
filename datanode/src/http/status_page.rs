//! The datanode's status page (`GET /`): who it is, which rack the
//! namenodes put it on, which namenode it obeys, its volume, replicas by
//! state, its recent pipelines and the block scanner. Server-rendered HTML,
//! readable without JavaScript: [`gather`] fills a [`PageView`] from the
//! datanode's state, [`render`] is a pure function of it.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use dfs_proto::byte_size::binary as bytes;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::HttpContext;
use crate::metrics::FoundBy;
use crate::namenode_actor;

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageView {
    pub(crate) id: String,
    pub(crate) transfer_address: String,
    pub(crate) http_address: String,
    /// As the namenodes that registered it say (distinct values, joined).
    pub(crate) rack: String,
    pub(crate) started: String,
    pub(crate) version: String,
    pub(crate) namenodes: Vec<NamenodeView>,
    pub(crate) volume: VolumeView,
    pub(crate) replicas: ReplicasView,
    /// Pipelines, reads and copies running now.
    pub(crate) active_transfers: u32,
    /// Newest first.
    pub(crate) pipelines: Vec<PipelineView>,
    /// `None` when the scanner is disabled.
    pub(crate) scanner: Option<ScannerView>,
}

/// One namenode as this datanode's actor for it last heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamenodeView {
    pub(crate) address: String,
    pub(crate) registered: bool,
    pub(crate) epoch: Option<u64>,
    /// It leads and serves, at the newest epoch seen: its commands are carried out.
    pub(crate) obeyed: bool,
    pub(crate) last_heartbeat: Option<String>,
    pub(crate) error: Option<String>,
}

/// The data directory and its file system's space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeView {
    pub(crate) data_dir: String,
    pub(crate) capacity: u64,
    pub(crate) used: u64,
    pub(crate) remaining: u64,
}

/// Replicas by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplicasView {
    pub(crate) finalized: u64,
    pub(crate) rbw_writing: u64,
    pub(crate) rbw_abandoned: u64,
    /// Found unusable at start-up and moved aside.
    pub(crate) corrupt_at_start: usize,
}

/// One recent pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PipelineView {
    /// `blk_ID_GS`.
    pub(crate) block: String,
    pub(crate) recovery: bool,
    pub(crate) client: String,
    /// The nodes after this one.
    pub(crate) downstream: Vec<String>,
    pub(crate) bytes: u64,
    pub(crate) outcome: String,
    pub(crate) ended: String,
}

/// The block scanner's settings and progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannerView {
    pub(crate) period_secs: u64,
    pub(crate) bytes_per_second: u64,
    pub(crate) tracked: u64,
    pub(crate) verified: u64,
    pub(crate) verified_bytes: u64,
    pub(crate) corrupt: u64,
    pub(crate) last_verified: Option<String>,
}

/// `GET /`.
pub(crate) async fn page(State(ctx): State<HttpContext>) -> Markup {
    render(&gather(&ctx))
}

/// The page's view of the datanode now.
pub(crate) fn gather(ctx: &HttpContext) -> PageView {
    let states = ctx.namenodes.all();
    let newest = states.iter().filter_map(|(_, s)| s.epoch).max();
    let mut racks: Vec<String> = states.iter().filter_map(|(_, s)| s.rack.clone()).collect();
    racks.sort();
    racks.dedup();
    let space = namenode_actor::storage_report(&ctx.config.data_dir, &ctx.dp.store);
    let counts = ctx.dp.store.replica_counts();
    let abandoned = ctx.dp.store.abandoned_rbw().len();
    let events = &ctx.dp.events;
    PageView {
        id: ctx.id.clone(),
        transfer_address: ctx.transfer_addr.to_string(),
        http_address: ctx.http_address.to_string(),
        rack: if racks.is_empty() {
            "not registered yet".to_owned()
        } else {
            racks.join(", ")
        },
        started: time(ms_since_epoch(ctx.started)),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        namenodes: states
            .into_iter()
            .map(|(address, s)| NamenodeView {
                address: address.to_string(),
                registered: s.registered,
                epoch: s.epoch,
                obeyed: s.active && s.current && s.epoch == newest,
                last_heartbeat: s.last_heartbeat_ms.map(time),
                error: s.error,
            })
            .collect(),
        volume: VolumeView {
            data_dir: ctx.config.data_dir.display().to_string(),
            capacity: space.capacity,
            used: space.used,
            remaining: space.remaining,
        },
        replicas: ReplicasView {
            finalized: counts.finalized,
            rbw_writing: counts.rbw.saturating_sub(abandoned as u64),
            rbw_abandoned: abandoned as u64,
            corrupt_at_start: ctx.corrupt_at_start,
        },
        active_transfers: ctx.dp.active.load(Ordering::Relaxed),
        pipelines: ctx
            .dp
            .pipelines
            .newest_first()
            .into_iter()
            .map(|p| PipelineView {
                block: format!("{}_{}", p.block, p.gen_stamp.0),
                recovery: p.recovery,
                client: p.client,
                downstream: p.downstream,
                bytes: p.bytes,
                outcome: p.outcome,
                ended: time(p.ended_ms),
            })
            .collect(),
        scanner: ctx.scanner.as_ref().map(|(settings, status)| {
            let last = status.last_verified_ms.load(Ordering::Relaxed);
            ScannerView {
                period_secs: settings.period.as_secs(),
                bytes_per_second: settings.bytes_per_second.get(),
                tracked: status.tracked.load(Ordering::Relaxed),
                verified: events.scanned_replicas.get(),
                verified_bytes: events.scanned_bytes.get(),
                corrupt: events
                    .checksum_errors
                    .get_or_create(&FoundBy::SCANNER)
                    .get(),
                last_verified: (last != 0).then(|| time(last)),
            }
        }),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#eee}td.num{text-align:right}";

/// The page.
pub(crate) fn render(view: &PageView) -> Markup {
    let title = format!("Datanode {}", view.id);
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(STYLE)) } }
            body {
                h1 { (title) }
                table {
                    tr { th { "Datanode id" } td { (view.id) } }
                    tr { th { "Rack" } td { (view.rack) } }
                    tr { th { "Transfer address" } td { (view.transfer_address) } }
                    tr { th { "HTTP address" } td { (view.http_address) } }
                    tr { th { "Started" } td { (view.started) } }
                    tr { th { "Version" } td { (view.version) } }
                    tr { th { "Active transfers" } td { (view.active_transfers) } }
                }
                h2 { "Namenodes" }
                table {
                    tr { th { "Address" } th { "Registered" } th { "Epoch" } th { "Obeyed" } th { "Last heartbeat" } th { "Last error" } }
                    @for n in &view.namenodes {
                        tr {
                            td { (n.address) }
                            td { @if n.registered { "yes" } @else { "no" } }
                            td.num { @if let Some(e) = n.epoch { (e) } @else { "-" } }
                            td { @if n.obeyed { strong { "yes (active)" } } @else { "no" } }
                            td { (n.last_heartbeat.as_deref().unwrap_or("never")) }
                            td { (n.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
                h2 { "Volume" }
                table {
                    tr { th { "Data directory" } th { "Capacity" } th { "Used" } th { "Remaining" } }
                    tr {
                        td { (view.volume.data_dir) }
                        td.num { (bytes(view.volume.capacity)) }
                        td.num { (bytes(view.volume.used)) }
                        td.num { (bytes(view.volume.remaining)) }
                    }
                }
                h2 { "Replicas" }
                table {
                    tr { th { "Finalized" } td.num { (view.replicas.finalized) } }
                    tr { th { "Being written (rbw)" } td.num { (view.replicas.rbw_writing) } }
                    tr { th { "Left for recovery (rbw, no writer)" } td.num { (view.replicas.rbw_abandoned) } }
                    tr { th { "Corrupt at start-up" } td.num { (view.replicas.corrupt_at_start) } }
                }
                h2 { "Recent pipelines" }
                @if view.pipelines.is_empty() { p { "None since start-up." } } @else {
                    table {
                        tr { th { "Ended" } th { "Block" } th { "Client" } th { "Downstream" } th { "Bytes" } th { "Outcome" } }
                        @for p in &view.pipelines {
                            tr {
                                td { (p.ended) }
                                td { (p.block) @if p.recovery { " (recovery)" } }
                                td { (p.client) }
                                td { @if p.downstream.is_empty() { "(last)" } @else { (p.downstream.join(", ")) } }
                                td.num { (p.bytes) }
                                td { (p.outcome) }
                            }
                        }
                    }
                }
                h2 { "Block scanner" }
                @match &view.scanner {
                    None => p { "Disabled (scan_period_ms = 0)." },
                    Some(s) => table {
                        tr { th { "Period" } td { (s.period_secs) " s" } }
                        tr { th { "Rate limit" } td { (bytes(s.bytes_per_second)) "/s" } }
                        tr { th { "Replicas scheduled" } td.num { (s.tracked) } }
                        tr { th { "Verified intact" } td.num { (s.verified) " (" (bytes(s.verified_bytes)) ")" } }
                        tr { th { "Found corrupt" } td.num { (s.corrupt) } }
                        tr { th { "Last verification" } td { (s.last_verified.as_deref().unwrap_or("none yet")) } }
                    },
                }
            }
        }
    }
}

fn time(ms: u64) -> String {
    format!("{} UTC", dfs_proto::wall_clock::utc_minute(ms))
}

fn ms_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> PageView {
        PageView {
            id: "dn-<7>".into(),
            transfer_address: "127.0.0.11:9866".into(),
            http_address: "127.0.0.11:9864".into(),
            rack: "/r1".into(),
            started: "2026-12-08 02:00 UTC".into(),
            version: "0.1.0".into(),
            namenodes: vec![
                NamenodeView {
                    address: "127.0.1.1:8020".into(),
                    registered: true,
                    epoch: Some(4),
                    obeyed: true,
                    last_heartbeat: Some("2026-12-08 02:01 UTC".into()),
                    error: None,
                },
                NamenodeView {
                    address: "127.0.1.2:8020".into(),
                    registered: false,
                    epoch: None,
                    obeyed: false,
                    last_heartbeat: None,
                    error: Some("registration failed: connection refused".into()),
                },
            ],
            volume: VolumeView {
                data_dir: "/data/dn".into(),
                capacity: 10 << 30,
                used: 3 << 20,
                remaining: 5 << 30,
            },
            replicas: ReplicasView {
                finalized: 12,
                rbw_writing: 1,
                rbw_abandoned: 2,
                corrupt_at_start: 0,
            },
            active_transfers: 1,
            pipelines: vec![PipelineView {
                block: "blk_1073741825_1001".into(),
                recovery: true,
                client: "dfs-client-1".into(),
                downstream: vec!["127.0.0.21:9866".into(), "127.0.0.22:9866".into()],
                bytes: 4096,
                outcome: "finalized".into(),
                ended: "2026-12-08 02:02 UTC".into(),
            }],
            scanner: Some(ScannerView {
                period_secs: 3600,
                bytes_per_second: 1 << 20,
                tracked: 12,
                verified: 10,
                verified_bytes: 1 << 20,
                corrupt: 1,
                last_verified: None,
            }),
        }
    }

    #[test]
    fn the_page_shows_identity_rack_and_the_namenode_it_obeys() {
        let html = render(&view()).into_string();
        assert!(
            html.contains("<title>Datanode dn-&lt;7&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("<td>/r1</td>"));
        let obeyed = html.find("yes (active)").unwrap();
        assert!(html.find("127.0.1.1:8020").unwrap() < obeyed);
        assert!(obeyed < html.find("127.0.1.2:8020").unwrap());
        assert!(html.contains("registration failed: connection refused"));
    }

    #[test]
    fn the_page_shows_volume_replicas_pipelines_and_scanner() {
        let html = render(&view()).into_string();
        assert!(html.contains("/data/dn") && html.contains("10.0 GiB") && html.contains("5.0 GiB"));
        assert!(html.contains("<td class=\"num\">12</td>"));
        assert!(html.contains("blk_1073741825_1001 (recovery)"));
        assert!(html.contains("127.0.0.21:9866, 127.0.0.22:9866"));
        assert!(html.contains("<td>finalized</td>"));
        assert!(html.contains("3600 s") && html.contains("none yet"));
    }

    #[test]
    fn a_disabled_scanner_and_no_pipelines_say_so() {
        let html = render(&PageView {
            scanner: None,
            pipelines: vec![],
            ..view()
        })
        .into_string();
        assert!(html.contains("Disabled (scan_period_ms = 0)."));
        assert!(html.contains("None since start-up."));
    }
}
