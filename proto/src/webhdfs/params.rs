//! The WebHDFS request: its path, its operation and its query parameters,
//! parsed the way Hadoop parses them, and the query of a redirect.
//!
//! What real clients send and this takes calmly: parameter names in any
//! case (Hadoop lowercases them), booleans in any case (`True`), a
//! parameter given twice (the first counts, as in Hadoop's filter), an
//! empty value (the default), parameters nobody knows (ignored). What it
//! refuses, with an `IllegalArgumentException`: a query over
//! [`MAX_QUERY_BYTES`], a path with `.` or `..` components, a malformed
//! value, an operation unknown for the HTTP method.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::DEFAULT_USER;
use super::remote_exception::RemoteException;

/// Longest query string taken; longer ones are refused (no parameter of
/// WebHDFS needs more: paths are in the URL path).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Longest decoded path taken (HDFS's own limit is 8000 characters).
pub const MAX_PATH_BYTES: usize = 8000;

/// A WebHDFS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `GET GETFILESTATUS`.
    GetFileStatus,
    /// `GET LISTSTATUS`.
    ListStatus,
    /// `GET LISTSTATUS_BATCH` (`startAfter`).
    ListStatusBatch,
    /// `GET GETHOMEDIRECTORY`.
    GetHomeDirectory,
    /// `GET GETCONTENTSUMMARY`.
    GetContentSummary,
    /// `GET GETFILECHECKSUM` (redirected to a datanode).
    GetFileChecksum,
    /// `GET OPEN` (`offset`, `length`; redirected to a datanode).
    Open,
    /// `PUT MKDIRS` (`permission`).
    Mkdirs,
    /// `PUT CREATE` (`overwrite`, `replication`, `permission`, `blocksize`;
    /// redirected to a datanode).
    Create,
    /// `PUT RENAME` (`destination`).
    Rename,
    /// `PUT SETPERMISSION` (`permission`).
    SetPermission,
    /// `PUT SETOWNER` (`owner`, `group`).
    SetOwner,
    /// `PUT SETREPLICATION` (`replication`).
    SetReplication,
    /// `PUT SETTIMES` (`modificationtime`, `accesstime`).
    SetTimes,
    /// `POST APPEND` (redirected to a datanode).
    Append,
    /// `DELETE DELETE` (`recursive`).
    Delete,
}

const ALL_OPS: [Op; 16] = [
    Op::GetFileStatus,
    Op::ListStatus,
    Op::ListStatusBatch,
    Op::GetHomeDirectory,
    Op::GetContentSummary,
    Op::GetFileChecksum,
    Op::Open,
    Op::Mkdirs,
    Op::Create,
    Op::Rename,
    Op::SetPermission,
    Op::SetOwner,
    Op::SetReplication,
    Op::SetTimes,
    Op::Append,
    Op::Delete,
];

