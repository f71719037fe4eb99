//! The panic hook that tells the host why a call failed.
//!
//! A guest built for `wasm32-wasip1` aborts on panic, and the abort is a trap
//! that carries no message. So before the trap, the hook hands the message
//! and location to the host through the `wisp.panic` import, which reports
//! them as the call's error. It is installed by the first call into the
//! module, which with one call per instance means once per instance.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::panic::{Location, PanicHookInfo};
use std::sync::Once;

/// The longest panic message that reaches the host, in bytes.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// What replaces the end of a message cut at [`MAX_MESSAGE`].
const TRUNCATED: &str = " [message truncated]";

/// Installs the hook unless it is installed already.
pub(crate) fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| std::panic::set_hook(Box::new(hook)));
}

/// Writes out what the function printed without a final newline; the host
/// would never see it otherwise, since the instance is dropped after the call.
pub(crate) fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

fn hook(info: &PanicHookInfo<'_>) {
    flush_stdout();
    crate::imports::panic(&message(info.location(), info.payload_as_str()));
}

/// `panicked at src/lib.rs:4:5: attempt to divide by zero`, cut to at most
/// [`MAX_MESSAGE`] bytes.
fn message(location: Option<&Location<'_>>, payload: Option<&str>) -> String {
    let mut out = Bounded::default();
    let _ = match location {
        Some(at) => write!(
            out,
            "panicked at {}:{}:{}: ",
            at.file(),
            at.line(),
            at.column()
        ),
        None => write!(out, "panicked: "),
    };
    let _ = out.write_str(payload.unwrap_or("(the panic's payload is not a string)"));
    out.text
}

/// A string that stops growing at [`MAX_MESSAGE`] bytes: what does not fit
/// into [`MAX_MESSAGE`] less the length of [`TRUNCATED`] is replaced by
/// [`TRUNCATED`].
#[derive(Default)]
struct Bounded {
    text: String,
    cut: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Err(fmt::Error);
        }
        let room = (MAX_MESSAGE - TRUNCATED.len()).saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        self.text.push_str(&s[..s.floor_char_boundary(room)]);
        self.text.push_str(TRUNCATED);
        self.cut = true;
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_location() {
        let at = Location::caller();
        assert_eq!(
            message(Some(at), Some("boom")),
            format!(
                "panicked at {}:{}:{}: boom",
                at.file(),
                at.line(),
                at.column()
            )
        );
        assert_eq!(
            message(None, None),
            "panicked: (the panic's payload is not a string)"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = message(None, Some(&long));
        assert!(cut.len() <= MAX_MESSAGE, "{}", cut.len());
        assert!(cut.len() > MAX_MESSAGE - 2 - TRUNCATED.len());
        assert!(cut.starts_with("panicked: éé"));
        assert!(cut.ends_with(TRUNCATED));

        let fits = "x".repeat(MAX_MESSAGE - TRUNCATED.len() - "panicked: ".len());
        assert_eq!(message(None, Some(&fits)), format!("panicked: {fits}"));
        let cut = message(None, Some(&format!("{fits}y")));
        assert_eq!(cut, format!("panicked: {fits}{TRUNCATED}"));

        let mut out = Bounded::default();
        assert!(out.write_str(&long).is_err());
        assert!(out.write_str("more").is_err());
        assert_eq!(out.text.matches(TRUNCATED).count(), 1);
    }
}
