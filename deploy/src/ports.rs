//! Choosing the ports nodes listen on.
//!
//! A port is chosen when the cluster is laid out, and bound when its node
//! starts, which for a node started late or restarted can be seconds later.
//! A port the kernel handed out (`bind(ip, 0)`) lies in its ephemeral range,
//! which the kernel keeps handing out meanwhile, to any process on the
//! machine (another cluster's layout, a client's outgoing connection), so
//! the node may find its own address taken. The ports chosen here lie
//! below the ephemeral range, where the kernel never allocates: only another
//! launcher choosing the same random port at the same time can collide.
//!
//! ```text
//! 1024 ........ 10000 [ chosen here, random start ] ephemeral low (32768) ... 65535
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;

use crate::Error;

/// The lowest port chosen; below it live well-known and registered services.
const LOWEST: u16 = 10_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say.
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Fewer candidate ports than this and we let the kernel choose instead.
const MIN_CANDIDATES: u16 = 1_000;

/// One free port for each ip, none in the kernel's ephemeral range when it
/// leaves room below (else the kernel's choice). The listeners stay open
/// until every port is chosen, so no two are the same.
pub(crate) fn free_addrs(ips: &[IpAddr]) -> Result<Vec<SocketAddr>, Error> {
    let port_error = |ip: IpAddr| {
        move |source| Error::Io {
            action: "finding a free port on",
            path: PathBuf::from(ip.to_string()),
            source,
        }
    };
    let high = ephemeral_low();
    let mut candidates = (high > LOWEST.saturating_add(MIN_CANDIDATES))
        .then(|| Candidates::new(LOWEST, high, random_u64()));
    let mut listeners = Vec::new();
    for &ip in ips {
        let listener = match candidates.as_mut() {
            Some(candidates) => candidates.bind(ip),
            None => TcpListener::bind((ip, 0)),
        }
        .map_err(port_error(ip))?;
        listeners.push(listener);
    }
    listeners
        .iter()
        .zip(ips)
        .map(|(l, &ip)| l.local_addr().map_err(port_error(ip)))
        .collect()
}

/// The ports `[low, high)` in order from a random start, wrapping around.
#[derive(Debug)]
struct Candidates {
    low: u16,
    high: u16,
    next: u16,
    tried: u32,
}

impl Candidates {
    fn new(low: u16, high: u16, seed: u64) -> Self {
        let span = u64::from(high.saturating_sub(low)).max(1);
        let offset = u16::try_from(seed % span).unwrap_or(0);
        Candidates {
            low,
            high,
            next: low + offset,
            tried: 0,
        }
    }

    /// The next candidate, or `None` once every port was offered.
    fn next_port(&mut self) -> Option<u16> {
        if self.tried >= u32::from(self.high.saturating_sub(self.low)) {
            return None;
        }
        let port = self.next;
        self.tried += 1;
        self.next = if port + 1 >= self.high {
            self.low
        } else {
            port + 1
        };
        Some(port)
    }

    /// Binds `ip` on the next candidate that is free.
    fn bind(&mut self, ip: IpAddr) -> io::Result<TcpListener> {
        while let Some(port) = self.next_port() {
            match TcpListener::bind((ip, port)) {
                Ok(listener) => return Ok(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free port in {}..{}", self.low, self.high),
        ))
    }
}

/// The first port of the kernel's ephemeral range (Linux), else the usual one.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// A random number (std's per-process random hash keys, mixed with the pid
/// and the time), so that launchers running at once start at different ports.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_the_range_once_from_the_start_and_wrap() {
        let mut c = Candidates::new(100, 105, 3);
        let ports: Vec<u16> = std::iter::from_fn(|| c.next_port()).collect();
        assert_eq!(ports, vec![103, 104, 100, 101, 102]);
    }

    #[test]
    fn chosen_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let addrs = free_addrs(&[ip; 8]).unwrap();
        let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 8);
        let high = ephemeral_low();
        if high > LOWEST + MIN_CANDIDATES {
            assert!(
                ports.iter().all(|&p| (LOWEST..high).contains(&p)),
                "{ports:?}"
            );
        }
        // Released again: each can be bound.
        for addr in addrs {
            TcpListener::bind(addr).unwrap();
        }
    }

    #[test]
    fn a_taken_port_is_skipped() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let taken = TcpListener::bind((ip, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut c = Candidates::new(port, port.saturating_add(50), 0);
        let listener = c.bind(ip).unwrap();
        assert_ne!(listener.local_addr().unwrap().port(), port);
    }
}
