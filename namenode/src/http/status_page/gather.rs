//! Fills the page views from the namenode's state: the role watch, the
//! namespace and block manager (namespace lock before blocks, as everywhere),
//! each ensemble member's `GetPeerStatus`, and, for the file browser, the
//! in-process `ClientProtocol` service, so a listing passes the same checks
//! as any client's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::PoisonError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dfs_proto::ids::{ServerId, Zxid};
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_server::ClientProtocol;
use futures::future::join_all;
use tonic::{Request, Status};

use super::file_browser::{BlockView, EntryView, FileView, ListingView, ReplicaView};
use super::layout::time;
use super::overview::{
    DatanodeView, HealthView, JournalView, Leader, MemberStatus, MemberView, NodeView,
    OverviewView, RackView, Space,
};
use crate::datanodes::Liveness;
use crate::http::HttpContext;
use crate::journal;
use crate::namespace::mode_string;
use crate::quorum::election::PeerState;
use crate::quorum::transport;
use crate::txn::BlockRecord;

/// How long the overview waits for each member's status.
const PEER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Entries a listing page shows.
pub(super) const LISTING_LIMIT: u32 = 1000;

/// The overview, as this namenode sees things now.
pub(super) async fn overview(ctx: &HttpContext) -> OverviewView {
    let role = ctx.role.borrow().clone();
    let quorum = &ctx.settings.quorum;
    let members = join_all(quorum.members.iter().map(|(sid, address)| async move {
        (
            *sid,
            *address,
            transport::peer_status(*address, PEER_TIMEOUT).await,
        )
    }))
    .await;
    let mine = members
        .iter()
        .find(|(sid, _, _)| *sid == quorum.me)
        .and_then(|(_, _, status)| status.as_ref().ok());
    let ensemble: Vec<MemberView> = members
        .iter()
        .map(|(sid, address, status)| member(*sid, *address, status, quorum.me))
        .collect();
    let leader = leader(&role, mine, &ensemble, quorum.me);
    let (counts, health) = block_health(ctx);
    let racks = racks(ctx);
    let capacity = racks
        .iter()
        .flat_map(|r| &r.datanodes)
        .filter(|d| d.state == "live")
        .fold(Space::default(), |sum, d| Space {
            capacity: sum.capacity + d.space.capacity,
            used: sum.used + d.space.used,
            remaining: sum.remaining + d.space.remaining,
        });
    let last_zxid = mine.map_or("unknown".to_owned(), |s| Zxid(s.last_zxid).to_string());
    let checkpoint = journal::newest_checkpoint(&ctx.settings.data_dir.join("journal"))
        .map(|(zxid, at)| (zxid.to_string(), time(ms_since_epoch(at))));
    OverviewView {
        node: NodeView {
            sid: quorum.me.0,
            rpc_address: quorum
                .members
                .get(&quorum.me)
                .map_or_else(|| ctx.settings.listen.to_string(), ToString::to_string),
            http_address: ctx.http_address.to_string(),
            role: state_name(role.state).to_owned(),
            serving: role.serves(Instant::now()),
            epoch: u64::from(role.epoch.0),
            last_zxid: last_zxid.clone(),
            applied_zxid: mine.map_or("unknown".to_owned(), |s| Zxid(s.applied_zxid).to_string()),
            started: time(ms_since_epoch(ctx.started)),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        leader,
        ensemble,
        files: counts.files,
        directories: counts.directories,
        blocks: counts.blocks,
        capacity,
        racks,
        health,
        journal: JournalView {
            last_zxid,
            checkpoint,
        },
    }
}

fn member(
    sid: ServerId,
    address: SocketAddr,
    status: &Result<v1::PeerStatus, String>,
    me: ServerId,
) -> MemberView {
    MemberView {
        sid: sid.0,
        rpc_address: address.to_string(),
        url: status.as_ref().ok().and_then(|s| http_url(&s.http_address)),
        is_me: sid == me,
        status: status
            .as_ref()
            .map(|s| MemberStatus {
                state: wire_state_name(s.state()).to_owned(),
                observer: s.observer,
                epoch: s.current_epoch,
                last_zxid: Zxid(s.last_zxid).to_string(),
                applied_zxid: Zxid(s.applied_zxid).to_string(),
                leader_sid: s.leader_sid,
            })
            .map_err(Clone::clone),
    }
}

/// The leader: this node's own peer status names it (by server id); its
/// URL comes from the leader's own answer, which carries its HTTP address.
fn leader(
    role: &crate::quorum::RoleStatus,
    mine: Option<&v1::PeerStatus>,
    ensemble: &[MemberView],
    me: ServerId,
) -> Leader {
    if role.state == PeerState::Leading {
        return Leader::Me;
    }
    let Some(sid) = mine.map(|s| s.leader_sid).filter(|sid| *sid != 0) else {
        return Leader::Unknown;
    };
    if sid == me.0 {
        return Leader::Me;
    }
    let member = ensemble.iter().find(|m| m.sid == sid);
    Leader::Other {
        sid,
        rpc_address: member.map_or_else(String::new, |m| m.rpc_address.clone()),
        url: member.and_then(|m| m.url.clone()),
    }
}

/// `http://host:port/` for an address a peer told, if it told one.
fn http_url(address: &str) -> Option<String> {
    let address: SocketAddr = address.parse().ok()?;
    Some(format!("http://{address}/"))
}

fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Looking => "LOOKING",
        PeerState::Following => "FOLLOWING",
        PeerState::Leading => "LEADING",
        PeerState::Observing => "OBSERVING",
    }
}

