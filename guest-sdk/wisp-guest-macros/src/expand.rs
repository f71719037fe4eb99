//! Writing the hidden module that makes a function callable by the host.
//!
//! For `fn add(a: i64, b: i64) -> i64` the module is, in outline:
//!
//! ```text
//! mod __wisp_function_add {
//!     use super::*;
//!     #[export_name = "wisp:fn:add"]  // on wasm32
//!     extern "C" fn __wisp_export(ptr: i32, len: i32) -> i64 {
//!         // wisp_guest::__private::export: arguments in, output buffer out
//!         export(ptr, len, &SIGNATURE, |args| {
//!             let arg0 = <i64 as Argument>::decode(args, 0)?;
//!             let arg1 = <i64 as Argument>::decode(args, 1)?;
//!             Ok(<i64 as ReturnValue>::encode(super::add(arg0, arg1), args))
//!         })
//!     }
//!     #[used]
//!     #[link_section = "wisp-manifest"]  // on wasm32
//!     static __WISP_MANIFEST: [u8; 60] = *b"{\"abi\":1,...}\n";
//! }
//! ```
//!
//! The glob import lets the glue name the parameter and return types exactly
//! as the user wrote them, so that a type without the serde traits is
//! reported on the user's own code. The export and the section are wasm32
//! only: on other targets the glue still compiles, for `cargo check` and
//! native unit tests, but exports nothing that could clash.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Item, LitByteStr, LitStr};

use crate::signature::{self, ATTRIBUTE, Function, Output};

/// The expansion of `#[function(attr)] item`: the item unchanged, followed by
/// either its hidden module or the errors that prevent one.
pub(crate) fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    let glue = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item_fn)) => signature::parse(attr, &item_fn).map(|function| module(&function)),
        Ok(_) => Err(syn::Error::new_spanned(
            head(&item),
            format!(
                "{ATTRIBUTE} applies to a free function, such as \
                 `fn name(param: Type) -> Type {{ .. }}`, not to this item"
            ),
        )),
        Err(error) => Err(error),
    };
    let glue = glue.unwrap_or_else(|error| error.to_compile_error());
    quote! { #item #glue }
}

/// The hidden module for a function that passed every check.
fn module(function: &Function) -> TokenStream {
    let ident = &function.ident;
    let module = format_ident!("__wisp_function_{}", syn::ext::IdentExt::unraw(ident));
    let export = LitStr::new(
        &wisp_abi::function_export(&function.name),
        Span::call_site(),
    );
    let section = LitStr::new(wisp_abi::MANIFEST_SECTION, Span::call_site());
    let name = LitStr::new(&function.name, Span::call_site());
    let param_names = function.params.iter().map(|param| &param.name);

    let bindings: Vec<_> = (0..function.params.len())
        .map(|index| format_ident!("__wisp_arg{index}"))
        .collect();
    let decodes = function.params.iter().enumerate().map(|(index, param)| {
        let (binding, ty) = (&bindings[index], &param.ty);
        quote! {
            let #binding =
                <#ty as ::wisp_guest::__private::Argument>::decode(__wisp_args, #index)?;
        }
    });
    let call = quote! { super::#ident(#(#bindings),*) };
    let encode = encode(&function.output, &call);

    let manifest = manifest(function);
    let manifest_len = manifest.len();
    let manifest = LitByteStr::new(&manifest, Span::call_site());

    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, reason = "named after the function")]
        mod #module {
            #[allow(unused_imports, reason = "the types of the function's signature")]
            use super::*;

            #[cfg_attr(target_arch = "wasm32", unsafe(export_name = #export))]
            #[cfg_attr(
                not(target_arch = "wasm32"),
                allow(dead_code, reason = "only wasm32 modules export functions")
            )]
            extern "C" fn __wisp_export(ptr: i32, len: i32) -> i64 {
                const SIGNATURE: ::wisp_guest::__private::Signature =
                    ::wisp_guest::__private::Signature::new(#name, &[#(#param_names),*]);
                ::wisp_guest::__private::export(ptr, len, &SIGNATURE, |__wisp_args| {
                    #(#decodes)*
                    ::core::result::Result::Ok(#encode)
                })
            }

            #[used]
            #[cfg_attr(target_arch = "wasm32", unsafe(link_section = #section))]
            static __WISP_MANIFEST: [u8; #manifest_len] = *#manifest;
        }
    }
}

