//! Every form of function that the attribute accepts.

use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[wisp_guest::function]
fn noop() {}

#[wisp_guest::function]
fn unit() -> () {}

#[wisp_guest::function]
fn my_function(x: i64) -> i64 {
    x + 7
}

#[wisp_guest::function]
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[wisp_guest::function]
pub(crate) const fn constant(mut x: u8, ref y: u8) -> u8 {
    x = x.wrapping_add(*y);
    x
}

#[wisp_guest::function(name = "norm-2.v1")]
fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

#[wisp_guest::function]
fn points(n: usize, r#type: String) -> Vec<Point> {
    let _ = r#type;
    (0..n).map(|i| Point { x: i as f64, y: 0.0 }).collect()
}

#[wisp_guest::function]
fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[wisp_guest::function]
fn parse_sdk(s: String) -> wisp_guest::Result<u32> {
    Ok(s.parse()?)
}

#[wisp_guest::function]
fn read(path: String) -> std::io::Result<String> {
    Ok(path)
}

#[wisp_guest::function]
fn boxed(s: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(s.into())
}

type Outcome = std::result::Result<String, String>;

#[wisp_guest::function]
fn aliased() -> Outcome {
    Ok(String::new())
}

mod aliases {
    type Result = std::result::Result<u8, String>;

    #[wisp_guest::function]
    fn bare_alias() -> Result {
        Ok(1)
    }
}

#[wisp_guest::function]
fn opaque(n: u8) -> impl Serialize {
    vec![n; 3]
}

#[wisp_guest::function]
fn opaque_result(n: u8) -> std::result::Result<impl Serialize, String> {
    Ok(n)
}

#[wisp_guest::function]
fn größe(länge: u32) -> u32 {
    länge
}

#[wisp_guest::function]
fn args(args: Vec<u8>, __wisp_args: u8, ptr: u8, len: u8) -> usize {
    args.len() + usize::from(__wisp_args + ptr + len)
}

mod nested {
    use super::Point;

    #[wisp_guest::function]
    fn shift(p: Point, by: f64) -> Point {
        Point { x: p.x + by, y: p.y }
    }
}

fn main() {
    assert_eq!(my_function(35), 42);
    assert_eq!(add(1, 2), 3);
}
