pub struct Point;

#[wisp_guest::function]
fn origin() -> impl Sized {
    Point
}

fn main() {}
