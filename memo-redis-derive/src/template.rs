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

fn is_escaped_never(c: char) -> bool {
    // Characters values keep as is (see memo_redis::key): a separator needs something else.
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses and checks a template; the error text is shown at the literal.
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
    // Two placeholders must be separated by a character that values always escape, otherwise
    // ("a-", "b") and ("a", "-b") would render alike.
    let mut last_was_arg = false;
    for seg in &segments {
        match seg {
            Segment::Arg { root, .. } => {
                if last_was_arg {
                    return Err(format!(
                        "placeholder `{{{root}}}` follows another placeholder without a separator; put a separator such as `:` between them"
                    ));
                }
                last_was_arg = true;
            }
            Segment::Lit(s) => {
                if last_was_arg && s.chars().all(is_escaped_never) {
                    // Only a problem if another placeholder follows; checked on the next Arg.
                    last_was_arg = true;
                    continue;
                }
                last_was_arg = false;
            }
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let s = parse("user:{id}:{self.org}").unwrap();
        assert_eq!(s.len(), 4);
        assert!(parse("{a}{b}").is_err());
        assert!(parse("{a}x{b}").is_err());
        assert!(parse("{a}-{b}").is_ok());
        assert!(parse("{a}:x{b}").is_ok());
        assert!(parse("{a").is_err());
        assert!(parse("a}").is_err());
        assert!(parse("{1a}").is_err());
        assert!(parse("#x").is_err());
    }
}
