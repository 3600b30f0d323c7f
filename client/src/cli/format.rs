//! How the CLI shows entries: HDFS `ls` columns, mode strings, times, sizes.

use crate::fs::FileStatus;

/// Bytes in binary units, e.g. `1.5 GiB`, as the admin report shows them.
pub(super) use dfs_proto::byte_size::binary as bytes_string;

/// `drwxr-xr-x`-style mode string; sticky shows as `t`/`T` in the last place.
pub(super) fn mode_string(is_dir: bool, mode: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6u16, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        s.push(match (shift == 0 && mode & 0o1000 != 0, exec) {
            (true, true) => 't',
            (true, false) => 'T',
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `yyyy-mm-dd HH:MM` in UTC for milliseconds since the Unix epoch.
pub(super) fn time_string(ms: u64) -> String {
    dfs_proto::wall_clock::utc_minute(ms)
}

/// The rows of an HDFS-style listing, columns padded to their widest cell.
pub(super) fn ls_lines(entries: &[FileStatus]) -> Vec<String> {
    let rep = |e: &FileStatus| {
        if e.is_dir() {
            "-".to_owned()
        } else {
            e.replication.to_string()
        }
    };
    let width = |f: &dyn Fn(&FileStatus) -> usize| entries.iter().map(f).max().unwrap_or(0);
    let rep_w = width(&|e| rep(e).len());
    let owner_w = width(&|e| e.owner.len());
    let group_w = width(&|e| e.group.len());
    let size_w = width(&|e| e.length.to_string().len());
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {:>rep_w$} {:<owner_w$} {:<group_w$} {:>size_w$} {} {}",
                mode_string(e.is_dir(), e.permission),
                rep(e),
                e.owner,
                e.group,
                e.length,
                time_string(e.modification_time_ms),
                e.path,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(true, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(false, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(true, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(true, 0o1770), "drwxrwx--T");
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time_string(0), "1970-01-01 00:00");
        // 2026-11-22 10:30:00 UTC
        assert_eq!(time_string(1_795_343_400_000), "2026-11-22 10:30");
        assert_eq!(time_string(951_782_400_000), "2000-02-29 00:00");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes_string(512), "512 B");
        assert_eq!(bytes_string(1536), "1.5 KiB");
        assert_eq!(bytes_string(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
