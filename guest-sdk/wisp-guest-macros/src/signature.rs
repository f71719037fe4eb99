//! Reading a `#[wisp_guest::function]` into what the expansion needs, and
//! rejecting what the host could not call.
//!
//! Each rule that fails becomes a `syn::Error` spanned on the offending part
//! of the user's code, whose message names the attribute, the rule and what
//! to change; all of them are reported at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::parse::Parser as _;
use syn::{FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, PathArguments, ReturnType, Type};

/// The attribute, as the messages name it.
pub(crate) const ATTRIBUTE: &str = "`#[wisp_guest::function]`";

/// A function that the host can call.
pub(crate) struct Function {
    /// The Rust name of the function.
    pub(crate) ident: Ident,
    /// The name that the host calls it by.
    pub(crate) name: String,
    pub(crate) params: Vec<Param>,
    pub(crate) output: Output,
}

/// One parameter: its binding and its type as written.
pub(crate) struct Param {
    /// The name of the argument in a JSON object and in the manifest.
    pub(crate) name: String,
    pub(crate) ty: Type,
}

/// What the function returns, as far as the glue must tell apart.
pub(crate) enum Output {
    /// A type that can be named: encoded as JSON.
    Value(Type),
    /// `impl Trait`, which cannot be named: encoded as JSON, found by
    /// inference.
    Opaque(Type),
    /// A type whose last path segment is `Result`, with its generic
    /// arguments `T` and `E` where they are written and nameable.
    Result {
        ty: Type,
        ok: Option<Box<Type>>,
        err: Option<Box<Type>>,
    },
}

/// Reads the attribute arguments and the function.
pub(crate) fn parse(attr: TokenStream, item: &ItemFn) -> syn::Result<Function> {
    let name = parse_name(attr)?;
    let mut errors = Errors::default();
    check_signature(item, &mut errors);
    let params = item
        .sig
        .inputs
        .iter()
        .filter_map(|arg| errors.keep(param(arg)))
        .collect();
    let output = errors.keep(output(&item.sig.output));
    errors.finish()?;

    let ident = item.sig.ident.clone();
    Ok(Function {
        name: name.unwrap_or_else(|| ident.unraw().to_string()),
        ident,
        params,
        output: output.unwrap_or(Output::Value(syn::parse_quote!(()))),
    })
}

/// The `name = "..."` argument, the only one there is.
fn parse_name(attr: TokenStream) -> syn::Result<Option<String>> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if !meta.path.is_ident("name") {
            let path = meta.path.to_token_stream().to_string().replace(' ', "");
            return Err(meta.error(format!(
                "{ATTRIBUTE} takes one optional argument, `name = \"...\"`; remove `{path}`"
            )));
        }
        if name.is_some() {
            return Err(meta.error(format!("{ATTRIBUTE} takes `name` once; remove one")));
        }
        let value = meta.value()?;
        let value: LitStr = value.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                format!("{ATTRIBUTE} needs `name` as a string: `name = \"word-count\"`"),
            )
        })?;
        check_name(&value)?;
        name = Some(value);
        Ok(())
    });
    parser.parse2(attr)?;
    Ok(name.map(|name| name.value()))
}

fn check_name(name: &LitStr) -> syn::Result<()> {
    let value = name.value();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !value.is_empty() && value.len() <= 128 && value.chars().all(allowed) {
        return Ok(());
    }
    Err(syn::Error::new(
        name.span(),
        format!(
            "{ATTRIBUTE} needs a `name` of 1 to 128 ASCII letters, digits, `_`, `-` and `.`, \
             since the host and its users call the function by it; got {value:?}"
        ),
    ))
}

