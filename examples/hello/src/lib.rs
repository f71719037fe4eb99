//! # hello: the smallest wisp functions
//!
//! Two plain Rust functions marked `#[wisp_guest::function]`. wisp builds this
//! crate for `wasm32-wasip1` and runs each call in a fresh sandboxed instance;
//! the JSON argument of a call is deserialised into the parameter, and the
//! return value comes back as JSON.
//!
//! Run one call, or map a function over several inputs (one call each):
//!
//! ```sh
//! wisp submit examples/hello --function my_function --args 3
//! # 10
//! wisp submit examples/hello --function greet --args '"Ada"'
//! # "Hello, Ada!"
//! wisp submit examples/hello --function my_function --map-json '[1, 2, 3]'
//! # [8, 9, 10]
//! ```

/// Adds seven to its argument.
#[wisp_guest::function]
fn my_function(x: i64) -> i64 {
    x + 7
}

/// Greets someone by name; the log of the call says who was greeted.
#[wisp_guest::function]
fn greet(name: String) -> String {
    println!("greeting {name}");
    format!("Hello, {name}!")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_seven() {
        assert_eq!(my_function(3), 10);
        assert_eq!(my_function(-7), 0);
    }

    #[test]
    fn greets() {
        assert_eq!(greet("Ada".to_string()), "Hello, Ada!");
    }
}