impl Op {
    /// The name as the `op` parameter carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::GetFileStatus => "GETFILESTATUS",
            Op::ListStatus => "LISTSTATUS",
            Op::ListStatusBatch => "LISTSTATUS_BATCH",
            Op::GetHomeDirectory => "GETHOMEDIRECTORY",
            Op::GetContentSummary => "GETCONTENTSUMMARY",
            Op::GetFileChecksum => "GETFILECHECKSUM",
            Op::Open => "OPEN",
            Op::Mkdirs => "MKDIRS",
            Op::Create => "CREATE",
            Op::Rename => "RENAME",
            Op::SetPermission => "SETPERMISSION",
            Op::SetOwner => "SETOWNER",
            Op::SetReplication => "SETREPLICATION",
            Op::SetTimes => "SETTIMES",
            Op::Append => "APPEND",
            Op::Delete => "DELETE",
        }
    }

    /// The HTTP method the operation travels with.
    pub fn method(self) -> &'static str {
        match self {
            Op::GetFileStatus
            | Op::ListStatus
            | Op::ListStatusBatch
            | Op::GetHomeDirectory
            | Op::GetContentSummary
            | Op::GetFileChecksum
            | Op::Open => "GET",
            Op::Mkdirs
            | Op::Create
            | Op::Rename
            | Op::SetPermission
            | Op::SetOwner
            | Op::SetReplication
            | Op::SetTimes => "PUT",
            Op::Append => "POST",
            Op::Delete => "DELETE",
        }
    }

    /// The operation `value` names for a request of `method`, in any case.
    ///
    /// # Errors
    /// `IllegalArgumentException` in Hadoop's words for a missing op, an
    /// unknown one, or one of another method.
    pub fn parse(method: &str, value: Option<&str>) -> Result<Op, RemoteException> {
        let class = match method {
            "GET" | "HEAD" => "GetOpParam",
            "PUT" => "PutOpParam",
            "POST" => "PostOpParam",
            "DELETE" => "DeleteOpParam",
            other => {
                return Err(RemoteException::illegal_argument(format!(
                    "Unsupported HTTP method {other:.16}"
                )));
            }
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(RemoteException::illegal_argument(
                "Invalid value for webhdfs parameter \"op\": op is missing",
            ));
        };
        let upper = value.to_ascii_uppercase();
        ALL_OPS
            .into_iter()
            .find(|op| op.as_str() == upper && (op.method() == method || method == "HEAD" && op.method() == "GET"))
            .ok_or_else(|| {
                RemoteException::illegal_argument(format!(
                    "Invalid value for webhdfs parameter \"op\": No enum constant org.apache.hadoop.hdfs.web.resources.{class}.Op.{:.64}",
                    upper
                ))
            })
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query parameters of one request: names lowercased, the first of a
/// repeated name kept, empty values dropped (they mean "the default").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

fn invalid(name: &str, reason: impl std::fmt::Display) -> RemoteException {
    RemoteException::illegal_argument(format!(
        "Invalid value for webhdfs parameter \"{name}\": {reason}"
    ))
}

impl Params {
    /// Parses a raw (still percent-encoded) query string.
    ///
    /// # Errors
    /// `IllegalArgumentException` for a query over [`MAX_QUERY_BYTES`].
    pub fn parse(query: Option<&str>) -> Result<Params, RemoteException> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY_BYTES {
            return Err(RemoteException::illegal_argument(format!(
                "query string of {} bytes; at most {MAX_QUERY_BYTES}",
                query.len()
            )));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let name = name.to_ascii_lowercase();
            if value.is_empty() || pairs.iter().any(|(n, _)| *n == name) {
                continue;
            }
            pairs.push((name, value.into_owned()));
        }
        Ok(Params { pairs })
    }

    /// The value of `name` (lowercase), if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The operation, for a request of `method`.
    ///
    /// # Errors
    /// As [`Op::parse`].
    pub fn op(&self, method: &str) -> Result<Op, RemoteException> {
        Op::parse(method, self.get("op"))
    }

    /// A boolean in any case; `default` when absent.
    ///
    /// # Errors
    /// `IllegalArgumentException` for anything but true/false.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, RemoteException> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(
                name,
                format!("Failed to parse \"{v:.64}\" to Boolean."),
            )),
        }
    }

    /// A non-negative integer, if given.
    ///
    /// # Errors
    /// `IllegalArgumentException` for anything else.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, RemoteException> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    invalid(name, format!("\"{v:.64}\" is not a non-negative integer"))
                })
            })
            .transpose()
    }

    /// An integer where -1 means "leave unchanged" (SETTIMES), if given.
    ///
    /// # Errors
    /// `IllegalArgumentException` for a non-integer or a value below -1.
    pub fn time(&self, name: &str) -> Result<Option<u64>, RemoteException> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(-1) => Ok(None),
                Ok(t) if t >= 0 => Ok(Some(t.unsigned_abs())),
                _ => Err(invalid(
                    name,
                    format!("\"{v:.64}\" is not a time in ms or -1"),
                )),
            },
        }
    }

    /// `permission` as octal digits (`755`, `1777`), if given.
    ///
    /// # Errors
    /// `IllegalArgumentException` for a non-octal value or one over 1777.
    pub fn permission(&self) -> Result<Option<u16>, RemoteException> {
        self.get("permission")
            .map(|v| {
                u16::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o1777 && v.len() <= 5)
                    .ok_or_else(|| {
                        invalid(
                            "permission",
                            format!("\"{v:.64}\" is not an octal mode between 0 and 1777"),
                        )
                    })
            })
            .transpose()
    }

    /// `replication` (1 to 32767), if given.
    ///
    /// # Errors
    /// `IllegalArgumentException` for anything else.
    pub fn replication(&self) -> Result<Option<u16>, RemoteException> {
        self.get("replication")
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|r| (1..=i16::MAX.unsigned_abs()).contains(r))
                    .ok_or_else(|| {
                        invalid(
                            "replication",
                            format!("\"{v:.64}\" is not between 1 and 32767"),
                        )
                    })
            })
            .transpose()
    }

    /// `blocksize` in bytes (positive), if given.
    ///
    /// # Errors
    /// `IllegalArgumentException` for anything else.
    pub fn block_size(&self) -> Result<Option<u64>, RemoteException> {
        match self.u64("blocksize")? {
            Some(0) => Err(invalid("blocksize", "must be positive")),
            size => Ok(size),
        }
    }

    /// The caller: `user.name`, else [`DEFAULT_USER`]. `doas` is refused:
    /// simple identity has no proxy users.
    ///
    /// # Errors
    /// `IllegalArgumentException` for a name outside Hadoop's user-name
    /// pattern; `SecurityException` for `doas`.
    pub fn user(&self) -> Result<String, RemoteException> {
        if self.get("doas").is_some() {
            return Err(RemoteException::security(
                "doas (proxy users) is not supported with simple authentication",
            ));
        }
        let Some(user) = self.get("user.name") else {
            return Ok(DEFAULT_USER.to_owned());
        };
        if is_user_name(user) {
            Ok(user.to_owned())
        } else {
            Err(invalid(
                "user.name",
                format!(
                    "\"{user:.64}\" does not belong to the domain ^[A-Za-z_][A-Za-z0-9._-]*[$]?$"
                ),
            ))
        }
    }
}

