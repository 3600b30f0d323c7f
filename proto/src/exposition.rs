//! Writing the Prometheus text exposition format, as every node's
//! `/metrics` does: a scrape's text from a registry, and the gauges that
//! collectors read from a node's state at each scrape.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// The exposition text of one scrape of `registry`.
///
/// # Errors
/// Only if encoding fails (a formatter error).
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// Writes one gauge without labels.
///
/// # Errors
/// Only if encoding fails (a formatter error).
pub fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Writes one gauge family with a single label `key`, one gauge per
/// `(label, value)`.
///
/// # Errors
/// Only if encoding fails (a formatter error).
pub fn labelled_gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    key: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for &(label, value) in values {
        ConstGauge::new(value).encode(metric.encode_family(&[(key, label)])?)?;
    }
    Ok(())
}
