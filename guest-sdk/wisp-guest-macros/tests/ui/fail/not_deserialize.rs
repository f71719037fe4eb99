pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[wisp_guest::function]
fn norm(point: Point) -> f64 {
    (point.x * point.x + point.y * point.y).sqrt()
}

#[wisp_guest::function]
fn count(label: String, points: Vec<Point>) -> usize {
    label.len() + points.len()
}

fn main() {}