/// Hadoop's user-name domain: `^[A-Za-z_][A-Za-z0-9._-]*[$]?$`, at most 256 bytes.
fn is_user_name(user: &str) -> bool {
    let body = user.strip_suffix('$').unwrap_or(user);
    let mut chars = body.chars();
    user.len() <= 256
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The file-system path of a request path: what follows `/webhdfs/v1`,
/// percent-decoded, absolute, without a trailing slash.
///
/// # Errors
/// `IllegalArgumentException` for a request outside `/webhdfs/v1`, bytes
/// that are not UTF-8, a NUL, `.` or `..` components, or an over-long path.
pub fn fs_path(request_path: &str) -> Result<String, RemoteException> {
    let Some(rest) = request_path.strip_prefix(super::PREFIX) else {
        return Err(RemoteException::illegal_argument(format!(
            "not a WebHDFS path: {request_path:.128}"
        )));
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(RemoteException::illegal_argument(format!(
            "not a WebHDFS path: {request_path:.128}"
        )));
    }
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| RemoteException::illegal_argument("Invalid path name: not UTF-8"))?;
    components(&decoded)
}

/// An absolute file-system path given as a parameter (RENAME's
/// `destination`), normalised as [`fs_path`] normalises the URL's.
///
/// # Errors
/// `IllegalArgumentException` for a relative path, `.` or `..`
/// components, a NUL, or an over-long path.
pub fn normalize(path: &str) -> Result<String, RemoteException> {
    if !path.starts_with('/') {
        return Err(RemoteException::illegal_argument(format!(
            "Invalid path name {path:.256}: not absolute"
        )));
    }
    components(path)
}

fn components(decoded: &str) -> Result<String, RemoteException> {
    if decoded.len() > MAX_PATH_BYTES {
        return Err(RemoteException::illegal_argument(format!(
            "Invalid path name: {} bytes; at most {MAX_PATH_BYTES}",
            decoded.len()
        )));
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for component in decoded.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." || component.contains('\0') {
            return Err(RemoteException::illegal_argument(format!(
                "Invalid path name {:.256}",
                decoded
            )));
        }
        path.push('/');
        path.push_str(component);
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// What a URL path may carry unescaped besides alphanumerics (`/` kept).
const PATH_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'=');

/// `/webhdfs/v1` and the file-system path, percent-encoded for a URL.
pub fn url_path(fs_path: &str) -> String {
    format!(
        "{}{}",
        super::PREFIX,
        utf8_percent_encode(fs_path, PATH_SET)
    )
}

/// Builds a query string, `name=value&...`, values form-encoded.
#[derive(Debug, Default)]
pub struct QueryBuilder {
    query: String,
}

impl QueryBuilder {
    /// An empty query.
    pub fn new() -> Self {
        QueryBuilder::default()
    }

    /// Appends `name=value`.
    pub fn push(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        self.query
            .extend(form_urlencoded::byte_serialize(name.as_bytes()));
        self.query.push('=');
        self.query
            .extend(form_urlencoded::byte_serialize(value.as_ref().as_bytes()));
        self
    }

