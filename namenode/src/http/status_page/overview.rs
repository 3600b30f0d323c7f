//! The namenode overview (HDFS's dfshealth page): this node and its quorum,
//! the namespace, capacity, datanodes by rack, block health and the journal.
//! [`OverviewView`] holds what the page shows; [`render`] is pure.

use maud::{Markup, html};

use super::layout::{self, bytes, encode};

/// Everything the overview shows, gathered from the namenode's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverviewView {
    /// This namenode.
    pub(crate) node: NodeView,
    /// Who leads, as this namenode knows it.
    pub(crate) leader: Leader,
    /// Every member of the ensemble, this one included, in server id order.
    pub(crate) ensemble: Vec<MemberView>,
    /// Files, directories and blocks.
    pub(crate) files: u64,
    pub(crate) directories: u64,
    pub(crate) blocks: u64,
    /// Summed over live datanodes.
    pub(crate) capacity: Space,
    /// Datanodes grouped by rack, racks in name order.
    pub(crate) racks: Vec<RackView>,
    /// Block health from the block map.
    pub(crate) health: HealthView,
    /// The journal's last txn and newest checkpoint.
    pub(crate) journal: JournalView,
}

/// This namenode's identity and place in the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeView {
    pub(crate) sid: u64,
    pub(crate) rpc_address: String,
    pub(crate) http_address: String,
    /// LOOKING, FOLLOWING, LEADING or OBSERVING.
    pub(crate) role: String,
    /// Whether it serves clients now (leads with a quorum and a lease).
    pub(crate) serving: bool,
    pub(crate) epoch: u64,
    /// Zxids in hex, as `dfs admin ha-status` shows them.
    pub(crate) last_zxid: String,
    pub(crate) applied_zxid: String,
    /// Start time, already formatted.
    pub(crate) started: String,
    pub(crate) version: String,
}

/// Who leads the ensemble, as this namenode sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leader {
    /// This namenode leads.
    Me,
    /// Another member leads; `url` is its status page when it told us its
    /// HTTP address.
    Other {
        sid: u64,
        rpc_address: String,
        url: Option<String>,
    },
    /// No leader is known (an election is running).
    Unknown,
}

/// One ensemble member as it answered `GetPeerStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub(crate) sid: u64,
    pub(crate) rpc_address: String,
    /// Its status page, when it told us its HTTP address.
    pub(crate) url: Option<String>,
    pub(crate) is_me: bool,
    /// Its answer, or why there is none.
    pub(crate) status: Result<MemberStatus, String>,
}

/// A member's quorum state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberStatus {
    pub(crate) state: String,
    pub(crate) observer: bool,
    pub(crate) epoch: u64,
    pub(crate) last_zxid: String,
    pub(crate) applied_zxid: String,
    /// The leader it follows (0 = none).
    pub(crate) leader_sid: u64,
}

/// Capacity, used and remaining bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Space {
    pub(crate) capacity: u64,
    pub(crate) used: u64,
    pub(crate) remaining: u64,
}

/// One rack and its datanodes, in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RackView {
    pub(crate) rack: String,
    pub(crate) datanodes: Vec<DatanodeView>,
}

/// One datanode as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatanodeView {
    pub(crate) id: String,
    /// Its transfer address (host:port).
    pub(crate) address: String,
    /// Its status page, when its HTTP address is known.
    pub(crate) url: Option<String>,
    /// live, stale or dead.
    pub(crate) state: &'static str,
    /// Seconds since its last heartbeat.
    pub(crate) last_contact_secs: u64,
    pub(crate) space: Space,
    /// Replicas it is known to hold.
    pub(crate) blocks: u64,
}

/// Block health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HealthView {
    /// Complete blocks with fewer healthy replicas than wanted (but some).
    pub(crate) under_replicated: u64,
    /// Blocks with at least one replica known corrupt.
    pub(crate) corrupt: u64,
    /// Complete blocks with no healthy replica.
    pub(crate) missing: u64,
    /// Files with a missing block (at most [`HealthView::SHOWN_FILES`]).
    pub(crate) corrupt_files: Vec<String>,
}

impl HealthView {
    /// Most corrupt files the banner names.
    pub(crate) const SHOWN_FILES: usize = 100;
}

/// The journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalView {
    pub(crate) last_zxid: String,
    /// The newest checkpoint's zxid and time, if any.
    pub(crate) checkpoint: Option<(String, String)>,
}

