//! The guest that `tests/module.rs` builds: one function of each kind.

use serde::{Deserialize, Serialize};

#[wisp_guest::function]
fn my_function(x: i64) -> i64 {
    x + 7
}

#[wisp_guest::function]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[wisp_guest::function]
fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[wisp_guest::function]
fn noop() {}

#[derive(Deserialize, Serialize)]
struct Point {
    x: f64,
    y: f64,
}

#[wisp_guest::function(name = "norm-2")]
fn norm(p: Point, scale: Option<f64>) -> wisp_guest::Result<f64> {
    if p.x.is_nan() {
        return Err(wisp_guest::Error::msg("x is NaN"));
    }
    Ok((p.x * p.x + p.y * p.y).sqrt() * scale.unwrap_or(1.0))
}

#[wisp_guest::function]
fn greet(name: String) -> String {
    print!("greeting {name} without a newline");
    format!("Hello, {name}!")
}

#[wisp_guest::function]
fn boom(message: String) -> u8 {
    print!("about to panic");
    panic!("{message}")
}
