//! HMAC-SHA256 message authentication, written once for every signed thing on
//! a dfs wire: block access tokens (keyed by the namenode's rolling block keys)
//! and the cluster secret that namenodes and datanodes prove to each other.
//!
//! A tag covers a sequence of fields, each length-prefixed, so that
//! `("ab", "c")` and `("a", "bc")` never share a tag. Verification compares in
//! constant time (through `hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of a tag in bytes.
pub const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 tag of `fields` under `key`.
pub fn sign(key: &[u8], fields: &[&[u8]]) -> [u8; TAG_LEN] {
    let mac = keyed(key, fields);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the tag of `fields` under `key` (constant-time).
pub fn verify(key: &[u8], fields: &[&[u8]], tag: &[u8]) -> bool {
    keyed(key, fields).verify_slice(tag).is_ok()
}

fn keyed(key: &[u8], fields: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length, so this constructor cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    for field in fields {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_under_its_key_only() {
        let tag = sign(b"key", &[b"block 7", b"read"]);
        assert!(verify(b"key", &[b"block 7", b"read"], &tag));
        assert!(!verify(b"other", &[b"block 7", b"read"], &tag));
        assert!(!verify(b"key", &[b"block 7", b"write"], &tag));
        assert!(!verify(b"key", &[b"block 7", b"read"], &tag[..31]));
    }

    #[test]
    fn field_boundaries_are_part_of_the_tag() {
        assert_ne!(sign(b"k", &[b"ab", b"c"]), sign(b"k", &[b"a", b"bc"]));
    }
}
