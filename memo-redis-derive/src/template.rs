//! `key = "user:{id}"` templates.

/// One piece of a template.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment {
    Lit(String),
    /// `{id}` or `{self.org.id}`: the root name and the field path after it.
    Arg {
        root: String,
        fields: Vec<String>,
    },
}

/// Whether rendered key values can contain `c`: they keep ASCII letters, digits and `-._~`, and
/// escape every other byte as `%XX` (`memo_redis::key::keeps`; the property test in
/// `tests/tests/key_properties.rs` checks this copy against the runtime's escaping).
fn in_rendered_values(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%')
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a key or tag template; the error text is shown at the literal.
pub fn parse(template: &str) -> Result<Vec<Segment>, String> {
    if template.is_empty() {
        return Err("empty key template; write e.g. `key = \"user:{id}\"`".into());
    }
    if template.starts_with('#') {
        return Err(
            "a key template must not start with `#` (reserved for digests of over-long keys)"
                .into(),
        );
    }
    let mut segments = Vec::new();
    let mut lit = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return Err(format!("unclosed `{{` in key template `{template}`"));
                }
                let mut parts = inner.trim().split('.');
                let root = parts.next().unwrap_or_default().to_string();
                let fields: Vec<String> = parts.map(str::to_string).collect();
                if !is_ident(&root)
                    || !fields
                        .iter()
                        .all(|f| is_ident(f) || f.parse::<u32>().is_ok())
                {
                    return Err(format!(
                        "invalid placeholder `{{{inner}}}` in key template; expected an argument name such as `{{id}}` or a field path such as `{{user.id}}`"
                    ));
                }
                if !lit.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut lit)));
                }
                segments.push(Segment::Arg { root, fields });
            }
            '}' => return Err(format!("unmatched `}}` in key template `{template}`")),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        segments.push(Segment::Lit(lit));
    }
    Ok(segments)
}

/// Checks that a key template renders distinct argument tuples as distinct keys.
///
/// Rendered values never contain a character outside [`in_rendered_values`], so when the literal
/// between two placeholders contains one, the first occurrence of it after a value's start marks
/// where that value ends: the rendering parses back into one tuple of (escaped, hence injective)
/// values. Text before the first and after the last placeholder is fixed and needs no such
/// character. Without one, e.g. `{a}%{b}` or `{a}-{b}`, values can shift across the separator:
/// `("x:", "25z")` and `("x", "3A%z")` both render `x%3A%25z`.
pub fn check_key_separators(segments: &[Segment]) -> Result<(), String> {
    let mut prev: Option<&str> = None;
    let mut between: Option<&str> = None;
    for seg in segments {
        match seg {
            Segment::Arg { root, .. } => {
                if let Some(prev) = prev {
                    match between {
                        None => {
                            return Err(format!(
                                "placeholder `{{{root}}}` follows another placeholder without a separator; put a separator such as `:` between them"
                            ))
                        }
                        Some(sep) if sep.chars().all(in_rendered_values) => {
                            return Err(format!(
                                "placeholders `{{{prev}}}` and `{{{root}}}` are separated by `{sep}`, which rendered values can contain (they keep letters, digits, `-`, `.`, `_`, `~` and escape other bytes as `%XX`), so two argument tuples could render the same key; separate them with another character, such as `:` or `/`"
                            ))
                        }
                        Some(_) => {}
                    }
                }
                prev = Some(root);
                between = None;
            }
            Segment::Lit(s) => between = Some(s),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(template: &str) -> Result<Vec<Segment>, String> {
        let segments = parse(template)?;
        check_key_separators(&segments)?;
        Ok(segments)
    }

    #[test]
    fn parses() {
        let s = parse("user:{id}:{self.org}").unwrap();
        assert_eq!(s.len(), 4);
        assert!(key("{a}{b}").is_err());
        assert!(key("{a}x{b}").is_err());
        assert!(key("{a}-{b}").is_err());
        assert!(key("{a}%{b}").is_err());
        assert!(key("{a}%3A{b}").is_err());
        assert!(key("{a}~._{b}").is_err());
        assert!(key("{a}:{b}").is_ok());
        assert!(key("{a}:x{b}").is_ok());
        assert!(key("{a}x/{b}-{c}").is_err());
        assert!(key("{a}é{b}").is_ok());
        assert!(
            key("x-{a}%").is_ok(),
            "fixed text around the values is fine"
        );
        // Tags are verbatim text: no separator rule.
        assert!(parse("{a}{b}").is_ok());
        assert!(parse("{a").is_err());
        assert!(parse("a}").is_err());
        assert!(parse("{1a}").is_err());
        assert!(parse("#x").is_err());
    }
}
