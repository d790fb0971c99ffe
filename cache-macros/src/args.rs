//! Parse and check: `#[cached_query(...)]` arguments and the annotated signature become a small
//! model ([`Query`]) that `query.rs` turns into code. Every error is collected (one
//! `syn::Error` holding them all), spanned on the offending tokens, and says the fix.

use std::fmt::Display;

use proc_macro2::{Ident, Span, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{
    Expr, ExprLit, FnArg, GenericParam, Lit, LitStr, Pat, PatType, Path, ReturnType, Signature,
    Token, Type, UnOp,
};

/// The argument names, fixed by the design.
mod kw {
    syn::custom_keyword!(key);
    syn::custom_keyword!(version);
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(tags);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(codec);
    syn::custom_keyword!(companions);
    syn::custom_keyword!(vary);
}

const VALID: &str = "`key`, `version`, `ttl`, `tags`, `skip(...)`, `cache`, `codec`, `companions`";

/// The arguments of `#[cached_query(...)]`, checked on their own (without the function).
pub(crate) struct QueryArgs {
    /// `key = "user:{id}"`.
    pub(crate) key: Option<Template>,
    /// `version = 2`; 1 when absent.
    pub(crate) version: u64,
    /// `ttl = 60`, in seconds; `None` leaves it to the cache's default.
    pub(crate) ttl: Option<u64>,
    /// `tags = ["users", "user:{id}"]`.
    pub(crate) tags: Vec<Template>,
    /// `skip(db, client)`.
    pub(crate) skip: Vec<Ident>,
    /// `cache = path::to::fn`, a `fn() -> cache_runtime::Cache`.
    pub(crate) cache: Option<Path>,
    /// `codec = postcard` or `codec = my::Codec`.
    pub(crate) codec: Option<Codec>,
    /// `companions = false`: no `_invalidate` / `_invalidate_all` items (needed on methods of
    /// a trait `impl`, where extra items are not allowed).
    pub(crate) companions: bool,
}

impl Default for QueryArgs {
    fn default() -> Self {
        QueryArgs {
            key: None,
            version: 1,
            ttl: None,
            tags: Vec::new(),
            skip: Vec::new(),
            cache: None,
            codec: None,
            companions: true,
        }
    }
}

/// A `key` or tag template, split at its placeholders.
pub(crate) struct Template {
    /// The literal as written, for spans.
    pub(crate) lit: LitStr,
    /// The text between placeholders: `"user:{id}:posts"` gives `["user:", ":posts"]`.
    /// Always one more piece than placeholders.
    pub(crate) pieces: Vec<String>,
    /// The placeholder names in order: `["id"]`.
    pub(crate) placeholders: Vec<String>,
}

/// What `codec = ...` named.
pub(crate) enum Codec {
    /// One of the runtime's codecs, by short name: the type's name in `cache_runtime::codec`,
    /// and the span of the name the user wrote.
    Builtin(&'static str, Span),
    /// A user type implementing `cache_runtime::codec::Codec`.
    Custom(Box<Type>),
}

const BUILTIN_CODECS: [(&str, &str); 4] = [
    ("msgpack", "MsgPack"),
    ("postcard", "Postcard"),
    ("bincode", "Bincode"),
    ("json", "Json"),
];

/// Which template rules apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TemplateKind {
    /// A cache key: each placeholder must be followed by `:` or the end, so keys stay
    /// injective.
    Key,
    /// A tag: placeholders only have to name parameters.
    Tag,
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn spanned(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    fn tokens(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

impl Parse for QueryArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = QueryArgs::default();
        let mut seen = Vec::new();
        let mut errors = Errors::default();
        while !input.is_empty() {
            if let Err(error) = args.parse_one(input, &mut seen) {
                errors.push(error);
                skip_to_comma(input);
            }
            if input.is_empty() {
                break;
            }
            if let Err(error) = input.parse::<Token![,]>() {
                errors.push(error);
                skip_to_comma(input);
                let _ = input.parse::<Option<Token![,]>>();
            }
        }
        errors.finish(args)
    }
}

/// Error recovery: drop the rest of a bad argument, up to the next top-level comma.
fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        let _ = input.parse::<TokenTree>();
    }
}

