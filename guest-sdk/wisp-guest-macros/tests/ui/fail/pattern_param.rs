#[wisp_guest::function]
fn add((a, b): (i32, i32)) -> i32 {
    a + b
}

#[wisp_guest::function]
fn ignore(_: String) {}

fn main() {}
