//! Splits a template into text and actions (`{{ ... }}`, with `{{-`/`-}}` trimming and
//! `{{/* comments */}}`) and an action into tokens.

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Piece {
    Text(String),
    /// The tokens of one action.
    Action(Vec<Tok>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A function name or keyword (`if`, `range`, `end`, `true`, `nil`, ...).
    Ident(String),
    /// `.A.B` (empty for `.` itself).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone has an empty name).
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Pipe,
    Open,
    /// `)` and the fields read from the parenthesised value: `(x).A`.
    Close(Vec<String>),
    Declare,
    Assign,
    Comma,
}

pub(super) fn pieces(src: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut out, rest, trim_next, false);
            break;
        };
        let trim_left = rest[open + 2..].starts_with("- ")
            || rest[open + 2..].starts_with("-\t")
            || rest[open + 2..].starts_with("-\n");
        push_text(&mut out, &rest[..open], trim_next, trim_left);
        let body_start = open + 2 + if trim_left { 2 } else { 0 };
        let after = &rest[body_start..];
        let (close, trim_right) = find_close(after)?;
        let body = &after[..close];
        trim_next = trim_right;
        rest = &after[close + if trim_right { 4 } else { 2 }..];
        let t = body.trim();
        if t.starts_with("/*") {
            if !t.ends_with("*/") {
                return Err("unclosed comment".into());
            }
            continue;
        }
        out.push(Piece::Action(tokens(body)?));
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Piece>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start();
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        out.push(Piece::Text(t.to_string()));
    }
}

/// Where the action that starts `s` ends (`}}`, outside strings) and whether it is ` -}}`.
fn find_close(s: &str) -> Result<(usize, bool), String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(b'"'), b'\\') => i += 1,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'`' | b'\'')) => quote = Some(c),
            (None, b'}') if b.get(i + 1) == Some(&b'}') => return Ok((i, false)),
            (None, c) if c.is_ascii_whitespace() && s[i + 1..].starts_with("-}}") => return Ok((i, true)),
            _ => {}
        }
        i += 1;
    }
    Err("unclosed action".into())
}

fn tokens(body: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let fields = |i: &mut usize| -> Vec<String> {
        let mut f = Vec::new();
        while *i < chars.len()
            && chars[*i] == '.'
            && chars
                .get(*i + 1)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            *i += 1;
            f.push(ident(i));
        }
        f
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                out.push(Tok::Close(fields(&mut i)));
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let f = fields(&mut i);
                if f.is_empty() {
                    i += 1;
                }
                out.push(Tok::Field(f));
            }
            '$' => {
                i += 1;
                let name = ident(&mut i);
                out.push(Tok::Var(name, fields(&mut i)));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated quoted string".into());
                }
                i += 1;
                let lit: String = chars[start..i].iter().collect();
                out.push(Tok::Str(unquote(&lit)?));
            }
            '`' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated raw quoted string".into());
                }
                out.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            '\'' => {
                let end = (i + 1..chars.len()).find(|&j| chars[j] == '\'' && chars[j - 1] != '\\');
                let Some(end) = end else {
                    return Err("unterminated character constant".into());
                };
                let lit: String = chars[i + 1..end].iter().collect();
                let ch = unquote(&format!("\"{lit}\""))?;
                out.push(Tok::Int(ch.chars().next().map(|c| c as i64).unwrap_or(0)));
                i = end + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || chars[i] == '_'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E' | 'p' | 'P')))
                {
                    i += 1;
                }
                let lit: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                out.push(number(&lit)?);
            }
            c if c.is_alphabetic() || c == '_' => out.push(Tok::Ident(ident(&mut i))),
            c => return Err(format!("unexpected {c:?} in command")),
        }
    }
    Ok(out)
}

fn number(lit: &str) -> Result<Tok, String> {
    let (neg, digits) = match lit.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, lit.strip_prefix('+').unwrap_or(lit)),
    };
    let int = if let Some(h) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()
    } else {
        digits.parse::<i64>().ok()
    };
    if let Some(n) = int {
        return Ok(Tok::Int(if neg { -n } else { n }));
    }
    match lit.parse::<f64>() {
        Ok(f) => Ok(Tok::Float(f)),
        Err(_) => Err(format!("bad number syntax: {lit:?}")),
    }
}

/// A Go interpreted string literal (with its quotes) to its value.
fn unquote(lit: &str) -> Result<String, String> {
    let inner = &lit[1..lit.len() - 1];
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or("bad escape at end of string")?;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' | '"' | '\'' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = it.by_ref().take(n).collect();
                let v = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\{e}{hex}"))?;
                out.push(char::from_u32(v).ok_or(format!("bad escape \\{e}{hex}"))?);
            }
            d if d.is_digit(8) => {
                let rest: String = it.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{d}{rest}"), 8)
                    .map_err(|_| "bad octal escape".to_string())?;
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            other => return Err(format!("unknown escape sequence \\{other}")),
        }
    }
    Ok(out)
}
