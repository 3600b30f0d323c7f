//! The pipeline's baseline: a raw relay of the same bytes over loopback TCP,
//! client → hop 1 → hop 2 → hop 3, each hop computing a CRC32C per 512-byte
//! chunk of every 64 KiB it forwards. No framing, no acks, no disk: what
//! three datanodes could do on this machine with nothing but the checksums.
//!
//! ```text
//!  client ──► hop1 (crc, forward) ──► hop2 (crc, forward) ──► hop3 (crc)
//!   timer starts before the first write; stops when hop 3 has read the last byte
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use dfs_proto::checksum::chunk_checksums;

/// Bytes read, checksummed and forwarded at a time (one dfs packet).
const BUFFER: usize = 64 * 1024;
/// Bytes per CRC32C (one dfs chunk).
const CHUNK: usize = 512;

/// What one relay run measured and what each hop saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelayRun {
    /// From the first byte sent until the last hop read the last one.
    pub(crate) elapsed: Duration,
    /// Per hop: bytes read and the fold of its chunk checksums.
    pub(crate) hops: Vec<(u64, u32)>,
    /// The fold of the chunk checksums of what the client sent.
    pub(crate) expected: u32,
}

/// Relays `bytes` through `hops` hops (threads, loopback TCP).
///
/// # Errors
/// A socket fails, a hop thread panics, or a hop did not see exactly the
/// bytes sent (`InvalidData`).
pub(crate) fn relay(bytes: u64, hops: usize) -> io::Result<RelayRun> {
    let listeners = (0..hops)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let next = addrs.get(i + 1).copied();
        threads.push(thread::spawn(move || -> io::Result<(u64, u32)> {
            let (upstream, _) = listener.accept()?;
            let downstream = next.map(TcpStream::connect).transpose()?;
            run_hop(upstream, downstream)
        }));
    }
    let first = addrs
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a relay needs a hop"))?;
    let mut client = TcpStream::connect(first)?;
    client.set_nodelay(true)?;

    let block = pattern(BUFFER);
    let block_sums: Vec<u32> = block.chunks(CHUNK).map(crc32c::crc32c).collect();
    let mut expected = 0;
    let mut left = bytes;
    while left > 0 {
        let n = BUFFER.min(usize::try_from(left).unwrap_or(BUFFER));
        expected = fold_chunks(expected, block.get(..n).unwrap_or(&block), &block_sums);
        left -= n as u64;
    }

    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = BUFFER.min(usize::try_from(left).unwrap_or(BUFFER));
        client.write_all(block.get(..n).unwrap_or(&block))?;
        left -= n as u64;
    }
    client.shutdown(std::net::Shutdown::Write)?;
    let mut results = Vec::new();
    for t in threads.into_iter().rev() {
        let result = t
            .join()
            .map_err(|_| io::Error::other("a relay hop panicked"))??;
        results.push(result);
    }
    let elapsed = started.elapsed();
    results.reverse();
    if let Some(hop) = results
        .iter()
        .position(|&(n, f)| n != bytes || f != expected)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("relay hop {} did not see the bytes sent", hop + 1),
        ));
    }
    Ok(RelayRun {
        elapsed,
        hops: results,
        expected,
    })
}

/// Reads full 64 KiB buffers until EOF; checksums every 512-byte chunk and
/// forwards the buffer. Returns bytes read and the fold of the checksums.
fn run_hop(mut upstream: TcpStream, mut downstream: Option<TcpStream>) -> io::Result<(u64, u32)> {
    if let Some(d) = &downstream {
        d.set_nodelay(true)?;
    }
    let mut buf = vec![0u8; BUFFER];
    let (mut total, mut fold) = (0u64, 0u32);
    loop {
        let n = fill(&mut upstream, &mut buf)?;
        if n == 0 {
            break;
        }
        let data = buf.get(..n).unwrap_or(&buf);
        // The same chunk checksum code as the datanodes' and the client's.
        for sum in chunk_checksums(data) {
            fold = fold_one(fold, sum);
        }
        if let Some(d) = downstream.as_mut() {
            d.write_all(data)?;
        }
        total += n as u64;
    }
    if let Some(d) = downstream {
        d.shutdown(std::net::Shutdown::Write)?;
    }
    Ok((total, fold))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn fill(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match stream.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Folds the checksums of `data` (a prefix of the block whose chunk sums
/// are `sums`) into `fold`.
fn fold_chunks(mut fold: u32, data: &[u8], sums: &[u32]) -> u32 {
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        let sum = match sums.get(i) {
            Some(&s) if chunk.len() == CHUNK => s,
            _ => crc32c::crc32c(chunk),
        };
        fold = fold_one(fold, sum);
    }
    fold
}

fn fold_one(fold: u32, sum: u32) -> u32 {
    fold.rotate_left(5) ^ sum
}

/// Bytes that differ from chunk to chunk (nothing compresses them).
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hop_sees_every_byte_with_the_same_checksums() {
        // Not a whole number of buffers, nor of chunks.
        let bytes = 3 * 1024 * 1024 + 4096 + 100;
        let run = relay(bytes, 3).unwrap();
        assert_eq!(run.hops.len(), 3);
        for (hop, &(read, fold)) in run.hops.iter().enumerate() {
            assert_eq!(read, bytes, "hop {hop}");
            assert_eq!(fold, run.expected, "hop {hop}");
        }
        assert_ne!(run.expected, 0);
    }
}