fn wire_state_name(state: v1::PeerState) -> &'static str {
    match state {
        v1::PeerState::Following => "FOLLOWING",
        v1::PeerState::Leading => "LEADING",
        v1::PeerState::Observing => "OBSERVING",
        _ => "LOOKING",
    }
}

/// Namespace counts and block health: every file's blocks against the
/// block map. Holds the namespace's read lock, then the block manager's.
fn block_health(ctx: &HttpContext) -> (crate::namespace::Census, HealthView) {
    ctx.namesystem.read(|ns| {
        let blocks = ctx.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let files = ns.files().map(|f| {
            let shape = FileShape {
                replication: f.replication,
                under_construction: f.under_construction,
                blocks: f.blocks,
            };
            (shape, move || f.path())
        });
        let health = tally(files, |b| {
            (
                blocks.map.healthy_count(b.id, b.gen_stamp),
                blocks.map.corrupt_count(b.id),
            )
        });
        (ns.census(|_, _| {}), health)
    })
}

/// What block health needs of a file.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileShape<'a> {
    pub(super) replication: u16,
    pub(super) under_construction: bool,
    pub(super) blocks: &'a [BlockRecord],
}

/// Block health of `files` (each with a way to its path, asked only for the
/// files the banner names), given each block's healthy and corrupt replica
/// counts: a complete block without a healthy replica is missing, one with
/// fewer than its file wants is under-replicated, one with a replica known
/// corrupt counts as corrupt; the last block of a file being written is the
/// pipeline's business, not counted (as `/metrics` counts them).
pub(super) fn tally<'a, P: FnOnce() -> Option<String>>(
    files: impl Iterator<Item = (FileShape<'a>, P)>,
    replicas: impl Fn(&BlockRecord) -> (usize, usize),
) -> HealthView {
    let mut health = HealthView::default();
    for (file, path) in files {
        let mut has_missing = false;
        let count = file.blocks.len();
        for (index, block) in file.blocks.iter().enumerate() {
            if file.under_construction && index + 1 == count {
                continue;
            }
            let (healthy, corrupt) = replicas(block);
            if corrupt > 0 {
                health.corrupt += 1;
            }
            if healthy == 0 {
                health.missing += 1;
                has_missing = true;
            } else if healthy < usize::from(file.replication) {
                health.under_replicated += 1;
            }
        }
        if has_missing
            && health.corrupt_files.len() < HealthView::SHOWN_FILES
            && let Some(path) = path()
        {
            health.corrupt_files.push(path);
        }
    }
    health.corrupt_files.sort();
    health
}

/// Every registered datanode, grouped by rack.
fn racks(ctx: &HttpContext) -> Vec<RackView> {
    let now = Instant::now();
    let blocks = ctx.blocks.lock().unwrap_or_else(PoisonError::into_inner);
    let registry = &blocks.datanodes;
    let mut racks: BTreeMap<String, Vec<DatanodeView>> = BTreeMap::new();
    for node in registry.all() {
        racks
            .entry(node.rack.to_string())
            .or_default()
            .push(DatanodeView {
                id: node.id.to_string(),
                address: node.transfer_addr.to_string(),
                url: node.http_addr.map(|a| format!("http://{a}/")),
                state: match registry.liveness(node, now) {
                    Liveness::Live => "live",
                    Liveness::Stale => "stale",
                    Liveness::Dead => "dead",
                },
                last_contact_secs: now.saturating_duration_since(node.last_contact).as_secs(),
                space: Space {
                    capacity: node.storage.capacity,
                    used: node.storage.used,
                    remaining: node.storage.remaining,
                },
                blocks: blocks.map.replicas_on(&node.id) as u64,
            });
    }
    racks
        .into_iter()
        .map(|(rack, mut datanodes)| {
            datanodes.sort_by(|a, b| a.address.cmp(&b.address));
            RackView { rack, datanodes }
        })
        .collect()
}

