//! Checks against the signature: the arguments (already parsed by `attr.rs`) and the annotated
//! function become the small checked model that `query.rs` and `view.rs` expand. Every error is
//! collected with the arguments' own errors, spanned on the offending tokens, and says the fix.

use proc_macro2::Ident;
use syn::{
    FnArg, GenericParam, Pat, PatIdent, PatType, PathArguments, ReturnType, Signature, Type,
};

use crate::attr::{Errors, QueryArgs, ViewArgs};

/// Whether the function returns a `Result` (only `Ok` is cached) or any other value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// The return type's last path segment ends in `Result`: `Result<T, E>`, `sqlx::Result<T>`,
    /// Diesel's `QueryResult<T>`,
    /// `anyhow::Result<T>`.
    Result,
    /// Any other type, `Option<T>` included (a `None` is cached too).
    Value,
}

/// The checked model that `query.rs` expands.
pub(crate) struct Query<'a> {
    pub(crate) args: QueryArgs,
    /// The identifiers that make the key, in order, spanned as in the signature.
    pub(crate) key_args: Vec<Ident>,
    /// The identifiers the tags interpolate: one per placeholder, in order across all tags
    /// (a name used twice appears twice), spanned as in the signature.
    pub(crate) tag_args: Vec<Ident>,
    /// The parameters of the `{name}_invalidate` companion: those that bind a key argument
    /// (in key order), then those that bind a tag argument and no key argument (in tag order),
    /// each once.
    pub(crate) companion: Vec<CompanionParam<'a>>,
    /// The declared return type.
    pub(crate) output: &'a Type,
    pub(crate) mode: Mode,
    /// A sync `fn` (a blocking call, e.g. a Diesel query): its body runs as a closure on the
    /// caller's thread, and its companions are sync too.
    pub(crate) blocking: bool,
}

/// A parameter of the `{name}_invalidate` companion, taken from the function's signature.
pub(crate) enum CompanionParam<'a> {
    /// `id: i64` (also `mut id: i64`, `ref id: i64`): declared again as `id: i64`.
    Named(&'a Ident, &'a Type),
    /// A destructured parameter (`Query(q): Query<Q>`) that binds a name the key or a tag
    /// uses: declared again whole, the only way to name the binding's type.
    Whole(&'a PatType),
}

/// A parameter of the function, as far as the key is concerned.
struct Param<'a> {
    typed: &'a PatType,
    pat: &'a Pat,
    /// The names the pattern binds: one for `id: i64`, several for `(a, b): (u32, u32)`.
    bindings: Vec<&'a Ident>,
}

