//! The arguments of both macros, one layer: the argument names (`mod kw`), one loop that reads
//! `name = value` lists ([`parse_args`]), value parsers both macros share, and [`Errors`],
//! which collects every error so they are all reported at once.
//!
//! Each macro's `impl Parse` only says what to do with each of its arguments. Unknown
//! arguments, arguments of the other macro and duplicates are errors spanned at the name that
//! list the macro's valid arguments; after any error the loop skips to the next comma and goes
//! on. Arguments are checked on their own here; against the signature in `check.rs`.

use std::fmt::Display;

use proc_macro2::{Ident, Span, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Path, Token, Type, UnOp};

use crate::template::{self, Template, TemplateKind};

/// Every argument name either macro knows (the design fixes them).
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
    syn::custom_keyword!(statuses);
    syn::custom_keyword!(lease);
    syn::custom_keyword!(early);
    syn::custom_keyword!(stale);
    syn::custom_keyword!(actix);
}

/// An argument name, of either macro.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arg {
    Key,
    Version,
    Ttl,
    Tags,
    Skip,
    Cache,
    Codec,
    Companions,
    Vary,
    Statuses,
    Lease,
    Early,
    Stale,
    Actix,
}

impl Arg {
    /// Parses the next argument name if it is one of ours.
    fn parse(input: ParseStream<'_>) -> Option<syn::Result<(Arg, Span)>> {
        macro_rules! names {
            ($($kw:ident => $arg:ident),*) => {
                $(if input.peek(kw::$kw) {
                    return Some(input.parse::<kw::$kw>().map(|kw| (Arg::$arg, kw.span)));
                })*
            };
        }
        names!(key => Key, version => Version, ttl => Ttl, tags => Tags, skip => Skip,
            cache => Cache, codec => Codec, companions => Companions, vary => Vary,
            statuses => Statuses, lease => Lease, early => Early, stale => Stale,
            actix => Actix);
        None
    }

    fn name(self) -> &'static str {
        match self {
            Arg::Key => "key",
            Arg::Version => "version",
            Arg::Ttl => "ttl",
            Arg::Tags => "tags",
            Arg::Skip => "skip",
            Arg::Cache => "cache",
            Arg::Codec => "codec",
            Arg::Companions => "companions",
            Arg::Vary => "vary",
            Arg::Statuses => "statuses",
            Arg::Lease => "lease",
            Arg::Early => "early",
            Arg::Stale => "stale",
            Arg::Actix => "actix",
        }
    }
}

/// Which macro's arguments are read: its valid arguments and the messages for the other's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Macro {
    Query,
    View,
}

impl Macro {
    fn valid(self) -> &'static [Arg] {
        match self {
            Macro::Query => &[
                Arg::Key,
                Arg::Version,
                Arg::Ttl,
                Arg::Tags,
                Arg::Skip,
                Arg::Cache,
                Arg::Codec,
                Arg::Companions,
                Arg::Lease,
                Arg::Early,
                Arg::Stale,
            ],
            Macro::View => &[
                Arg::Ttl,
                Arg::Version,
                Arg::Vary,
                Arg::Statuses,
                Arg::Tags,
                Arg::Cache,
                Arg::Lease,
                Arg::Early,
                Arg::Stale,
                Arg::Actix,
            ],
        }
    }

    /// "valid arguments are `key`, `version`, ...", for every error about an argument name.
    fn valid_list(self) -> String {
        let names: Vec<String> = self
            .valid()
            .iter()
            .map(|arg| match arg {
                Arg::Skip => "`skip(...)`".to_owned(),
                arg => format!("`{}`", arg.name()),
            })
            .collect();
        format!("valid arguments are {}", names.join(", "))
    }

    /// An argument of the other macro: what it is for, and the fix.
    fn misplaced(self, arg: Arg) -> String {
        let why = match (self, arg) {
            (Macro::Query, Arg::Actix) => "`actix` applies to `#[cached_view]` (it marks an \
                actix-web handler), not to `#[cached_query]`: remove it; a cached query works the \
                same under any framework"
                .to_owned(),
            (Macro::Query, Arg::Vary) => "`vary` applies to `#[cached_view]` (HTTP headers), not \
                to `#[cached_query]`: remove it; every parameter not in skip(...) is already part \
                of the key"
                .to_owned(),
            (Macro::Query, _) => "`statuses` applies to `#[cached_view]` (the HTTP statuses it \
                stores), not to `#[cached_query]`: remove it"
                .to_owned(),
            (Macro::View, Arg::Key | Arg::Skip) => format!(
                "`{}` applies to `#[cached_query]`, not to `#[cached_view]`: a page's key is the \
                 request (method, URL and the `vary` headers), never the handler's parameters",
                arg.name()
            ),
            (Macro::View, Arg::Codec) => "`codec` applies to `#[cached_query]`, not to \
                `#[cached_view]`: responses are stored in the runtime's own format"
                .to_owned(),
            (Macro::View, _) => "`companions` applies to `#[cached_query]`, not to \
                `#[cached_view]`: a handler's companions are always generated"
                .to_owned(),
        };
        format!("{why}; {}", self.valid_list())
    }
}

