//! Key and tag templates, split at compile time: `"user:{id}:posts"` becomes the pieces
//! `["user:", ":posts"]` and the placeholders `["id"]`. The runtime only joins pieces and
//! encoded arguments; it never parses a template.

use proc_macro2::Ident;
use syn::LitStr;

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

/// Which template rules apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TemplateKind {
    /// A cache key: each placeholder must be followed by `:` or the end, so keys stay
    /// injective.
    Key,
    /// A query's tag: placeholders only have to name parameters.
    Tag,
}

impl Template {
    /// Splits `lit`, or says what is wrong with it (spanned at the literal).
    pub(crate) fn parse(lit: LitStr, kind: TemplateKind) -> syn::Result<Template> {
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
        match split(&text, kind) {
            Ok((pieces, placeholders)) => Ok(Template {
                lit,
                pieces,
                placeholders,
            }),
            Err(message) => Err(syn::Error::new(lit.span(), format!("in {what}: {message}"))),
        }
    }
}

/// A view's tag: a literal, with no placeholders (a page follows the tags of the queries it
/// calls; a view tag names the page as a whole).
pub(crate) fn literal_tag(lit: LitStr) -> syn::Result<LitStr> {
    let text = lit.value();
    if text.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "a tag must not be empty: remove it from `tags`",
        ));
    }
    if text.contains(['{', '}']) {
        return Err(syn::Error::new(
            lit.span(),
            "view tags cannot interpolate parameters: use a literal tag such as `\"users\"`; \
             the tags of the `#[cached_query]` functions the page calls (`\"user:{id}\"`) \
             already invalidate it",
        ));
    }
    Ok(lit)
}

/// Splits a template at its placeholders: `"user:{id}:posts"` gives
/// `(["user:", ":posts"], ["id"])`. `{{` and `}}` escapes are not supported: a brace always
/// delimits a placeholder.
pub(crate) fn split(text: &str, kind: TemplateKind) -> Result<(Vec<String>, Vec<String>), String> {
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

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    fn key(text: &str) -> (Vec<String>, Vec<String>) {
        split(text, TemplateKind::Key).unwrap()
    }

    #[test]
    fn splitting() {
        assert_eq!(key("active_users"), (vec!["active_users".into()], vec![]));
        assert_eq!(
            key("user:{id}"),
            (vec!["user:".into(), "".into()], vec!["id".into()])
        );
        assert_eq!(
            key("user:{id}:posts"),
            (vec!["user:".into(), ":posts".into()], vec!["id".into()])
        );
        assert_eq!(key("{id}"), (vec!["".into(), "".into()], vec!["id".into()]));
        assert_eq!(
            key("{a}:{b}:{a}"),
            (
                vec!["".into(), ":".into(), ":".into(), "".into()],
                vec!["a".into(), "b".into(), "a".into()]
            )
        );
        assert_eq!(
            key("user{id}"),
            (vec!["user".into(), "".into()], vec!["id".into()])
        );
        assert_eq!(
            key("été:{_x1}"),
            (vec!["été:".into(), "".into()], vec!["_x1".into()])
        );
    }

    #[test]
    fn errors() {
        let err = |text: &str| split(text, TemplateKind::Key).unwrap_err();
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
        let (pieces, names) = split("{a}-{b}", TemplateKind::Tag).unwrap();
        assert_eq!(
            (pieces, names),
            (
                vec!["".into(), "-".into(), "".into()],
                vec!["a".into(), "b".into()]
            )
        );
        assert!(
            split("{a", TemplateKind::Tag)
                .unwrap_err()
                .starts_with("unclosed")
        );
    }

    #[test]
    fn errors_name_the_argument() {
        let lit = |text: &str| LitStr::new(text, Span::call_site());
        let message = |result: syn::Result<Template>| result.err().unwrap().to_string();
        assert!(
            message(Template::parse(lit("user:{id"), TemplateKind::Key))
                .starts_with("in `key`: unclosed `{`")
        );
        assert!(
            message(Template::parse(lit("user:{id"), TemplateKind::Tag))
                .starts_with("in a tag: unclosed `{`")
        );
        assert!(
            message(Template::parse(lit(""), TemplateKind::Key))
                .starts_with("`key` must not be empty")
        );
    }

    #[test]
    fn literal_tags() {
        let lit = |text: &str| LitStr::new(text, Span::call_site());
        assert_eq!(literal_tag(lit("users")).unwrap().value(), "users");
        for bad in ["user:{id}", "a}", "{"] {
            assert!(
                literal_tag(lit(bad))
                    .err()
                    .unwrap()
                    .to_string()
                    .starts_with("view tags cannot interpolate parameters"),
                "{bad}"
            );
        }
        assert!(
            literal_tag(lit(""))
                .err()
                .unwrap()
                .to_string()
                .starts_with("a tag must not be empty")
        );
    }
}
