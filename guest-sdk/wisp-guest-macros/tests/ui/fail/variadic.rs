#[wisp_guest::function]
fn sum(first: i32, ...) -> i32 {
    first
}

fn main() {}
