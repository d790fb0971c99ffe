//! What both macros emit the same way: the function re-emitted (with an error, its attributes
//! split, its `#[cfg]`s for companions), where its spec lives, and the companions' lints.

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt as _;
use syn::{AttrStyle, Attribute, Signature};

/// The function as written, followed by `error`: rust-analyzer keeps seeing the function and
/// the user sees one clear error (tokio-macros does the same).
pub(crate) fn with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

/// Outer attributes (docs, `#[cfg]`, lints) go on the generated function, inner ones
/// (`#![allow(..)]` in the body) back inside its body.
pub(crate) fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>) {
    attrs
        .iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer))
}

/// The function's `#[cfg(..)]`s, which its companions copy so they exist exactly when it does.
pub(crate) fn cfgs(attrs: &[Attribute]) -> TokenStream {
    let cfgs = attrs
        .iter()
        .filter(|attr| matches!(attr.style, AttrStyle::Outer) && attr.path().is_ident("cfg"));
    quote!(#(#cfgs)*)
}

/// Where a function's spec (`QuerySpec`, `ViewSpec`) lives, and how generated code names it.
pub(crate) struct Spec {
    /// The hidden associated `const` next to a method, shared with its companions.
    pub(crate) item: TokenStream,
    /// The `static` at the top of each generated body (the function's and every
    /// companion's), when the spec cannot be shared.
    pub(crate) local: TokenStream,
    /// A `&'static` expression of the spec, for the runtime calls.
    pub(crate) path: TokenStream,
}

/// The spec `value` of type `ty`. In an `impl` (the function has a receiver or names `Self`
/// in its signature) and with companions (`shared`), it is written once, as a hidden
/// associated `const __CACHE_SPEC_{NAME}` the function and its companions name as `Self::..`.
/// Otherwise it is a `static` at the top of each body: a macro cannot see whether a function
/// without `self` sits in an `impl` (where a free item cannot go) or in a module (where
/// `Self` does not exist), so only a copy per body works in both.
pub(crate) fn spec(
    sig: &Signature,
    attrs: &[Attribute],
    ty: TokenStream,
    value: TokenStream,
    shared: bool,
) -> Spec {
    let in_impl = sig.receiver().is_some() || names_self(sig.to_token_stream());
    if !(shared && in_impl) {
        return Spec {
            item: TokenStream::new(),
            local: quote!(static __CACHE_SPEC: #ty = #value;),
            path: quote!(&__CACHE_SPEC),
        };
    }
    let upper = sig.ident.unraw().to_string().to_uppercase();
    let name = format_ident!("__CACHE_SPEC_{}", upper, span = sig.ident.span());
    let cfgs = cfgs(attrs);
    Spec {
        item: quote! {
            #cfgs
            #[doc(hidden)]
            const #name: &#ty = &#value;
        },
        local: TokenStream::new(),
        path: quote!(Self::#name),
    }
}

/// Whether `Self` appears in the tokens (only possible in an `impl` or a trait).
fn names_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => names_self(group.stream()),
        _ => false,
    })
}

/// The `lease`, `early` and `stale` fields of a spec.
pub(crate) fn freshness(freshness: &crate::attr::Freshness) -> TokenStream {
    let lease = option(freshness.lease);
    let early = option(freshness.early.map(proc_macro2::Literal::f64_unsuffixed));
    let stale = option(freshness.stale.map(proc_macro2::Literal::u64_unsuffixed));
    quote!(lease: #lease, early: #early, stale: #stale,)
}

/// `Option::Some(value)` or `Option::None`, by absolute path.
pub(crate) fn option(value: Option<impl ToTokens>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

/// What an invalidation error means, in every companion's docs.
pub(crate) const ERRORS_DOC: &str = " # Errors\n\n The cache's error when the invalidation \
    did not happen (the cache is unreachable, a timeout): what it names may still be served, \
    so retry, or report the failure instead of treating the write as done.";

/// The lints every companion `name` may trip: `dead_code` (it need not be called), and
/// `non_snake_case` when the function's own name is not snake case (the user allowed it there).
pub(crate) fn companion_lints(name: &Ident) -> Vec<TokenStream> {
    let mut lints = vec![quote!(dead_code)];
    if !is_snake_case(&name.unraw().to_string()) {
        lints.push(quote!(non_snake_case));
    }
    lints
}

/// rustc's `non_snake_case` rule: no uppercase letter, no `__` inside the name.
fn is_snake_case(name: &str) -> bool {
    let name = name.trim_matches('_');
    !name.chars().any(char::is_uppercase) && !name.contains("__")
}
