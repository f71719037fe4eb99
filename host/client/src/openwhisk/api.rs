//! A client of the OpenWhisk REST API: packages, actions, invocations and
//! activation records.

/// Why a request to OpenWhisk failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenWhiskError {
    /// The controller is not reachable.
    #[error("cannot reach OpenWhisk at {endpoint}: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
}