/// The overview page.
pub(crate) fn render(view: &OverviewView) -> Markup {
    let node = &view.node;
    let title = format!(
        "Namenode {} ({})",
        node.rpc_address,
        node.role.to_lowercase()
    );
    layout::page(
        &title,
        html! {
            (leader_banner(&view.leader, node.serving))
            (health_banner(&view.health))
            h2 { "This namenode" }
            table {
                tr { th { "Server id" } td { (node.sid) } }
                tr { th { "RPC address" } td { (node.rpc_address) } }
                tr { th { "HTTP address" } td { (node.http_address) } }
                tr { th { "Role" } td { (node.role) @if node.serving { " (serving clients)" } } }
                tr { th { "Epoch" } td { (node.epoch) } }
                tr { th { "Last zxid" } td { (node.last_zxid) } }
                tr { th { "Applied zxid" } td { (node.applied_zxid) } }
                tr { th { "Started" } td { (node.started) } }
                tr { th { "Version" } td { (node.version) } }
            }
            h2 { "Ensemble" }
            (ensemble(&view.ensemble))
            h2 { "Summary" }
            table {
                tr { th { "Files" } td.num { (view.files) } }
                tr { th { "Directories" } td.num { (view.directories) } }
                tr { th { "Blocks" } td.num { (view.blocks) } }
                tr { th { "Configured capacity" } td.num { (bytes(view.capacity.capacity)) } }
                tr { th { "DFS used" } td.num { (bytes(view.capacity.used)) } }
                tr { th { "DFS remaining" } td.num { (bytes(view.capacity.remaining)) } }
                tr { th { "Live datanodes" } td.num { (count_state(&view.racks, "live")) } }
                tr { th { "Stale datanodes" } td.num { (count_state(&view.racks, "stale")) } }
                tr { th { "Dead datanodes" } td.num { (count_state(&view.racks, "dead")) } }
                tr { th { "Under-replicated blocks" } td.num { (view.health.under_replicated) } }
                tr { th { "Blocks with corrupt replicas" } td.num { (view.health.corrupt) } }
                tr { th { "Missing blocks" } td.num { (view.health.missing) } }
            }
            h2 { "Datanodes" }
            (datanodes(&view.racks))
            h2 { "Journal" }
            table {
                tr { th { "Last txn" } td { (view.journal.last_zxid) } }
                tr {
                    th { "Last checkpoint" }
                    td {
                        @match &view.journal.checkpoint {
                            Some((zxid, at)) => { (zxid) " at " (at) }
                            None => "none yet",
                        }
                    }
                }
            }
        },
    )
}

fn leader_banner(leader: &Leader, serving: bool) -> Markup {
    html! {
        @match leader {
            Leader::Me if serving => p.banner.ok { "This namenode is the leader." },
            Leader::Me => p.banner.warn { "This namenode leads but has no quorum yet: it does not serve clients." },
            Leader::Other { sid, rpc_address, url } => p.banner.warn {
                "This namenode follows. The leader is namenode " (sid) " at " (rpc_address) ". "
                @if let Some(url) = url { a href=(url) { "Go to the leader's page" } }
            },
            Leader::Unknown => p.banner.warn { "No leader is known: an election is running." },
        }
    }
}

fn health_banner(health: &HealthView) -> Markup {
    html! {
        @if health.missing > 0 {
            div.banner.bad {
                p { "There are " (health.missing) " missing blocks. The following files may be corrupted:" }
                ul { @for file in &health.corrupt_files {
                    li { a href={ "/explorer?path=" (encode(file)) } { (file) } }
                } }
            }
        }
    }
}

fn ensemble(members: &[MemberView]) -> Markup {
    html! {
        table {
            tr { th { "Server id" } th { "RPC address" } th { "State" } th { "Epoch" } th { "Last zxid" } th { "Applied zxid" } th { "Follows" } }
            @for m in members {
                tr {
                    td { (m.sid) @if m.is_me { " (this node)" } }
                    td { @match &m.url { Some(url) => a href=(url) { (m.rpc_address) }, None => (m.rpc_address) } }
                    @match &m.status {
                        Ok(s) => {
                            td { (s.state) @if s.observer { " (observer)" } }
                            td.num { (s.epoch) }
                            td { (s.last_zxid) }
                            td { (s.applied_zxid) }
                            td { @if s.leader_sid == 0 { "-" } @else { (s.leader_sid) } }
                        }
                        Err(reason) => td colspan="5" { "no answer: " (reason) },
                    }
                }
            }
        }
    }
}

fn datanodes(racks: &[RackView]) -> Markup {
    html! {
        @if racks.is_empty() { p { "No datanode has registered." } }
        @for rack in racks {
            h3 { "Rack " (rack.rack) }
            table {
                tr { th { "Address" } th { "Id" } th { "State" } th { "Last contact" } th { "Capacity" } th { "Used" } th { "Remaining" } th { "Blocks" } }
                @for d in &rack.datanodes {
                    tr {
                        td { @match &d.url { Some(url) => a href=(url) { (d.address) }, None => (d.address) } }
                        td { (d.id) }
                        td { (d.state) }
                        td.num { (d.last_contact_secs) " s ago" }
                        td.num { (bytes(d.space.capacity)) }
                        td.num { (bytes(d.space.used)) }
                        td.num { (bytes(d.space.remaining)) }
                        td.num { (d.blocks) }
                    }
                }
            }
        }
    }
}

fn count_state(racks: &[RackView], state: &str) -> usize {
    racks
        .iter()
        .flat_map(|r| &r.datanodes)
        .filter(|d| d.state == state)
        .count()
}
