//! # command: a plain WASI command as a wisp function
//!
//! A module without the wisp SDK: it has no manifest, only `_start`. wisp
//! runs such a module as a function by writing the call's argument as JSON
//! to its standard input and reading the result as JSON from its standard
//! output; a non-zero exit code fails the call, with standard error as the
//! reason.
//!
//! This one expects an array of numbers and answers with their sum and
//! count, `[1, 2, 3.5]` → `{"sum": 6.5, "count": 3}`. The sum is an integer
//! when every number is one and the sum fits in an `i64`. Anything else is
//! bad input: a message on standard error and exit code 2.
//!
//! ```sh
//! cargo build --release --target wasm32-wasip1
//! wisp submit tests/guests/target/wasm32-wasip1/release/command.wasm --args '[1, 2, 3]'
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{Number, Value};

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    match sum(&input) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{result}").and_then(|()| out.flush()) {
                eprintln!("cannot write standard output: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Parses `input` as a JSON array of numbers and returns
/// `{"sum": ..., "count": ...}`, in that order.
fn sum(input: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(input).map_err(|e| format!("the input is not JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err(format!(
            "expected an array of numbers, got {}",
            kind(&value)
        ));
    };
    let mut integer: Option<i64> = Some(0);
    let mut float = 0.0f64;
    for (i, item) in items.iter().enumerate() {
        let Value::Number(n) = item else {
            return Err(format!("item {i} is {}, not a number", kind(item)));
        };
        integer = integer
            .zip(n.as_i64())
            .and_then(|(sum, n)| sum.checked_add(n));
        float += n.as_f64().expect("a JSON number converts to f64");
    }
    let sum = match integer {
        Some(sum) => Number::from(sum),
        None => Number::from_f64(float).ok_or("the sum is not a finite number")?,
    };
    Ok(format!(r#"{{"sum":{sum},"count":{}}}"#, items.len()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sum(input: &str) -> Result<Value, String> {
        super::sum(input).map(|out| serde_json::from_str(&out).unwrap())
    }

    #[test]
    fn sums_numbers() {
        assert_eq!(sum("[1, 2, 3]").unwrap(), json!({"sum": 6, "count": 3}));
        assert_eq!(sum("[1, 2, 3.5]").unwrap(), json!({"sum": 6.5, "count": 3}));
        assert_eq!(sum(" [] \n").unwrap(), json!({"sum": 0, "count": 0}));
        assert_eq!(sum("[-4, 4]").unwrap(), json!({"sum": 0, "count": 2}));
    }

    #[test]
    fn writes_the_sum_first() {
        assert_eq!(super::sum("[1, 2]").unwrap(), r#"{"sum":3,"count":2}"#);
    }

    #[test]
    fn integer_overflow_falls_back_to_floats() {
        let v = sum(&format!("[{}, 1]", i64::MAX)).unwrap();
        assert_eq!(v["sum"].as_f64(), Some(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(sum("").unwrap_err().contains("not JSON"));
        assert!(sum("{\"a\": 1}").unwrap_err().contains("an object"));
        assert!(
            sum("[1, \"2\"]")
                .unwrap_err()
                .contains("item 1 is a string")
        );
        assert!(sum("[1, 2").unwrap_err().contains("not JSON"));
    }
}
