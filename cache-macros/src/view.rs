//! Expansion of `#[cached_view]`: the handler keeps its attributes, visibility and extractors,
//! gains a hidden request extractor in front, and its body becomes one call of
//! `cache_runtime::__private::cached_view`; its two companions invalidate what it cached.

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt as _;
use syn::parse::{Parse as _, Parser as _};
use syn::{Ident, ItemFn, LitStr, ReturnType, Type};

use crate::attr::ViewArgs;
use crate::check;
use crate::item::{self, Spec};

/// `#[cached_view(args)] item`. On any error, the function is emitted unchanged next to the
/// `compile_error!`s.
pub(crate) fn cached_view(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => return item::with_error(item, error),
    };
    match check::view(ViewArgs::parse.parse2(args), &func.sig) {
        Ok(args) => expand(&args, &func),
        Err(error) => item::with_error(item, error),
    }
}

/// The expansion of a checked view: its spec, the handler, then its two companions.
fn expand(args: &ViewArgs, func: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block,
    } = func;
    let (outer, inner) = item::split_attrs(attrs);
    let defaultness = &modifiers.defaultness;
    let ty = quote!(::cache_runtime::__private::ViewSpec);
    let spec = item::spec(sig, attrs, ty, spec(args, &sig.ident), true);
    let Spec { item, local, path } = &spec;
    // Keep the user's declared return type in play: it pins the body's type where it can be
    // named, and keeps its imports used where it is `impl Trait`.
    let body = block.to_token_stream();
    let body = match &sig.output {
        ReturnType::Default => body,
        ReturnType::Type(_, ty) if contains_impl(ty) => match &**ty {
            // `-> impl Bounds`: pass the body through a function with the same bounds.
            Type::ImplTrait(it) => {
                let check = Ident::new("__cache_declared_return", Span::mixed_site());
                let bounds = &it.bounds;
                quote! {{
                    fn #check<__CacheT: #bounds>(value: __CacheT) -> __CacheT { value }
                    #check(#body)
                }}
            }
            _ => body,
        },
        ReturnType::Type(_, ty) => {
            let ret = Ident::new("__cache_ret", Span::mixed_site());
            quote! {{ let #ret: #ty = #body; #ret }}
        }
    };
    let mut sig = sig.clone();
    let req = Ident::new("__cache_req", Span::mixed_site());
    // The framework's request extractor, response type and entry point.
    let (request, response, entry) = if args.actix {
        (
            quote!(ActixViewRequest),
            quote!(ActixViewResponse),
            quote!(cached_actix_view),
        )
    } else {
        (
            quote!(ViewRequest),
            quote!(ViewResponse),
            quote!(cached_view),
        )
    };
    sig.inputs.insert(
        0,
        syn::parse_quote!(#req: ::cache_runtime::__private::#request),
    );
    sig.output = syn::parse_quote!(-> ::cache_runtime::__private::#response);
    let companions = companions(func, &spec);
    quote! {
        #item
        #(#outer)*
        #vis #defaultness #sig {
            #(#inner)*
            #local
            ::cache_runtime::__private::#entry(#path, #req, async move #body).await
        }
        #companions
    }
}

/// The `ViewSpec` literal.
fn spec(args: &ViewArgs, name: &Ident) -> TokenStream {
    let name = LitStr::new(&name.unraw().to_string(), name.span());
    let version = Literal::u64_unsuffixed(args.version.unwrap_or(1));
    let ttl = item::option(args.ttl.map(Literal::u64_unsuffixed));
    let vary = &args.vary;
    let statuses = args.statuses.iter().map(|s| Literal::u16_unsuffixed(*s));
    let tags = &args.tags;
    let cache = item::option(args.cache.as_ref());
    let freshness = item::freshness(&args.freshness);
    quote! {
        ::cache_runtime::__private::ViewSpec {
            function: ::core::concat!(::core::module_path!(), "::", #name),
            version: #version,
            ttl: #ttl,
            vary: &[#(#vary),*],
            statuses: &[#(#statuses),*],
            tags: &[#(#tags),*],
            cache: #cache,
            #freshness
        }
    }
}

/// `{name}_invalidate(path_and_query)` and `{name}_invalidate_all()`, next to the handler with
/// its visibility and `#[cfg]`s.
fn companions(func: &ItemFn, spec: &Spec) -> TokenStream {
    let Spec { local, path, .. } = spec;
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    let private = quote!(::cache_runtime::__private);
    let cfgs = item::cfgs(attrs);
    let name = sig.ident.unraw().to_string();
    let entry = format_ident!("{}_invalidate", name, span = sig.ident.span());
    let all = format_ident!("{}_invalidate_all", name, span = sig.ident.span());
    let entry_lints = item::companion_lints(&entry);
    let all_lints = item::companion_lints(&all);
    let errors = item::ERRORS_DOC;
    let entry_doc = format!(
        " Invalidates the responses `{name}` cached for one path, with every query string and \
         spelling of it: `path_and_query` is the request's path (`\"/users\"`; a query in it is \
         ignored); every host and `vary` value goes. Generated by `#[cached_view]`.\n\n{errors}"
    );
    let all_doc = format!(
        " Invalidates every response `{name}` cached, all URLs and `vary` values, in O(1). \
         Generated by `#[cached_view]`.\n\n{errors}"
    );
    quote! {
        #cfgs
        #[doc = #entry_doc]
        #[allow(#(#entry_lints),*)]
        #vis async fn #entry(path_and_query: &str) -> ::cache_runtime::Result<()> {
            #local
            #private::invalidate_view_path(#path, path_and_query).await
        }
        #cfgs
        #[doc = #all_doc]
        #[allow(#(#all_lints),*)]
        #vis async fn #all() -> ::cache_runtime::Result<()> {
            #local
            #private::invalidate_view(#path).await
        }
    }
}

/// Whether `impl Trait` appears anywhere in the type (it cannot be named in a `let`).
fn contains_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token strings compare modulo spacing.
    fn norm(tokens: impl ToString) -> String {
        tokens.to_string().split_whitespace().collect()
    }

    fn expand_ok(args: TokenStream, item: TokenStream) -> String {
        let out = cached_view(args, item);
        assert!(!out.to_string().contains("compile_error"), "{out}");
        norm(out)
    }

    /// `cargo test -p cache-macros view::tests::print_example -- --nocapture` prints the
    /// expansion of the documented example (pipe it through rustfmt to read it).
    #[test]
    fn print_example() {
        println!(
            "{}",
            cached_view(
                quote!(ttl = 900, vary = ["Accept-Language"], tags = ["users"]),
                quote!(
                    async fn users_page(State(db): State<SqlitePool>) -> Html<String> {
                        BODY
                    }
                ),
            )
        );
    }

    #[test]
    fn example_expansion() {
        let out = expand_ok(
            quote!(
                ttl = 900,
                vary = ["Accept-Language"],
                statuses = [200, 404],
                tags = ["users"]
            ),
            quote!(
                /// docs
                pub async fn page(State(db): State<Db>) -> Html<String> {
                    render(db)
                }
            ),
        );
        let entry_doc = " Invalidates the responses `page` cached for one path, with every \
            query string and spelling of it: `path_and_query` is the request's path \
            (`\"/users\"`; a query in it is ignored); every host and `vary` value goes. \
            Generated by `#[cached_view]`.\n\n # Errors\n\n The cache's error when the \
            invalidation did not happen (the cache is unreachable, a timeout): what it names may \
            still be served, so retry, or report the failure instead of treating the write as \
            done.";
        let all_doc = " Invalidates every response `page` cached, all URLs and `vary` values, \
            in O(1). Generated by `#[cached_view]`.\n\n # Errors\n\n The cache's error when \
            the invalidation did not happen (the cache is unreachable, a timeout): what it names \
            may still be served, so retry, or report the failure instead of treating the write \
            as done.";
        let spec = quote! {
            static __CACHE_SPEC: ::cache_runtime::__private::ViewSpec =
                ::cache_runtime::__private::ViewSpec {
                    function: ::core::concat!(::core::module_path!(), "::", "page"),
                    version: 1,
                    ttl: ::core::option::Option::Some(900),
                    vary: &["Accept-Language"],
                    statuses: &[200, 404],
                    tags: &["users"],
                    cache: ::core::option::Option::None,
                    lease: ::core::option::Option::None,
                    early: ::core::option::Option::None,
                    stale: ::core::option::Option::None,
                };
        };
        let expected = quote! {
            #[doc = r" docs"]
            pub async fn page(
                __cache_req: ::cache_runtime::__private::ViewRequest,
                State(db): State<Db>
            ) -> ::cache_runtime::__private::ViewResponse {
                #spec
                ::cache_runtime::__private::cached_view(&__CACHE_SPEC, __cache_req, async move {
                    let __cache_ret: Html<String> = { render(db) };
                    __cache_ret
                })
                .await
            }
            #[doc = #entry_doc]
            #[allow(dead_code)]
            pub async fn page_invalidate(path_and_query: &str) -> ::cache_runtime::Result<()> {
                #spec
                ::cache_runtime::__private::invalidate_view_path(&__CACHE_SPEC, path_and_query).await
            }
            #[doc = #all_doc]
            #[allow(dead_code)]
            pub async fn page_invalidate_all() -> ::cache_runtime::Result<()> {
                #spec
                ::cache_runtime::__private::invalidate_view(&__CACHE_SPEC).await
            }
        };
        assert_eq!(out, norm(expected));
    }

    #[test]
    fn actix_handlers_get_the_actix_extractor_response_and_entry_point() {
        let out = expand_ok(
            quote!(actix, ttl = 60),
            quote!(
                async fn page(data: web::Data<Db>) -> impl Responder {
                    "x"
                }
            ),
        );
        assert!(
            out.starts_with(&norm(
                "async fn page(__cache_req: ::cache_runtime::__private::ActixViewRequest, \
                 data: web::Data<Db>) -> ::cache_runtime::__private::ActixViewResponse {"
            )),
            "{out}"
        );
        assert!(
            out.contains(&norm(
                "::cache_runtime::__private::cached_actix_view(&__CACHE_SPEC, __cache_req, \
                 async move {"
            )),
            "{out}"
        );
        // The spec and the companions are the same as axum's.
        assert!(
            out.contains("ttl:::core::option::Option::Some(60)"),
            "{out}"
        );
        assert!(
            out.contains("asyncfnpage_invalidate(path_and_query"),
            "{out}"
        );
    }

    #[test]
    fn impl_trait_returns_pass_through_their_bounds() {
        let out = expand_ok(
            quote!(),
            quote!(
                async fn page() -> impl IntoResponse {
                    "x"
                }
            ),
        );
        assert!(
            out.contains(&norm(quote!(async move {
                fn __cache_declared_return<__CacheT: IntoResponse>(value: __CacheT) -> __CacheT {
                    value
                }
                __cache_declared_return({ "x" })
            }))),
            "{out}"
        );
        // No arguments: the defaults, spelled out.
        assert!(
            out.contains(&norm(quote!(
                version: 1,
                ttl: ::core::option::Option::None,
                vary: &[],
                statuses: &[],
                tags: &[],
                cache: ::core::option::Option::None,
            ))),
            "{out}"
        );
    }

    #[test]
    fn cache_cfgs_and_raw_names() {
        let out = expand_ok(
            quote!(cache = crate::caches::pages),
            quote!(
                #[cfg(feature = "web")]
                pub(crate) async fn r#type() -> &'static str {
                    ""
                }
            ),
        );
        assert!(
            out.contains(&norm(quote!(
                cache: ::core::option::Option::Some(crate::caches::pages),
            ))),
            "{out}"
        );
        assert!(out.contains("\"type\""), "{out}");
        assert!(out.contains("static__CACHE_SPEC:"), "{out}");
        assert!(
            out.contains("asyncfntype_invalidate(path_and_query"),
            "{out}"
        );
        assert!(out.contains("asyncfntype_invalidate_all()"), "{out}");
        // The handler and both companions exist exactly when the handler does.
        assert_eq!(
            out.matches(&norm("#[cfg(feature = \"web\")]")).count(),
            3,
            "{out}"
        );
    }

    #[test]
    fn a_handler_naming_self_names_its_spec_through_self() {
        let out = expand_ok(
            quote!(),
            quote!(
                async fn page(State(app): State<Self>) -> String {
                    String::new()
                }
            ),
        );
        assert_eq!(out.matches("Self::__CACHE_SPEC_PAGE").count(), 3, "{out}");
    }

    #[test]
    fn errors_keep_the_function_unchanged() {
        let item = quote!(
            fn page(&self) -> String {
                String::new()
            }
        );
        let out = cached_view(quote!(ttl = 0, key = "x"), item.clone()).to_string();
        assert!(out.starts_with(&item.to_string()), "{out}");
        // ttl, key, sync, self.
        assert_eq!(out.matches("compile_error").count(), 4, "{out}");
        assert!(!out.contains("page_invalidate"), "{out}");
    }
}
