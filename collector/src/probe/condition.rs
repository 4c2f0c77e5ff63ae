//! Conditions in Gatus's syntax: `[STATUS] == 200`, `[RESPONSE_TIME] < 300`,
//! `[BODY] == pat(*healthy*)`, `[BODY].status == UP`, `len([BODY].items) > 0`,
//! `has([BODY].error) == false`, `[CERTIFICATE_EXPIRATION] > 336h`, `[CONNECTED] == true`,
//! `[DNS_RCODE] == NOERROR`, `[IP] == 10.0.0.1`, `[STATUS] == any(200, 204)`.
//!
//! A condition is `LEFT OP RIGHT` with OP one of `==`, `!=`, `<=`, `>=`, `<`, `>`. Numbers
//! compare as numbers (`[RESPONSE_TIME]` in milliseconds; `[CERTIFICATE_EXPIRATION]` in
//! milliseconds, or against a duration such as `336h`), everything else as text. No crate
//! parses Gatus's conditions, and the grammar is this small, so it is written here.

use serde_json::Value;

/// What a probe observed, for conditions to look at.
#[derive(Debug, Default)]
pub(crate) struct Observed<'a> {
    pub status: Option<u16>,
    pub response_time_ms: f64,
    pub body: Option<&'a [u8]>,
    pub connected: bool,
    pub cert_expiration_ms: Option<f64>,
    pub dns_rcode: Option<&'a str>,
    pub ip: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

/// A parsed condition.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    pub text: String,
    left: String,
    op: Op,
    right: String,
}

/// Placeholders a condition may name.
const PLACEHOLDERS: &[&str] = &[
    "[STATUS]",
    "[RESPONSE_TIME]",
    "[BODY]",
    "[CONNECTED]",
    "[CERTIFICATE_EXPIRATION]",
    "[DNS_RCODE]",
    "[IP]",
];

impl Condition {
    pub(crate) fn parse(text: &str) -> Result<Condition, String> {
        const OPS: [(&str, Op); 6] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, sym, op) = OPS
            .iter()
            .filter_map(|(sym, op)| text.find(sym).map(|at| (at, *sym, *op)))
            .min_by_key(|(at, sym, _)| (*at, std::cmp::Reverse(sym.len())))
            .ok_or_else(|| format!("condition {text:?} has no operator (==, !=, <, <=, >, >=)"))?;
        let left = text[..at].trim().to_string();
        let right = text[at + sym.len()..].trim().to_string();
        let inner = unwrap_fn(&left, "len")
            .or_else(|| unwrap_fn(&left, "has"))
            .unwrap_or(&left);
        if !PLACEHOLDERS.iter().any(|p| inner.starts_with(p)) {
            return Err(format!(
                "condition {text:?}: the left side must be a placeholder ({})",
                PLACEHOLDERS.join(", ")
            ));
        }
        if right.is_empty() {
            return Err(format!("condition {text:?} has nothing right of the operator"));
        }
        Ok(Condition {
            text: text.trim().to_string(),
            left,
            op,
            right,
        })
    }

    /// Whether the condition holds, and the value its left side had.
    pub(crate) fn eval(&self, o: &Observed<'_>) -> (bool, String) {
        let left = resolve(&self.left, o);
        let ok = match &left {
            None => false,
            Some(l) => compare(
                l,
                self.op,
                &self.right,
                self.left.contains("CERTIFICATE_EXPIRATION"),
            ),
        };
        (ok, left.unwrap_or_else(|| "(none)".into()))
    }

    /// Whether this condition looks at `placeholder`.
    pub(crate) fn uses(&self, placeholder: &str) -> bool {
        self.left.contains(placeholder)
    }
}

fn unwrap_fn<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

/// The value of a left side, as text.
fn resolve(left: &str, o: &Observed<'_>) -> Option<String> {
    if let Some(inner) = unwrap_fn(left, "len") {
        return match inner.strip_prefix("[BODY]")? {
            "" => Some(o.body?.len().to_string()),
            path => match json_path(o.body?, path)? {
                Value::Array(a) => Some(a.len().to_string()),
                Value::Object(m) => Some(m.len().to_string()),
                Value::String(s) => Some(s.chars().count().to_string()),
                v => Some(v.to_string().len().to_string()),
            },
        };
    }
    if let Some(inner) = unwrap_fn(left, "has") {
        let path = inner.strip_prefix("[BODY]")?;
        return Some(o.body.and_then(|b| json_path(b, path)).is_some().to_string());
    }
    let (ph, rest) = left.split_at(left.find(']')? + 1);
    match ph {
        "[STATUS]" => o.status.map(|s| s.to_string()),
        "[RESPONSE_TIME]" => Some(format!("{}", o.response_time_ms.round())),
        "[CONNECTED]" => Some(o.connected.to_string()),
        "[CERTIFICATE_EXPIRATION]" => o.cert_expiration_ms.map(|ms| format!("{}", ms.round())),
        "[DNS_RCODE]" => o.dns_rcode.map(str::to_string),
        "[IP]" => o.ip.clone(),
        "[BODY]" if rest.is_empty() => o.body.map(|b| String::from_utf8_lossy(b).trim().to_string()),
        "[BODY]" => match json_path(o.body?, rest)? {
            Value::String(s) => Some(s),
            v => Some(v.to_string()),
        },
        _ => None,
    }
}

