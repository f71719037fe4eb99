#[derive(serde::Deserialize)]
pub struct Point {
    x: f64,
}

#[wisp_guest::function]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[wisp_guest::function]
fn total(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[wisp_guest::function]
fn x(point: &mut Point) -> f64 {
    point.x
}

fn main() {}
