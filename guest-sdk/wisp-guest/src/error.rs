//! A small error type for functions that fail, so that a guest needs no
//! error crate of its own.
//!
//! A failed call reports one message, so the error is kept as that message:
//! converting from a standard error walks its chain of causes once and joins
//! them, the way `anyhow` prints `{:#}`.

use std::fmt;

/// An error that a wisp function returns: a message with its causes.
///
/// Any standard error converts into it, so `?` works on them all:
///
/// ```
/// fn parse(text: &str) -> wisp_guest::Result<u32> {
///     let number: u32 = text.trim().parse()?;
///     if number == 0 {
///         return Err(wisp_guest::Error::msg("zero is not allowed"));
///     }
///     Ok(number)
/// }
///
/// assert_eq!(parse("7").unwrap(), 7);
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// ```
///
/// Like `anyhow::Error`, and for the same reason, it does not implement
/// [`std::error::Error`] itself: if it did, its blanket `From` would overlap
/// the reflexive `impl From<T> for T`.
pub struct Error {
    message: String,
}

/// `Result<T, wisp_guest::Error>`: the return type of a function that may
/// fail.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The same error, with `context` in front: `context: error`.
    ///
    /// ```
    /// let error = wisp_guest::Error::msg("file not found").context("reading `a.csv`");
    /// assert_eq!(error.to_string(), "reading `a.csv`: file not found");
    /// ```
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading the model")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn conversion_keeps_the_causes() {
        let error = Error::from(Outer(std::io::Error::other("disk full")));
        assert_eq!(error.to_string(), "loading the model: disk full");
        assert_eq!(format!("{error:?}"), r#""loading the model: disk full""#);
    }

    #[test]
    fn question_mark_converts() {
        fn parse() -> Result<u8> {
            Ok("300".parse::<u8>()?)
        }
        assert_eq!(
            parse().unwrap_err().to_string(),
            "number too large to fit in target type"
        );
    }
}