/// The expression that encodes the result of `call` into the output buffer.
///
/// Types are named wherever the user wrote one, so that a missing trait is
/// reported on it; where they cannot be named (`impl Trait`, an alias
/// without arguments), inference finds them and the error points at the
/// return type.
fn encode(output: &Output, call: &TokenStream) -> TokenStream {
    let private = quote! { ::wisp_guest::__private };
    let (ty, encode) = match output {
        Output::Value(ty) => {
            return quote! { <#ty as #private::ReturnValue>::encode(#call, __wisp_args) };
        }
        Output::Result {
            ok: Some(ok),
            err: Some(err),
            ..
        } => {
            return quote! {
                <#ok as #private::ReturnValue>::encode_result::<#err>(#call, __wisp_args)
            };
        }
        Output::Result {
            ok: None,
            err: Some(err),
            ..
        } => {
            return quote! { #private::encode_result::<_, #err>(#call, __wisp_args) };
        }
        Output::Opaque(ty) => (ty, quote! { #private::encode }),
        Output::Result {
            ty,
            ok: Some(ok),
            err: None,
        } => (ty, quote! { <#ok as #private::ReturnValue>::encode_result }),
        Output::Result { ty, ok: None, .. } => (ty, quote! { #private::encode_result }),
    };
    // A type found by inference is reported on the expression that has it:
    // a name spanned on the return type makes the report point there.
    let returned = quote_spanned! {ty.span()=> __wisp_returned };
    quote! {{
        let #returned = #call;
        #encode(#returned, __wisp_args)
    }}
}

/// The function's line of the manifest, newline included:
/// `{"abi":1,"sdk":"0.1.0","function":"add","params":["a","b"]}`.
fn manifest(function: &Function) -> Vec<u8> {
    let params: Vec<String> = function
        .params
        .iter()
        .map(|param| json_string(&param.name))
        .collect();
    format!(
        "{{\"abi\":{},\"sdk\":{},\"function\":{},\"params\":[{}]}}\n",
        wisp_abi::ABI_VERSION,
        json_string(env!("CARGO_PKG_VERSION")),
        json_string(&function.name),
        params.join(","),
    )
    .into_bytes()
}

/// `text` as a JSON string. Names are identifiers or checked `name`s, but
/// escaping keeps the manifest valid whatever they hold.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The tokens of an item up to its body, such as `pub struct Point`: where
/// an error about the item as a whole points.
fn head(item: &TokenStream) -> TokenStream {
    let mut tokens = item.clone().into_iter().peekable();
    let mut head = TokenStream::new();
    while let Some(token) = tokens.next() {
        match &token {
            // An outer attribute, `#[...]`, doc comments included.
            TokenTree::Punct(punct) if punct.as_char() == '#' && head.is_empty() => {
                tokens.next_if(|next| matches!(next, TokenTree::Group(_)));
                continue;
            }
            TokenTree::Group(group) if group.delimiter() == Delimiter::Parenthesis => {
                let after_pub =
                    head.clone().into_iter().last().is_some_and(
                        |last| matches!(last, TokenTree::Ident(ident) if ident == "pub"),
                    );
                if !after_pub {
                    break;
                }
            }
            TokenTree::Group(group) if group.delimiter() != Delimiter::None => break,
            TokenTree::Punct(punct) if matches!(punct.as_char(), ';' | '=' | '<' | ':') => break,
            _ => {}
        }
        head.extend([token]);
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        function(attr, item).to_string()
    }

    #[test]
    fn the_function_is_kept_and_the_module_added() {
        let item = quote! { fn add(a: i64, b: i64) -> i64 { a + b } };
        let out = expand(TokenStream::new(), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(out.contains("mod __wisp_function_add"), "{out}");
        assert!(out.contains(r#"export_name = "wisp:fn:add""#), "{out}");
        assert!(out.contains(r#"link_section = "wisp-manifest""#), "{out}");
        assert!(
            out.contains("super :: add (__wisp_arg0 , __wisp_arg1)"),
            "{out}"
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn errors_keep_the_function() {
        let item = quote! { async fn fetch() {} };
        let out = expand(TokenStream::new(), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("mod "), "{out}");
    }

    #[test]
    fn the_manifest_is_one_line_of_json() {
        let item: syn::ItemFn = syn::parse_quote! { fn r#type(r#in: u8, größe: u8) {} };
        let function = signature::parse(quote! { name = "x.y-z" }, &item).unwrap();
        let line = String::from_utf8(manifest(&function)).unwrap();
        let expected = format!(
            r#"{{"abi":{},"sdk":"{}","function":"x.y-z","params":["in","größe"]}}"#,
            wisp_abi::ABI_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(line, expected + "\n");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn the_head_of_an_item_stops_before_its_body() {
        let head = |item: TokenStream| super::head(&item).to_string();
        assert_eq!(
            head(quote! { #[derive(Debug)] pub struct P { x: i32 } }),
            "pub struct P"
        );
        assert_eq!(
            head(quote! { pub(crate) struct P(i32); }),
            "pub (crate) struct P"
        );
        assert_eq!(head(quote! { const N: usize = 1; }), "const N");
        assert_eq!(head(quote! { impl<T> Foo for T {} }), "impl");
    }
}