impl QueryArgs {
    fn parse_one(&mut self, input: ParseStream<'_>, seen: &mut Vec<String>) -> syn::Result<()> {
        if input.peek(kw::key) {
            let kw = input.parse::<kw::key>()?;
            once(seen, "key", kw.span)?;
            let value = value_of(input, "key", "key = \"user:{id}\"")?;
            let lit = string_literal(
                value,
                "`key` must be a string literal, e.g. `key = \"user:{id}\"`",
            )?;
            self.key = Some(Template::parse(lit, TemplateKind::Key)?);
        } else if input.peek(kw::version) {
            let kw = input.parse::<kw::version>()?;
            once(seen, "version", kw.span)?;
            let value = value_of(input, "version", "version = 2")?;
            self.version = version(&value)?;
        } else if input.peek(kw::ttl) {
            let kw = input.parse::<kw::ttl>()?;
            once(seen, "ttl", kw.span)?;
            let value = value_of(input, "ttl", "ttl = 60")?;
            self.ttl = Some(ttl(&value)?);
        } else if input.peek(kw::tags) {
            let kw = input.parse::<kw::tags>()?;
            once(seen, "tags", kw.span)?;
            let value = value_of(input, "tags", "tags = [\"users\", \"user:{id}\"]")?;
            self.tags = tags(value)?;
        } else if input.peek(kw::skip) {
            let kw = input.parse::<kw::skip>()?;
            once(seen, "skip", kw.span)?;
            self.skip = skip(input, kw.span)?;
        } else if input.peek(kw::cache) {
            let kw = input.parse::<kw::cache>()?;
            once(seen, "cache", kw.span)?;
            let value = value_of(input, "cache", "cache = crate::caches::sessions")?;
            self.cache = Some(cache_fn(value)?);
        } else if input.peek(kw::codec) {
            let kw = input.parse::<kw::codec>()?;
            once(seen, "codec", kw.span)?;
            self.codec = Some(codec(input)?);
        } else if input.peek(kw::companions) {
            let kw = input.parse::<kw::companions>()?;
            once(seen, "companions", kw.span)?;
            let value = value_of(input, "companions", "companions = false")?;
            match unwrap_expr(&value) {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Bool(b),
                    ..
                }) => self.companions = b.value,
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`companions` takes `true` or `false`, e.g. `companions = false` on a method of a trait impl",
                    ));
                }
            }
        } else if input.peek(kw::vary) {
            let kw = input.parse::<kw::vary>()?;
            return Err(syn::Error::new(
                kw.span,
                "`vary` applies to `#[cached_view]` (HTTP headers), not to `#[cached_query]`: \
                 remove it; every parameter not in skip(...) is already part of the key",
            ));
        } else if input.peek(LitStr) {
            let lit = input.parse::<LitStr>()?;
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "a key template needs its name: write `key = {}`",
                    lit.to_token_stream()
                ),
            ));
        } else if input.peek(Ident::peek_any) {
            let name = input.call(Ident::parse_any)?;
            return Err(syn::Error::new(
                name.span(),
                format!("unknown argument `{name}`; valid arguments are {VALID}"),
            ));
        } else {
            return Err(input.error(format!("expected an argument; valid arguments are {VALID}")));
        }
        Ok(())
    }
}

/// Rejects the second occurrence of an argument.
fn once(seen: &mut Vec<String>, name: &str, span: Span) -> syn::Result<()> {
    if seen.iter().any(|s| s == name) {
        return Err(syn::Error::new(
            span,
            format!("duplicate argument `{name}`: it is already given above; keep only one"),
        ));
    }
    seen.push(name.to_owned());
    Ok(())
}

/// Parses `= <expr>` after an argument name.
fn value_of(input: ParseStream<'_>, name: &str, example: &str) -> syn::Result<Expr> {
    if !input.peek(Token![=]) {
        return Err(input.error(format!("expected `=` after `{name}`: write `{example}`")));
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(input.error(format!(
            "expected a value after `{name} =`: write `{example}`"
        )));
    }
    input.parse()
}

