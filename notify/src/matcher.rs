//! Alertmanager's label matchers: `name="value"`, `!=`, `=~` and `!~` (regexes anchored at
//! both ends), alone (`matchers = ['severity="critical"']`) or as a list
//! (`{alertname="DiskFull", host_name="nas"}`, braces optional), values quoted or not.

use serde::{Deserialize, Serialize};

use crate::alert::LabelSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    #[serde(skip)]
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&o.name, o.op, &o.value)
    }
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let re = match op {
            Op::Regex | Op::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex in matcher {name}{}{value:?}: {e}", op.text()))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether `labels` satisfy the matcher (a missing label is the empty string).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            Op::Equal => v == self.value,
            Op::NotEqual => v != self.value,
            Op::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Parses one matcher.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let list = parse_list(text)?;
        match <[Matcher; 1]>::try_from(list) {
            Ok([m]) => Ok(m),
            Err(_) => Err(format!("{text:?} is not one matcher")),
        }
    }
}

impl Op {
    pub fn text(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.text(), self.value)
    }
}

impl TryFrom<String> for Matcher {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Matcher::parse(&s)
    }
}

impl From<Matcher> for String {
    fn from(m: Matcher) -> String {
        m.to_string()
    }
}

/// True when every matcher matches.
pub(crate) fn all_match(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parses `a="1", b!~"x.*"` (braces optional; values quoted with Go escapes, or bare).
pub fn parse_list(text: &str) -> Result<Vec<Matcher>, String> {
    let bad = |why: &str| {
        format!("invalid matchers {text:?}: {why} (write e.g. 'alertname=\"DiskFull\",host_name=\"nas\"')")
    };
    let mut s = text.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner.strip_suffix('}').ok_or_else(|| bad("missing }"))?.trim();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i == chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() {
            return Err(bad("expected a label name"));
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let op = if rest.starts_with("=~") {
            Op::Regex
        } else if rest.starts_with("!~") {
            Op::NotRegex
        } else if rest.starts_with("!=") {
            Op::NotEqual
        } else if rest.starts_with('=') {
            Op::Equal
        } else {
            return Err(bad(&format!("expected =, !=, =~ or !~ after {name}")));
        };
        i += op.text().len();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let value = if chars.get(i) == Some(&'"') {
            i += 1;
            let mut v = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted value")),
                    Some('"') => break,
                    Some('\\') => {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some(c) => v.push(*c),
                            None => return Err(bad("unterminated quoted value")),
                        }
                    }
                    Some(c) => v.push(*c),
                }
                i += 1;
            }
            i += 1;
            v
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            chars[start..i].iter().collect::<String>().trim().to_string()
        };
        out.push(Matcher::new(&name, op, &value)?);
    }
    if out.is_empty() {
        return Err(bad("no matchers"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_parse_and_match() {
        let l = labels(&[
            ("alertname", "DiskFull"),
            ("host_name", "nas"),
            ("severity", "critical"),
        ]);
        let m = parse_list(r#"alertname="DiskFull",host_name="nas""#).unwrap();
        assert!(all_match(&m, &l));
        assert!(all_match(
            &parse_list(r#"{severity=~"crit.*", team!="db"}"#).unwrap(),
            &l
        ));
        assert!(!all_match(&parse_list("severity!~crit.*").unwrap(), &l));
        assert!(Matcher::parse(r#"severity="critical""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"missing="""#).unwrap().matches(&l));
        assert_eq!(
            Matcher::parse("a=~\"x\\\"y\"").unwrap().to_string(),
            "a=~\"x\\\"y\""
        );
        for bad in ["", "=x", "a", "a=\"x", "a=~\"(\"", "{a=\"b\""] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
        assert!(Matcher::parse("a=\"1\",b=\"2\"").is_err());
    }
}