/// Collects errors so that all of them are reported at once (`syn::Error::combine`).
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn spanned(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn tokens(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Keeps `result`'s value, or its error for later.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Reads `name = value, name(...), ...` for `which` macro, calling `one` with each valid
/// argument and the input positioned after its name. Every error is collected: after one, the
/// rest of that argument is skipped up to the next top-level comma.
pub(crate) fn parse_args(
    input: ParseStream<'_>,
    which: Macro,
    mut one: impl FnMut(Arg, Span, ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut seen: Vec<Arg> = Vec::new();
    let mut errors = Errors::default();
    while !input.is_empty() {
        if let Err(error) = parse_one(input, which, &mut seen, &mut one) {
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
    errors.finish(())
}

fn parse_one(
    input: ParseStream<'_>,
    which: Macro,
    seen: &mut Vec<Arg>,
    one: &mut impl FnMut(Arg, Span, ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    match Arg::parse(input) {
        Some(name) => {
            let (arg, span) = name?;
            if !which.valid().contains(&arg) {
                return Err(syn::Error::new(span, which.misplaced(arg)));
            }
            if seen.contains(&arg) {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "duplicate argument `{}`: it is already given above; keep only one \
                         ({})",
                        arg.name(),
                        which.valid_list()
                    ),
                ));
            }
            seen.push(arg);
            one(arg, span, input)
        }
        None if which == Macro::Query && input.peek(LitStr) => {
            let lit = input.parse::<LitStr>()?;
            Err(syn::Error::new(
                lit.span(),
                format!(
                    "a key template needs its name: write `key = {}`",
                    lit.to_token_stream()
                ),
            ))
        }
        None if input.peek(Ident::peek_any) => {
            let name = input.call(Ident::parse_any)?;
            Err(syn::Error::new(
                name.span(),
                format!("unknown argument `{name}`; {}", which.valid_list()),
            ))
        }
        None => Err(input.error(format!("expected an argument; {}", which.valid_list()))),
    }
}

/// Error recovery: drop the rest of a bad argument, up to the next top-level comma.
fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        let _ = input.parse::<TokenTree>();
    }
}

// ---- the arguments of `#[cached_query]` ----

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
    /// `lease`, `early`, `stale`.
    pub(crate) freshness: Freshness,
}

/// `lease = false`, `early = 1.0`, `stale = 30`: how values are refreshed, both macros.
#[derive(Default, Clone, Copy)]
pub(crate) struct Freshness {
    pub(crate) lease: Option<bool>,
    /// XFetch's β.
    pub(crate) early: Option<f64>,
    /// Seconds.
    pub(crate) stale: Option<u64>,
}

impl Freshness {
    /// Reads `arg` (one of the three) into `self`.
    fn read(&mut self, arg: Arg, input: ParseStream<'_>) -> syn::Result<()> {
        match arg {
            Arg::Lease => {
                let value = value(input, arg, "lease = false")?;
                self.lease = Some(boolean(
                    &value,
                    "`lease` takes `true` or `false`, e.g. `lease = false` to let every process \
                     fill on its own",
                )?);
            }
            Arg::Early => self.early = Some(beta(&value(input, arg, "early = 1.0")?)?),
            Arg::Stale => {
                let example = "stale = 30";
                self.stale = Some(seconds(&value(input, arg, example)?, "stale", example)?);
            }
            _ => unreachable!("not a freshness argument"),
        }
        Ok(())
    }
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
            freshness: Freshness::default(),
        }
    }
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