/// Checks `#[cached_query]`'s arguments against the function's signature. `args` may already
/// have failed: the signature is checked anyway so that every error shows at once.
pub(crate) fn query(args: syn::Result<QueryArgs>, sig: &Signature) -> syn::Result<Query<'_>> {
    let mut errors = Errors::default();
    let args = errors.ok(args);

    if let Some(constness) = &sig.constness {
        errors.tokens(
            constness,
            "a `const fn` cannot be cached: a cache lookup runs at run time; remove `const`",
        );
    }
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        errors.tokens(
            param,
            "generic functions are not supported yet: the cache key cannot tell the type \
             arguments apart; use concrete types",
        );
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) if !is_unit(ty) => Some(&**ty),
        ReturnType::Type(_, ty) => {
            errors.tokens(ty, NOTHING_TO_CACHE);
            None
        }
        ReturnType::Default => {
            errors.spanned(sig.ident.span(), NOTHING_TO_CACHE);
            None
        }
    };

    let params: Vec<Param<'_>> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => {
                let mut bindings = Vec::new();
                collect_bindings(&typed.pat, &mut bindings);
                Some(Param {
                    typed,
                    pat: &typed.pat,
                    bindings,
                })
            }
        })
        .collect();
    let binding = |name: &str| {
        params
            .iter()
            .flat_map(|p| &p.bindings)
            .find(|b| **b == name)
            .copied()
    };
    let names = parameter_list(sig, &params);

    let mut key_args = Vec::new();
    let mut tag_args = Vec::new();
    if let Some(args) = &args {
        for name in &args.skip {
            if binding(&name.to_string()).is_none() {
                errors.spanned(
                    name.span(),
                    format!("`{name}` is not a parameter of `{}`; {names}", sig.ident),
                );
            }
        }
        let is_skipped = |ident: &Ident| args.skip.iter().any(|s| s == ident);

        for tag in &args.tags {
            for name in &tag.placeholders {
                if let Some(ident) = binding(name) {
                    tag_args.push(ident.clone());
                } else {
                    errors.spanned(
                        tag.lit.span(),
                        format!(
                            "`{{{name}}}` in this tag is not a parameter of `{}`; {names}",
                            sig.ident
                        ),
                    );
                }
            }
        }

        match &args.key {
            Some(key) => {
                for name in &key.placeholders {
                    match binding(name) {
                        None => errors.spanned(
                            key.lit.span(),
                            format!(
                                "`{{{name}}}` in `key` is not a parameter of `{}`; {names}",
                                sig.ident
                            ),
                        ),
                        Some(ident) => {
                            if let Some(skipped) = args.skip.iter().find(|s| *s == ident) {
                                errors.spanned(
                                    skipped.span(),
                                    format!(
                                        "`{name}` is in skip(...) but `key` uses `{{{name}}}`: \
                                         remove it from skip(...)"
                                    ),
                                );
                            }
                            key_args.push(ident.clone());
                        }
                    }
                }
            }
            None => {
                for param in &params {
                    match param.pat {
                        Pat::Ident(pat) => {
                            if !is_skipped(&pat.ident) {
                                key_args.push(pat.ident.clone());
                            }
                        }
                        // `_: T`: the body cannot depend on it, so it stays out of the key.
                        Pat::Wild(_) => {}
                        _ if param.bindings.iter().any(|b| is_skipped(b)) => {}
                        pat => {
                            let example = match param.bindings.first() {
                                Some(first) => format!(" (e.g. `skip({first})`)"),
                                None => String::new(),
                            };
                            errors.tokens(
                                pat,
                                format!(
                                    "without a `key` template every parameter is part of the key: \
                                     bind this parameter to a name or add it to skip(...){example}"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    let companion = companion(&params, key_args.iter().chain(&tag_args));
    let query = match (args, output) {
        (Some(args), Some(output)) => Some(Query {
            args,
            key_args,
            tag_args,
            companion,
            output,
            mode: mode(output),
            blocking: sig.asyncness.is_none(),
        }),
        _ => None,
    };
    let query = errors.finish(query)?;
    Ok(query.expect("no error means every part was checked"))
}

/// Checks `#[cached_view]`'s arguments against the handler's signature: an axum or actix-web
/// handler is an `async fn` without `self`. Generics are fine: a page's key never depends on parameters.
pub(crate) fn view(args: syn::Result<ViewArgs>, sig: &Signature) -> syn::Result<ViewArgs> {
    let mut errors = Errors::default();
    let args = errors.ok(args);
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token.span,
            "#[cached_view] caches axum and actix-web handlers, which are `async fn`: make it async",
        );
    }
    if let Some(receiver) = sig.receiver() {
        errors.tokens(
            receiver,
            "#[cached_view] caches axum and actix-web handlers, which take extractors, not `self`: make it a \
             free function, or an associated function without `self` that extracts what it \
             needs (`State(app): State<App>`)",
        );
    }
    let args = errors.finish(args)?;
    Ok(args.expect("no error means the arguments parsed"))
}

/// The parameters that bind `names` (key arguments, then tag arguments), each once, in the
/// order of the first name each binds.
fn companion<'a, 'n>(
    params: &[Param<'a>],
    names: impl IntoIterator<Item = &'n Ident>,
) -> Vec<CompanionParam<'a>> {
    let mut taken = Vec::new();
    let mut companion = Vec::new();
    for name in names {
        let Some(index) = params.iter().position(|p| p.bindings.contains(&name)) else {
            continue;
        };
        if taken.contains(&index) {
            continue;
        }
        taken.push(index);
        let param = &params[index];
        companion.push(match param.pat {
            Pat::Ident(pat) if pat.ident == *name => {
                CompanionParam::Named(&pat.ident, &param.typed.ty)
            }
            _ => CompanionParam::Whole(param.typed),
        });
    }
    companion
}

const NOTHING_TO_CACHE: &str = "`#[cached_query]` caches the function's return value; a function returning `()` has nothing to cache";

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        Type::Group(group) => is_unit(&group.elem),
        _ => false,
    }
}

/// `Result` mode when the type's last path segment ends in `Result` (`Result`, an alias such as
/// `io::Result` or Diesel's `QueryResult`) and takes type arguments.
pub(crate) fn mode(ty: &Type) -> Mode {
    match ty {
        Type::Paren(paren) => mode(&paren.elem),
        Type::Group(group) => mode(&group.elem),
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last)
                if last.ident.to_string().ends_with("Result")
                    && matches!(last.arguments, PathArguments::AngleBracketed(_)) =>
            {
                Mode::Result
            }
            _ => Mode::Value,
        },
        _ => Mode::Value,
    }
}

/// "parameters are `db`, `id`", for error messages.
fn parameter_list(sig: &Signature, params: &[Param<'_>]) -> String {
    let names: Vec<String> = params
        .iter()
        .flat_map(|p| &p.bindings)
        .map(|b| format!("`{b}`"))
        .collect();
    if names.is_empty() {
        format!("`{}` has no named parameters", sig.ident)
    } else {
        format!("parameters are {}", names.join(", "))
    }
}

/// The identifiers a parameter pattern binds.
fn collect_bindings<'a>(pat: &'a Pat, out: &mut Vec<&'a Ident>) {
    let mut idents = Vec::new();
    binding_patterns(pat, &mut idents);
    out.extend(idents.into_iter().map(|pat| &pat.ident));
}

/// The binding patterns (`id`, `mut b`, `ref x`) in a parameter pattern.
pub(crate) fn binding_patterns<'a>(pat: &'a Pat, out: &mut Vec<&'a PatIdent>) {
    match pat {
        Pat::Ident(pat) => {
            out.push(pat);
            if let Some((_, sub)) = &pat.subpat {
                binding_patterns(sub, out);
            }
        }
        Pat::Tuple(pat) => pat.elems.iter().for_each(|p| binding_patterns(p, out)),
        Pat::TupleStruct(pat) => pat.elems.iter().for_each(|p| binding_patterns(p, out)),
        Pat::Slice(pat) => pat.elems.iter().for_each(|p| binding_patterns(p, out)),
        Pat::Struct(pat) => pat
            .fields
            .iter()
            .for_each(|f| binding_patterns(&f.pat, out)),
        Pat::Reference(pat) => binding_patterns(&pat.pat, out),
        Pat::Paren(pat) => binding_patterns(&pat.pat, out),
        Pat::Type(pat) => binding_patterns(&pat.pat, out),
        // Every case of an or-pattern binds the same names.
        Pat::Or(pat) => {
            if let Some(first) = pat.cases.first() {
                binding_patterns(first, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::{ToTokens, quote};
    use syn::parse::{Parse as _, Parser as _};
    use syn::{Signature, parse_quote};

    use super::*;

    fn parse(tokens: TokenStream) -> syn::Result<QueryArgs> {
        QueryArgs::parse.parse2(tokens)
    }

    fn check(args: syn::Result<QueryArgs>, sig: &Signature) -> syn::Result<Query<'_>> {
        query(args, sig)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|e| e.to_string()).collect()
    }

    fn check_error(args: TokenStream, sig: Signature) -> Vec<String> {
        match check(parse(args), &sig) {
            Ok(_) => panic!("expected an error"),
            Err(error) => messages(error),
        }
    }

    fn key_args(args: TokenStream, sig: Signature) -> Vec<String> {
        let query = check(parse(args), &sig).unwrap_or_else(|e| panic!("{:?}", messages(e)));
        query.key_args.iter().map(ToString::to_string).collect()
    }

    fn view_error(args: TokenStream, sig: Signature) -> Vec<String> {
        match view(ViewArgs::parse.parse2(args), &sig) {
            Ok(_) => panic!("expected an error"),
            Err(error) => messages(error),
        }
    }

    #[test]
    fn key_args_follow_the_template() {
        let sig: Signature =
            parse_quote!(async fn f(&self, db: &Pool, a: u32, b: u32) -> Result<u32, E>);
        assert_eq!(
            key_args(quote!(key = "x:{b}:{a}:{b}", skip(db)), sig),
            ["b", "a", "b"]
        );
    }

    #[test]
    fn key_args_without_template_are_all_but_self_skip_and_wildcards() {
        let sig: Signature = parse_quote!(async fn f(&self, db: &Pool, mut a: u32, _: Marker, b: impl Serialize) -> Option<u32>);
        assert_eq!(key_args(quote!(skip(db)), sig), ["a", "b"]);
        let sig: Signature = parse_quote!(async fn f(db: &Pool) -> u32);
        assert!(key_args(quote!(skip(db)), sig).is_empty());
    }

    #[test]
    fn tag_args_in_order_across_tags_skipped_parameters_included() {
        let sig: Signature =
            parse_quote!(async fn f(&self, db: &Pool, tenant: &str, id: u32) -> u32);
        let query = check(
            parse(quote!(
                key = "user:{id}",
                tags = ["users", "t:{tenant}:{id}", "u:{id}"],
                skip(db, tenant)
            )),
            &sig,
        )
        .unwrap_or_else(|e| panic!("{:?}", messages(e)));
        let names = |idents: &[Ident]| idents.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(names(&query.key_args), ["id"]);
        assert_eq!(names(&query.tag_args), ["tenant", "id", "id"]);
        let companion: Vec<String> = query
            .companion
            .iter()
            .map(|p| match p {
                CompanionParam::Named(ident, ty) => {
                    format!("{ident}: {}", ty.to_token_stream())
                }
                CompanionParam::Whole(typed) => typed.to_token_stream().to_string(),
            })
            .collect();
        assert_eq!(companion, ["id: u32", "tenant: & str"]);
    }

    #[test]
    fn destructured_parameters() {
        let sig: Signature =
            parse_quote!(async fn f(State(db): State<Pool>, Query(q): Query<Q>) -> u32);
        assert_eq!(key_args(quote!(key = "q:{q}", skip(db)), sig), ["q"]);
        let sig: Signature = parse_quote!(async fn f(State(db): State<Pool>, id: u32) -> u32);
        assert_eq!(key_args(quote!(skip(db)), sig), ["id"]);
        // With a template, an unreferenced destructured parameter is simply not in the key.
        let sig: Signature = parse_quote!(async fn f((a, b): (u32, u32), id: u32) -> u32);
        assert_eq!(key_args(quote!(key = "x:{id}"), sig), ["id"]);
    }

    #[test]
    fn destructured_parameter_in_the_key_needs_a_name() {
        let sig: Signature = parse_quote!(async fn f((a, b): (u32, u32)) -> u32);
        let errors = check_error(quote!(), sig);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .contains("bind this parameter to a name or add it to skip(...) (e.g. `skip(a)`)"),
            "{errors:?}"
        );
    }

    #[test]
    fn placeholder_must_name_a_parameter() {
        let sig: Signature = parse_quote!(async fn get_user(db: &Pool, id: i64) -> u32);
        assert_eq!(
            check_error(quote!(key = "user:{idd}"), sig),
            ["`{idd}` in `key` is not a parameter of `get_user`; parameters are `db`, `id`"]
        );
        let sig: Signature = parse_quote!(async fn get_user(db: &Pool, id: i64) -> u32);
        assert_eq!(
            check_error(quote!(tags = ["user:{user}"]), sig),
            ["`{user}` in this tag is not a parameter of `get_user`; parameters are `db`, `id`"]
        );
        let sig: Signature = parse_quote!(async fn all() -> u32);
        assert_eq!(
            check_error(quote!(key = "x:{id}"), sig),
            ["`{id}` in `key` is not a parameter of `all`; `all` has no named parameters"]
        );
    }

    #[test]
    fn skip_must_name_a_parameter() {
        let sig: Signature = parse_quote!(async fn get_user(db: &Pool, id: i64) -> u32);
        assert_eq!(
            check_error(quote!(skip(pool)), sig),
            ["`pool` is not a parameter of `get_user`; parameters are `db`, `id`"]
        );
    }

    #[test]
    fn skipped_placeholder() {
        let sig: Signature = parse_quote!(async fn get_user(db: &Pool, id: i64) -> u32);
        assert_eq!(
            check_error(quote!(key = "user:{id}", skip(id)), sig),
            ["`id` is in skip(...) but `key` uses `{id}`: remove it from skip(...)"]
        );
    }

    #[test]
    fn sync_functions_are_blocking_and_const_ones_are_refused() {
        let sig: Signature = parse_quote!(fn f(id: i64) -> u32);
        assert!(check(parse(quote!()), &sig).is_ok_and(|q| q.blocking));
        let sig: Signature = parse_quote!(async fn f(id: i64) -> u32);
        assert!(check(parse(quote!()), &sig).is_ok_and(|q| !q.blocking));
        let sig: Signature = parse_quote!(const fn f(id: i64) -> u32);
        assert_eq!(
            check_error(quote!(), sig),
            ["a `const fn` cannot be cached: a cache lookup runs at run time; remove `const`"]
        );
    }

    #[test]
    fn unit_return() {
        for sig in [
            parse_quote!(async fn f(id: i64)),
            parse_quote!(async fn f(id: i64) -> ()),
            parse_quote!(async fn f(id: i64) -> (())),
        ] {
            assert_eq!(check_error(quote!(), sig), [NOTHING_TO_CACHE]);
        }
    }

    #[test]
    fn generic_function() {
        let sig: Signature = parse_quote!(async fn f<'a, T: Serialize>(id: &'a T) -> u32);
        let errors = check_error(quote!(), sig);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("generic functions are not supported yet"));
        let sig: Signature = parse_quote!(async fn f<const N: usize>() -> u32);
        assert!(
            check_error(quote!(), sig)[0].starts_with("generic functions are not supported yet")
        );
        // Lifetimes are fine.
        let sig: Signature = parse_quote!(async fn f<'a>(id: &'a str) -> u32);
        assert_eq!(key_args(quote!(), sig), ["id"]);
    }

    #[test]
    fn argument_and_signature_errors_come_together() {
        let sig: Signature = parse_quote!(const fn f(id: i64));
        let errors = check_error(quote!(ttl = 0), sig);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("`ttl = 0`"));
        assert!(errors[1].starts_with("a `const fn`"));
        assert_eq!(errors[2], NOTHING_TO_CACHE);
    }

    #[test]
    fn modes() {
        let mode_of = |ty: Type| mode(&ty);
        assert_eq!(
            mode_of(parse_quote!(Result<User, sqlx::Error>)),
            Mode::Result
        );
        assert_eq!(mode_of(parse_quote!(sqlx::Result<User>)), Mode::Result);
        assert_eq!(mode_of(parse_quote!(QueryResult<User>)), Mode::Result);
        assert_eq!(
            mode_of(parse_quote!(SearchResult)),
            Mode::Value,
            "no arguments: a struct"
        );
        assert_eq!(mode_of(parse_quote!(::anyhow::Result<User>)), Mode::Result);
        assert_eq!(mode_of(parse_quote!((std::io::Result<User>))), Mode::Result);
        assert_eq!(mode_of(parse_quote!(Option<User>)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(Vec<Result<User, E>>)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(User)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(<T as Tr>::Result)), Mode::Value);
    }

    #[test]
    fn view_signatures() {
        let ok = |sig: Signature| view(ViewArgs::parse.parse2(quote!(ttl = 5)), &sig).is_ok();
        assert!(ok(parse_quote!(
            async fn page(State(db): State<Db>) -> Html<String>
        )));
        assert!(ok(parse_quote!(
            async fn page<T: Clone>(State(db): State<T>)
        )));
        assert_eq!(
            view_error(quote!(), parse_quote!(fn page() -> String)),
            [
                "#[cached_view] caches axum and actix-web handlers, which are `async fn`: make it async"
            ]
        );
        let errors = view_error(quote!(), parse_quote!(async fn page(&self) -> String));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("which take extractors, not `self`"));
        // Argument and signature errors come together.
        let errors = view_error(
            quote!(ttl = 0, tll = 1),
            parse_quote!(fn page(self) -> String),
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("`ttl = 0`"));
        assert!(errors[1].starts_with("unknown argument `tll`"));
        assert!(errors[2].contains("make it async"));
        assert!(errors[3].contains("not `self`"));
    }
}