    /// Appends `name=value` when `value` is given.
    pub fn push_some(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.push(name, v.to_string()),
            None => self,
        }
    }

    /// The query string.
    pub fn finish(self) -> String {
        self.query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q)).unwrap()
    }

    #[test]
    fn the_first_of_a_repeated_parameter_counts_and_names_ignore_case() {
        let p = params("OP=open&op=mkdirs&User.Name=alice&user.name=bob&x=1");
        assert_eq!(p.op("GET").unwrap(), Op::Open);
        assert_eq!(p.user().unwrap(), "alice");
        assert_eq!(p.get("x"), Some("1"));
    }

    #[test]
    fn booleans_come_in_any_case_and_garbage_is_refused() {
        let p = params("overwrite=True&recursive=FALSE&bad=yes");
        assert!(p.bool("overwrite", false).unwrap());
        assert!(!p.bool("recursive", true).unwrap());
        assert!(p.bool("absent", true).unwrap());
        let e = p.bool("bad", false).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("\"bad\""), "{}", e.message);
    }

    #[test]
    fn an_empty_value_means_the_default() {
        let p = params("offset=&length=10");
        assert_eq!(p.u64("offset").unwrap(), None);
        assert_eq!(p.u64("length").unwrap(), Some(10));
    }

    #[test]
    fn bad_numbers_are_illegal_arguments() {
        for q in [
            "offset=-1",
            "offset=abc",
            "offset=1e3",
            "offset=99999999999999999999",
        ] {
            let e = params(q).u64("offset").unwrap_err();
            assert_eq!(e.exception, "IllegalArgumentException", "{q}");
        }
        assert!(params("blocksize=0").block_size().is_err());
        assert!(params("replication=0").replication().is_err());
        assert_eq!(params("replication=2").replication().unwrap(), Some(2));
    }

    #[test]
    fn permissions_are_octal_up_to_1777() {
        assert_eq!(params("permission=755").permission().unwrap(), Some(0o755));
        assert_eq!(params("permission=0644").permission().unwrap(), Some(0o644));
        assert_eq!(
            params("permission=1777").permission().unwrap(),
            Some(0o1777)
        );
        for bad in [
            "permission=888",
            "permission=2000",
            "permission=rwx",
            "permission=-1",
        ] {
            assert!(params(bad).permission().is_err(), "{bad}");
        }
    }

    #[test]
    fn times_take_minus_one_as_unchanged() {
        let p = params("modificationtime=-1&accesstime=1000&bad=-2");
        assert_eq!(p.time("modificationtime").unwrap(), None);
        assert_eq!(p.time("accesstime").unwrap(), Some(1000));
        assert!(p.time("bad").is_err());
    }

    #[test]
    fn unknown_ops_and_ops_of_another_method_are_refused_in_hadoops_words() {
        let e = params("op=FROBNICATE").op("GET").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message
                .starts_with("Invalid value for webhdfs parameter \"op\""),
            "{}",
            e.message
        );
        assert!(params("op=mkdirs").op("GET").is_err());
        assert_eq!(params("op=mkdirs").op("PUT").unwrap(), Op::Mkdirs);
        assert_eq!(
            params("op=liststatus_batch").op("GET").unwrap(),
            Op::ListStatusBatch
        );
        assert!(params("").op("GET").is_err());
    }

    #[test]
    fn the_user_defaults_to_dr_who_and_must_look_like_a_user() {
        assert_eq!(params("").user().unwrap(), "dr.who");
        assert_eq!(params("user.name=host%24").user().unwrap(), "host$");
        assert!(params("user.name=..%2Fetc").user().is_err());
        assert_eq!(params("doas=root").user().unwrap_err().status, 401);
    }

    #[test]
    fn a_huge_query_is_refused() {
        let q = "x=".to_owned() + &"a".repeat(MAX_QUERY_BYTES);
        assert_eq!(Params::parse(Some(&q)).unwrap_err().status, 400);
    }

    #[test]
    fn paths_are_decoded_and_dot_components_refused() {
        assert_eq!(fs_path("/webhdfs/v1").unwrap(), "/");
        assert_eq!(fs_path("/webhdfs/v1/").unwrap(), "/");
        assert_eq!(fs_path("/webhdfs/v1/a%20b//c/").unwrap(), "/a b/c");
        for bad in [
            "/webhdfs/v1/a/../b",
            "/webhdfs/v1/a/%2E%2E/b",
            "/webhdfs/v1/./a",
            "/webhdfs/v1/a%00b",
            "/webhdfs/v1/%ff",
            "/webhdfs/v1x",
            "/other",
        ] {
            assert_eq!(fs_path(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn a_destination_must_be_absolute_and_clean() {
        assert_eq!(normalize("/a//b/").unwrap(), "/a/b");
        assert!(normalize("a/b").is_err());
        assert!(normalize("/a/../b").is_err());
    }

    #[test]
    fn url_paths_round_trip() {
        for p in ["/", "/a b/c", "/x?y#z", "/ü/100%", "/a+b=c&d;e"] {
            assert_eq!(fs_path(&url_path(p)).unwrap(), p);
        }
        let q = QueryBuilder::new()
            .push("op", "OPEN")
            .push("user.name", "a b")
            .push_some("offset", Some(5))
            .push_some("length", None::<u64>)
            .finish();
        assert_eq!(q, "op=OPEN&user.name=a+b&offset=5");
        assert_eq!(params(&q).get("user.name"), Some("a b"));
    }
}
