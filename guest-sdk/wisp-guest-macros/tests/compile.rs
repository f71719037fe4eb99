//! Compile tests of the attribute: every error message it can give, as
//! seen by a user, and every form of function it accepts.
//!
//! The expected messages are the `.stderr` files beside the cases in
//! `tests/ui/fail`; after a deliberate change, regenerate them with
//! `TRYBUILD=overwrite cargo test -p wisp-guest-macros` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
