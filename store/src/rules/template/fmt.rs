//! Go's `fmt` for the values templates handle: `%v` printing and `printf`'s verbs, flags,
//! width and precision, with Go's float forms (`1e+06`, `%.4g`) that Prometheus's
//! `humanize*` functions and alert texts show.

use super::Value;

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)` (`prec` < 0: shortest), as `fmt` prints it.
pub(crate) fn go_g(v: f64, prec: i32) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let shortest = prec < 0;
    let p = if prec == 0 { 1 } else { prec };
    // Significant digits and the decimal exponent, rounded as asked (half to even).
    let sci = if shortest {
        format!("{v:e}")
    } else {
        format!("{:.*e}", (p - 1) as usize, v)
    };
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nd = digits.len() as i32;
    let eprec = if shortest {
        6
    } else if p > nd && nd > exp {
        nd
    } else {
        p
    };
    let sign = if neg { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        return format!(
            "{sign}{first}{frac}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    // Fixed notation with exactly the significant digits kept.
    let decimals = (nd - 1 - exp).max(0) as usize;
    format!("{sign}{:.*}", decimals, v.abs())
}

/// Go's `%e` with `prec` decimals: `1.500000e+00`.
pub(crate) fn go_e(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{v:.prec$e}");
    let (mant, exp) = s.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// `%v` (and `print`) of a value.
pub(crate) fn print(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => go_g(*f, -1),
        Value::Str(s) => s.clone(),
        Value::Labels(m) => {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", pairs.join(" "))
        }
        Value::Map(m) => {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", print(v))).collect();
            format!("map[{}]", pairs.join(" "))
        }
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(print).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Sample(s) => format!(
            "{{{} {}}}",
            print(&Value::Labels(s.labels.clone())),
            go_g(s.value, -1)
        ),
        Value::Time(ms) => go_time(*ms),
    }
}

/// Go's `time.Time.String()` in UTC: `2015-09-03 18:50:01.345 +0000 UTC`.
pub(crate) fn go_time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return format!("{ms}");
    };
    let frac = ms.rem_euclid(1000);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:03}").trim_end_matches('0').to_string()
    };
    format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf(format, args...)`, with its `%!verb(type=value)` marks for mismatches.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(10_000),
                );
                chars.next();
            }
            n
        };
        spec.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let body = match one(verb, &spec, arg) {
            Some(s) => s,
            None => {
                out.push_str(&format!("%!{verb}({}={})", type_name(arg), print(arg)));
                continue;
            }
        };
        out.push_str(&pad(body, &spec, matches!(arg, Value::Int(_) | Value::Float(_))));
    }
    let extra: Vec<String> = args.map(|a| format!("{}={}", type_name(a), print(a))).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// Go's name of a value's type, as `fmt` shows it in error marks.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Labels(_) => "map[string]string",
        Value::Map(_) => "map[string]interface {}",
        Value::List(_) => "template.queryResult",
        Value::Sample(_) => "*template.sample",
        Value::Time(_) => "time.Time",
    }
}

fn signed(s: String, spec: &Spec) -> String {
    if s.starts_with('-') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn one(verb: char, spec: &Spec, arg: &Value) -> Option<String> {
    Some(match (verb, arg) {
        ('v', Value::Float(f)) => signed(go_g(*f, spec.prec.map(|p| p as i32).unwrap_or(-1)), spec),
        ('v', Value::Int(n)) | ('d', Value::Int(n)) => signed(n.to_string(), spec),
        ('v', other) => print(other),
        ('s', Value::Str(s)) => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', Value::Labels(_) | Value::Map(_) | Value::List(_) | Value::Bool(_) | Value::Time(_)) => {
            print(arg)
        }
        ('q', Value::Str(s)) => format!("{s:?}"),
        ('t', Value::Bool(b)) => b.to_string(),
        ('f' | 'F', Value::Float(f)) => signed(fixed(*f, spec.prec.unwrap_or(6)), spec),
        ('e', Value::Float(f)) => signed(go_e(*f, spec.prec.unwrap_or(6)), spec),
        ('E', Value::Float(f)) => signed(go_e(*f, spec.prec.unwrap_or(6)).to_uppercase(), spec),
        ('g', Value::Float(f)) => signed(go_g(*f, spec.prec.map(|p| p as i32).unwrap_or(-1)), spec),
        ('G', Value::Float(f)) => signed(
            go_g(*f, spec.prec.map(|p| p as i32).unwrap_or(-1)).to_uppercase(),
            spec,
        ),
        ('x', Value::Int(n)) => format!("{}{:x}", if spec.sharp { "0x" } else { "" }, n),
        ('X', Value::Int(n)) => format!("{}{:X}", if spec.sharp { "0X" } else { "" }, n),
        ('o', Value::Int(n)) => format!("{n:o}"),
        ('b', Value::Int(n)) => format!("{n:b}"),
        ('c', Value::Int(n)) => char::from_u32(*n as u32).unwrap_or('\u{fffd}').to_string(),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    })
}

fn fixed(f: f64, prec: usize) -> String {
    special(f).unwrap_or_else(|| format!("{f:.prec$}"))
}

fn pad(body: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return body };
    let len = body.chars().count();
    if len >= w {
        return body;
    }
    let fill = w - len;
    if spec.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    if spec.zero && numeric && !body.contains("Inf") && !body.contains("NaN") {
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
            _ => (String::new(), body.clone()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}
