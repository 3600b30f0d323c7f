//! The page shell every status page shares (title, navigation, a small
//! inline style sheet), the error page, and how values are shown: bytes,
//! times, link targets. Pure: strings in, markup out.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Bytes in binary units, e.g. `1.5 GiB`, as every page shows them.
pub(crate) use dfs_proto::byte_size::binary as bytes;

/// A few rules for readable tables; the pages work without them.
const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#eee}td.num{text-align:right}\
.banner{padding:.6em 1em;margin:1em 0;border:1px solid}\
.warn{background:#fff3cd;border-color:#e0b000}.bad{background:#f8d7da;border-color:#c00}\
.ok{background:#d4edda;border-color:#2a2}nav a{margin-right:1em}";

/// A whole page: `title` in the head and as its heading, then `body`.
pub(crate) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav { a href="/" { "Overview" } a href="/explorer?path=/" { "Browse the file system" } }
                h1 { (title) }
                (body)
            }
        }
    }
}

/// What an error page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorView {
    /// The HTTP status code it is sent with.
    pub(crate) status: u16,
    /// A short heading ("Not found").
    pub(crate) title: String,
    /// The full sentence (the namenode's error message).
    pub(crate) message: String,
    /// Where to go instead (the leader's page), as (href, text).
    pub(crate) link: Option<(String, String)>,
}

/// An error as a readable page.
pub(crate) fn error_page(view: &ErrorView) -> Markup {
    page(
        &format!("{} {}", view.status, view.title),
        html! {
            p.banner.bad { (view.message) }
            @if let Some((href, text)) = &view.link {
                p { a href=(href) { (text) } }
            }
        },
    )
}

/// Milliseconds since the Unix epoch as a UTC date and time.
pub(crate) fn time(ms: u64) -> String {
    format!("{} UTC", dfs_proto::wall_clock::utc_minute(ms))
}

/// Percent-encodes `raw` for a URL's path or query: everything but
/// unreserved characters and `/` (kept so paths stay readable).
pub(crate) fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