fn unwrap_expr(mut expr: &Expr) -> &Expr {
    loop {
        match expr {
            Expr::Group(group) => expr = &group.expr,
            Expr::Paren(paren) => expr = &paren.expr,
            _ => return expr,
        }
    }
}

fn unwrap_owned(mut expr: Expr) -> Expr {
    loop {
        expr = match expr {
            Expr::Group(group) => *group.expr,
            Expr::Paren(paren) => *paren.expr,
            other => return other,
        };
    }
}

fn string_literal(value: Expr, message: &str) -> syn::Result<LitStr> {
    let error = syn::Error::new_spanned(&value, message);
    match unwrap_owned(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        _ => Err(error),
    }
}

/// An integer literal's value, `Err(())` for anything else (negative, float, string,
/// expression, too large, or a non-integer suffix such as `60s`).
fn integer(value: &Expr) -> Result<u64, ()> {
    match unwrap_expr(value) {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => {
                let suffix_ok = matches!(int.suffix(), "" | "u8" | "u16" | "u32" | "u64" | "usize");
                if suffix_ok && !int.base10_digits().starts_with('-') {
                    int.base10_parse::<u64>().map_err(|_| ())
                } else {
                    Err(())
                }
            }
            _ => Err(()),
        },
        _ => Err(()),
    }
}

fn is_negative(value: &Expr) -> bool {
    match unwrap_expr(value) {
        Expr::Unary(unary) => matches!(unary.op, UnOp::Neg(_)),
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => int.base10_digits().starts_with('-'),
            Lit::Float(float) => float.base10_digits().starts_with('-'),
            _ => false,
        },
        _ => false,
    }
}

fn version(value: &Expr) -> syn::Result<u64> {
    integer(value).map_err(|()| {
        syn::Error::new_spanned(
            value,
            "`version` must be a whole number (an integer literal, not a string or an expression), \
             e.g. `version = 2`; bump it to invalidate every cached entry of this function",
        )
    })
}

fn ttl(value: &Expr) -> syn::Result<u64> {
    match integer(value) {
        Ok(0) => Err(syn::Error::new_spanned(
            value,
            "`ttl = 0` would expire every entry at once: use a positive number of seconds, \
             e.g. `ttl = 60`, or remove `ttl` to use the cache's default",
        )),
        Ok(seconds) => Ok(seconds),
        Err(()) if is_negative(value) => Err(syn::Error::new_spanned(
            value,
            "`ttl` cannot be negative: use a positive number of seconds, e.g. `ttl = 60`",
        )),
        Err(()) => Err(syn::Error::new_spanned(
            value,
            "`ttl` must be a positive whole number of seconds (an integer literal, not a \
             string, a float or an expression), e.g. `ttl = 60`",
        )),
    }
}

fn tags(value: Expr) -> syn::Result<Vec<Template>> {
    let message =
        "`tags` must be a list of string literals, e.g. `tags = [\"users\", \"user:{id}\"]`";
    let error = syn::Error::new_spanned(&value, message);
    let Expr::Array(array) = unwrap_owned(value) else {
        return Err(error);
    };
    let mut tags = Vec::new();
    let mut errors = Errors::default();
    for element in array.elems {
        match string_literal(element, message)
            .and_then(|lit| Template::parse(lit, TemplateKind::Tag))
        {
            Ok(tag) => tags.push(tag),
            Err(error) => errors.push(error),
        }
    }
    errors.finish(tags)
}

