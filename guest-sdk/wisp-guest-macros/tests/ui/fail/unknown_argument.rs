#[wisp_guest::function(export = "other")]
fn first() {}

#[wisp_guest::function(name = "a", name = "b")]
fn second() {}

fn main() {}
