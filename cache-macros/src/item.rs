//! Pieces of the annotated function that both macros re-emit the same way.

use proc_macro2::TokenStream;
use syn::{AttrStyle, Attribute};

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
    quote::quote!(#(#cfgs)*)
}
