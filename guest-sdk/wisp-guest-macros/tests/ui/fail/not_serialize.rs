pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[wisp_guest::function]
fn origin() -> Point {
    Point { x: 0.0, y: 0.0 }
}

#[wisp_guest::function]
fn parse(text: String) -> Result<Point, String> {
    Err(text)
}

fn main() {}
