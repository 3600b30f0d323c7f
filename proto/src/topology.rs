//! Network topology: rack paths, the address→rack table, and distance.
//!
//! Racks are never declared by a node: the namenode resolves them from the
//! address a connection comes from, through a [`TopologyTable`] like
//!
//! ```toml
//! default_rack = "/default-rack"
//! [racks]
//! "127.0.1.0/24" = "/dc1/rack1"
//! "10.0.0.7" = "/dc1/rack2"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A rack's place in the network tree, like `/dc1/rack1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RackPath(String);

impl RackPath {
    /// The rack of every address the table does not match.
    pub fn default_rack() -> Self {
        RackPath("/default-rack".to_owned())
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }
}

/// Why a rack path or table entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Not of the form `/a/b`.
    #[error("invalid rack path {0:?}: expected /dc/rack with non-empty components")]
    BadRack(String),
    /// Neither an IP address nor an address/prefix-length.
    #[error("invalid address or CIDR {0:?}")]
    BadCidr(String),
}

impl FromStr for RackPath {
    type Err = TopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.starts_with('/')
            && s.len() > 1
            && s.len() <= 256
            && s[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if valid {
            Ok(RackPath(s.to_owned()))
        } else {
            Err(TopologyError::BadRack(s.to_owned()))
        }
    }
}

impl TryFrom<String> for RackPath {
    type Error = TopologyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RackPath> for String {
    fn from(r: RackPath) -> String {
        r.0
    }
}

impl fmt::Display for RackPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address block: an IP and how many leading bits of it must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` lies inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix_len,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(u128::from(net), u128::from(ip), 128, self.prefix_len)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, width: u8, prefix_len: u8) -> bool {
    let shift = width - prefix_len;
    shift >= width || (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = TopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TopologyError::BadCidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => width,
        };
        if prefix_len > width {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The namenode's address→rack table. The longest matching prefix wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TopologyFile", into = "TopologyFile")]
pub struct TopologyTable {
    default_rack: RackPath,
    entries: Vec<(Cidr, RackPath)>,
}

/// The TOML shape of a [`TopologyTable`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopologyFile {
    #[serde(default = "RackPath::default_rack")]
    default_rack: RackPath,
    #[serde(default)]
    racks: BTreeMap<String, RackPath>,
}

impl TryFrom<TopologyFile> for TopologyTable {
    type Error = TopologyError;

    fn try_from(file: TopologyFile) -> Result<Self, Self::Error> {
        let entries = file
            .racks
            .into_iter()
            .map(|(cidr, rack)| Ok((cidr.parse()?, rack)))
            .collect::<Result<Vec<_>, TopologyError>>()?;
        Ok(TopologyTable::new(file.default_rack, entries))
    }
}

impl From<TopologyTable> for TopologyFile {
    fn from(t: TopologyTable) -> Self {
        TopologyFile {
            default_rack: t.default_rack,
            racks: t
                .entries
                .into_iter()
                .map(|(cidr, rack)| (cidr.to_string(), rack))
                .collect(),
        }
    }
}

impl Default for TopologyTable {
    fn default() -> Self {
        TopologyTable::new(RackPath::default_rack(), Vec::new())
    }
}

impl TopologyTable {
    /// Builds a table from its entries.
    pub fn new(default_rack: RackPath, mut entries: Vec<(Cidr, RackPath)>) -> Self {
        // Longest prefix first, so the first match is the most specific.
        entries.sort_by(|a, b| b.0.prefix_len.cmp(&a.0.prefix_len).then(a.0.cmp(&b.0)));
        TopologyTable {
            default_rack,
            entries,
        }
    }

    /// The rack of the node at `ip`.
    pub fn resolve(&self, ip: IpAddr) -> RackPath {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.entries
            .iter()
            .find(|(cidr, _)| cidr.contains(ip))
            .map_or_else(|| self.default_rack.clone(), |(_, rack)| rack.clone())
    }
}

/// Where a node sits: its rack and its own name (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeLocation {
    /// The node's rack.
    pub rack: RackPath,
    /// The node's name within the rack.
    pub node: String,
}

/// Hops between two nodes through the tree, as HDFS counts them:
/// 0 for the same node, 2 for the same rack, 4 for racks under one parent, and so on.
pub fn distance(a: &NodeLocation, b: &NodeLocation) -> u32 {
    if a == b {
        return 0;
    }
    let a_path: Vec<&str> = a.rack.components().collect();
    let b_path: Vec<&str> = b.rack.components().collect();
    let common = a_path
        .iter()
        .zip(&b_path)
        .take_while(|(x, y)| x == y)
        .count();
    // +1 each side for the node itself below its rack.
    (a_path.len() - common + 1 + b_path.len() - common + 1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TopologyTable {
        toml_like(&[
            ("127.0.1.0/24", "/dc1/rack1"),
            ("127.0.2.0/24", "/dc1/rack2"),
            ("127.0.2.9", "/dc2/special"),
        ])
    }

    fn toml_like(rows: &[(&str, &str)]) -> TopologyTable {
        let entries = rows
            .iter()
            .map(|(c, r)| (c.parse().unwrap(), r.parse().unwrap()))
            .collect();
        TopologyTable::new(RackPath::default_rack(), entries)
    }

    fn loc(rack: &str, node: &str) -> NodeLocation {
        NodeLocation {
            rack: rack.parse().unwrap(),
            node: node.to_owned(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_unmatched_is_default() {
        let t = table();
        assert_eq!(
            t.resolve("127.0.1.5".parse().unwrap()).as_str(),
            "/dc1/rack1"
        );
        assert_eq!(
            t.resolve("127.0.2.9".parse().unwrap()).as_str(),
            "/dc2/special"
        );
        assert_eq!(
            t.resolve("127.0.2.8".parse().unwrap()).as_str(),
            "/dc1/rack2"
        );
        assert_eq!(
            t.resolve("10.1.1.1".parse().unwrap()).as_str(),
            "/default-rack"
        );
        assert_eq!(
            t.resolve("::ffff:127.0.1.3".parse().unwrap()).as_str(),
            "/dc1/rack1"
        );
    }

    #[test]
    fn zero_prefix_matches_everything() {
        let t = toml_like(&[("0.0.0.0/0", "/all")]);
        assert_eq!(t.resolve("192.168.1.1".parse().unwrap()).as_str(), "/all");
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!("127.0.0.1/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("rack1".parse::<RackPath>().is_err());
        assert!("/dc//rack".parse::<RackPath>().is_err());
        assert!("/".parse::<RackPath>().is_err());
    }

    #[test]
    fn distance_counts_hops_through_the_tree() {
        let a = loc("/dc1/rack1", "a:1");
        assert_eq!(distance(&a, &a), 0);
        assert_eq!(distance(&a, &loc("/dc1/rack1", "b:1")), 2);
        assert_eq!(distance(&a, &loc("/dc1/rack2", "b:1")), 4);
        assert_eq!(distance(&a, &loc("/dc2/rack1", "b:1")), 6);
        assert_eq!(distance(&loc("/r1", "a"), &loc("/r2", "b")), 4);
    }
}
