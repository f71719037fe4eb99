#[wisp_guest::function]
fn forever() -> ! {
    loop {}
}

fn main() {}
