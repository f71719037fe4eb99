//! Turning a call's JSON input into the function's arguments.
//!
//! This is plain Rust with no wasm in it, so that the rules (one parameter
//! takes the value itself, several take an array or an object) can be tested
//! on the host. The input is parsed once into borrowed fragments, one per
//! parameter; each fragment is then decoded into its parameter's type by the
//! generated glue, through [`Argument`], so that a type without
//! `serde::Deserialize` is reported on the user's own code.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::json::{self, Shape, is_blank, key_list};
use crate::shim::Signature;

/// Why a call's input did not fit the function's parameters. Its message is
/// what the host reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    message: String,
}

impl ArgumentError {
    fn new(message: String) -> Self {
        Self { message }
    }

    /// The message, which names the function and what did not fit.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A call's input split into one JSON fragment per parameter, in the order
/// of the parameters.
#[derive(Debug)]
pub struct Args<'a> {
    signature: &'a Signature,
    input: &'a [u8],
    fragments: Vec<&'a [u8]>,
}

impl<'a> Args<'a> {
    /// Splits `input` by the rules of the crate docs.
    ///
    /// # Errors
    ///
    /// When the input is not JSON or its shape does not fit the parameters.
    pub fn parse(signature: &'a Signature, input: &'a [u8]) -> Result<Self, ArgumentError> {
        let fragments = match signature.params.len() {
            0 => no_arguments(signature, input)?,
            1 if is_blank(input) => return Err(arity_error(signature, "nothing")),
            1 => vec![input],
            _ => several_arguments(signature, input)?,
        };
        Ok(Self {
            signature,
            input,
            fragments,
        })
    }

    /// The name of the function being called.
    pub fn function(&self) -> &'a str {
        self.signature.function
    }

    /// Decodes the argument of the parameter at `index` as a `T`.
    ///
    /// # Errors
    ///
    /// When the fragment does not decode as a `T`; the message names the
    /// parameter and gives serde's reason.
    pub fn decode<T: DeserializeOwned>(&self, index: usize) -> Result<T, ArgumentError> {
        let (Some(fragment), Some(param)) =
            (self.fragments.get(index), self.signature.params.get(index))
        else {
            return Err(ArgumentError::new(format!(
                "`{}` has no parameter number {index}",
                self.signature.function
            )));
        };
        serde_json::from_slice(fragment).map_err(|error| {
            let mut message = format!("argument `{param}` of `{}`: ", self.signature.function);
            json::write_error(&mut message, &error, self.input, fragment);
            ArgumentError::new(message)
        })
    }
}

