//! [`OwnedTask`]: a spawned task that lives only as long as its owner.

use std::future::Future;

use tokio::task::JoinHandle;

/// A task aborted when this handle is dropped, so no spawned work outlives
/// the stream that started it.
#[derive(Debug)]
pub(crate) struct OwnedTask(JoinHandle<()>);

impl OwnedTask {
    /// Spawns `future` on the current runtime.
    pub(crate) fn spawn<F>(future: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        OwnedTask(tokio::spawn(future))
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
