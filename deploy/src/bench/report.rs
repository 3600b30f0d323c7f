//! Pure parts of the benchmark: medians, rates, ratios and the printed table.

use std::fmt::Write as _;
use std::time::Duration;

const MIB: f64 = 1024.0 * 1024.0;

/// MiB/s for `bytes` moved in `elapsed`.
pub(crate) fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return f64::INFINITY;
    }
    bytes as f64 / MIB / secs
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
    }
}

/// The `p`-quantile (`0 < p ≤ 1`) of `values` by nearest rank: the
/// smallest value with at least `p` of all values at or below it (p50 of
/// four values is the second, p99 of fewer than 100 is the largest); `None`
/// when empty.
pub(crate) fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// One measured figure against its same-run baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    /// What was measured, like "put 1 GiB, 3 replicas".
    pub(crate) name: String,
    /// MiB/s of each run of it.
    pub(crate) runs: Vec<f64>,
    /// What it is compared with.
    pub(crate) baseline_name: String,
    /// MiB/s of each run of the baseline.
    pub(crate) baseline_runs: Vec<f64>,
    /// The ratio it should reach (0.6 = 60 %).
    pub(crate) target: f64,
}

impl Comparison {
    /// median(runs) / median(baseline runs).
    pub(crate) fn ratio(&self) -> Option<f64> {
        let base = median(&self.baseline_runs)?;
        (base > 0.0).then_some(median(&self.runs)? / base)
    }

    /// The comparison as table lines: the figure, its baseline, the ratio.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        let line = |text: &mut String, name: &str, runs: &[f64]| {
            let _ = writeln!(
                text,
                "  {name:<52} {:>8} MiB/s   runs: {}",
                fmt_rate(median(runs)),
                runs.iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        };
        line(&mut text, &self.name, &self.runs);
        line(&mut text, &self.baseline_name, &self.baseline_runs);
        let verdict = match self.ratio() {
            Some(r) if r >= self.target => "meets",
            Some(_) => "BELOW",
            None => "n/a",
        };
        let _ = writeln!(
            text,
            "  {:<52} {:>8}         target ≥ {:.0} %: {verdict}",
            "ratio",
            fmt_percent(self.ratio()),
            self.target * 100.0
        );
        text
    }
}

/// Comparisons as numbered tables, a blank line after each.
pub(crate) fn numbered(comparisons: &[Comparison]) -> String {
    let mut text = String::new();
    for (i, c) in comparisons.iter().enumerate() {
        let _ = writeln!(text, "{}. {}", i + 1, c.name);
        text.push_str(&c.render());
        text.push('\n');
    }
    text
}

fn fmt_rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
}

fn fmt_percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `bytes` as KiB, MiB or GiB, whichever is whole, else bytes.
pub(crate) fn fmt_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.99), Some(4.0));
        assert_eq!(percentile(&[7.0], 0.5), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn rates_and_sizes() {
        assert_eq!(mib_per_sec(1 << 30, Duration::from_secs(4)), 256.0);
        assert_eq!(fmt_size(1 << 30), "1 GiB");
        assert_eq!(fmt_size(64 << 20), "64 MiB");
        assert_eq!(fmt_size(1000), "1000 B");
    }

    #[test]
    fn a_comparison_prints_medians_and_the_ratio_against_its_target() {
        let c = Comparison {
            name: "put".into(),
            runs: vec![100.0, 150.0, 120.0],
            baseline_name: "disk".into(),
            baseline_runs: vec![200.0, 190.0, 210.0],
            target: 0.6,
        };
        assert_eq!(c.ratio(), Some(0.6));
        let text = c.render();
        assert!(text.contains("120.0 MiB/s"), "{text}");
        assert!(text.contains("200.0 MiB/s"), "{text}");
        assert!(text.contains("60.0 %"), "{text}");
        assert!(text.contains("meets"), "{text}");
        let below = Comparison {
            target: 0.7,
            ..c.clone()
        };
        assert!(below.render().contains("BELOW"));
        let both = numbered(&[c, below]);
        assert!(both.starts_with("1. put\n"), "{both}");
        assert!(both.contains("\n\n2. put\n"), "{both}");
    }
}
