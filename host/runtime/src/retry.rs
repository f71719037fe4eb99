//! Riding out short storage outages.
//!
//! A worker that cannot reach storage for a few seconds (a restarting
//! server, a network blip) should not fail the calls it is running: it
//! waits and tries again, with growing pauses, until [`WINDOW`] has passed
//! since the first failure (each try may itself take a few seconds: the S3
//! client retries too). Other errors (a missing object, refused
//! credentials) are final and return at once.

use std::future::Future;
use std::time::Duration;

use wisp_storage::StorageError;

/// How long after the first failure an operation is still tried again.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The first pause; each next one is twice as long...
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// ...up to this.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Runs `op` until it succeeds, fails for good, or storage has stayed
/// unreachable for [`WINDOW`].
pub(crate) async fn retrying<T, F, Fut>(what: &str, mut op: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    let mut since: Option<std::time::Instant> = None;
    loop {
        match op().await {
            Err(error @ StorageError::Unreachable { .. })
                if since.get_or_insert_with(std::time::Instant::now).elapsed() < WINDOW =>
            {
                tracing::warn!(attempt, ?pause, "{what}: {error}; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                attempt += 1;
            }
            other => return other,
        }
    }
}
