//! The JSON bodies of WebHDFS answers, field for field as Hadoop's
//! documentation gives them.

use dfs_proto::v1;
use serde_json::{Value, json};

/// One `FileStatus` object. `pathSuffix` is the entry's name in a listing
/// and empty for the path asked about. dfs keeps no inode ids or storage
/// policies: `fileId` and `storagePolicy` are 0 (Hadoop's "none").
pub(super) fn file_status(status: &v1::FileStatus, path_suffix: &str) -> Value {
    let is_dir = status.file_type() == v1::FileType::Directory;
    json!({
        "accessTime": status.access_time_ms,
        "blockSize": status.block_size,
        "childrenNum": status.children_count,
        "fileId": 0,
        "group": status.group,
        "length": status.length,
        "modificationTime": status.modification_time_ms,
        "owner": status.owner,
        "pathSuffix": path_suffix,
        "permission": format!("{:o}", status.permission & 0o7777),
        "replication": status.replication,
        "storagePolicy": 0,
        "type": if is_dir { "DIRECTORY" } else { "FILE" },
    })
}

/// The last component of a listed entry's path: its `pathSuffix`.
pub(super) fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `{"FileStatuses": {"FileStatus": [...]}}`.
pub(super) fn file_statuses(entries: Vec<Value>) -> Value {
    json!({ "FileStatuses": { "FileStatus": entries } })
}

/// LISTSTATUS_BATCH's `DirectoryListing`.
pub(super) fn directory_listing(entries: Vec<Value>, remaining: u64) -> Value {
    json!({
        "DirectoryListing": {
            "partialListing": file_statuses(entries),
            "remainingEntries": remaining,
        }
    })
}

/// `{"ContentSummary": {...}}`; dfs keeps no quotas (-1, as Hadoop says "none").
pub(super) fn content_summary(summary: &v1::ContentSummary) -> Value {
    json!({
        "ContentSummary": {
            "directoryCount": summary.directory_count,
            "fileCount": summary.file_count,
            "length": summary.length,
            "quota": summary.quota,
            "spaceConsumed": summary.space_consumed,
            "spaceQuota": summary.space_quota,
            "typeQuota": {},
        }
    })
}

/// `{"boolean": b}`.
pub(super) fn boolean(b: bool) -> Value {
    json!({ "boolean": b })
}

/// `{"Path": p}`.
pub(super) fn path(p: &str) -> Value {
    json!({ "Path": p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_status_has_every_field_hadoop_documents() {
        let status = v1::FileStatus {
            path: "/d/f".into(),
            file_type: v1::FileType::File.into(),
            permission: 0o1644,
            owner: "alice".into(),
            group: "staff".into(),
            length: 7,
            modification_time_ms: 2,
            access_time_ms: 1,
            replication: 3,
            block_size: 1 << 20,
            children_count: 0,
        };
        let json = file_status(&status, name_of(&status.path));
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "accessTime",
                "blockSize",
                "childrenNum",
                "fileId",
                "group",
                "length",
                "modificationTime",
                "owner",
                "pathSuffix",
                "permission",
                "replication",
                "storagePolicy",
                "type"
            ]
        );
        assert_eq!(json["permission"], "1644");
        assert_eq!(json["pathSuffix"], "f");
        assert_eq!(json["type"], "FILE");
        assert_eq!(json["blockSize"], 1 << 20);
    }

    #[test]
    fn a_batch_listing_nests_as_hadoop_does() {
        let listing = directory_listing(vec![json!({"pathSuffix": "a"})], 2);
        assert_eq!(
            listing["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"][0]["pathSuffix"],
            "a"
        );
        assert_eq!(listing["DirectoryListing"]["remainingEntries"], 2);
    }
}
