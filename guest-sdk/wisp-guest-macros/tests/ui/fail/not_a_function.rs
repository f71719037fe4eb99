#[wisp_guest::function]
pub struct Point {
    x: i32,
}

fn main() {}
