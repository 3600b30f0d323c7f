//! Byte counts for people, as the status pages and `dfs admin report`
//! show them: binary units with one decimal.

/// Bytes in binary units, e.g. `1.5 GiB` (below 1 KiB whole bytes: `512 B`).
pub fn binary(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B")),
    }
}
