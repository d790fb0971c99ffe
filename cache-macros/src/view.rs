//! `#[cached_view]`: parse its arguments and expand an axum handler into a call of
//! `cache_runtime::__private::cached_view` with a hidden request extractor in front.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, LitInt, LitStr, Path, Token, bracketed};

const VALID: &str = "`ttl`, `version`, `vary`, `statuses`, `tags`, `cache`";

/// The arguments of `#[cached_view(...)]`.
#[derive(Default)]
pub(crate) struct ViewArgs {
    ttl: Option<u64>,
    version: Option<u64>,
    vary: Vec<LitStr>,
    statuses: Vec<u16>,
    tags: Vec<LitStr>,
    cache: Option<Path>,
}

fn combine(errors: &mut Option<syn::Error>, e: syn::Error) {
    match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    }
}

fn positive_int(lit: &LitInt, what: &str) -> syn::Result<u64> {
    match lit.base10_parse::<u64>() {
        Ok(0) | Err(_) => Err(syn::Error::new_spanned(
            lit,
            format!("`{what}` must be a positive whole number of seconds, like `{what} = 900`"),
        )),
        Ok(v) => Ok(v),
    }
}

/// RFC 9110 `token` characters: what a header name may contain.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Parse for ViewArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ViewArgs::default();
        let mut errors = None;
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let name: syn::Ident = input.parse()?;
            let key = name.to_string();
            if seen.contains(&key) {
                combine(
                    &mut errors,
                    syn::Error::new_spanned(&name, format!("duplicate argument `{key}`")),
                );
            }
            seen.push(key.clone());
            input.parse::<Token![=]>()?;
            match key.as_str() {
                "ttl" | "version" => {
                    let expr: Expr = input.parse()?;
                    let parsed = match &expr {
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(lit), ..
                        }) => positive_int(lit, &key),
                        _ => Err(syn::Error::new_spanned(
                            &expr,
                            format!(
                                "`{key}` must be a positive integer literal, like `{key} = 900`"
                            ),
                        )),
                    };
                    match parsed {
                        Ok(v) if key == "ttl" => args.ttl = Some(v),
                        Ok(v) => args.version = Some(v),
                        Err(e) => combine(&mut errors, e),
                    }
                }
                "vary" => {
                    let content;
                    let bracket = bracketed!(content in input);
                    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
                    for item in items {
                        match item {
                            Expr::Lit(ExprLit {
                                lit: Lit::Str(s), ..
                            }) if is_header_name(&s.value()) => args.vary.push(s),
                            Expr::Lit(ExprLit {
                                lit: Lit::Str(s), ..
                            }) => combine(
                                &mut errors,
                                syn::Error::new_spanned(
                                    &s,
                                    format!("`{}` is not a valid HTTP header name", s.value()),
                                ),
                            ),
                            other => combine(
                                &mut errors,
                                syn::Error::new_spanned(
                                    other,
                                    "`vary` takes header names as string literals, like `vary = [\"Accept-Language\"]`",
                                ),
                            ),
                        }
                    }
                    let _ = bracket;
                }
                "statuses" => {
                    let content;
                    bracketed!(content in input);
                    for lit in Punctuated::<LitInt, Token![,]>::parse_terminated(&content)? {
                        match lit.base10_parse::<u16>() {
                            Ok(code) if (100..=599).contains(&code) => args.statuses.push(code),
                            _ => combine(
                                &mut errors,
                                syn::Error::new_spanned(
                                    &lit,
                                    "an HTTP status is a number from 100 to 599",
                                ),
                            ),
                        }
                    }
                }
                "tags" => {
                    if !input.peek(syn::token::Bracket) {
                        return Err(input.error(
                            "`tags` takes a list of string literals, like `tags = [\"users\"]`",
                        ));
                    }
                    let content;
                    bracketed!(content in input);
                    for item in Punctuated::<Expr, Token![,]>::parse_terminated(&content)? {
                        match view_tag(item) {
                            Ok(tag) => args.tags.push(tag),
                            Err(e) => combine(&mut errors, e),
                        }
                    }
                }
                "cache" => args.cache = Some(input.parse()?),
                _ => {
                    combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &name,
                            format!("unknown argument `{key}`; valid arguments are {VALID}"),
                        ),
                    );
                    let _: Expr = input.parse()?;
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(args),
        }
    }
}

/// One literal of `tags = [...]`: a view's tags name no parameters (pages follow the tags of the
/// queries they call; a view tag is for the page as a whole).
fn view_tag(item: Expr) -> syn::Result<LitStr> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(tag), ..
    }) = item
    else {
        return Err(syn::Error::new_spanned(
            item,
            "`tags` takes string literals, like `tags = [\"users\"]`",
        ));
    };
    let text = tag.value();
    if text.is_empty() {
        return Err(syn::Error::new_spanned(
            &tag,
            "a tag must not be empty: remove it from `tags`",
        ));
    }
    if text.contains(['{', '}']) {
        return Err(syn::Error::new_spanned(
            &tag,
            "view tags cannot interpolate parameters: use a literal tag such as `\"users\"`; \
             the tags of the `#[cached_query]` functions the page calls (`\"user:{id}\"`) \
             already invalidate it",
        ));
    }
    Ok(tag)
}

