//! `dfs admin`: cluster administration.

use clap::{Args, Subcommand};

use super::Outcome;
use super::format::bytes_string;
use crate::fs::{DatanodeReport, DfsClient};

/// Administration commands.
#[derive(Debug, Subcommand)]
pub(super) enum Admin {
    /// Datanodes grouped by rack: state (live/stale/dead), capacity, used, last contact.
    Report(Report),
}

impl Admin {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        match self {
            Admin::Report(args) => args.run(client, outcome).await,
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct Report {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

impl Report {
    async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some(datanodes) = outcome.check(client.datanode_report().await) else {
            return;
        };
        if self.json {
            let doc = serde_json::json!({ "datanodes": datanodes });
            println!("{doc}");
            return;
        }
        print!("{}", render(&datanodes));
    }
}

fn render(datanodes: &[DatanodeReport]) -> String {
    let count = |state: &str| datanodes.iter().filter(|d| d.state == state).count();
    let total = |f: fn(&DatanodeReport) -> u64| {
        datanodes
            .iter()
            .filter(|d| d.state != "dead")
            .map(f)
            .sum::<u64>()
    };
    let mut out = format!(
        "Datanodes: {} live, {} stale, {} dead\nCapacity: {}  Used: {}  Remaining: {}\n",
        count("live"),
        count("stale"),
        count("dead"),
        bytes_string(total(|d| d.capacity)),
        bytes_string(total(|d| d.used)),
        bytes_string(total(|d| d.remaining)),
    );
    let mut rack: Option<&str> = None;
    for d in datanodes {
        if rack != Some(d.rack.as_str()) {
            out.push_str(&format!("\nRack {}\n", d.rack));
            rack = Some(d.rack.as_str());
        }
        out.push_str(&format!(
            "  {:<22} {:<21} {:<5}  capacity {:>10}  used {:>10}  remaining {:>10}  last contact {:.1}s ago\n",
            d.id,
            d.address,
            d.state,
            bytes_string(d.capacity),
            bytes_string(d.used),
            bytes_string(d.remaining),
            d.last_contact_ms as f64 / 1000.0,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, rack: &str, state: &'static str) -> DatanodeReport {
        DatanodeReport {
            id: id.into(),
            address: "127.0.1.1:1".into(),
            rack: rack.into(),
            state,
            capacity: 1024,
            used: 0,
            remaining: 512,
            last_contact_ms: 1500,
        }
    }

    #[test]
    fn report_groups_datanodes_by_rack() {
        let text = render(&[
            node("dn-a", "/dc1/rack1", "live"),
            node("dn-b", "/dc1/rack1", "stale"),
            node("dn-c", "/dc1/rack2", "dead"),
        ]);
        assert!(
            text.starts_with("Datanodes: 1 live, 1 stale, 1 dead\n"),
            "{text}"
        );
        assert_eq!(text.matches("\nRack ").count(), 2, "{text}");
        assert!(text.find("dn-b").unwrap() < text.find("Rack /dc1/rack2").unwrap());
    }
}
