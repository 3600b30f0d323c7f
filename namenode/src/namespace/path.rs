//! Absolute path validation and normalisation (HDFS `DFSUtil.isValidName`
//! plus the namenode's length and depth limits).
//!
//! Everything that reaches the tree went through [`FsPath::parse`], so the
//! tree can assume `/`-separated, non-empty components without `.` or `..`.

use crate::error::Error;

/// Longest accepted path in bytes (HDFS `MAX_PATH_LENGTH`).
pub(crate) const MAX_PATH_BYTES: usize = 8000;
/// Most components a path may have (HDFS `MAX_PATH_DEPTH`).
pub(crate) const MAX_PATH_DEPTH: usize = 1000;
/// Longest component in bytes (HDFS `dfs.namenode.fs-limits.max-component-length`).
pub(crate) const MAX_COMPONENT_BYTES: usize = 255;
/// How much of a rejected path is echoed back in the error.
const ECHO_CHARS: usize = 100;

/// A validated, normalised absolute path such as `/a/b` (or `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsPath {
    /// `/a/b`: no repeated or trailing slashes.
    text: String,
    /// Byte offset in `text` where each component ends.
    ends: Vec<usize>,
}

impl FsPath {
    /// The root directory `/`.
    pub(crate) fn root() -> Self {
        FsPath {
            text: "/".to_owned(),
            ends: Vec::new(),
        }
    }

    /// Validates and normalises a path received from a client or the log.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] when the path is empty, relative, longer than
    /// [`MAX_PATH_BYTES`], deeper than [`MAX_PATH_DEPTH`], contains a NUL byte,
    /// a `.` or `..` component, or a component longer than [`MAX_COMPONENT_BYTES`].
    pub(crate) fn parse(raw: &str) -> Result<Self, Error> {
        let invalid = |reason: &'static str| Error::InvalidPath {
            path: echo(raw),
            reason,
        };
        if raw.is_empty() {
            return Err(invalid("the path is empty"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(invalid("longer than 8000 bytes"));
        }
        if !raw.starts_with('/') {
            return Err(invalid("not an absolute path"));
        }
        if raw.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        let mut path = FsPath::root();
        for component in raw.split('/').filter(|c| !c.is_empty()) {
            if component == "." || component == ".." {
                return Err(invalid("'.' and '..' components are not allowed"));
            }
            if component.len() > MAX_COMPONENT_BYTES {
                return Err(invalid("a component is longer than 255 bytes"));
            }
            if path.ends.len() >= MAX_PATH_DEPTH {
                return Err(invalid("more than 1000 components"));
            }
            if !path.ends.is_empty() {
                path.text.push('/');
            }
            path.text.push_str(component);
            path.ends.push(path.text.len());
        }
        Ok(path)
    }

    /// The normalised text, e.g. `/a/b`.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of components (`/` has none).
    pub(crate) fn depth(&self) -> usize {
        self.ends.len()
    }

    /// Whether this is `/`.
    pub(crate) fn is_root(&self) -> bool {
        self.ends.is_empty()
    }

    /// The components in order: `/a/b` gives `a`, `b`.
    pub(crate) fn components(&self) -> impl Iterator<Item = &str> {
        self.text.split('/').filter(|c| !c.is_empty())
    }

    /// The path of the first `depth` components: `prefix(0)` is `/`.
    pub(crate) fn prefix(&self, depth: usize) -> &str {
        if depth == 0 {
            return "/";
        }
        match self.ends.get(depth - 1) {
            Some(&end) => self.text.get(..end).unwrap_or(&self.text),
            None => &self.text,
        }
    }

    /// Whether `self` lies strictly below `ancestor` (`/a/b` is below `/a` and `/`).
    pub(crate) fn is_strictly_below(&self, ancestor: &FsPath) -> bool {
        ancestor.depth() < self.depth() && self.prefix(ancestor.depth()) == ancestor.as_str()
    }
}

/// Joins a directory path and a child name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `name` can be a directory entry (one valid path component).
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_BYTES
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// The start of a rejected path, printable: control characters escaped,
/// cut after [`ECHO_CHARS`] characters.
fn echo(raw: &str) -> String {
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == ECHO_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_trailing_slashes_are_normalised() {
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/a", "/a"),
            ("//a///b/", "/a/b"),
            ("/a/b/c/", "/a/b/c"),
            ("/.a/..b/c.", "/.a/..b/c."),
        ] {
            assert_eq!(FsPath::parse(raw).unwrap().as_str(), want, "{raw:?}");
        }
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        let long_component = format!("/{}", "x".repeat(256));
        let long_path = "/abcdefg".repeat(1001);
        let deep_path = "/a".repeat(1001);
        for (raw, reason) in [
            ("", "the path is empty"),
            ("a/b", "not an absolute path"),
            ("./a", "not an absolute path"),
            ("/a/./b", "'.' and '..' components are not allowed"),
            ("/a/../b", "'.' and '..' components are not allowed"),
            ("/..", "'.' and '..' components are not allowed"),
            ("/a\0b", "contains a NUL byte"),
            (&long_component, "a component is longer than 255 bytes"),
            (&long_path, "longer than 8000 bytes"),
            (&deep_path, "more than 1000 components"),
        ] {
            match FsPath::parse(raw) {
                Err(Error::InvalidPath { reason: got, .. }) => assert_eq!(got, reason, "{raw:?}"),
                other => panic!("{raw:?}: expected InvalidPath, got {other:?}"),
            }
        }
    }

    #[test]
    fn limits_themselves_are_accepted() {
        let component = format!("/{}", "x".repeat(255));
        assert!(FsPath::parse(&component).is_ok());
        let deep = "/a".repeat(1000);
        assert_eq!(FsPath::parse(&deep).unwrap().depth(), 1000);
        let long = format!("/{}", "x".repeat(199)).repeat(40);
        assert_eq!(long.len(), MAX_PATH_BYTES);
        assert!(FsPath::parse(&long).is_ok());
    }

    #[test]
    fn a_huge_rejected_path_is_echoed_truncated_and_escaped() {
        let raw = format!("a\0{}", "z".repeat(5000));
        let Err(Error::InvalidPath { path, .. }) = FsPath::parse(&raw) else {
            panic!("relative path accepted");
        };
        assert_eq!(path, format!("a\\u{{0}}{}...", "z".repeat(98)));
    }

    #[test]
    fn prefixes_name_each_ancestor() {
        let p = FsPath::parse("/a/bc/d").unwrap();
        let prefixes: Vec<_> = (0..=4).map(|d| p.prefix(d)).collect();
        assert_eq!(prefixes, ["/", "/a", "/a/bc", "/a/bc/d", "/a/bc/d"]);
        assert_eq!(p.components().collect::<Vec<_>>(), ["a", "bc", "d"]);
    }

    #[test]
    fn below_means_a_whole_component_prefix() {
        let p = |s| FsPath::parse(s).unwrap();
        assert!(p("/a/b").is_strictly_below(&p("/a")));
        assert!(p("/a/b").is_strictly_below(&p("/")));
        assert!(!p("/a").is_strictly_below(&p("/a")));
        assert!(!p("/ab").is_strictly_below(&p("/a")));
        assert!(!p("/a").is_strictly_below(&p("/a/b")));
    }
}