/// The rules on the function as a whole.
fn check_signature(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(token) = &sig.asyncness {
        errors.push(
            token,
            "cannot be `async`: the host calls functions synchronously; remove `async`",
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.push(
            token,
            "cannot be `unsafe`: the host calls it with whatever arguments a caller sends; \
             make it safe",
        );
    }
    if let Some(abi) = &sig.abi {
        let written = abi.to_token_stream().to_string();
        errors.push(
            abi,
            &format!(
                "generates the export itself, so the function takes no ABI: remove `{written}`"
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(
            &sig.generics,
            "cannot be generic: each argument is decoded into a concrete type; \
             remove the generic parameters and name the types",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(
            variadic,
            "cannot be variadic: take a `Vec<T>` parameter instead",
        );
    }
}

/// One parameter, or why it cannot be one.
fn param(arg: &FnArg) -> syn::Result<Param> {
    let typed = match arg {
        FnArg::Typed(typed) => typed,
        FnArg::Receiver(receiver) => {
            return Err(error(
                receiver,
                "applies to free functions, not methods: remove `self` and move the function \
                 out of the `impl` block",
            ));
        }
    };
    let ident = match &*typed.pat {
        Pat::Ident(binding) if binding.subpat.is_none() => &binding.ident,
        pattern => {
            return Err(error(
                pattern,
                "needs a plain name for each parameter, since an argument may be passed by \
                 name: bind a name, as in `pair: (i32, i32)`, and destructure it in the body",
            ));
        }
    };
    check_param_type(&typed.ty)?;
    Ok(Param {
        name: ident.unraw().to_string(),
        ty: (*typed.ty).clone(),
    })
}

fn check_param_type(ty: &Type) -> syn::Result<()> {
    match ungroup(ty) {
        Type::ImplTrait(_) => Err(error(
            ty,
            "needs a concrete type for each parameter, not `impl Trait`, since the argument is \
             decoded into it: name the type",
        )),
        Type::Reference(reference) => {
            let owned = match ungroup(&reference.elem) {
                Type::Path(path) if path.path.is_ident("str") => "`String`".to_owned(),
                Type::Slice(slice) => {
                    format!(
                        "`Vec<{}>`",
                        slice.elem.to_token_stream().to_string().replace(' ', "")
                    )
                }
                elem => format!("`{}`", elem.to_token_stream().to_string().replace(' ', "")),
            };
            Err(error(
                ty,
                &format!(
                    "needs parameters that own their data, since each argument is decoded \
                     from the call's input: take {owned} instead"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The return type, sorted for the glue.
fn output(output: &ReturnType) -> syn::Result<Output> {
    let ty = match output {
        ReturnType::Default => return Ok(Output::Value(syn::parse_quote!(()))),
        ReturnType::Type(_, ty) => &**ty,
    };
    match ungroup(ty) {
        Type::Never(_) => Err(error(
            ty,
            "must return: a function that never returns (`-> !`) has no result to send",
        )),
        Type::ImplTrait(_) => Ok(Output::Opaque(ty.clone())),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path
                .path
                .segments
                .last()
                .filter(|last| last.ident == "Result")
            else {
                return Ok(Output::Value(ty.clone()));
            };
            let mut types = match &last.arguments {
                PathArguments::AngleBracketed(generic) => generic
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .map(|ty| {
                        let nameable = !matches!(ungroup(ty), Type::ImplTrait(_));
                        nameable.then(|| Box::new(ty.clone()))
                    })
                    .collect(),
                _ => Vec::new(),
            }
            .into_iter();
            Ok(Output::Result {
                ty: ty.clone(),
                ok: types.next().flatten(),
                err: types.next().flatten(),
            })
        }
        _ => Ok(Output::Value(ty.clone())),
    }
}

/// `ty` without the invisible groups that `macro_rules!` wraps around
/// types, and without parentheses.
fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

/// An error on `tokens` whose message starts with the attribute's name.
fn error(tokens: impl ToTokens, rule: &str) -> syn::Error {
    syn::Error::new_spanned(tokens, format!("{ATTRIBUTE} {rule}"))
}

/// Errors gathered so that they are all reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, tokens: impl ToTokens, rule: &str) {
        self.add(error(tokens, rule));
    }

    fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn keep<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.add(error)).ok()
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse_fn(item: TokenStream) -> syn::Result<Function> {
        parse(TokenStream::new(), &syn::parse2(item).unwrap())
    }

    fn messages(item: TokenStream) -> Vec<String> {
        match parse_fn(item) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    fn result_parts(item: TokenStream) -> (Option<String>, Option<String>) {
        let string = |ty: Option<Box<Type>>| ty.map(|ty| ty.to_token_stream().to_string());
        match parse_fn(item).map(|function| function.output) {
            Ok(Output::Result { ok, err, .. }) => (string(ok), string(err)),
            _ => panic!("not a result"),
        }
    }

    #[test]
    fn names_come_from_the_function_or_the_attribute() {
        let item = syn::parse2(quote! { fn r#match(r#type: u8) {} }).unwrap();
        let function = parse(TokenStream::new(), &item).unwrap();
        assert_eq!(function.name, "match");
        assert_eq!(function.params[0].name, "type");
        let function = parse(quote! { name = "other" }, &item).unwrap();
        assert_eq!(function.name, "other");
    }

    #[test]
    fn results_are_told_apart_by_name() {
        let result = |ret: TokenStream| result_parts(quote! { fn f() -> #ret { todo!() } });
        let some = |text: &str| Some(text.to_owned());
        assert_eq!(result(quote! { Result<u8, E> }), (some("u8"), some("E")));
        assert_eq!(result(quote! { std::io::Result<u8> }), (some("u8"), None));
        assert_eq!(result(quote! { Result }), (None, None));
        assert_eq!(result(quote! { Result<impl Sized, E> }), (None, some("E")));

        for ty in [
            quote! { Option<u8> },
            quote! { Results },
            quote! { <T as X>::Result },
        ] {
            let function = parse_fn(quote! { fn f() -> #ty { todo!() } }).unwrap();
            assert!(matches!(function.output, Output::Value(_)), "{ty}");
        }
        let function = parse_fn(quote! { fn f() -> impl Sized {} }).unwrap();
        assert!(matches!(function.output, Output::Opaque(_)));
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let errors = messages(quote! { async unsafe fn f<T>(self, (a, b): (u8, u8), c: &str) {} });
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(
            errors.iter().all(|error| error.starts_with(ATTRIBUTE)),
            "{errors:#?}"
        );
    }

    #[test]
    fn const_functions_are_fine() {
        assert!(messages(quote! { pub const fn f(mut x: u8, ref y: u8) -> u8 { x } }).is_empty());
    }

    #[test]
    fn unknown_arguments_are_rejected() {
        let item = syn::parse2(quote! { fn f() {} }).unwrap();
        let error = parse(quote! { export = "x" }, &item).err().unwrap();
        assert!(error.to_string().contains("remove `export`"), "{error}");
    }
}
