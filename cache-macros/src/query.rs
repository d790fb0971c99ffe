//! Expansion of `#[cached_query]`: the function keeps its attributes, visibility and signature;
//! its body becomes one call of a `cache_runtime::__private` entry point, and its two
//! companions invalidate what it cached.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::parse::{Parse as _, Parser as _};
use syn::{GenericArgument, ItemFn, LitStr, PathArguments, Signature, Type};

use crate::attr::{Codec, QueryArgs};
use crate::check::{self, CompanionParam, Mode, Query};
use crate::item::{self, Spec};

/// serde implements `Serialize` for tuples of up to 16 elements; longer key argument lists
/// are nested in tuples of at most this many.
const MAX_TUPLE: usize = 12;

/// `#[cached_query(args)] item`. On any error, the function is emitted unchanged next to the
/// `compile_error!`s, so that the error is the only one and rust-analyzer keeps working.
pub(crate) fn cached_query(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => return item::with_error(item, error),
    };
    match check::query(QueryArgs::parse.parse2(args), &func.sig) {
        Ok(query) => expand(&query, &func),
        Err(error) => item::with_error(item, error),
    }
}

/// The expansion of a checked query: its spec, the function, then its two companions.
pub(crate) fn expand(query: &Query<'_>, func: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block,
    } = func;
    let (outer_attrs, inner_attrs) = item::split_attrs(attrs);
    let defaultness = &modifiers.defaultness;

    let ty = quote!(::cache_runtime::__private::QuerySpec);
    let spec = item::spec(
        sig,
        attrs,
        ty,
        spec(query, &sig.ident),
        query.args.companions,
    );
    let Spec { item, local, path } = &spec;
    let cached = cached_type(query.output, query.mode);
    let span = cached
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    // A `Clone` type is decoded once per value kept and handed out as clones
    // (`cache_runtime::share`).
    let sharing = quote! {{
        #[allow(unused_imports)]
        use ::cache_runtime::__private::{ShareClone as _, ShareNone as _};
        (&::cache_runtime::__private::Probe::<#cached>::NEW).sharing()
    }};
    let codec = codec(query.args.codec.as_ref());
    let key = Ident::new("__cache_key", Span::mixed_site());
    let new_key = new_key(query, path);

    // The call is spanned at the cached type (`User` in `Result<User, E>`): the runtime's bound
    // on it (`Cacheable`) fails there, in the user's signature, when it cannot be cached. A
    // sync function's body becomes a closure (`return` and `?` stay inside it), its declared
    // return type pinning what `?` converts to.
    let output = query.output;
    let call = match (query.mode, query.blocking) {
        (Mode::Result, false) => quote_spanned! {span=>
            ::cache_runtime::__private::cached_result::<_, _, #codec, _>(#path, #key, #sharing, async move #block).await
        },
        (Mode::Value, false) => quote_spanned! {span=>
            ::cache_runtime::__private::cached_value::<_, #codec, _>(#path, #key, #sharing, async move #block).await
        },
        (Mode::Result, true) => quote_spanned! {span=>
            ::cache_runtime::__private::cached_result_blocking::<_, _, #codec, _>(#path, #key, #sharing, move || -> #output #block)
        },
        (Mode::Value, true) => quote_spanned! {span=>
            ::cache_runtime::__private::cached_value_blocking::<_, #codec, _>(#path, #key, #sharing, move || -> #output #block)
        },
    };
    let companions = if query.args.companions {
        companions(query, func, &spec, &new_key)
    } else {
        TokenStream::new()
    };

    quote! {
        #item
        #(#outer_attrs)*
        #vis #defaultness #sig {
            #(#inner_attrs)*
            #local
            let #key = #new_key;
            #call
        }
        #companions
    }
}