fn skip(input: ParseStream<'_>, span: Span) -> syn::Result<Vec<Ident>> {
    let usage = "`skip` takes a list of parameter names: write `skip(db, client)`";
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(span, usage));
    }
    let content;
    syn::parenthesized!(content in input);
    let names: Punctuated<Ident, Token![,]> = content
        .parse_terminated(Ident::parse_any, Token![,])
        .map_err(|error| syn::Error::new(error.span(), usage))?;
    let mut errors = Errors::default();
    let mut skip: Vec<Ident> = Vec::new();
    for name in names {
        if name == "self" {
            errors.spanned(
                name.span(),
                "`self` is never part of the key, so there is nothing to skip: remove it from skip(...)",
            );
        } else if skip.contains(&name) {
            errors.spanned(
                name.span(),
                format!("`{name}` is already in skip(...): remove one"),
            );
        } else {
            skip.push(name);
        }
    }
    errors.finish(skip)
}

fn cache_fn(value: Expr) -> syn::Result<Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path),
        other => Err(syn::Error::new_spanned(
            other,
            "`cache` must be the path of a `fn() -> cache_runtime::Cache`, \
             e.g. `cache = crate::caches::sessions`",
        )),
    }
}

fn codec(input: ParseStream<'_>) -> syn::Result<Codec> {
    let names = "`msgpack`, `postcard`, `bincode`, `json`";
    if !input.peek(Token![=]) {
        return Err(input.error(format!(
            "expected `=` after `codec`: write `codec = postcard` ({names}, or the path of a type \
             implementing `cache_runtime::codec::Codec`)"
        )));
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        let lit = input.parse::<LitStr>()?;
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`codec` takes a name, not a string: write `codec = {}` ({names}, or the path of \
                 a type implementing `cache_runtime::codec::Codec`)",
                lit.value()
            ),
        ));
    }
    let ty = input.parse::<Type>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`codec` must be {names}, or the path of a type implementing `cache_runtime::codec::Codec`"),
        )
    })?;
    if let Type::Path(path) = &ty
        && path.qself.is_none()
        && let Some(ident) = path.path.get_ident()
        && let Some((_, name)) = BUILTIN_CODECS.iter().find(|(short, _)| ident == short)
    {
        return Ok(Codec::Builtin(name, ident.span()));
    }
    Ok(Codec::Custom(Box::new(ty)))
}

impl Template {
    fn parse(lit: LitStr, kind: TemplateKind) -> syn::Result<Template> {
        let text = lit.value();
        let what = match kind {
            TemplateKind::Key => "`key`",
            TemplateKind::Tag => "a tag",
        };
        if text.is_empty() {
            let fix = match kind {
                TemplateKind::Key => "remove `key` to key entries by the function's path",
                TemplateKind::Tag => "remove it from `tags`",
            };
            return Err(syn::Error::new(
                lit.span(),
                format!("{what} must not be empty: {fix}"),
            ));
        }
        match split_template(&text, kind) {
            Ok((pieces, placeholders)) => Ok(Template {
                lit,
                pieces,
                placeholders,
            }),
            Err(message) => Err(syn::Error::new(lit.span(), format!("in {what}: {message}"))),
        }
    }
}

/// Splits a template at its placeholders: `"user:{id}:posts"` gives
/// `(["user:", ":posts"], ["id"])`. `{{` and `}}` escapes are not supported: a brace always
/// delimits a placeholder.
pub(crate) fn split_template(
    text: &str,
    kind: TemplateKind,
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut pieces = Vec::new();
    let mut placeholders = Vec::new();
    let mut rest = text;
    while let Some(brace) = rest.find(['{', '}']) {
        let (literal, from_brace) = rest.split_at(brace);
        if from_brace.starts_with('}') {
            return Err(
                "unmatched `}`: braces only delimit placeholders such as `{id}` \
                        (`}}` escapes are not supported)"
                    .to_owned(),
            );
        }
        let inside = &from_brace[1..];
        let close = match inside.find(['{', '}']) {
            Some(close) if inside[close..].starts_with('}') => close,
            _ => {
                return Err("unclosed `{`: close the placeholder with `}`, e.g. `{id}` \
                            (`{{` escapes are not supported)"
                    .to_owned());
            }
        };
        let name = &inside[..close];
        check_placeholder_name(name)?;
        rest = &inside[close + 1..];
        if kind == TemplateKind::Key && !rest.is_empty() && !rest.starts_with(':') {
            let next: String = rest.chars().take_while(|&c| c != ':').collect();
            return Err(format!(
                "placeholders must be separated by `:` so keys stay unambiguous: `{{{name}}}` is \
                 followed by `{next}`; put a `:` after `{{{name}}}` or end the key with it"
            ));
        }
        pieces.push(literal.to_owned());
        placeholders.push(name.to_owned());
    }
    pieces.push(rest.to_owned());
    Ok((pieces, placeholders))
}

