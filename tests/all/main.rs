//! wisp's end-to-end tests, one binary: real guest crates built with cargo,
//! real wasmtime, real local storage.

mod calls;
mod data;
mod faults;
mod modules;
mod openwhisk;
mod retries;
mod sandbox;
mod secrets;
mod storage;
