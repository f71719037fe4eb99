//! The OpenWhisk backend: its REST client, runtime management and the
//! backend that invokes batches of calls as activations.

pub mod api;

pub use api::OpenWhiskError;
