//! What the argument rules need to know of a JSON input beyond serde's
//! decoding: its outline, and where in it an error sits.

use std::fmt::{self, Write as _};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Whether `input` holds nothing but whitespace.
pub(crate) fn is_blank(input: &[u8]) -> bool {
    input.iter().all(u8::is_ascii_whitespace)
}

/// The outline of a JSON value: enough to split it into arguments or to say
/// what it was.
pub(crate) enum Shape<'a> {
    Null,
    Scalar(&'static str),
    Array(Vec<&'a RawValue>),
    Object(Vec<(String, &'a RawValue)>),
}

impl Shape<'_> {
    /// `a string`, `an array of 3 items`: what the value was, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Shape::Null => "null".to_owned(),
            Shape::Scalar(kind) => (*kind).to_owned(),
            Shape::Array(items) => match items.len() {
                0 => "an empty array".to_owned(),
                1 => "an array of 1 item".to_owned(),
                len => format!("an array of {len} items"),
            },
            Shape::Object(entries) if entries.is_empty() => "an empty object".to_owned(),
            Shape::Object(entries) => key_list(
                "an object with",
                entries.iter().map(|(key, _)| key.as_str()),
            ),
        }
    }
}

impl<'de> de::Deserialize<'de> for Shape<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Scalar("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Scalar("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::Scalar("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shape::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Shape::Object(entries))
    }
}

/// Appends serde's message for an error in `fragment`, a part of `input`.
///
/// serde_json counts lines and columns from the start of what it parsed, the
/// fragment, which means little to someone who wrote the whole input; so the
/// position is moved into the input. It is left out for a type error in a
/// scalar fragment, where the parameter's name already says where.
pub(crate) fn write_error(
    out: &mut String,
    error: &serde_json::Error,
    input: &[u8],
    fragment: &[u8],
) {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let reason = text.strip_suffix(&suffix).unwrap_or(&text);
    out.push_str(reason);

    let scalar = !matches!(fragment.trim_ascii_start().first(), Some(b'[' | b'{'));
    if error.line() == 0 || (error.is_data() && scalar) {
        return;
    }
    let offset = (fragment.as_ptr() as usize).saturating_sub(input.as_ptr() as usize);
    let before = input.get(..offset).unwrap_or_default();
    let start_line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let (line, column) = if error.line() == 1 {
        let line_start = before
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        (start_line, offset - line_start + error.column())
    } else {
        (start_line + error.line() - 1, error.column())
    };
    let _ = write!(out, " at line {line} column {column}");
}

/// `unknown key `c``, `no keys `a`, `b``.
pub(crate) fn key_list<'k>(
    adjective: &str,
    keys: impl ExactSizeIterator<Item = &'k str>,
) -> String {
    let plural = if keys.len() == 1 { "" } else { "s" };
    let names: Vec<String> = keys.map(|key| format!("`{key}`")).collect();
    format!("{adjective} key{plural} {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(input: &str) -> String {
        serde_json::from_str::<Shape<'_>>(input).unwrap().describe()
    }

    #[test]
    fn shapes_describe_themselves() {
        assert_eq!(shape("null"), "null");
        assert_eq!(shape("true"), "a boolean");
        assert_eq!(shape("-1.5e3"), "a number");
        assert_eq!(shape(r#""[]""#), "a string");
        assert_eq!(shape("[]"), "an empty array");
        assert_eq!(shape("[[1, 2]]"), "an array of 1 item");
        assert_eq!(shape("{}"), "an empty object");
        assert_eq!(
            shape(r#"{"a": [], "b": {}}"#),
            "an object with keys `a`, `b`"
        );
    }

    #[test]
    fn errors_at_the_top_keep_their_position() {
        let input = b"[1,\n 2";
        let error = serde_json::from_slice::<Vec<u8>>(input).unwrap_err();
        let mut out = String::new();
        write_error(&mut out, &error, input, input);
        assert_eq!(out, "EOF while parsing a list at line 2 column 2");
    }
}