fn check_placeholder_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty placeholder `{}`: name a parameter, e.g. `{id}`".to_owned());
    }
    if name == "self" {
        return Err(
            "`{self}`: `self` is never part of the key; use a parameter, e.g. `{id}`".to_owned(),
        );
    }
    if !syn::parse_str::<Ident>(name).is_ok_and(|ident| ident == name) {
        return Err(format!(
            "placeholder `{{{name}}}` must be a parameter name, e.g. `{{id}}`"
        ));
    }
    Ok(())
}

/// Whether the function returns a `Result` (only `Ok` is cached) or any other value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// The return type's last path segment is `Result`: `Result<T, E>`, `sqlx::Result<T>`,
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

/// Checks the arguments against the function's signature. `args` may already have failed:
/// the signature is checked anyway so that every error shows at once.
pub(crate) fn check(args: syn::Result<QueryArgs>, sig: &Signature) -> syn::Result<Query<'_>> {
    let mut errors = Errors::default();
    let args = match args {
        Ok(args) => Some(args),
        Err(error) => {
            errors.push(error);
            None
        }
    };

    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token.span,
            "sync functions are not supported yet: make it async (`async fn`)",
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
        }),
        _ => None,
    };
    let query = errors.finish(query)?;
    Ok(query.expect("no error means every part was checked"))
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

