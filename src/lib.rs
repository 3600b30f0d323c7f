//! Process glue shared by the shipped binaries: logging, signal handling and
//! the allocator's settings.

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), without module targets.
pub fn init_tracing(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// A token cancelled on SIGINT or SIGTERM: the one shutdown signal of the process.
pub fn cancel_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}

/// Keeps freed heap memory for reuse instead of handing it back to the kernel
/// at once.
///
/// The data path allocates and frees a 64 KiB+ buffer per packet (tonic's
/// message buffers). With glibc's defaults the heap top is trimmed after each
/// free and grown again on the next allocation, so every packet paid for
/// fresh zeroed pages: page faults took half the client's CPU time on a
/// `dfs cat`. Peak memory does not change; freed memory is only returned
/// later, once more than the trim threshold of it sits free at the top.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Allocations below this come from the heap (glibc's default adapts
        /// between 128 KiB and 32 MiB; setting the trim threshold fixes it).
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        /// Free memory kept at the heap top before it is trimmed.
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        // SAFETY: mallopt only sets glibc's malloc parameters (under its own
        // lock); it takes plain integers and touches no memory of ours.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
