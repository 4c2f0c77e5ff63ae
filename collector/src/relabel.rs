//! Drop, keep and relabel rules, as Prometheus's `relabel_configs` define them, and line
//! filters.
//!
//! A file source's labels (`filename`, its static `labels`, container labels) go through
//! its `relabel` rules once, when the file is opened: `replace` sets `target_label` to
//! `replacement` (with `$1`-style groups) when `regex` matches the `source_labels` values
//! joined by `separator`, an empty result removes the label; `keep` / `drop` stop tailing
//! the file unless / if the regex matches; `labelkeep` / `labeldrop` keep or remove the
//! labels whose names match. Regexes are anchored at both ends, as in Prometheus.
//! `drop_lines` / `keep_lines` are unanchored regexes tried on every line.

use std::collections::BTreeMap;

use regex::{Regex, RegexSet};
use serde::Deserialize;

/// One rule of a `relabel` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelRule {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_regex")]
    pub regex: String,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}

fn default_regex() -> String {
    "(.*)".into()
}

fn default_replacement() -> String {
    "$1".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    LabelKeep,
    LabelDrop,
}

/// Compiled rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Relabel {
    rules: Vec<(RelabelRule, Regex)>,
}

impl Relabel {
    /// Compiles `rules`; `what` names the config section in errors.
    pub(crate) fn compile(rules: &[RelabelRule], what: &str) -> crate::Result<Relabel> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let re = Regex::new(&format!("^(?:{})$", r.regex)).map_err(|e| {
                    crate::error::config(format!("{what} relabel rule #{}: regex: {e}", i + 1))
                })?;
                if r.action == Action::Replace && r.target_label.is_none() {
                    return Err(crate::error::config(format!(
                        "{what} relabel rule #{}: action replace needs target_label",
                        i + 1
                    )));
                }
                Ok((r.clone(), re))
            })
            .collect::<crate::Result<_>>()?;
        Ok(Relabel { rules })
    }

    /// The labels after every rule, or `None` when a `keep` or `drop` rule drops them.
    pub(crate) fn apply(&self, mut labels: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
        for (r, re) in &self.rules {
            let value = || {
                r.source_labels
                    .iter()
                    .map(|l| labels.get(l).map_or("", String::as_str))
                    .collect::<Vec<_>>()
                    .join(&r.separator)
            };
            match r.action {
                Action::Replace => {
                    let v = value();
                    if let Some(caps) = re.captures(&v) {
                        let mut out = String::new();
                        caps.expand(&r.replacement, &mut out);
                        let target = r.target_label.clone().expect("checked at compile");
                        if out.is_empty() {
                            labels.remove(&target);
                        } else {
                            labels.insert(target, out);
                        }
                    }
                }
                Action::Keep if !re.is_match(&value()) => return None,
                Action::Drop if re.is_match(&value()) => return None,
                Action::Keep | Action::Drop => {}
                Action::LabelKeep => labels.retain(|k, _| re.is_match(k)),
                Action::LabelDrop => labels.retain(|k, _| !re.is_match(k)),
            }
        }
        Some(labels)
    }
}

/// `drop_lines` and `keep_lines` of a source.
#[derive(Debug, Clone)]
pub(crate) struct LineFilter {
    drop: RegexSet,
    keep: Option<RegexSet>,
}

impl LineFilter {
    pub(crate) fn compile(drop: &[String], keep: &[String], what: &str) -> crate::Result<LineFilter> {
        let set = |pats: &[String], field: &str| {
            RegexSet::new(pats).map_err(|e| crate::error::config(format!("{what} {field}: {e}")))
        };
        Ok(LineFilter {
            drop: set(drop, "drop_lines")?,
            keep: (!keep.is_empty()).then(|| set(keep, "keep_lines")).transpose()?,
        })
    }

    /// Whether the line is shipped. Lines that are not UTF-8 are matched lossily.
    pub(crate) fn passes(&self, line: &[u8]) -> bool {
        if self.drop.is_empty() && self.keep.is_none() {
            return true;
        }
        let text = String::from_utf8_lossy(line);
        !self.drop.is_match(&text) && self.keep.as_ref().is_none_or(|k| k.is_match(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Relabel {
        #[derive(Deserialize)]
        struct R {
            relabel: Vec<RelabelRule>,
        }
        let r: R = toml::from_str(toml_text).unwrap();
        Relabel::compile(&r.relabel, "test").unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn prometheus_semantics() {
        let r = rules(
            r#"
            [[relabel]]
            source_labels = ["filename"]
            regex = '/var/log/(\w+)/(\w+)\.log'
            target_label = "app"
            replacement = "$1-$2"
            [[relabel]]
            source_labels = ["app"]
            regex = "nginx-.*"
            action = "drop"
            [[relabel]]
            regex = "tmp_.*"
            action = "labeldrop"
            [[relabel]]
            source_labels = ["env"]
            target_label = "env"
            regex = "staging"
            replacement = ""
            "#,
        );
        let out = r
            .apply(labels(&[
                ("filename", "/var/log/shop/api.log"),
                ("tmp_x", "1"),
                ("env", "staging"),
            ]))
            .unwrap();
        assert_eq!(
            out,
            labels(&[("app", "shop-api"), ("filename", "/var/log/shop/api.log")])
        );
        // Anchored: a partial match does not replace.
        let out = r.apply(labels(&[("filename", "/old/var/log/a/b.log")])).unwrap();
        assert!(!out.contains_key("app"), "{out:?}");
        assert_eq!(
            r.apply(labels(&[("filename", "/var/log/nginx/access.log")])),
            None
        );
        let keep = rules("[[relabel]]\nsource_labels = [\"a\", \"b\"]\nregex = \"x;y\"\naction = \"keep\"\n");
        assert!(keep.apply(labels(&[("a", "x"), ("b", "y")])).is_some());
        assert!(keep.apply(labels(&[("a", "x")])).is_none());
    }

    #[test]
    fn bad_rules_are_refused_with_their_place() {
        #[derive(Deserialize)]
        struct R {
            relabel: Vec<RelabelRule>,
        }
        let r: R = toml::from_str("[[relabel]]\nregex = \"(\"\naction = \"drop\"\n").unwrap();
        let e = Relabel::compile(&r.relabel, "[[collector.files]] #2")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("[[collector.files]] #2 relabel rule #1: regex"),
            "{e}"
        );
        let r: R = toml::from_str("[[relabel]]\nsource_labels = [\"a\"]\n").unwrap();
        assert!(
            Relabel::compile(&r.relabel, "x").is_err(),
            "replace without target_label"
        );
    }

    #[test]
    fn line_filters() {
        let f = LineFilter::compile(&["level=debug".into()], &["level=\\w+".into()], "x").unwrap();
        assert!(f.passes(b"level=info hi"));
        assert!(!f.passes(b"level=debug hi"));
        assert!(!f.passes(b"no level here"));
        let none = LineFilter::compile(&[], &[], "x").unwrap();
        assert!(none.passes(b"anything"));
        assert!(LineFilter::compile(&["(".into()], &[], "[[collector.files]] #1")
            .unwrap_err()
            .to_string()
            .contains("drop_lines"));
    }
}