/// `Result` mode when the type's last path segment is `Result`.
pub(crate) fn mode(ty: &Type) -> Mode {
    match ty {
        Type::Paren(paren) => mode(&paren.elem),
        Type::Group(group) => mode(&group.elem),
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "Result" => Mode::Result,
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
    match pat {
        Pat::Ident(pat) => {
            out.push(&pat.ident);
            if let Some((_, sub)) = &pat.subpat {
                collect_bindings(sub, out);
            }
        }
        Pat::Tuple(pat) => pat.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::TupleStruct(pat) => pat.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Slice(pat) => pat.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Struct(pat) => pat
            .fields
            .iter()
            .for_each(|f| collect_bindings(&f.pat, out)),
        Pat::Reference(pat) => collect_bindings(&pat.pat, out),
        Pat::Paren(pat) => collect_bindings(&pat.pat, out),
        Pat::Type(pat) => collect_bindings(&pat.pat, out),
        // Every case of an or-pattern binds the same names.
        Pat::Or(pat) => {
            if let Some(first) = pat.cases.first() {
                collect_bindings(first, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::parse::{Parse as _, Parser as _};
    use syn::{Signature, parse_quote};

    use super::*;

    fn parse(tokens: TokenStream) -> syn::Result<QueryArgs> {
        QueryArgs::parse.parse2(tokens)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|e| e.to_string()).collect()
    }

    /// The single error of a parse that must fail.
    fn parse_error(tokens: TokenStream) -> String {
        let errors = messages(parse(tokens).err().expect("expected an error"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
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

    // ---- arguments, one by one ----

    #[test]
    fn empty_arguments() {
        let args = parse(quote!()).unwrap();
        assert!(args.key.is_none());
        assert_eq!(args.version, 1);
        assert_eq!(args.ttl, None);
        assert!(args.tags.is_empty() && args.skip.is_empty());
        assert!(args.cache.is_none() && args.codec.is_none());
    }

    #[test]
    fn all_arguments() {
        let args = parse(quote!(
            key = "user:{id}:posts",
            version = 3,
            ttl = 600,
            tags = ["users", "user:{id}"],
            skip(db, client),
            cache = crate::caches::sessions,
            codec = postcard,
        ))
        .unwrap();
        let key = args.key.unwrap();
        assert_eq!(key.pieces, ["user:", ":posts"]);
        assert_eq!(key.placeholders, ["id"]);
        assert_eq!(args.version, 3);
        assert_eq!(args.ttl, Some(600));
        assert_eq!(args.tags.len(), 2);
        assert_eq!(args.tags[1].pieces, ["user:", ""]);
        assert_eq!(args.tags[1].placeholders, ["id"]);
        assert_eq!(
            args.skip
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["db", "client"]
        );
        assert_eq!(
            args.cache.unwrap().to_token_stream().to_string(),
            "crate :: caches :: sessions"
        );
        assert!(matches!(args.codec, Some(Codec::Builtin("Postcard", _))));
    }

    #[test]
    fn version_accepts_integer_literals() {
        assert_eq!(parse(quote!(version = 0)).unwrap().version, 0);
        assert_eq!(parse(quote!(version = 7u64)).unwrap().version, 7);
        assert_eq!(
            parse(quote!(version = 18446744073709551615))
                .unwrap()
                .version,
            u64::MAX
        );
    }

    #[test]
    fn ttl_accepts_positive_integer_literals() {
        assert_eq!(parse(quote!(ttl = 1)).unwrap().ttl, Some(1));
        assert_eq!(parse(quote!(ttl = 86_400)).unwrap().ttl, Some(86_400));
        assert_eq!(parse(quote!(ttl = 60u32)).unwrap().ttl, Some(60));
    }

    #[test]
    fn codecs() {
        for (short, name) in BUILTIN_CODECS {
            let ident = Ident::new(short, Span::call_site());
            match parse(quote!(codec = #ident)).unwrap().codec {
                Some(Codec::Builtin(found, _)) => assert_eq!(found, name),
                _ => panic!("{short} is a builtin codec"),
            }
        }
        match parse(quote!(codec = my::codecs::Zstd<Json>)).unwrap().codec {
            Some(Codec::Custom(ty)) => assert_eq!(
                ty.to_token_stream().to_string(),
                "my :: codecs :: Zstd < Json >"
            ),
            _ => panic!("a path is a custom codec"),
        }
        // A single unknown name is a user type too.
        assert!(matches!(
            parse(quote!(codec = Zstd)).unwrap().codec,
            Some(Codec::Custom(_))
        ));
    }

    #[test]
    fn skip_accepts_raw_and_trailing_comma() {
        let args = parse(quote!(skip(a, b,))).unwrap();
        assert_eq!(args.skip.len(), 2);
        assert!(parse(quote!(skip())).unwrap().skip.is_empty());
    }

    #[test]
    fn raw_string_key() {
        let args = parse(quote!(key = r"user:{id}")).unwrap();
        assert_eq!(args.key.unwrap().pieces, ["user:", ""]);
    }

    // ---- argument errors ----

    #[test]
    fn unknown_argument_lists_the_valid_ones() {
        let error = parse_error(quote!(tll = 60));
        assert!(
            error
                .starts_with("unknown argument `tll`; valid arguments are `key`, `version`, `ttl`"),
            "{error}"
        );
        assert!(parse_error(quote!(r#type = 1)).contains("unknown argument `r#type`"));
    }

    #[test]
    fn vary_belongs_to_views() {
        assert!(
            parse_error(quote!(vary = ["accept"])).contains("`vary` applies to `#[cached_view]`")
        );
    }

    #[test]
    fn bare_string_suggests_key() {
        assert_eq!(
            parse_error(quote!("user:{id}")),
            "a key template needs its name: write `key = \"user:{id}\"`"
        );
    }

    #[test]
    fn duplicate_argument() {
        let error = parse_error(quote!(ttl = 60, version = 1, ttl = 120));
        assert_eq!(
            error,
            "duplicate argument `ttl`: it is already given above; keep only one"
        );
        assert!(parse_error(quote!(skip(a), skip(b))).contains("duplicate argument `skip`"));
    }

    #[test]
    fn ttl_errors() {
        assert!(
            parse_error(quote!(ttl = 0)).starts_with("`ttl = 0` would expire every entry at once")
        );
        assert!(parse_error(quote!(ttl = -5)).starts_with("`ttl` cannot be negative"));
        for bad in [
            quote!(ttl = 1.5),
            quote!(ttl = "60"),
            quote!(ttl = 60 * 60),
            quote!(ttl = SECS),
            quote!(ttl = 60s),
        ] {
            let error = parse_error(bad);
            assert!(
                error.starts_with("`ttl` must be a positive whole number of seconds"),
                "{error}"
            );
            assert!(error.ends_with("e.g. `ttl = 60`"), "{error}");
        }
        assert!(parse_error(quote!(ttl)).contains("expected `=` after `ttl`: write `ttl = 60`"));
        assert!(parse_error(quote!(ttl =)).contains("expected a value after `ttl =`"));
    }

    #[test]
    fn version_errors() {
        for bad in [
            quote!(version = "2"),
            quote!(version = 1.0),
            quote!(version = -1),
            quote!(version = V),
        ] {
            let error = parse_error(bad);
            assert!(
                error.starts_with("`version` must be a whole number"),
                "{error}"
            );
        }
        assert!(
            parse_error(quote!(version = 18446744073709551616))
                .starts_with("`version` must be a whole number")
        );
    }

    #[test]
    fn key_and_tags_errors() {
        assert!(parse_error(quote!(key = user)).starts_with("`key` must be a string literal"));
        assert!(parse_error(quote!(key = "")).starts_with("`key` must not be empty"));
        assert!(
            parse_error(quote!(tags = "users"))
                .starts_with("`tags` must be a list of string literals")
        );
        assert!(
            parse_error(quote!(tags = [users]))
                .starts_with("`tags` must be a list of string literals")
        );
        assert!(parse_error(quote!(tags = [""])).starts_with("a tag must not be empty"));
    }

    #[test]
    fn skip_errors() {
        assert!(
            parse_error(quote!(skip = [db])).starts_with("`skip` takes a list of parameter names")
        );
        assert!(parse_error(quote!(skip)).starts_with("`skip` takes a list of parameter names"));
        assert!(
            parse_error(quote!(skip("db"))).starts_with("`skip` takes a list of parameter names")
        );
        assert!(parse_error(quote!(skip(self))).starts_with("`self` is never part of the key"));
        assert_eq!(
            parse_error(quote!(skip(db, db))),
            "`db` is already in skip(...): remove one"
        );
    }

    #[test]
    fn cache_and_codec_errors() {
        assert!(
            parse_error(quote!(cache = "sessions"))
                .starts_with("`cache` must be the path of a `fn() -> cache_runtime::Cache`")
        );
        assert!(parse_error(quote!(cache = sessions())).starts_with("`cache` must be the path"));
        assert!(
            parse_error(quote!(codec = "json"))
                .starts_with("`codec` takes a name, not a string: write `codec = json`")
        );
        assert!(
            parse_error(quote!(codec = 1)).starts_with("`codec` must be `msgpack`, `postcard`")
        );
    }

    #[test]
    fn missing_comma() {
        assert!(parse_error(quote!(ttl = 60 version = 2)).contains("expected `,`"));
    }

    #[test]
    fn all_errors_are_reported_and_good_arguments_still_parse() {
        let errors = messages(
            parse(quote!(
                tll = 1,
                ttl = 0,
                version = "x",
                ttl = 5,
                key = "{a}-{b}"
            ))
            .err()
            .unwrap(),
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("unknown argument `tll`"));
        assert!(errors[1].starts_with("`ttl = 0`"));
        assert!(errors[2].starts_with("`version` must be"));
        assert!(errors[3].starts_with("duplicate argument `ttl`"));
        assert!(errors[4].contains("placeholders must be separated by `:`"));
    }

    // ---- templates ----

    fn split(text: &str) -> (Vec<String>, Vec<String>) {
        split_template(text, TemplateKind::Key).unwrap()
    }

    #[test]
    fn template_splitting() {
        assert_eq!(split("active_users"), (vec!["active_users".into()], vec![]));
        assert_eq!(
            split("user:{id}"),
            (vec!["user:".into(), "".into()], vec!["id".into()])
        );
        assert_eq!(
            split("user:{id}:posts"),
            (vec!["user:".into(), ":posts".into()], vec!["id".into()])
        );
        assert_eq!(
            split("{id}"),
            (vec!["".into(), "".into()], vec!["id".into()])
        );
        assert_eq!(
            split("{a}:{b}:{a}"),
            (
                vec!["".into(), ":".into(), ":".into(), "".into()],
                vec!["a".into(), "b".into(), "a".into()]
            )
        );
        assert_eq!(
            split("user{id}"),
            (vec!["user".into(), "".into()], vec!["id".into()])
        );
        assert_eq!(
            split("été:{_x1}"),
            (vec!["été:".into(), "".into()], vec!["_x1".into()])
        );
    }

    #[test]
    fn template_errors() {
        let err = |text: &str| split_template(text, TemplateKind::Key).unwrap_err();
        assert!(err("user:{id").starts_with("unclosed `{`"));
        assert!(err("user:{id:{x}").starts_with("unclosed `{`"));
        assert!(err("{{id}}").starts_with("unclosed `{`"));
        assert!(err("user:id}").starts_with("unmatched `}`"));
        assert!(err("user:{}").starts_with("empty placeholder `{}`"));
        assert!(
            err("user:{user.id}").starts_with("placeholder `{user.id}` must be a parameter name")
        );
        assert!(err("user:{ id }").starts_with("placeholder `{ id }` must be a parameter name"));
        assert!(err("user:{0}").starts_with("placeholder `{0}` must be a parameter name"));
        assert!(err("user:{fn}").starts_with("placeholder `{fn}` must be a parameter name"));
        assert!(err("user:{self}").starts_with("`{self}`: `self` is never part of the key"));
        assert_eq!(
            err("{a}-{b}"),
            "placeholders must be separated by `:` so keys stay unambiguous: `{a}` is followed by \
             `-{b}`; put a `:` after `{a}` or end the key with it"
        );
        assert!(err("{a}{b}").contains("`{a}` is followed by `{b}`"));
        assert!(err("user:{id}/posts").contains("`{id}` is followed by `/posts`"));
    }

    #[test]
    fn tags_need_no_separator() {
        let (pieces, names) = split_template("{a}-{b}", TemplateKind::Tag).unwrap();
        assert_eq!(
            (pieces, names),
            (
                vec!["".into(), "-".into(), "".into()],
                vec!["a".into(), "b".into()]
            )
        );
        assert!(
            split_template("{a", TemplateKind::Tag)
                .unwrap_err()
                .starts_with("unclosed")
        );
    }

    #[test]
    fn template_error_names_the_argument() {
        assert!(parse_error(quote!(key = "user:{id")).starts_with("in `key`: unclosed `{`"));
        assert!(
            parse_error(quote!(tags = ["a", "user:{id"])).starts_with("in a tag: unclosed `{`")
        );
    }

    // ---- checks against the signature ----

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
    fn sync_function() {
        let sig: Signature = parse_quote!(fn f(id: i64) -> u32);
        assert_eq!(
            check_error(quote!(), sig),
            ["sync functions are not supported yet: make it async (`async fn`)"]
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
        let sig: Signature = parse_quote!(fn f(id: i64));
        let errors = check_error(quote!(ttl = 0), sig);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("`ttl = 0`"));
        assert!(errors[1].starts_with("sync functions"));
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
        assert_eq!(mode_of(parse_quote!(::anyhow::Result<User>)), Mode::Result);
        assert_eq!(mode_of(parse_quote!((std::io::Result<User>))), Mode::Result);
        assert_eq!(mode_of(parse_quote!(Option<User>)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(Vec<Result<User, E>>)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(User)), Mode::Value);
        assert_eq!(mode_of(parse_quote!(<T as Tr>::Result)), Mode::Value);
    }
}