/// `.a.b[0].c` into a JSON body.
fn json_path(body: &[u8], path: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            v = v.get(key)?.clone();
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx.strip_suffix(']')?.parse().ok()?;
            v = v.get(i)?.clone();
        }
    }
    Some(v)
}

/// A number, or (for certificate expiry) a duration such as `336h`, in milliseconds.
fn number(s: &str, duration: bool) -> Option<f64> {
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    duration
        .then(|| humantime::parse_duration(s).ok())
        .flatten()
        .map(|d| d.as_millis() as f64)
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

fn compare(left: &str, op: Op, right: &str, duration: bool) -> bool {
    if let Some(choices) = unwrap_fn(right, "any") {
        let hit = choices
            .split(',')
            .any(|c| compare(left, Op::Eq, c.trim(), duration));
        return match op {
            Op::Eq => hit,
            Op::Ne => !hit,
            _ => false,
        };
    }
    if let Some(p) = unwrap_fn(right, "pat") {
        let hit = glob(p, left);
        return match op {
            Op::Eq => hit,
            Op::Ne => !hit,
            _ => false,
        };
    }
    if let (Some(l), Some(r)) = (number(left, duration), number(right, duration)) {
        return match op {
            Op::Eq => l == r,
            Op::Ne => l != r,
            Op::Le => l <= r,
            Op::Ge => l >= r,
            Op::Lt => l < r,
            Op::Gt => l > r,
        };
    }
    match op {
        Op::Eq => left == right,
        Op::Ne => left != right,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cond: &str, o: &Observed<'_>) -> bool {
        Condition::parse(cond).unwrap().eval(o).0
    }

    #[test]
    fn gatus_conditions() {
        let body = br#"{"status":"UP","items":[1,2,3],"db":{"ok":true}}"#;
        let o = Observed {
            status: Some(200),
            response_time_ms: 120.4,
            body: Some(body),
            connected: true,
            cert_expiration_ms: Some(3.0 * 86_400_000.0),
            dns_rcode: Some("NOERROR"),
            ip: Some("10.0.0.1".into()),
        };
        for (c, want) in [
            ("[STATUS] == 200", true),
            ("[STATUS] != 200", false),
            ("[STATUS] == any(200, 204)", true),
            ("[STATUS] < 300", true),
            ("[RESPONSE_TIME] < 300", true),
            ("[RESPONSE_TIME] > 300", false),
            ("[BODY] == pat(*\"UP\"*)", true),
            ("[BODY] == pat(*healthy*)", false),
            ("[BODY].status == UP", true),
            ("[BODY].db.ok == true", true),
            ("[BODY].items[1] == 2", true),
            ("len([BODY].items) == 3", true),
            ("has([BODY].error) == false", true),
            ("[CERTIFICATE_EXPIRATION] > 48h", true),
            ("[CERTIFICATE_EXPIRATION] > 336h", false),
            ("[CONNECTED] == true", true),
            ("[DNS_RCODE] == NOERROR", true),
            ("[IP] == 10.0.0.1", true),
        ] {
            assert_eq!(check(c, &o), want, "{c}");
        }
        // A value the probe did not observe fails the condition.
        assert!(!check("[STATUS] == 200", &Observed::default()));
        let (_, seen) = Condition::parse("[STATUS] == 200").unwrap().eval(&o);
        assert_eq!(seen, "200");
    }

    #[test]
    fn bad_conditions_say_why() {
        assert!(Condition::parse("[STATUS] 200")
            .unwrap_err()
            .contains("no operator"));
        assert!(Condition::parse("STATUS == 200")
            .unwrap_err()
            .contains("placeholder"));
        assert!(Condition::parse("[STATUS] ==")
            .unwrap_err()
            .contains("nothing right"));
    }

    #[test]
    fn globs() {
        assert!(glob("*healthy*", "all healthy here"));
        assert!(glob("ok", "ok") && !glob("ok", "okay"));
        assert!(glob("a*c", "abc") && !glob("a*c", "ab"));
        assert!(glob("*", ""));
    }
}
