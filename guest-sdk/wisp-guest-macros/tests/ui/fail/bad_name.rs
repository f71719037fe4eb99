#[wisp_guest::function(name = "word count")]
fn first() {}

#[wisp_guest::function(name = "")]
fn second() {}

#[wisp_guest::function(name = word_count)]
fn third() {}

fn main() {}