impl Parse for QueryArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = QueryArgs::default();
        parse_args(input, Macro::Query, |arg, span, input| {
            match arg {
                Arg::Key => {
                    let value = value(input, arg, "key = \"user:{id}\"")?;
                    let lit = string_literal(
                        value,
                        "`key` must be a string literal, e.g. `key = \"user:{id}\"`",
                    )?;
                    args.key = Some(Template::parse(lit, TemplateKind::Key)?);
                }
                Arg::Version => args.version = version(&value(input, arg, "version = 2")?)?,
                Arg::Ttl => args.ttl = Some(ttl(&value(input, arg, "ttl = 60")?, "ttl = 60")?),
                Arg::Tags => {
                    let example = "tags = [\"users\", \"user:{id}\"]";
                    args.tags = string_list(value(input, arg, example)?, arg, example, |lit| {
                        Template::parse(lit, TemplateKind::Tag)
                    })?;
                }
                Arg::Skip => args.skip = skip(input, span)?,
                Arg::Cache => {
                    args.cache = Some(cache_fn(value(
                        input,
                        arg,
                        "cache = crate::caches::sessions",
                    )?)?);
                }
                Arg::Codec => args.codec = Some(codec(input)?),
                Arg::Companions => {
                    let value = value(input, arg, "companions = false")?;
                    args.companions = boolean(
                        &value,
                        "`companions` takes `true` or `false`, e.g. `companions = false` on a \
                         method of a trait impl",
                    )?;
                }
                Arg::Lease | Arg::Early | Arg::Stale => args.freshness.read(arg, input)?,
                Arg::Vary | Arg::Statuses | Arg::Actix => unreachable!("not a query argument"),
            }
            Ok(())
        })?;
        Ok(args)
    }
}

// ---- the arguments of `#[cached_view]` ----

/// The arguments of `#[cached_view(...)]`.
#[derive(Default)]
pub(crate) struct ViewArgs {
    /// `ttl = 900`, in seconds; `None` leaves it to the cache's default.
    pub(crate) ttl: Option<u64>,
    /// `version = 2`; 1 when absent.
    pub(crate) version: Option<u64>,
    /// `vary = ["Accept-Language"]`: valid header names, as written.
    pub(crate) vary: Vec<LitStr>,
    /// `statuses = [200, 404]`; empty stores 200 only.
    pub(crate) statuses: Vec<u16>,
    /// `tags = ["users"]`: literal tags, no placeholders.
    pub(crate) tags: Vec<LitStr>,
    /// `cache = path::to::fn`, a `fn() -> cache_runtime::Cache`.
    pub(crate) cache: Option<Path>,
    /// `lease`, `early`, `stale`.
    pub(crate) freshness: Freshness,
    /// `actix`: an actix-web handler (else axum). A macro cannot see which framework a
    /// handler is written for, and both adapters may be compiled in (features unify across a
    /// workspace), so the handler says so.
    pub(crate) actix: bool,
}

impl Parse for ViewArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ViewArgs::default();
        parse_args(input, Macro::View, |arg, _, input| {
            match arg {
                Arg::Ttl => args.ttl = Some(ttl(&value(input, arg, "ttl = 900")?, "ttl = 900")?),
                Arg::Version => args.version = Some(version(&value(input, arg, "version = 2")?)?),
                Arg::Vary => {
                    let example = "vary = [\"Accept-Language\"]";
                    args.vary =
                        string_list(value(input, arg, example)?, arg, example, header_name)?;
                }
                Arg::Statuses => {
                    args.statuses = statuses(value(input, arg, "statuses = [200, 404]")?)?;
                }
                Arg::Tags => {
                    let example = "tags = [\"users\"]";
                    args.tags = string_list(
                        value(input, arg, example)?,
                        arg,
                        example,
                        template::literal_tag,
                    )?;
                }
                Arg::Cache => {
                    args.cache = Some(cache_fn(value(
                        input,
                        arg,
                        "cache = crate::caches::sessions",
                    )?)?);
                }
                Arg::Lease | Arg::Early | Arg::Stale => args.freshness.read(arg, input)?,
                Arg::Actix => {
                    if input.peek(Token![=]) {
                        return Err(input.error(
                            "`actix` takes no value: write `#[cached_view(actix, ttl = 60)]`",
                        ));
                    }
                    args.actix = true;
                }
                Arg::Key | Arg::Skip | Arg::Codec | Arg::Companions => {
                    unreachable!("not a view argument")
                }
            }
            Ok(())
        })?;
        Ok(args)
    }
}