/// `Key::new(spec, &(key args), &(tag args))`, the same in the function and in its
/// `_invalidate` companion.
fn new_key(query: &Query<'_>, spec: &TokenStream) -> TokenStream {
    let key_args = args_tuple(&query.key_args);
    let tag_args = args_tuple(&query.tag_args);
    quote!(::cache_runtime::__private::Key::new(#spec, #key_args, #tag_args))
}

/// `&(&a, &b,)`, or `&()`. Each argument is spanned at its parameter, and the tuple from the
/// first to the last, so that an argument that is not `Serialize` errors in the signature.
fn args_tuple(args: &[Ident]) -> TokenStream {
    let refs = args.iter().map(|arg| quote_spanned!(arg.span()=> &#arg));
    let mut tuple = TokenTree::Group(tuple(refs.collect()));
    match (args.first(), args.last()) {
        (Some(first), Some(last)) => {
            tuple.set_span(last.span());
            quote_spanned!(first.span()=> &#tuple)
        }
        _ => quote!(&#tuple),
    }
}

/// `{name}_invalidate(key params)` and `{name}_invalidate_all()`, next to the function with its
/// visibility and `#[cfg]`s. In an `impl` block they are associated functions (no receiver).
fn companions(query: &Query<'_>, func: &ItemFn, spec: &Spec, new_key: &TokenStream) -> TokenStream {
    let Spec { local, path, .. } = spec;
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    let private = quote!(::cache_runtime::__private);
    let cfgs = item::cfgs(attrs);
    let name = &sig.ident;
    let unraw = name.unraw().to_string();
    let entry = format_ident!("{}_invalidate", unraw, span = name.span());
    let all = format_ident!("{}_invalidate_all", unraw, span = name.span());
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;

    let params = query.companion.iter().map(|param| match param {
        CompanionParam::Named(ident, ty) => quote!(#ident: #ty),
        CompanionParam::Whole(typed) => typed.to_token_stream(),
    });
    let entry_allows = allows(&entry_lints(query, sig, &entry));
    let all_allows = allows(&item::companion_lints(&all));
    let entry_doc = entry_doc(query, &unraw);
    // A sync function's companions are sync: they block like it.
    let (asyncness, suffix, dot_await) = if query.blocking {
        (quote!(), "_blocking", quote!())
    } else {
        (quote!(async), "", quote!(.await))
    };
    let invalidate_entry = format_ident!("invalidate_entry{}", suffix);
    let invalidate_query = format_ident!("invalidate_query{}", suffix);
    let all_doc = format!(
        " Invalidates every entry of `{unraw}`, whatever its arguments, in O(1): later calls \
         run the body again. Generated by `#[cached_query]`.\n\n{}",
        item::ERRORS_DOC
    );

    quote! {
        #cfgs
        #[doc = #entry_doc]
        #entry_allows
        #vis #asyncness fn #entry #generics (#(#params),*) -> ::cache_runtime::Result<()> #where_clause {
            #local
            #private::#invalidate_entry(#path, #new_key) #dot_await
        }
        #cfgs
        #[doc = #all_doc]
        #all_allows
        #vis #asyncness fn #all() -> ::cache_runtime::Result<()> {
            #local
            #private::#invalidate_query(#path) #dot_await
        }
    }
}

/// `#[allow(lints)]`.
fn allows(lints: &[TokenStream]) -> TokenStream {
    quote!(#[allow(#(#lints),*)])
}

/// The lints `{name}_invalidate` would trip through what it copies from the function's
/// signature, each only when it applies: a destructured parameter is taken whole (its `mut`
/// and its bindings the key does not use come along), lifetimes are copied, parameter types
/// may not be `Send`.
fn entry_lints(query: &Query<'_>, sig: &Signature, entry: &Ident) -> Vec<TokenStream> {
    let mut lints = item::companion_lints(entry);
    let mut whole = Vec::new();
    for param in &query.companion {
        if let CompanionParam::Whole(typed) = param {
            check::binding_patterns(&typed.pat, &mut whole);
        }
    }
    if whole.iter().any(|binding| binding.mutability.is_some()) {
        lints.push(quote!(unused_mut));
    }
    let used = |ident: &Ident| query.key_args.contains(ident) || query.tag_args.contains(ident);
    if whole
        .iter()
        .any(|binding| !used(&binding.ident) && !binding.ident.to_string().starts_with('_'))
    {
        lints.push(quote!(unused_variables));
    }
    if sig.generics.lifetimes().next().is_some() {
        lints.extend([
            quote!(unused_lifetimes),
            quote!(clippy::needless_lifetimes),
            quote!(clippy::extra_unused_lifetimes),
        ]);
    }
    // clippy's default `too-many-arguments-threshold`.
    if query.companion.len() > 7 {
        lints.push(quote!(clippy::too_many_arguments));
    }
    let send = |param: &CompanionParam<'_>| match param {
        CompanionParam::Named(_, ty) => plainly_send(ty),
        CompanionParam::Whole(typed) => plainly_send(&typed.ty),
    };
    if !query.blocking && !query.companion.iter().all(send) {
        lints.push(quote!(clippy::future_not_send));
    }
    lints
}

/// Whether `ty` is `Send` on its face (std's plain types, references to them, and tuples,
/// arrays, slices, `Option`s, `Vec`s and `Box`es of them), so that the companion's future is.
fn plainly_send(ty: &Type) -> bool {
    const PLAIN: &[&str] = &[
        "bool", "char", "str", "String", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16",
        "i32", "i64", "i128", "isize", "f32", "f64",
    ];
    match ty {
        Type::Reference(reference) => plainly_send(&reference.elem),
        Type::Paren(paren) => plainly_send(&paren.elem),
        Type::Group(group) => plainly_send(&group.elem),
        Type::Tuple(tuple) => tuple.elems.iter().all(plainly_send),
        Type::Array(array) => plainly_send(&array.elem),
        Type::Slice(slice) => plainly_send(&slice.elem),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return false;
            };
            match &last.arguments {
                PathArguments::None => PLAIN.iter().any(|plain| last.ident == plain),
                PathArguments::AngleBracketed(args)
                    if ["Option", "Vec", "Box"].iter().any(|c| last.ident == c) =>
                {
                    args.args
                        .iter()
                        .all(|arg| matches!(arg, GenericArgument::Type(ty) if plainly_send(ty)))
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn entry_doc(query: &Query<'_>, name: &str) -> String {
    let list = |names: &mut dyn Iterator<Item = &Ident>| {
        let mut seen: Vec<String> = Vec::new();
        for name in names {
            let name = format!("`{}`", name.unraw());
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen.join(", ")
    };
    let key = list(&mut query.key_args.iter());
    let tag_only = list(
        &mut query
            .tag_args
            .iter()
            .filter(|t| !query.key_args.contains(t)),
    );
    let mut doc = format!(
        " Invalidates the entry a call of `{name}` with the same arguments would use: the next \
         such call runs the body again. Generated by `#[cached_query]`.\n\n"
    );
    if key.is_empty() {
        doc.push_str(&format!(
            " `{name}`'s key has no arguments: this is its only entry."
        ));
    } else {
        doc.push_str(&format!(" Takes the parameters that form the key: {key}."));
    }
    if !tag_only.is_empty() {
        doc.push_str(&format!(
            " Then {tag_only}, which only the tags use: they build the same key but do not \
             change which entry is invalidated (any value does)."
        ));
    }
    doc.push_str("\n\n");
    doc.push_str(item::ERRORS_DOC);
    doc
}

/// The cached type: `T` in a `Result<T, E>` written out, else the return type. Errors about it
/// point at its first token (on stable, a generated token has one token's span; it cannot
/// cover the whole type).
fn cached_type(output: &Type, mode: Mode) -> &Type {
    if mode == Mode::Result
        && let Type::Path(path) = output
        && let Some(last) = path.path.segments.last()
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        return ok;
    }
    output
}

/// The `QuerySpec` literal.
fn spec(query: &Query<'_>, name: &Ident) -> TokenStream {
    let args = &query.args;
    let name = LitStr::new(&name.unraw().to_string(), name.span());
    let template = item::option(args.key.as_ref().map(|key| {
        let pieces = &key.pieces;
        quote!(&[#(#pieces),*])
    }));
    let version = Literal::u64_unsuffixed(args.version);
    let ttl = item::option(args.ttl.map(Literal::u64_unsuffixed));
    let tags = args.tags.iter().map(|tag| {
        let pieces = &tag.pieces;
        quote!(&[#(#pieces),*])
    });
    let cache = item::option(args.cache.as_ref());
    let freshness = item::freshness(&args.freshness);
    quote! {
        ::cache_runtime::__private::QuerySpec {
            function: ::core::concat!(::core::module_path!(), "::", #name),
            template: #template,
            version: #version,
            ttl: #ttl,
            tags: &[#(#tags),*],
            cache: #cache,
            #freshness
        }
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
            quote!(
                key = "user:{id}",
                version = 2,
                ttl = 60,
                tags = ["users", "user:{id}"],
                skip(db)
            ),
            quote! {
                /// docs
                pub async fn get_user(db: &Pool, id: i64) -> Result<User, sqlx::Error> { BODY }
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
        let spec = quote! {
            ::cache_runtime::__private::QuerySpec {
                function: ::core::concat!(::core::module_path!(), "::", "get_user"),
                template: ::core::option::Option::Some(&["user:", ""]),
                version: 2,
                ttl: ::core::option::Option::Some(60),
                tags: &[&["users"], &["user:", ""]],
                cache: ::core::option::Option::None,
                lease: ::core::option::Option::None,
                early: ::core::option::Option::None,
                stale: ::core::option::Option::None,
            }
        };
        let entry_doc = " Invalidates the entry a call of `get_user` with the same arguments would \
            use: the next such call runs the body again. Generated by `#[cached_query]`.\n\n \
            Takes the parameters that form the key: `id`.\n\n # Errors\n\n The cache's error \
            when the invalidation did not happen (the cache is unreachable, a timeout): what it \
            names may still be served, so retry, or report the failure instead of treating the \
            write as done.";
        let all_doc = " Invalidates every entry of `get_user`, whatever its arguments, in O(1): \
            later calls run the body again. Generated by `#[cached_query]`.\n\n # Errors\n\n \
            The cache's error when the invalidation did not happen (the cache is unreachable, a \
            timeout): what it names may still be served, so retry, or report the failure \
            instead of treating the write as done.";
        // A free function's spec is a `static` in each body: a macro cannot tell a module
        // (no `Self`) from an `impl` (no free items) when there is no receiver.
        let static_spec =
            quote!(static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = #spec;);
        let expected = quote! {
            #[doc = r" docs"]
            pub async fn get_user(db: &Pool, id: i64) -> Result<User, sqlx::Error> {
                #static_spec
                let __cache_key = ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,), &(&id,));
                ::cache_runtime::__private::cached_result::<_, _, ::cache_runtime::codec::CacheDefault, _>(
                    &__CACHE_SPEC,
                    __cache_key,
                    {
                        #[allow(unused_imports)]
                        use ::cache_runtime::__private::{ShareClone as _, ShareNone as _};
                        (&::cache_runtime::__private::Probe::<User>::NEW).sharing()
                    },
                    async move { BODY }
                ).await
            }
            #[doc = #entry_doc]
            #[allow(dead_code)]
            pub async fn get_user_invalidate(id: i64) -> ::cache_runtime::Result<()> {
                #static_spec
                ::cache_runtime::__private::invalidate_entry(
                    &__CACHE_SPEC,
                    ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,), &(&id,))
                ).await
            }
            #[doc = #all_doc]
            #[allow(dead_code)]
            pub async fn get_user_invalidate_all() -> ::cache_runtime::Result<()> {
                #static_spec
                ::cache_runtime::__private::invalidate_query(&__CACHE_SPEC).await
            }
        };
        assert_eq!(expand_ok(args, item), norm(expected));
    }

    /// The `async fn` line of a companion, e.g. `async fn f_invalidate(a: u32)`, normalized.
    fn companion_sig(out: &str, name: &str) -> String {
        let start = out
            .find(&norm(format!("async fn {name}")))
            .unwrap_or_else(|| panic!("no `{name}` in {out}"));
        let end = start
            + out[start..]
                .find(&norm("-> :: cache_runtime :: Result"))
                .unwrap();
        out[start..end].to_owned()
    }

    #[test]
    fn companions_of_a_free_fn_without_template() {
        let out = expand_ok(
            quote!(skip(db)),
            quote!(
                pub(crate) async fn f(db: &Pool, mut a: u32, _: Marker, b: impl Serialize) -> u32 {
                    1
                }
            ),
        );
        assert_eq!(
            companion_sig(&out, "f_invalidate"),
            norm("async fn f_invalidate(a: u32, b: impl Serialize)")
        );
        assert_eq!(
            companion_sig(&out, "f_invalidate_all"),
            norm("async fn f_invalidate_all()")
        );
        // Same visibility, docs, and the same key in the function and the companion.
        assert!(
            out.contains(&norm("pub(crate) async fn f_invalidate(")),
            "{out}"
        );
        assert!(
            out.contains(&norm("pub(crate) async fn f_invalidate_all(")),
            "{out}"
        );
        assert_eq!(out.matches("#[doc=").count(), 2, "{out}");
        let key = norm(quote!(Key::new(&__CACHE_SPEC, &(&a, &b,), &())));
        assert_eq!(out.matches(&key).count(), 2, "{out}");
        assert!(out.contains(&norm("invalidate_entry(&__CACHE_SPEC,")));
        assert!(out.contains(&norm(quote!(invalidate_query(&__CACHE_SPEC).await))));
        // The spec is a `static` at the top of each of the three bodies.
        let spec = norm(
            "static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = \
             ::cache_runtime::__private::QuerySpec { \
             function: ::core::concat!(::core::module_path!(), \"::\", \"f\"), \
             template: ::core::option::Option::None,",
        );
        assert_eq!(out.matches(&spec).count(), 3, "{out}");
        // `impl Serialize` may not be `Send`; nothing else applies.
        assert!(
            out.contains(&norm(
                quote!(#[allow(dead_code, clippy::future_not_send)] pub(crate) async fn f_invalidate)
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                quote!(#[allow(dead_code)] pub(crate) async fn f_invalidate_all)
            )),
            "{out}"
        );
    }

    #[test]
    fn companions_of_a_template_fn_take_placeholders_in_template_order_once() {
        let out = expand_ok(
            quote!(key = "{b}:x:{a}:{b}", skip(db)),
            quote!(
                async fn f<'x>(db: &Pool, a: &'x str, c: u8, ref b: Vec<u8>) -> u32
                where
                    'x: 'x,
                {
                    1
                }
            ),
        );
        assert_eq!(
            companion_sig(&out, "f_invalidate"),
            norm("async fn f_invalidate<'x>(b: Vec<u8>, a: &'x str)")
        );
        assert!(
            out.contains(&norm(
                "f_invalidate<'x>(b: Vec<u8>, a: &'x str) -> ::cache_runtime::Result<()> where 'x: 'x, {"
            )),
            "{out}"
        );
        assert!(out.contains(&norm(quote!(Key::new(&__CACHE_SPEC, &(&b, &a, &b,), &())))));
        // Copied lifetimes may be unused or elidable there.
        assert!(
            out.contains(&norm(quote!(
                #[allow(
                    dead_code,
                    unused_lifetimes,
                    clippy::needless_lifetimes,
                    clippy::extra_unused_lifetimes
                )]
                async fn f_invalidate
            ))),
            "{out}"
        );
    }

    #[test]
    fn companions_of_a_method_have_no_receiver() {
        let out = expand_ok(
            quote!(key = "greeting:{name}"),
            quote!(
                pub async fn greeting(&self, name: &str) -> String {
                    todo!()
                }
            ),
        );
        assert_eq!(
            companion_sig(&out, "greeting_invalidate"),
            norm("async fn greeting_invalidate(name: &str)")
        );
        assert!(
            out.contains(&norm("pub async fn greeting_invalidate_all()")),
            "{out}"
        );
        // In an `impl`, the spec is an associated `const`, named through `Self`.
        assert!(out.starts_with(&norm(quote!(#[doc(hidden)] const __CACHE_SPEC_GREETING: ))));
        assert!(
            out.contains(&norm(quote!(
                invalidate_query(Self::__CACHE_SPEC_GREETING).await
            ))),
            "{out}"
        );
        assert_eq!(
            out.matches("Self::__CACHE_SPEC_GREETING").count(),
            5,
            "{out}"
        );
    }

    #[test]
    fn an_associated_function_naming_self_is_in_an_impl() {
        let out = expand_ok(
            quote!(),
            quote!(
                async fn find(id: u32) -> Option<Self> {
                    None
                }
            ),
        );
        assert_eq!(out.matches("Self::__CACHE_SPEC_FIND").count(), 5, "{out}");
        // Without `self` or `Self`, it is taken for a free function.
        let out = expand_ok(
            quote!(),
            quote!(
                async fn find(id: u32) -> Option<u32> {
                    None
                }
            ),
        );
        assert!(!out.contains("Self"), "{out}");
    }

    #[test]
    fn without_companions_the_spec_is_a_static_in_the_body() {
        let out = expand_ok(
            quote!(companions = false),
            quote!(
                async fn name(&self, id: u32) -> String {
                    todo!()
                }
            ),
        );
        assert!(
            out.starts_with(&norm(
                "async fn name(&self, id: u32) -> String { \
                 static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec ="
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(quote!(Key::new(&__CACHE_SPEC, &(&id,), &())))),
            "{out}"
        );
        assert!(!out.contains("invalidate"), "{out}");
    }

    #[test]
    fn companion_lints_follow_the_signature() {
        let lints = |item: TokenStream| {
            let out = expand_ok(quote!(), item);
            // The companion's, after its doc (the function's body has an `allow` of its own).
            let doc = out.find("Invalidates").unwrap();
            let start = doc + out[doc..].find("#[allow(").unwrap();
            let end = start + out[start..].find(")]").unwrap();
            out[start + "#[allow(".len()..end].to_owned()
        };
        assert_eq!(
            lints(quote!(
                async fn f(id: u32, name: &str, tags: Vec<String>) -> u32 {
                    1
                }
            )),
            "dead_code"
        );
        assert_eq!(
            lints(quote!(
                async fn f(id: UserId) -> u32 {
                    1
                }
            )),
            "dead_code,clippy::future_not_send"
        );
        assert_eq!(
            lints(quote!(
                async fn getUser(id: u32) -> u32 {
                    1
                }
            )),
            "dead_code,non_snake_case"
        );
        // A destructured parameter is taken whole: `mut b` stays mutable, and a binding the
        // key does not use is unused (unless it starts with `_`).
        let out = expand_ok(
            quote!(key = "{a}:{b}"),
            quote!(
                async fn f((a, mut b, _c): (u8, u8, u8)) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains("#[allow(dead_code,unused_mut)]asyncfnf_invalidate("),
            "{out}"
        );
        let out = expand_ok(
            quote!(key = "{a}"),
            quote!(
                async fn f((a, c, _d): (u8, u8, u8)) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains("#[allow(dead_code,unused_variables)]asyncfnf_invalidate("),
            "{out}"
        );
        let eight: Vec<Ident> = (0..8)
            .map(|i| Ident::new(&format!("a{i}"), Span::call_site()))
            .collect();
        assert_eq!(
            lints(quote!(async fn f(#(#eight: u8),*) -> u32 { 1 })),
            "dead_code,clippy::too_many_arguments"
        );
    }

    #[test]
    fn tags_pass_their_arguments_and_companions_take_tag_only_parameters_last() {
        let out = expand_ok(
            quote!(
                key = "user:{id}",
                tags = ["users", "tenant:{tenant}", "user:{id}:{tenant}"],
                skip(db, tenant)
            ),
            quote!(
                async fn user(db: &Pool, tenant: &str, id: u32) -> u32 {
                    1
                }
            ),
        );
        let key = norm(quote!(Key::new(
            &__CACHE_SPEC,
            &(&id,),
            &(&tenant, &id, &tenant,)
        )));
        assert_eq!(out.matches(&key).count(), 2, "{out}");
        assert_eq!(
            companion_sig(&out, "user_invalidate"),
            norm("async fn user_invalidate(id: u32, tenant: &str)")
        );
        assert!(
            out.contains(&norm(
                "Takes the parameters that form the key: `id`. Then `tenant`, which only the tags use"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                quote!(tags: &[&["users"], &["tenant:", ""], &["user:", ":", ""]],)
            )),
            "{out}"
        );
    }

    #[test]
    fn destructured_parameters_in_companions() {
        // A destructured parameter the key uses is taken whole; a skipped one never appears.
        let out = expand_ok(
            quote!(key = "q:{q}", skip(db)),
            quote!(
                async fn search(State(db): State<Pool>, Query(q): Query<Q>) -> u32 {
                    1
                }
            ),
        );
        assert_eq!(
            companion_sig(&out, "search_invalidate"),
            norm("async fn search_invalidate(Query(q): Query<Q>)")
        );
        // Two names of one destructured parameter: taken once.
        let out = expand_ok(
            quote!(key = "p:{b}:{a}", tags = ["x:{a}"]),
            quote!(
                async fn pair(State(db): State<Pool>, (a, mut b): (u32, u32)) -> u32 {
                    1
                }
            ),
        );
        assert_eq!(
            companion_sig(&out, "pair_invalidate"),
            norm("async fn pair_invalidate((a, mut b): (u32, u32))")
        );
    }

    #[test]
    fn companions_keep_cfg_and_unraw_the_name() {
        let out = expand_ok(
            quote!(),
            quote!(
                #[cfg(feature = "db")]
                #[must_use]
                async fn r#type(id: u32) -> u32 {
                    id
                }
            ),
        );
        assert!(
            out.contains(&norm("async fn type_invalidate(id: u32)")),
            "{out}"
        );
        assert!(
            out.contains(&norm("async fn type_invalidate_all()")),
            "{out}"
        );
        // On the function and both companions.
        assert_eq!(
            out.matches(&norm(quote!(#[cfg(feature = "db")]))).count(),
            3,
            "{out}"
        );
        assert_eq!(out.matches(&norm(quote!(#[must_use]))).count(), 1, "{out}");
    }

    #[test]
    fn no_companions_on_error() {
        let out = cached_query(
            quote!(ttl = 0),
            quote!(
                async fn f(id: u32) -> u32 {
                    id
                }
            ),
        )
        .to_string();
        assert!(!out.contains("f_invalidate"), "{out}");
    }

    #[test]
    fn sync_functions_run_their_body_as_a_closure_and_get_sync_companions() {
        let out = expand_ok(
            quote!(key = "user:{id}", skip(conn)),
            quote!(
                pub fn user(conn: &mut SqliteConnection, id: i64) -> QueryResult<User> {
                    users.find(id).first(conn)
                }
            ),
        );
        assert!(
            out.contains(&norm(
                "::cache_runtime::__private::cached_result_blocking::<_, _, \
                 ::cache_runtime::codec::CacheDefault, _>(&__CACHE_SPEC, __cache_key, { \
                 #[allow(unused_imports)] use ::cache_runtime::__private::{ShareClone as _, \
                 ShareNone as _}; (&::cache_runtime::__private::Probe::<User>::NEW).sharing() }, \
                 move || -> QueryResult<User> { users.find(id).first(conn) })"
            )),
            "{out}"
        );
        assert!(!out.contains("async"), "{out}");
        assert!(!out.contains(".await"), "{out}");
        assert!(
            out.contains(&norm(
                "pub fn user_invalidate(id: i64) -> ::cache_runtime::Result<()> { static __CACHE_SPEC"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(quote!(invalidate_entry_blocking(
                &__CACHE_SPEC,
                ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,), &())
            )))),
            "{out}"
        );
        assert!(
            out.contains(&norm("invalidate_query_blocking(&__CACHE_SPEC) }")),
            "{out}"
        );
        let out = expand_ok(
            quote!(),
            quote!(
                fn f(id: UserId) -> Option<u32> {
                    None
                }
            ),
        );
        assert!(
            out.contains(&norm(
                "cached_value_blocking::<_, ::cache_runtime::codec::CacheDefault, _>(\
                 &__CACHE_SPEC, __cache_key, { #[allow(unused_imports)] use \
                 ::cache_runtime::__private::{ShareClone as _, ShareNone as _}; \
                 (&::cache_runtime::__private::Probe::<Option<u32> >::NEW).sharing() }, \
                 move || -> Option<u32> { None })"
            )),
            "{out}"
        );
        // No future, so no `future_not_send` to allow.
        assert!(!out.contains("future_not_send"), "{out}");
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
            out.contains(&norm(quote!(Key::new(
                Self::__CACHE_SPEC_F,
                &(&a, &b,),
                &()
            )))),
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
            out.contains(&norm(quote!(Key::new(&__CACHE_SPEC, &(), &())))),
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
            out.contains(&norm(quote!(tags: &[&["users"], &["user:", ""]],))),
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
        assert!(
            out.contains(&norm("async move { 1 }).await } #[doc =")),
            "{out}"
        );
        // Companions are neither `unsafe` nor `#[must_use]`, and keep the lifetimes.
        assert!(
            out.contains(&norm(
                "pub(crate) async fn f_invalidate<'a>(x: &'a str) -> ::cache_runtime::Result<()> where 'a: 'a"
            )),
            "{out}"
        );
        assert_eq!(out.matches("unsafe").count(), 1, "{out}");
        assert_eq!(out.matches("must_use").count(), 1, "{out}");
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
