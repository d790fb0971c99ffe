//! Expansion of `#[cached_query]`: the function keeps its attributes, visibility and signature;
//! its body becomes one call of a `cache_runtime::__private` entry point.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::parse::{Parse as _, Parser as _};
use syn::{AttrStyle, GenericArgument, ItemFn, LitStr, PathArguments, Type};

use crate::args::{self, Codec, Mode, Query, QueryArgs};

/// serde implements `Serialize` for tuples of up to 16 elements; longer key argument lists
/// are nested in tuples of at most this many.
const MAX_TUPLE: usize = 12;

/// `#[cached_query(args)] item`. On any error, the function is emitted unchanged next to the
/// `compile_error!`s, so that the error is the only one and rust-analyzer keeps working.
pub(crate) fn cached_query(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => return with_error(item, error),
    };
    let args = QueryArgs::parse.parse2(args);
    match args::check(args, &func.sig) {
        Ok(query) => expand(&query, &func),
        Err(error) => with_error(item, error),
    }
}

fn with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

/// The expansion of a checked query.
pub(crate) fn expand(query: &Query<'_>, func: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block,
    } = func;
    let outer_attrs = attrs
        .iter()
        .filter(|attr| matches!(attr.style, AttrStyle::Outer));
    let inner_attrs = attrs
        .iter()
        .filter(|attr| matches!(attr.style, AttrStyle::Inner(_)));
    let defaultness = &modifiers.defaultness;

    let output = query.output;
    let span = cached_type_span(output, query.mode);
    let private = quote!(::cache_runtime::__private);
    let spec = spec(query, &sig.ident);
    let codec = codec(query.args.codec.as_ref());

    let key = Ident::new("__cache_key", Span::mixed_site());
    // Each argument is spanned at its parameter, and the tuple from the first to the last, so
    // that a key argument that is not `Serialize` errors in the signature.
    let key_args = query
        .key_args
        .iter()
        .map(|arg| quote_spanned!(arg.span()=> &#arg));
    let mut key_args = TokenTree::Group(tuple(key_args.collect()));
    let key_args = match (query.key_args.first(), query.key_args.last()) {
        (Some(first), Some(last)) => {
            key_args.set_span(last.span());
            quote_spanned!(first.span()=> &#key_args)
        }
        _ => quote!(&#key_args),
    };

    // The call is spanned at the cached type (`User` in `Result<User, E>`): the runtime's bound
    // on it (`Cacheable`) fails there, in the user's signature, when it cannot be cached.
    let call = match query.mode {
        Mode::Result => quote_spanned! {span=>
            ::cache_runtime::__private::cached_result::<_, _, #codec, _>(&__CACHE_SPEC, #key, async move #block).await
        },
        Mode::Value => quote_spanned! {span=>
            ::cache_runtime::__private::cached_value::<_, #codec, _>(&__CACHE_SPEC, #key, async move #block).await
        },
    };

    quote! {
        #(#outer_attrs)*
        #vis #defaultness #sig {
            #(#inner_attrs)*
            static __CACHE_SPEC: #private::QuerySpec = #spec;
            let #key = #private::Key::new(&__CACHE_SPEC, #key_args);
            #call
        }
    }
}

/// Where errors about the cached type point: the first token of `T` in a `Result<T, E>` written
/// out, else the first token of the return type. (On stable, a generated token has one token's
/// span; it cannot cover the whole type.)
fn cached_type_span(output: &Type, mode: Mode) -> Span {
    let mut ty = output;
    if mode == Mode::Result
        && let Type::Path(path) = output
        && let Some(last) = path.path.segments.last()
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        ty = ok;
    }
    let first = ty.to_token_stream().into_iter().next();
    first.map_or_else(Span::call_site, |token| token.span())
}

/// The `QuerySpec` literal.
fn spec(query: &Query<'_>, name: &Ident) -> TokenStream {
    let args = &query.args;
    let name = LitStr::new(&name.unraw().to_string(), name.span());
    let template = option(args.key.as_ref().map(|key| {
        let pieces = &key.pieces;
        quote!(&[#(#pieces),*])
    }));
    let version = Literal::u64_unsuffixed(args.version);
    let ttl = option(args.ttl.map(Literal::u64_unsuffixed));
    let tags = args.tags.iter().map(|tag| &tag.lit);
    let cache = option(args.cache.as_ref());
    quote! {
        ::cache_runtime::__private::QuerySpec {
            function: ::core::concat!(::core::module_path!(), "::", #name),
            template: #template,
            version: #version,
            ttl: #ttl,
            tags: &[#(#tags),*],
            cache: #cache,
        }
    }
}

fn option(value: Option<impl ToTokens>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn codec(codec: Option<&Codec>) -> TokenStream {
    match codec {
        None => quote!(::cache_runtime::codec::CacheDefault),
        Some(Codec::Builtin(name, span)) => {
            let name = Ident::new(name, *span);
            quote_spanned!(*span=> ::cache_runtime::codec::#name)
        }
        Some(Codec::Custom(ty)) => quote!(#ty),
    }
}

/// `(a, b, c,)`, nested when longer than [`MAX_TUPLE`] so that serde's tuple impls apply.
fn tuple(items: Vec<TokenStream>) -> Group {
    if items.len() <= MAX_TUPLE {
        return Group::new(Delimiter::Parenthesis, quote!(#(#items,)*));
    }
    let chunks = items
        .chunks(MAX_TUPLE)
        .map(|chunk| tuple(chunk.to_vec()).into_token_stream());
    tuple(chunks.collect())
}
#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;

    /// Token strings compare modulo spacing.
    fn norm(tokens: impl ToString) -> String {
        tokens.to_string().split_whitespace().collect()
    }

    fn expand_ok(args: TokenStream, item: TokenStream) -> String {
        let out = cached_query(args, item);
        assert!(!out.to_string().contains("compile_error"), "{out}");
        norm(out)
    }

    fn example() -> (TokenStream, TokenStream) {
        (
            quote!(key = "user:{id}", version = 2, ttl = 60, skip(db)),
            quote! {
                /// docs
                pub async fn get_user(&self, db: &Pool, id: i64) -> Result<User, sqlx::Error> { BODY }
            },
        )
    }

    /// `cargo test -p cache-macros print_example -- --nocapture` prints the expansion of the
    /// documented example (pipe it through rustfmt to read it).
    #[test]
    fn print_example() {
        let (args, item) = example();
        println!("{}", cached_query(args, item));
    }

    #[test]
    fn example_expansion() {
        let (args, item) = example();
        let expected = quote! {
            #[doc = r" docs"]
            pub async fn get_user(&self, db: &Pool, id: i64) -> Result<User, sqlx::Error> {
                static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = ::cache_runtime::__private::QuerySpec {
                    function: ::core::concat!(::core::module_path!(), "::", "get_user"),
                    template: ::core::option::Option::Some(&["user:", ""]),
                    version: 2,
                    ttl: ::core::option::Option::Some(60),
                    tags: &[],
                    cache: ::core::option::Option::None,
                };
                let __cache_key = ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,));
                ::cache_runtime::__private::cached_result::<_, _, ::cache_runtime::codec::CacheDefault, _>(
                    &__CACHE_SPEC, __cache_key, async move { BODY }
                ).await
            }
        };
        assert_eq!(expand_ok(args, item), norm(expected));
    }

    #[test]
    fn value_mode() {
        let out = expand_ok(
            quote!(),
            quote!(
                async fn f(id: u32) -> Option<User> {
                    None
                }
            ),
        );
        assert!(
            out.contains(&norm(quote!(
                cached_value::<_, ::cache_runtime::codec::CacheDefault, _>
            ))),
            "{out}"
        );
    }

    #[test]
    fn result_mode_by_last_segment() {
        let out = expand_ok(
            quote!(),
            quote!(
                async fn f() -> anyhow::Result<User> {
                    todo!()
                }
            ),
        );
        assert!(out.contains("cached_result::<_,_,"), "{out}");
        let out = expand_ok(
            quote!(),
            quote!(
                async fn f() -> Results<User> {
                    todo!()
                }
            ),
        );
        assert!(out.contains("cached_value::<_,"), "{out}");
    }

    #[test]
    fn no_template_keys_every_parameter_but_self_and_skip() {
        let out = expand_ok(
            quote!(skip(db)),
            quote!(
                async fn f(&self, db: &Pool, a: u32, _: Marker, b: impl Serialize) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains(&norm(quote!(template: ::core::option::Option::None,))),
            "{out}"
        );
        assert!(
            out.contains(&norm(quote!(Key::new(&__CACHE_SPEC, &(&a, &b,))))),
            "{out}"
        );
    }

    #[test]
    fn no_key_arguments() {
        let out = expand_ok(
            quote!(key = "active_users"),
            quote!(
                async fn f(db: &Pool) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains(&norm(
                quote!(template: ::core::option::Option::Some(&["active_users"]),)
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(quote!(Key::new(&__CACHE_SPEC, &())))),
            "{out}"
        );
    }

    #[test]
    fn placeholders_in_order_and_repeated() {
        let out = expand_ok(
            quote!(key = "{b}:x:{a}:{b}"),
            quote!(
                async fn f(a: u32, b: u32) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains(&norm(quote!(Some(&["", ":x:", ":", ""])))),
            "{out}"
        );
        assert!(out.contains(&norm(quote!(&(&b, &a, &b,)))), "{out}");
    }

    #[test]
    fn long_argument_lists_nest() {
        let params: Vec<Ident> = (0..14)
            .map(|i| Ident::new(&format!("a{i}"), Span::call_site()))
            .collect();
        let out = expand_ok(quote!(), quote!(async fn f(#(#params: u8),*) -> u32 { 1 }));
        let expected = quote!(&(
            (&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7, &a8, &a9, &a10, &a11,),
            (&a12, &a13,),
        ));
        assert!(out.contains(&norm(expected)), "{out}");
        assert_eq!(
            tuple((0..12).map(|i| quote!(#i)).collect())
                .to_string()
                .matches('(')
                .count(),
            1
        );
        // 200 arguments: 17 tuples of at most 12, nested again in 2.
        let nested = tuple((0..200).map(|i| quote!(#i)).collect()).stream();
        let groups = nested
            .into_iter()
            .filter(|t| matches!(t, TokenTree::Group(_)));
        assert_eq!(groups.count(), 2);
    }

    #[test]
    fn spec_fields() {
        let out = expand_ok(
            quote!(
                tags = ["users", "user:{id}"],
                cache = crate::caches::sessions,
                version = 9
            ),
            quote!(
                async fn r#type(id: u32) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains(&norm(
                quote!(function: ::core::concat!(::core::module_path!(), "::", "type"),)
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                quote!(version: 9, ttl: ::core::option::Option::None,)
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(quote!(tags: &["users", "user:{id}"],))),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                quote!(cache: ::core::option::Option::Some(crate::caches::sessions),)
            )),
            "{out}"
        );
    }

    #[test]
    fn codec_paths() {
        let item = || {
            quote!(
                async fn f() -> u32 {
                    1
                }
            )
        };
        for (name, path) in [
            (quote!(msgpack), quote!(::cache_runtime::codec::MsgPack)),
            (quote!(postcard), quote!(::cache_runtime::codec::Postcard)),
            (quote!(bincode), quote!(::cache_runtime::codec::Bincode)),
            (quote!(json), quote!(::cache_runtime::codec::Json)),
            (quote!(my::Zstd<Json>), quote!(my::Zstd<Json>)),
        ] {
            let out = expand_ok(quote!(codec = #name), item());
            assert!(
                out.contains(&norm(quote!(cached_value::<_, #path, _>))),
                "{out}"
            );
        }
    }

    #[test]
    fn keeps_attributes_visibility_and_inner_attributes() {
        let out = expand_ok(
            quote!(),
            quote! {
                #[must_use]
                pub(crate) async unsafe fn f<'a>(x: &'a str) -> u32 where 'a: 'a {
                    #![allow(unused)]
                    1
                }
            },
        );
        let head = norm(
            "#[must_use] pub(crate) async unsafe fn f<'a>(x: &'a str) -> u32 where 'a: 'a { \
             #![allow(unused)] static __CACHE_SPEC",
        );
        assert!(out.starts_with(&head), "{out}");
        assert!(out.ends_with(&norm("async move { 1 }).await }")), "{out}");
    }

    #[test]
    fn errors_keep_the_function_unchanged() {
        let item = quote!(
            async fn f(id: u32) -> u32 {
                id
            }
        );
        let out = cached_query(quote!(ttl = 0, bogus), item.clone()).to_string();
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
    }

    #[test]
    fn not_a_function() {
        let item = quote!(
            struct S;
        );
        let out = cached_query(quote!(), item.clone()).to_string();
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(out.contains("compile_error"), "{out}");
    }
}
