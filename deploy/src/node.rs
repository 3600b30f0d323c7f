//! Node names (`nn1`, `dn4`) and roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A `namenode` process.
    Namenode,
    /// A `datanode` process.
    Datanode,
}

impl Role {
    /// The role as its binary is named.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Namenode => "namenode",
            Role::Datanode => "datanode",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Role::Namenode => "nn",
            Role::Datanode => "dn",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A node's name within its cluster: `nn<N>` or `dn<N>`, N counting from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

impl NodeName {
    /// The `index`-th (1-based) node of `role`.
    pub fn new(role: Role, index: usize) -> Self {
        NodeName(format!("{}{index}", role.prefix()))
    }

    /// The role the name implies.
    pub fn role(&self) -> Role {
        if self.0.starts_with("nn") {
            Role::Namenode
        } else {
            Role::Datanode
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s.strip_prefix("nn").or_else(|| s.strip_prefix("dn"));
        match digits {
            Some(d)
                if !d.is_empty()
                    && !d.starts_with('0')
                    && d.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(NodeName(s.to_owned()))
            }
            _ => Err(Error::BadNodeName(s.to_owned())),
        }
    }
}

impl TryFrom<String> for NodeName {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_imply_their_role() {
        let nn: NodeName = "nn1".parse().unwrap();
        assert_eq!(nn.role(), Role::Namenode);
        assert_eq!(nn, NodeName::new(Role::Namenode, 1));
        let dn: NodeName = "dn12".parse().unwrap();
        assert_eq!(dn.role(), Role::Datanode);
        assert_eq!(format!("[{dn:<5}]"), "[dn12 ]", "tables pad names");
        for bad in ["", "nn", "dn0", "dn01", "xx1", "dn1a", "nn-1"] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad:?} accepted");
        }
    }
}