// ---- value parsers ----

/// Parses `= <expr>` after an argument name.
fn value(input: ParseStream<'_>, arg: Arg, example: &str) -> syn::Result<Expr> {
    let name = arg.name();
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

/// The expression inside any parentheses or invisible groups.
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

/// `["a", "b"]`, each literal passed through `check`. Every element that is not a string
/// literal or fails `check` is an error of its own.
fn string_list<T>(
    value: Expr,
    arg: Arg,
    example: &str,
    check: impl Fn(LitStr) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    let what = match arg {
        Arg::Vary => "header names as string literals",
        _ => "string literals",
    };
    let message = format!(
        "`{}` must be a list of {what}, e.g. `{example}`",
        arg.name()
    );
    let error = syn::Error::new_spanned(&value, &message);
    let Expr::Array(array) = unwrap_owned(value) else {
        return Err(error);
    };
    let mut errors = Errors::default();
    let items = array
        .elems
        .into_iter()
        .filter_map(|element| errors.ok(string_literal(element, &message).and_then(&check)))
        .collect();
    errors.finish(items)
}

/// An integer literal's value, `Err(())` for anything else (negative, float, string,
/// expression, too large, or a non-integer suffix such as `60s`).
fn integer(value: &Expr) -> Result<u64, ()> {
    match unwrap_expr(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int_literal(int),
        _ => Err(()),
    }
}

fn int_literal(int: &LitInt) -> Result<u64, ()> {
    let suffix_ok = matches!(int.suffix(), "" | "u8" | "u16" | "u32" | "u64" | "usize");
    if suffix_ok && !int.base10_digits().starts_with('-') {
        int.base10_parse::<u64>().map_err(|_| ())
    } else {
        Err(())
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

/// `ttl`, in seconds: a positive integer literal. `example` is the macro's (`ttl = 60`).
fn ttl(value: &Expr, example: &str) -> syn::Result<u64> {
    seconds(value, "ttl", example)
}

/// XFetch's β: a positive number literal (`early = 1.0`, `early = 2`).
fn beta(value: &Expr) -> syn::Result<f64> {
    let parsed = match unwrap_expr(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match parsed {
        Some(beta) if beta.is_finite() && beta > 0.0 => Ok(beta),
        _ => Err(syn::Error::new_spanned(
            value,
            "`early` takes XFetch's β, a positive number: `early = 1.0` refreshes a value \
             early with a probability that rises as its expiry nears; larger refreshes sooner",
        )),
    }
}

/// A positive whole number of seconds for argument `name` (`ttl`, `stale`).
fn seconds(value: &Expr, name: &str, example: &str) -> syn::Result<u64> {
    let message = match integer(value) {
        Ok(0) if name == "ttl" => format!(
            "`ttl = 0` would expire every entry at once: use a positive number of seconds, \
             e.g. `{example}`, or remove `ttl` to use the cache's default"
        ),
        Ok(0) => format!(
            "`{name} = 0` is no window at all: use a positive number of seconds, e.g. \
             `{example}`, or remove `{name}`"
        ),
        Ok(seconds) => return Ok(seconds),
        Err(()) if is_negative(value) => format!(
            "`{name}` cannot be negative: use a positive number of seconds, e.g. `{example}`"
        ),
        Err(()) => format!(
            "`{name}` must be a positive whole number of seconds (an integer literal, not a \
             string, a float or an expression), e.g. `{example}`"
        ),
    };
    Err(syn::Error::new_spanned(value, message))
}

fn boolean(value: &Expr, message: &str) -> syn::Result<bool> {
    match unwrap_expr(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(other, message)),
    }
}

fn cache_fn(value: Expr) -> syn::Result<Path> {
    match unwrap_owned(value) {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path),
        other => Err(syn::Error::new_spanned(
            other,
            "`cache` must be the path of a `fn() -> cache_runtime::Cache`, \
             e.g. `cache = crate::caches::sessions`",
        )),
    }
}

/// `skip(db, client)`: parameter names, each once, never `self`.
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

/// `codec = postcard` (a built-in codec's short name) or `codec = path::to::Type`.
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

/// A valid HTTP header name (RFC 9110 `token` characters), as written.
fn header_name(lit: LitStr) -> syn::Result<LitStr> {
    let name = lit.value();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{name}` is not a valid HTTP header name"),
        ));
    }
    Ok(lit)
}

/// `[200, 404]`: HTTP statuses, each an integer literal from 100 to 599.
fn statuses(value: Expr) -> syn::Result<Vec<u16>> {
    let example = "statuses = [200, 404]";
    let error = syn::Error::new_spanned(
        &value,
        format!("`statuses` must be a list of HTTP statuses, e.g. `{example}`"),
    );
    let Expr::Array(array) = unwrap_owned(value) else {
        return Err(error);
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            &array,
            format!(
                "`statuses` must list at least one status (the default is `[200]`); \
                 to cache nothing, remove `#[cached_view]`, e.g. `{example}`"
            ),
        ));
    }
    let mut errors = Errors::default();
    let mut statuses = Vec::new();
    for element in &array.elems {
        match integer(element) {
            Ok(code @ 100..=599) => statuses.push(code as u16),
            _ => errors.tokens(
                element,
                format!("an HTTP status is a number from 100 to 599, e.g. `{example}`"),
            ),
        }
    }
    errors.finish(statuses)
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::parse::Parser as _;

    use super::*;

    fn parse(tokens: TokenStream) -> syn::Result<QueryArgs> {
        QueryArgs::parse.parse2(tokens)
    }

    fn parse_view(tokens: TokenStream) -> syn::Result<ViewArgs> {
        ViewArgs::parse.parse2(tokens)
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

    fn view_error(tokens: TokenStream) -> String {
        let errors = messages(parse_view(tokens).err().expect("expected an error"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }

    const QUERY_ARGS: &str = "valid arguments are `key`, `version`, `ttl`, `tags`, `skip(...)`, \
                              `cache`, `codec`, `companions`, `lease`, `early`, `stale`";
    const VIEW_ARGS: &str = "valid arguments are `ttl`, `version`, `vary`, `statuses`, `tags`, \
                             `cache`, `lease`, `early`, `stale`, `actix`";

    // ---- query arguments, one by one ----

    #[test]
    fn empty_arguments() {
        let args = parse(quote!()).unwrap();
        assert!(args.key.is_none());
        assert_eq!(args.version, 1);
        assert_eq!(args.ttl, None);
        assert!(args.tags.is_empty() && args.skip.is_empty());
        assert!(args.cache.is_none() && args.codec.is_none());
        assert!(args.companions);
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
            companions = false,
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
        assert!(!args.companions);
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

    // ---- query argument errors ----

    #[test]
    fn unknown_argument_lists_the_valid_ones() {
        assert_eq!(
            parse_error(quote!(tll = 60)),
            format!("unknown argument `tll`; {QUERY_ARGS}")
        );
        assert!(parse_error(quote!(r#type = 1)).contains("unknown argument `r#type`"));
        assert_eq!(
            parse_error(quote!(= 1)),
            format!("expected an argument; {QUERY_ARGS}")
        );
    }

    #[test]
    fn view_arguments_on_a_query() {
        let error = parse_error(quote!(vary = ["accept"]));
        assert!(
            error.starts_with("`vary` applies to `#[cached_view]`"),
            "{error}"
        );
        assert!(error.ends_with(QUERY_ARGS), "{error}");
        assert!(
            parse_error(quote!(statuses = [200]))
                .starts_with("`statuses` applies to `#[cached_view]`")
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
            format!(
                "duplicate argument `ttl`: it is already given above; keep only one ({QUERY_ARGS})"
            )
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
        assert!(parse_error(quote!(key = "user:{id")).starts_with("in `key`: unclosed `{`"));
        assert!(
            parse_error(quote!(tags = ["a", "user:{id"])).starts_with("in a tag: unclosed `{`")
        );
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
    fn cache_codec_and_companions_errors() {
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
        assert!(parse_error(quote!(companions = "no")).starts_with("`companions` takes `true`"));
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

    // ---- view arguments ----

    #[test]
    fn view_arguments() {
        let args = parse_view(quote!(
            ttl = 900,
            version = 0,
            vary = ["Accept-Language", "x-tenant"],
            statuses = [200, 404],
            tags = ["users", "pages:home"],
            cache = crate::caches::pages,
        ))
        .unwrap();
        assert_eq!(args.ttl, Some(900));
        assert_eq!(args.version, Some(0));
        let values = |lits: &[LitStr]| lits.iter().map(LitStr::value).collect::<Vec<_>>();
        assert_eq!(values(&args.vary), ["Accept-Language", "x-tenant"]);
        assert_eq!(args.statuses, [200, 404]);
        assert_eq!(values(&args.tags), ["users", "pages:home"]);
        assert!(args.cache.is_some());
        let args = parse_view(quote!()).unwrap();
        assert_eq!((args.ttl, args.version), (None, None));
        assert!(!args.actix);
        assert!(parse_view(quote!(actix, ttl = 5)).unwrap().actix);
        assert!(parse_view(quote!(ttl = 5, actix)).unwrap().actix);
        assert_eq!(
            view_error(quote!(actix = true)),
            "`actix` takes no value: write `#[cached_view(actix, ttl = 60)]`"
        );
        assert!(
            parse_error(quote!(actix)).starts_with("`actix` applies to `#[cached_view]`"),
            "{}",
            parse_error(quote!(actix))
        );
    }

    #[test]
    fn view_argument_errors() {
        assert_eq!(
            view_error(quote!(tll = 5)),
            format!("unknown argument `tll`; {VIEW_ARGS}")
        );
        assert_eq!(
            view_error(quote!(ttl = 5, ttl = 6)),
            format!(
                "duplicate argument `ttl`: it is already given above; keep only one ({VIEW_ARGS})"
            )
        );
        for name in [quote!(key = "x"), quote!(skip(db))] {
            let error = view_error(name);
            assert!(error.contains("applies to `#[cached_query]`"), "{error}");
            assert!(error.contains("a page's key is the request"), "{error}");
            assert!(error.ends_with(VIEW_ARGS), "{error}");
        }
        assert!(view_error(quote!(codec = json)).starts_with("`codec` applies to"));
        assert!(view_error(quote!(companions = false)).starts_with("`companions` applies to"));
        assert!(view_error(quote!("x")).starts_with("expected an argument"));

        assert!(view_error(quote!(ttl = 0)).starts_with("`ttl = 0` would expire every entry"));
        assert!(view_error(quote!(ttl = "9")).ends_with("e.g. `ttl = 900`"));
        assert!(view_error(quote!(version = "2")).starts_with("`version` must be a whole number"));
        assert!(
            view_error(quote!(vary = [1]))
                .starts_with("`vary` must be a list of header names as string literals")
        );
        assert!(
            view_error(quote!(vary = "Accept"))
                .starts_with("`vary` must be a list of header names")
        );
        assert_eq!(
            view_error(quote!(vary = ["Bad Header"])),
            "`Bad Header` is not a valid HTTP header name"
        );
        assert!(view_error(quote!(statuses = [999])).starts_with("an HTTP status is a number"));
        assert!(view_error(quote!(statuses = [])).starts_with("`statuses` must list at least one"));
        assert!(view_error(quote!(statuses = [x])).starts_with("an HTTP status is a number"));
        assert!(view_error(quote!(statuses = 200)).starts_with("`statuses` must be a list"));
        assert!(
            view_error(quote!(tags = ["user:{id}"]))
                .starts_with("view tags cannot interpolate parameters")
        );
        assert!(view_error(quote!(tags = [""])).starts_with("a tag must not be empty"));
        assert!(view_error(quote!(tags = [USERS])).starts_with("`tags` must be a list of string"));
        assert!(view_error(quote!(tags = "users")).starts_with("`tags` must be a list of string"));
        assert!(view_error(quote!(cache = "c")).starts_with("`cache` must be the path"));
        assert!(view_error(quote!(ttl = 60 vary = [])).contains("expected `,`"));
    }

    #[test]
    fn every_view_error_at_once() {
        let errors = messages(
            parse_view(quote!(
                tll = 1,
                ttl = 0,
                vary = [1, "Bad Header", "ok"],
                statuses = [200, 999],
                key = "x",
                ttl = 5
            ))
            .err()
            .unwrap(),
        );
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(errors[0].starts_with("unknown argument `tll`"));
        assert!(errors[1].starts_with("`ttl = 0`"));
        assert!(errors[2].starts_with("`vary` must be a list"));
        assert!(errors[3].starts_with("`Bad Header` is not"));
        assert!(errors[4].starts_with("an HTTP status"));
        assert!(errors[5].starts_with("`key` applies to `#[cached_query]`"));
        assert!(errors[6].starts_with("duplicate argument `ttl`"));
    }
}
