//! The `#[function]` attribute of the wisp guest SDK.
//!
//! Use it as `#[wisp_guest::function]`, through the `wisp-guest` crate: the
//! code it generates calls into that crate's runtime by absolute paths, and
//! the two crates share one version so that the macro and the runtime always
//! agree. This crate only reads the user's function, checks that the host
//! can call it, and writes the export and the manifest line; every rule about
//! arguments and results lives in `wisp-guest`, where it can be tested.
//!
//! - `signature` reads the attribute and the function into a `Function`, or
//!   into errors that point at the user's code;
//! - `expand` turns that into the hidden module with the export and the
//!   manifest line.

#![deny(missing_docs)]

mod expand;
mod signature;

use proc_macro::TokenStream;

/// Makes a Rust function callable by the wisp host. See the `wisp-guest`
/// crate for the rules that its arguments and results follow.
///
/// The function is kept as written. Next to it goes a hidden module with an
/// export named `wisp:fn:` + the function's name and a line of the module's
/// `wisp-manifest` section. `#[function(name = "other")]` exports it under
/// another name, made of ASCII letters, digits, `_`, `-` and `.`.
///
/// The function must be a free `fn` (it may be `const`, not `async`,
/// `unsafe`, `extern` or generic) whose parameters are plain names with
/// owned types.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(attr.into(), item.into()).into()
}