/// A parameter type of a wisp function: anything that serde can decode into
/// an owned value. Implemented for every such type; it exists so that a type
/// that cannot be decoded gets a message that says what to derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter of a `#[wisp_guest::function]`: \
               it does not implement `serde::Deserialize`",
    label = "the argument is decoded from JSON into this type",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}`, or take a type that \
            implements it"
)]
pub trait Argument: Sized {
    /// Decodes the argument at `index` of `args`.
    ///
    /// # Errors
    ///
    /// As [`Args::decode`].
    fn decode(args: &Args<'_>, index: usize) -> Result<Self, ArgumentError>;
}

impl<T: DeserializeOwned> Argument for T {
    fn decode(args: &Args<'_>, index: usize) -> Result<Self, ArgumentError> {
        args.decode(index)
    }
}

fn no_arguments<'a>(
    signature: &Signature,
    input: &'a [u8],
) -> Result<Vec<&'a [u8]>, ArgumentError> {
    if is_blank(input) {
        return Ok(Vec::new());
    }
    match shape(signature, input)? {
        Shape::Null => Ok(Vec::new()),
        Shape::Array(items) if items.is_empty() => Ok(Vec::new()),
        Shape::Object(entries) if entries.is_empty() => Ok(Vec::new()),
        other => Err(arity_error(signature, &other.describe())),
    }
}

fn several_arguments<'a>(
    signature: &Signature,
    input: &'a [u8],
) -> Result<Vec<&'a [u8]>, ArgumentError> {
    if is_blank(input) {
        return Err(arity_error(signature, "nothing"));
    }
    match shape(signature, input)? {
        Shape::Array(items) if items.len() == signature.params.len() => Ok(items
            .into_iter()
            .map(|item| item.get().as_bytes())
            .collect()),
        Shape::Object(entries) => by_name(signature, entries),
        other => Err(arity_error(signature, &other.describe())),
    }
}

/// Orders an object's values by parameter, or names the keys that do not fit.
fn by_name<'a>(
    signature: &Signature,
    entries: Vec<(String, &'a RawValue)>,
) -> Result<Vec<&'a [u8]>, ArgumentError> {
    let mut fragments: Vec<Option<&'a [u8]>> = vec![None; signature.params.len()];
    let (mut unknown, mut duplicate) = (Vec::new(), Vec::new());
    for (key, value) in entries {
        match signature.params.iter().position(|param| *param == key) {
            Some(index) if fragments[index].is_some() => duplicate.push(key),
            Some(index) => fragments[index] = Some(value.get().as_bytes()),
            None => unknown.push(key),
        }
    }
    let missing: Vec<&str> = (signature.params.iter().zip(&fragments))
        .filter(|(_, fragment)| fragment.is_none())
        .map(|(param, _)| *param)
        .collect();
    if unknown.is_empty() && duplicate.is_empty() && missing.is_empty() {
        return Ok(fragments.into_iter().flatten().collect());
    }

    let mut problems = Vec::new();
    for (adjective, keys) in [("unknown", &unknown), ("duplicate", &duplicate)] {
        if !keys.is_empty() {
            problems.push(key_list(adjective, keys.iter().map(String::as_str)));
        }
    }
    if !missing.is_empty() {
        problems.push(key_list("no", missing.iter().copied()));
    }
    Err(arity_error(
        signature,
        &format!("an object with {}", problems.join(" and ")),
    ))
}

/// `add takes 2 arguments (a, b) as a JSON array or object; got nothing`.
fn arity_error(signature: &Signature, got: &str) -> ArgumentError {
    let function = signature.function;
    let message = match signature.params {
        [] => format!("{function} takes no arguments (pass null, [] or {{}}); got {got}"),
        [param] => format!("{function} takes 1 argument ({param}); got {got}"),
        params => format!(
            "{function} takes {} arguments ({}) as a JSON array or object; got {got}",
            params.len(),
            params.join(", ")
        ),
    };
    ArgumentError::new(message)
}

fn shape<'a>(signature: &Signature, input: &'a [u8]) -> Result<Shape<'a>, ArgumentError> {
    serde_json::from_slice(input).map_err(|error| {
        let mut got = String::from("invalid JSON: ");
        json::write_error(&mut got, &error, input, input);
        arity_error(signature, &got)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: Signature = Signature::new("add", &["a", "b"]);
    const NEG: Signature = Signature::new("neg", &["x"]);
    const NOOP: Signature = Signature::new("noop", &[]);

    fn decode_pair(signature: &Signature, input: &str) -> Result<(i64, i64), String> {
        let args = Args::parse(signature, input.as_bytes()).map_err(|e| e.message)?;
        let a = args.decode(0).map_err(|e| e.message)?;
        let b = args.decode(1).map_err(|e| e.message)?;
        Ok((a, b))
    }

    fn parse_error(signature: &Signature, input: &str) -> String {
        match Args::parse(signature, input.as_bytes()) {
            Ok(args) => panic!("{input:?} parsed as {args:?}"),
            Err(error) => error.message,
        }
    }

    #[test]
    fn no_parameters_accept_empty_values() {
        for input in ["", " \n", "null", "[]", "{}", " [ ] "] {
            let args = Args::parse(&NOOP, input.as_bytes());
            assert!(args.is_ok(), "{input:?}: {args:?}");
        }
    }

    #[test]
    fn no_parameters_reject_values() {
        assert_eq!(
            parse_error(&NOOP, "[1]"),
            "noop takes no arguments (pass null, [] or {}); got an array of 1 item"
        );
        assert_eq!(
            parse_error(&NOOP, r#"{"x": 1}"#),
            "noop takes no arguments (pass null, [] or {}); got an object with key `x`"
        );
        assert_eq!(
            parse_error(&NOOP, "0"),
            "noop takes no arguments (pass null, [] or {}); got a number"
        );
    }

    #[test]
    fn one_parameter_takes_the_value_itself() {
        let args = Args::parse(&NEG, b" 42 ").unwrap();
        assert_eq!(args.decode::<i64>(0), Ok(42));
        let args = Args::parse(&NEG, b"[1, 2]").unwrap();
        assert_eq!(args.decode::<Vec<u8>>(0), Ok(vec![1, 2]));
        let args = Args::parse(&NEG, b"null").unwrap();
        assert_eq!(args.decode::<Option<u8>>(0), Ok(None));
    }

    #[test]
    fn one_parameter_needs_a_value() {
        assert_eq!(
            parse_error(&NEG, ""),
            "neg takes 1 argument (x); got nothing"
        );
    }

    #[test]
    fn one_parameter_reports_type_errors_without_position() {
        let args = Args::parse(&NEG, br#""a""#).unwrap();
        assert_eq!(
            args.decode::<i64>(0).unwrap_err().message,
            r#"argument `x` of `neg`: invalid type: string "a", expected i64"#
        );
    }

    #[test]
    fn one_parameter_reports_syntax_errors_with_position() {
        let args = Args::parse(&NEG, b"12 x").unwrap();
        assert_eq!(
            args.decode::<i64>(0).unwrap_err().message,
            "argument `x` of `neg`: trailing characters at line 1 column 4"
        );
    }

    #[test]
    fn several_parameters_by_position_and_by_name() {
        assert_eq!(decode_pair(&ADD, "[1, 2]"), Ok((1, 2)));
        assert_eq!(decode_pair(&ADD, r#"{"b": 2, "a": 1}"#), Ok((1, 2)));
        assert_eq!(decode_pair(&ADD, " [\n1,\n2\n] "), Ok((1, 2)));
    }

    #[test]
    fn several_parameters_check_the_count() {
        assert_eq!(
            parse_error(&ADD, "[1, 2, 3]"),
            "add takes 2 arguments (a, b) as a JSON array or object; got an array of 3 items"
        );
        assert_eq!(
            parse_error(&ADD, "[]"),
            "add takes 2 arguments (a, b) as a JSON array or object; got an empty array"
        );
        assert_eq!(
            parse_error(&ADD, "1"),
            "add takes 2 arguments (a, b) as a JSON array or object; got a number"
        );
        assert_eq!(
            parse_error(&ADD, ""),
            "add takes 2 arguments (a, b) as a JSON array or object; got nothing"
        );
    }

    #[test]
    fn several_parameters_name_wrong_keys() {
        assert_eq!(
            parse_error(&ADD, r#"{"a": 1, "c": 2, "d": 3}"#),
            "add takes 2 arguments (a, b) as a JSON array or object; \
             got an object with unknown keys `c`, `d` and no key `b`"
        );
        assert_eq!(
            parse_error(&ADD, r#"{"a": 1, "a": 2, "b": 3}"#),
            "add takes 2 arguments (a, b) as a JSON array or object; \
             got an object with duplicate key `a`"
        );
        assert_eq!(
            parse_error(&ADD, "{}"),
            "add takes 2 arguments (a, b) as a JSON array or object; got an object with no \
             keys `a`, `b`"
        );
    }

    #[test]
    fn several_parameters_report_invalid_json() {
        assert_eq!(
            parse_error(&ADD, "[1,\n 2"),
            "add takes 2 arguments (a, b) as a JSON array or object; \
             got invalid JSON: EOF while parsing a list at line 2 column 2"
        );
    }

    #[test]
    fn type_errors_name_the_parameter() {
        assert_eq!(
            decode_pair(&ADD, r#"[1, "x"]"#),
            Err(r#"argument `b` of `add`: invalid type: string "x", expected i64"#.to_owned())
        );
        assert_eq!(
            decode_pair(&ADD, r#"{"a": 1.5, "b": 2}"#),
            Err(
                "argument `a` of `add`: invalid type: floating point `1.5`, expected i64"
                    .to_owned()
            )
        );
    }

    #[test]
    fn positions_inside_nested_arguments_count_from_the_input() {
        let signature = Signature::new("sum", &["label", "values"]);
        let input = "[\"x\",\n  [1, 2,\n   \"three\"]]";
        let args = Args::parse(&signature, input.as_bytes()).unwrap();
        assert_eq!(
            args.decode::<Vec<u32>>(1).unwrap_err().message,
            r#"argument `values` of `sum`: invalid type: string "three", expected u32 at line 3 column 10"#
        );

        let input = r#"["x", [1, "two"]]"#;
        let args = Args::parse(&signature, input.as_bytes()).unwrap();
        assert_eq!(
            args.decode::<Vec<u32>>(1).unwrap_err().message,
            r#"argument `values` of `sum`: invalid type: string "two", expected u32 at line 1 column 15"#
        );
    }

    #[test]
    fn strings_may_hold_anything() {
        let signature = Signature::new("join", &["a", "b"]);
        let args = Args::parse(&signature, r#"{"a": "[\"é\"", "b": "}\n"}"#.as_bytes()).unwrap();
        assert_eq!(args.decode::<String>(0).unwrap(), "[\"é\"");
        assert_eq!(args.decode::<String>(1).unwrap(), "}\n");
    }
}
