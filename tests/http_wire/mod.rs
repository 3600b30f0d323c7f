//! Raw HTTP/1.1 over TCP for the WebHDFS tests: requests exactly as
//! written (hostile ones included), from a chosen source address, and the
//! answer as the server sent it.

#![allow(dead_code)] // each test binary uses a part

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `RemoteException`'s class name, after checking its shape.
    pub(crate) fn exception(&self) -> String {
        let json = self.json();
        let e = &json["RemoteException"];
        assert!(
            e["javaClassName"].is_string() && e["message"].is_string(),
            "not a RemoteException: {json}"
        );
        e["exception"].as_str().unwrap().to_owned()
    }
}

pub(crate) fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Sends `raw` and reads the answer up to the close; `None` when the server
/// closed the connection without one.
pub(crate) fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Answer> {
    let mut stream = connect(addr);
    // A server may answer and close before taking all of a huge request.
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse(&bytes)
}

pub(crate) fn parse(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    })
}

pub(crate) fn get(addr: SocketAddr, target: &str) -> Answer {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, raw.as_bytes()).unwrap_or_else(|| panic!("no answer to GET {target:.100}"))
}

pub(crate) fn put(addr: SocketAddr, target: &str) -> Answer {
    let raw = format!(
        "PUT {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    exchange(addr, raw.as_bytes()).unwrap_or_else(|| panic!("no answer to PUT {target:.100}"))
}

/// Sends `raw` from `source` (port chosen by the kernel) and reads the
/// answer up to the close.
pub(crate) fn exchange_from(source: IpAddr, addr: SocketAddr, raw: &[u8]) -> Option<Answer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let socket = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let mut stream = socket.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse(&bytes)
}

/// The datanode address and target (path and query) of a redirect's `Location`.
pub(crate) fn split_location(location: &str) -> (SocketAddr, String) {
    let rest = location.trim_start_matches("http://");
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    (host.parse().unwrap(), target.to_owned())
}
