#[wisp_guest::function]
fn first<T: Clone>(items: Vec<T>) -> Option<T> {
    items.first().cloned()
}

#[wisp_guest::function]
fn longest<'a>(a: String, b: String) -> usize {
    a.len().max(b.len())
}

fn main() {}
