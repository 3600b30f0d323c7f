//! "Browse the file system": a directory listing with HDFS's columns, and a
//! file's page with its blocks, their replicas and racks, and a download
//! link through WebHDFS. Views are filled by `gather` as the asking user
//! (`user.name`), with the same permission checks as every read; rendering
//! here is pure, and every link target is percent-encoded.

use maud::{Markup, html};

use super::layout::{self, bytes, encode, time};

/// One directory entry, or the file itself for a file's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryView {
    /// Absolute path.
    pub(crate) path: String,
    /// The last path component (`/` for the root).
    pub(crate) name: String,
    pub(crate) is_dir: bool,
    /// `drwxr-xr-x`-style.
    pub(crate) permission: String,
    pub(crate) owner: String,
    pub(crate) group: String,
    pub(crate) length: u64,
    pub(crate) mtime_ms: u64,
    pub(crate) replication: u16,
    pub(crate) block_size: u64,
}

/// A directory's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListingView {
    /// The directory's absolute path.
    pub(crate) path: String,
    /// Who is asking (kept in every link).
    pub(crate) user: String,
    /// In name order.
    pub(crate) entries: Vec<EntryView>,
    /// The entry this page starts after (`""` = the first page).
    pub(crate) start_after: String,
    /// Whether the directory holds more than the page shows.
    pub(crate) truncated: bool,
}

/// A file's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileView {
    pub(crate) user: String,
    pub(crate) file: EntryView,
    pub(crate) under_construction: bool,
    /// In file order.
    pub(crate) blocks: Vec<BlockView>,
}

/// One block and where its replicas are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockView {
    pub(crate) id: u64,
    pub(crate) gen_stamp: u64,
    /// Offset of its first byte in the file.
    pub(crate) offset: u64,
    pub(crate) length: u64,
    /// Healthy replicas first, in reader order, then corrupt ones.
    pub(crate) replicas: Vec<ReplicaView>,
}

/// One replica of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaView {
    pub(crate) datanode_id: String,
    /// Its datanode's transfer address.
    pub(crate) address: String,
    pub(crate) rack: String,
    pub(crate) corrupt: bool,
}

/// Link to the browser page of `path` as `user`.
pub(crate) fn browse_href(path: &str, user: &str) -> String {
    format!("/explorer?path={}&user.name={}", encode(path), encode(user))
}

/// Link to download `path` through WebHDFS as `user`.
pub(crate) fn download_href(path: &str, user: &str) -> String {
    format!(
        "/webhdfs/v1{}?op=OPEN&user.name={}",
        encode(path),
        encode(user)
    )
}

/// The ancestors of `path` as links, then its own name.
fn breadcrumbs(path: &str, user: &str) -> Markup {
    let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    html! {
        p.crumbs {
            a href=(browse_href("/", user)) { "/" }
            @for (i, name) in names.iter().enumerate() {
                @let prefix = format!("/{}", names.get(..=i).unwrap_or_default().join("/"));
                @if i > 0 { " / " }
                a href=(browse_href(&prefix, user)) { (name) }
            }
        }
    }
}

/// A directory listing.
pub(crate) fn render_listing(view: &ListingView) -> Markup {
    layout::page(
        &format!("Browse {}", view.path),
        html! {
            (breadcrumbs(&view.path, &view.user))
            p { "Listed as user " strong { (view.user) } " (add " code { "user.name=NAME" } " to the URL to list as someone else)." }
            @if view.entries.is_empty() {
                p { "The directory is empty." }
            } @else {
                table {
                    tr { th { "Permission" } th { "Owner" } th { "Group" } th { "Size" } th { "Last modified" } th { "Replication" } th { "Block size" } th { "Name" } }
                    @for e in &view.entries {
                        tr {
                            td { code { (e.permission) } }
                            td { (e.owner) }
                            td { (e.group) }
                            td.num { @if e.is_dir { "-" } @else { (bytes(e.length)) } }
                            td { (time(e.mtime_ms)) }
                            td.num { @if e.is_dir { "-" } @else { (e.replication) } }
                            td.num { @if e.is_dir { "-" } @else { (bytes(e.block_size)) } }
                            td { a href=(browse_href(&e.path, &view.user)) { (e.name) @if e.is_dir { "/" } } }
                        }
                    }
                }
            }
            @if let (true, Some(last)) = (view.truncated, view.entries.last()) {
                p { a href={ (browse_href(&view.path, &view.user)) "&start_after=" (encode(&last.name)) } { "Next page" } }
            }
            @if !view.start_after.is_empty() { p { a href=(browse_href(&view.path, &view.user)) { "First page" } } }
        },
    )
}

/// A file's blocks and replicas.
pub(crate) fn render_file(view: &FileView) -> Markup {
    let f = &view.file;
    layout::page(
        &format!("File {}", f.path),
        html! {
            (breadcrumbs(&f.path, &view.user))
            p { a href=(download_href(&f.path, &view.user)) { "Download" } " (through WebHDFS)" }
            table {
                tr { th { "Size" } td { (bytes(f.length)) " (" (f.length) " bytes)" } }
                tr { th { "Permission" } td { code { (f.permission) } } }
                tr { th { "Owner" } td { (f.owner) } }
                tr { th { "Group" } td { (f.group) } }
                tr { th { "Last modified" } td { (time(f.mtime_ms)) } }
                tr { th { "Replication" } td { (f.replication) } }
                tr { th { "Block size" } td { (bytes(f.block_size)) } }
                @if view.under_construction { tr { th { "State" } td { "under construction" } } }
            }
            h2 { "Blocks" }
            @if view.blocks.is_empty() { p { "The file has no blocks." } }
            @for b in &view.blocks {
                h3 { "blk_" (b.id) "_" (b.gen_stamp) }
                p { "Block id " (b.id) ", generation stamp " (b.gen_stamp) ", bytes " (b.offset) " to " (b.offset + b.length) " (" (bytes(b.length)) ")" }
                @if b.replicas.is_empty() {
                    p.banner.bad { "No datanode reports a replica of this block." }
                } @else {
                    table {
                        tr { th { "Datanode" } th { "Id" } th { "Rack" } th { "Replica" } }
                        @for r in &b.replicas {
                            tr {
                                td { (r.address) }
                                td { (r.datanode_id) }
                                td { (r.rack) }
                                td { @if r.corrupt { "corrupt" } @else { "healthy" } }
                            }
                        }
                    }
                }
            }
        },
    )
}
