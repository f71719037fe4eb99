//! Runtime images: the action server built for musl, put in a build context
//! made in process, built and pushed through the Docker engine's API.

/// Why an image could not be built or pushed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine is not reachable.
    #[error("cannot reach the Docker engine: {0}")]
    Unreachable(String),
}