/// The entry point: on any error, the function is still emitted next to the error.
pub(crate) fn cached_view(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => return crate::item::with_error(item, e),
    };
    let args: ViewArgs = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return crate::item::with_error(item, e),
    };
    if func.sig.asyncness.is_none() {
        let e = syn::Error::new_spanned(
            func.sig.fn_token,
            "#[cached_view] caches axum handlers, which are `async fn`: make it async",
        );
        return crate::item::with_error(item, e);
    }
    expand(&args, &func)
}

fn expand(args: &ViewArgs, func: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block,
    } = func;
    let (outer, inner) = crate::item::split_attrs(attrs);
    let defaultness = &modifiers.defaultness;
    let spec = spec(args, &sig.ident);
    // Keep the user's declared return type in play: it pins the body's type where it can be
    // named, and keeps its imports used where it is `impl Trait`.
    let body = block.to_token_stream();
    let body = match &sig.output {
        syn::ReturnType::Default => body,
        syn::ReturnType::Type(_, ty) if contains_impl(ty) => match &**ty {
            // `-> impl Bounds`: pass the body through a function with the same bounds.
            syn::Type::ImplTrait(it) => {
                let check = syn::Ident::new("__cache_declared_return", Span::mixed_site());
                let bounds = &it.bounds;
                quote! {{
                    fn #check<__CacheT: #bounds>(value: __CacheT) -> __CacheT { value }
                    #check(#body)
                }}
            }
            _ => body,
        },
        syn::ReturnType::Type(_, ty) => {
            let ret = syn::Ident::new("__cache_ret", Span::mixed_site());
            quote! {{ let #ret: #ty = #body; #ret }}
        }
    };
    let mut sig = sig.clone();
    let req = syn::Ident::new("__cache_req", Span::mixed_site());
    sig.inputs.insert(
        0,
        syn::parse_quote!(#req: ::cache_runtime::__private::ViewRequest),
    );
    sig.output = syn::parse_quote!(-> ::cache_runtime::__private::ViewResponse);
    let companions = companions(func, &spec);
    quote! {
        #(#outer)*
        #vis #defaultness #sig {
            #(#inner)*
            static __CACHE_VIEW: ::cache_runtime::__private::ViewSpec = #spec;
            ::cache_runtime::__private::cached_view(&__CACHE_VIEW, #req, async move #body).await
        }
        #companions
    }
}

/// The `ViewSpec` literal, the same in the handler and its companions.
fn spec(args: &ViewArgs, name: &syn::Ident) -> TokenStream {
    let name = LitStr::new(&name.unraw().to_string(), name.span());
    let version = args.version.unwrap_or(1);
    let ttl = match args.ttl {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    };
    let vary = &args.vary;
    let statuses = &args.statuses;
    let tags = &args.tags;
    let cache = match &args.cache {
        Some(path) => quote!(::core::option::Option::Some(#path as fn() -> ::cache_runtime::Cache)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::cache_runtime::__private::ViewSpec {
            function: ::core::concat!(::core::module_path!(), "::", #name),
            version: #version,
            ttl: #ttl,
            vary: &[#(#vary),*],
            statuses: &[#(#statuses),*],
            tags: &[#(#tags),*],
            cache: #cache,
        }
    }
}

/// `{name}_invalidate(path_and_query)` and `{name}_invalidate_all()`, next to the handler with
/// its visibility and `#[cfg]`s.
fn companions(func: &ItemFn, spec: &TokenStream) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    let private = quote!(::cache_runtime::__private);
    let cfgs = crate::item::cfgs(attrs);
    let name = sig.ident.unraw().to_string();
    let entry = format_ident!("{}_invalidate", name, span = sig.ident.span());
    let all = format_ident!("{}_invalidate_all", name, span = sig.ident.span());
    let errors = crate::query::ERRORS_DOC;
    let entry_doc = format!(
        " Invalidates the responses `{name}` cached for one URL: `path_and_query` is the \
         request's path and query (`\"/users?page=2\"`); every `vary` value goes. Generated by `#[cached_view]`.\n\n{errors}"
    );
    let all_doc = format!(
        " Invalidates every response `{name}` cached, all URLs and `vary` values, in O(1). \
         Generated by `#[cached_view]`.\n\n{errors}"
    );
    quote! {
        #cfgs
        #[doc = #entry_doc]
        #[allow(dead_code)]
        #vis async fn #entry(path_and_query: &str) -> ::cache_runtime::Result<()> {
            static __CACHE_VIEW: #private::ViewSpec = #spec;
            #private::invalidate_view_path(&__CACHE_VIEW, path_and_query).await
        }
        #cfgs
        #[doc = #all_doc]
        #[allow(dead_code)]
        #vis async fn #all() -> ::cache_runtime::Result<()> {
            static __CACHE_VIEW: #private::ViewSpec = #spec;
            #private::invalidate_view(&__CACHE_VIEW).await
        }
    }
}

/// Whether `impl Trait` appears anywhere in the type (it cannot be named in a `let`).
fn contains_impl(ty: &syn::Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        cached_view(args, item).to_string()
    }

    #[test]
    fn expands_into_one_runtime_call() {
        let out = expand_str(
            quote!(ttl = 900, vary = ["Accept-Language"]),
            quote!(
                async fn page(State(db): State<Db>) -> impl IntoResponse {
                    render(db)
                }
            ),
        );
        assert!(
            out.contains("__cache_req : :: cache_runtime :: __private :: ViewRequest , State (db)"),
            "{out}"
        );
        assert!(
            out.contains("ttl : :: core :: option :: Option :: Some (900u64)"),
            "{out}"
        );
        assert!(out.contains("vary : & [\"Accept-Language\"]"), "{out}");
        assert!(
            out.contains("-> :: cache_runtime :: __private :: ViewResponse"),
            "{out}"
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn tags_and_companions() {
        let out = expand_str(
            quote!(ttl = 900, tags = ["users", "pages:home"]),
            quote!(
                #[cfg(feature = "web")]
                pub(crate) async fn page(State(db): State<Db>) -> Html<String> {
                    render(db)
                }
            ),
        );
        let norm = |s: &str| s.split_whitespace().collect::<String>();
        let out = norm(&out);
        // The handler and both companions carry the same spec, with the tags.
        assert_eq!(
            out.matches(&norm("tags : & [\"users\" , \"pages:home\"]"))
                .count(),
            3,
            "{out}"
        );
        assert_eq!(
            out.matches(&norm("static __CACHE_VIEW")).count(),
            3,
            "{out}"
        );
        assert!(
            out.contains(&norm(
                "pub (crate) async fn page_invalidate (path_and_query : & str) -> :: cache_runtime :: Result < () > { \
                 static __CACHE_VIEW"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                ":: cache_runtime :: __private :: invalidate_view_path (& __CACHE_VIEW , path_and_query) . await"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                "pub (crate) async fn page_invalidate_all () -> :: cache_runtime :: Result < () >"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                ":: cache_runtime :: __private :: invalidate_view (& __CACHE_VIEW) . await"
            )),
            "{out}"
        );
        assert_eq!(
            out.matches(&norm("# [cfg (feature = \"web\")]")).count(),
            3,
            "{out}"
        );
        assert_eq!(
            out.matches(&norm("# [allow (dead_code)]")).count(),
            2,
            "{out}"
        );
        assert_eq!(out.matches("#[doc=").count(), 2, "{out}");

        // No tags: an empty list, always present.
        let out = expand_str(
            quote!(),
            quote!(
                async fn r#type() -> &'static str {
                    ""
                }
            ),
        );
        assert!(out.contains("tags : & []"), "{out}");
        assert!(out.contains("\"type\""), "{out}");
        assert!(
            out.contains("async fn type_invalidate (path_and_query"),
            "{out}"
        );
    }

    #[test]
    fn misuse_is_an_error() {
        for (args, item, message) in [
            (
                quote!(ttl = 0),
                quote!(
                    async fn f() {}
                ),
                "positive whole number",
            ),
            (
                quote!(tll = 5),
                quote!(
                    async fn f() {}
                ),
                "unknown argument `tll`",
            ),
            (
                quote!(vary = [1]),
                quote!(
                    async fn f() {}
                ),
                "string literals",
            ),
            (
                quote!(vary = ["Bad Header"]),
                quote!(
                    async fn f() {}
                ),
                "not a valid HTTP header name",
            ),
            (
                quote!(statuses = [999]),
                quote!(
                    async fn f() {}
                ),
                "from 100 to 599",
            ),
            (
                quote!(tags = ["user:{id}"]),
                quote!(
                    async fn f() {}
                ),
                "view tags cannot interpolate parameters",
            ),
            (
                quote!(tags = ["a}"]),
                quote!(
                    async fn f() {}
                ),
                "view tags cannot interpolate parameters",
            ),
            (
                quote!(tags = [""]),
                quote!(
                    async fn f() {}
                ),
                "a tag must not be empty",
            ),
            (
                quote!(tags = [USERS]),
                quote!(
                    async fn f() {}
                ),
                "`tags` takes string literals",
            ),
            (
                quote!(tags = "users"),
                quote!(
                    async fn f() {}
                ),
                "`tags` takes a list of string literals",
            ),
            (
                quote!(ttl = 5, ttl = 6),
                quote!(
                    async fn f() {}
                ),
                "duplicate argument",
            ),
            (
                quote!(ttl = 5),
                quote!(
                    fn f() {}
                ),
                "make it async",
            ),
        ] {
            let out = expand_str(args, item);
            assert!(
                out.contains("compile_error") && out.contains(message),
                "{message}: {out}"
            );
        }
    }
}
