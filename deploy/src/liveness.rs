//! Asking the namenodes which datanodes they consider live, over gRPC.
//!
//! Blocking: each wait builds its own current-thread tokio runtime, so call
//! it from plain threads, never from inside an async runtime.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use dfs_proto::v1::{CallerContext, DatanodeInfo, DatanodeState, GetDatanodeReportRequest};
use tonic::transport::Endpoint;

use crate::Error;

const POLL: Duration = Duration::from_millis(100);

/// Waits until some namenode in `namenodes` reports every address in
/// `datanodes` live, asking as `user`.
pub(crate) fn wait_datanodes_live(
    namenodes: &[SocketAddr],
    datanodes: &[SocketAddr],
    user: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting", "a tokio runtime"))?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    loop {
        for &namenode in namenodes {
            match runtime.block_on(report(namenode, user)) {
                Ok(report) => {
                    let missing = not_live(&report, datanodes);
                    if missing.is_empty() {
                        return Ok(());
                    }
                    last = format!(
                        "{namenode} does not report {} live; it reports {}",
                        join(&missing),
                        describe(&report)
                    );
                }
                Err(e) => last = e,
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::DatanodesNotLive {
                expected: datanodes.len(),
                timeout,
                last,
            });
        }
        thread::sleep(POLL);
    }
}

/// The addresses in `expected` that `report` does not show live.
fn not_live(report: &[DatanodeInfo], expected: &[SocketAddr]) -> Vec<SocketAddr> {
    expected
        .iter()
        .filter(|addr| {
            let addr = addr.to_string();
            !report
                .iter()
                .any(|dn| dn.transfer_address == addr && dn.state() == DatanodeState::Live)
        })
        .copied()
        .collect()
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(report: &[DatanodeInfo]) -> String {
    if report.is_empty() {
        return "no datanodes".to_owned();
    }
    report
        .iter()
        .map(|dn| format!("{} {:?}", dn.transfer_address, dn.state()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn report(namenode: SocketAddr, user: &str) -> Result<Vec<DatanodeInfo>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{namenode}"))
        .map_err(|e| format!("{namenode}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting to {namenode}: {e}"))?;
    let request = GetDatanodeReportRequest {
        caller: Some(CallerContext {
            user: user.to_owned(),
            ..Default::default()
        }),
    };
    let response = ClientProtocolClient::new(channel)
        .get_datanode_report(request)
        .await
        .map_err(|s| format!("{namenode} answered {:?}: {}", s.code(), s.message()))?;
    Ok(response.into_inner().datanodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(addr: &str, state: DatanodeState) -> DatanodeInfo {
        DatanodeInfo {
            transfer_address: addr.to_owned(),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_live_datanodes_at_our_addresses_count() {
        let report = vec![
            dn("127.0.1.1:5000", DatanodeState::Live),
            dn("127.0.1.2:5000", DatanodeState::Stale),
        ];
        let expected: Vec<SocketAddr> = ["127.0.1.1:5000", "127.0.1.2:5000", "127.0.2.1:5000"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(not_live(&report, &expected), expected[1..].to_vec());
    }
}
