//! Choosing the ports nodes listen on, and holding them while the node is
//! not running.
//!
//! A port is chosen when the cluster is laid out and bound when its node
//! starts, which for a node started late, or restarted, can be seconds
//! later. Meanwhile any process on the machine may take it: the kernel
//! keeps handing out ports of its ephemeral range (`bind(ip, 0)`, a
//! client's outgoing connection), and another launcher may choose the same
//! port. So:
//!
//! - ports are chosen at random below the ephemeral range, where the kernel
//!   never allocates;
//! - each comes as a [`Reservation`]: a socket bound to it but not
//!   listening and without `SO_REUSEADDR`, so that nobody else can bind it
//!   while connections to it are refused as if nothing were there. A node
//!   has two ports (RPC and HTTP), held together as a [`NodeReservation`]:
//!   the launcher drops it just before the node starts, and takes it again
//!   once the node has stopped.
//!
//! ```text
//! 1024 ........ 10000 [ chosen here, random start ] ephemeral low (32768) ... 65535
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::Error;

/// The lowest port chosen; below it live well-known and registered services.
const LOWEST: u16 = 10_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say.
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Fewer candidate ports than this and we let the kernel choose instead.
const MIN_CANDIDATES: u16 = 1_000;

/// A port held for a node that is not running: bound, not listening.
#[derive(Debug)]
pub(crate) struct Reservation {
    addr: SocketAddr,
    _socket: OwnedFd,
}

impl Reservation {
    /// The reserved address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Every port of one node (RPC, then HTTP), held while it does not run.
#[derive(Debug, Default)]
pub(crate) struct NodeReservation {
    /// Held for their drop: it frees the ports.
    _held: Vec<Reservation>,
}

impl NodeReservation {
    /// Holds each of `addrs` that can be taken, skipping the rest: a port
    /// the node just closed lingers in TIME_WAIT, and then only the node
    /// itself can bind it again.
    pub(crate) fn hold_what_can_be(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        NodeReservation {
            _held: addrs.into_iter().filter_map(|a| reserve(a).ok()).collect(),
        }
    }

    /// The held addresses, in the order given.
    #[cfg(test)]
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self._held.iter().map(Reservation::addr).collect()
    }
}

impl From<Vec<Reservation>> for NodeReservation {
    fn from(held: Vec<Reservation>) -> Self {
        NodeReservation { _held: held }
    }
}

/// Two reserved free ports on each ip, for a node's RPC and HTTP servers
/// (see [`free_addrs`]).
pub(crate) fn free_node_addrs(ips: &[IpAddr]) -> Result<Vec<(Reservation, Reservation)>, Error> {
    let doubled: Vec<IpAddr> = ips.iter().flat_map(|&ip| [ip, ip]).collect();
    let mut reserved = free_addrs(&doubled)?.into_iter();
    let mut pairs = Vec::with_capacity(ips.len());
    while let (Some(rpc), Some(http)) = (reserved.next(), reserved.next()) {
        pairs.push((rpc, http));
    }
    Ok(pairs)
}

/// Reserves `addr` (a node's own address, while it does not run).
pub(crate) fn reserve(addr: SocketAddr) -> io::Result<Reservation> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let socket = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(socket.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(Reservation {
        addr,
        _socket: socket,
    })
}

/// One reserved free port for each ip, none in the kernel's ephemeral
/// range when it leaves room below (else a port of the kernel's choice).
pub(crate) fn free_addrs(ips: &[IpAddr]) -> Result<Vec<Reservation>, Error> {
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
    ips.iter()
        .map(|&ip| {
            match candidates.as_mut() {
                Some(candidates) => candidates.reserve(ip),
                None => kernel_choice(ip),
            }
            .map_err(port_error(ip))
        })
        .collect()
}

/// A port the kernel chooses for `ip`, reserved.
fn kernel_choice(ip: IpAddr) -> io::Result<Reservation> {
    let addr = TcpListener::bind((ip, 0))?.local_addr()?;
    reserve(addr)
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

    /// Reserves the next candidate that is free on `ip`.
    fn reserve(&mut self, ip: IpAddr) -> io::Result<Reservation> {
        while let Some(port) = self.next_port() {
            match reserve(SocketAddr::new(ip, port)) {
                Ok(reservation) => return Ok(reservation),
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
    use std::net::TcpStream;

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn candidates_cover_the_range_once_from_the_start_and_wrap() {
        let mut c = Candidates::new(100, 105, 3);
        let ports: Vec<u16> = std::iter::from_fn(|| c.next_port()).collect();
        assert_eq!(ports, vec![103, 104, 100, 101, 102]);
    }

    #[test]
    fn chosen_ports_are_distinct_and_below_the_ephemeral_range() {
        let reserved = free_addrs(&[LOCALHOST; 8]).unwrap();
        let mut ports: Vec<u16> = reserved.iter().map(|r| r.addr().port()).collect();
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
    }

    #[test]
    fn a_reserved_port_cannot_be_bound_refuses_connections_and_is_free_once_dropped() {
        let reservation = free_addrs(&[LOCALHOST]).unwrap().remove(0);
        let addr = reservation.addr();
        // std binds with SO_REUSEADDR, as servers do: still refused.
        let err = TcpListener::bind(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        drop(reservation);
        let listener = TcpListener::bind(addr).unwrap();
        drop(listener);
        // And it can be taken again once its node is gone.
        reserve(addr).unwrap();
    }

    #[test]
    fn each_node_gets_two_distinct_ports_on_its_own_ip() {
        let ips = [LOCALHOST, IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1))];
        let pairs = free_node_addrs(&ips).unwrap();
        assert_eq!(pairs.len(), 2);
        for ((rpc, http), ip) in pairs.iter().zip(ips) {
            assert_eq!((rpc.addr().ip(), http.addr().ip()), (ip, ip));
            assert_ne!(rpc.addr().port(), http.addr().port());
        }
    }

    #[test]
    fn a_node_reservation_holds_both_ports_and_skips_a_taken_one() {
        let taken = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let free = free_addrs(&[LOCALHOST]).unwrap().remove(0).addr();
        let held = NodeReservation::hold_what_can_be([free, taken.local_addr().unwrap()]);
        assert_eq!(held.addrs(), vec![free]);
        assert_eq!(
            TcpListener::bind(free).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        drop(held);
        TcpListener::bind(free).unwrap();
    }

    #[test]
    fn a_taken_port_is_skipped() {
        let taken = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut c = Candidates::new(port, port.saturating_add(50), 0);
        let reservation = c.reserve(LOCALHOST).unwrap();
        assert_ne!(reservation.addr().port(), port);
    }
}