fn ms_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the browser shows at `path`: a listing or a file's page.
#[derive(Debug)]
pub(super) enum Browsed {
    Directory(ListingView),
    File(FileView),
}

/// Reads `path` as `user` through ClientProtocol: stat, then a listing (of
/// the entries after `start_after`) or the block locations, each with the
/// checks a client's call gets.
///
/// # Errors
/// The service's status (not found, permission denied, bad path).
pub(super) async fn browse(
    ctx: &HttpContext,
    path: &str,
    user: &str,
    start_after: &str,
) -> Result<Browsed, Status> {
    let caller = || {
        Some(v1::CallerContext {
            user: user.to_owned(),
            ..Default::default()
        })
    };
    let status = ctx
        .client
        .get_file_info(Request::new(v1::GetFileInfoRequest {
            caller: caller(),
            path: path.to_owned(),
        }))
        .await?
        .into_inner()
        .status
        .ok_or_else(|| Status::not_found(format!("File {path} does not exist.")))?;
    let me = entry(status);
    if me.is_dir {
        let listing = ctx
            .client
            .get_listing(Request::new(v1::GetListingRequest {
                caller: caller(),
                path: me.path.clone(),
                start_after: start_after.to_owned(),
                limit: LISTING_LIMIT,
            }))
            .await?
            .into_inner();
        return Ok(Browsed::Directory(ListingView {
            path: me.path,
            user: user.to_owned(),
            entries: listing.entries.into_iter().map(entry).collect(),
            start_after: start_after.to_owned(),
            truncated: listing.has_more,
        }));
    }
    let located = ctx
        .client
        .get_block_locations(Request::new(v1::GetBlockLocationsRequest {
            caller: caller(),
            path: me.path.clone(),
            offset: 0,
            length: 0,
        }))
        .await?
        .into_inner();
    let blocks = located
        .blocks
        .into_iter()
        .map(|b| {
            let block = b.block.unwrap_or_default();
            let replica = |corrupt: bool| {
                move |l: v1::DatanodeLocation| ReplicaView {
                    datanode_id: l.datanode_id,
                    address: l.transfer_address,
                    rack: l.rack,
                    corrupt,
                }
            };
            let mut replicas: Vec<ReplicaView> =
                b.locations.into_iter().map(replica(false)).collect();
            // With no healthy replica the corrupt ones are handed out as
            // locations too: list each replica once.
            for corrupt in b.corrupt_locations.into_iter().map(replica(true)) {
                match replicas
                    .iter_mut()
                    .find(|r| r.datanode_id == corrupt.datanode_id)
                {
                    Some(listed) => listed.corrupt = true,
                    None => replicas.push(corrupt),
                }
            }
            BlockView {
                id: block.block_id,
                gen_stamp: block.gen_stamp,
                offset: b.offset,
                length: block.length,
                replicas,
            }
        })
        .collect();
    Ok(Browsed::File(FileView {
        user: user.to_owned(),
        file: me,
        under_construction: located.under_construction,
        blocks,
    }))
}

fn entry(s: v1::FileStatus) -> EntryView {
    let is_dir = s.file_type() == v1::FileType::Directory;
    let name = match s.path.rsplit('/').next() {
        Some("") | None => "/".to_owned(),
        Some(name) => name.to_owned(),
    };
    EntryView {
        permission: mode_string(is_dir, u16::try_from(s.permission).unwrap_or(0)),
        name,
        path: s.path,
        is_dir,
        owner: s.owner,
        group: s.group,
        length: s.length,
        mtime_ms: s.modification_time_ms,
        replication: u16::try_from(s.replication).unwrap_or(u16::MAX),
        block_size: s.block_size,
    }
}

/// The leader's status page, asked of the leader itself (its peer status
/// carries its HTTP address); `None` while no leader is known or it does
/// not answer.
pub(super) async fn leader_url(ctx: &HttpContext) -> Option<(String, String)> {
    let leader = ctx.role.borrow().leader?;
    let status = transport::peer_status(leader, PEER_TIMEOUT).await.ok()?;
    Some((leader.to_string(), http_url(&status.http_address)?))
}
