#[wisp_guest::function]
extern "C" fn double(x: i32) -> i32 {
    x * 2
}

fn main() {}
