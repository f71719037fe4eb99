//! Riding out short storage outages.
//!
//! A worker that cannot reach storage for a few seconds (a restarting
//! server, a network blip) should not fail the calls it is running: it
//! waits and tries again, with growing pauses, for about eight seconds in
//! all. Other errors (a missing object, refused credentials) are final and
//! return at once.

use std::future::Future;
use std::time::Duration;

use wisp_storage::StorageError;

/// How many times an operation is tried in all.
const ATTEMPTS: u32 = 6;
/// The first pause; each next one is twice as long.
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Runs `op` until it succeeds, fails for good, or has been tried
/// [`ATTEMPTS`] times while storage was unreachable.
pub(crate) async fn retrying<T, F, Fut>(what: &str, mut op: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(error @ StorageError::Unreachable { .. }) if attempt < ATTEMPTS => {
                tracing::warn!(attempt, ?pause, "{what}: {error}; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}
