//! Label sets: the identity of a time series.
//!
//! A [`Labels`] is a list of `(name, value)` pairs sorted by name, with unique names and no
//! empty values (Prometheus treats an empty value as an absent label). The metric name is
//! the label `__name__`. Ordering is Prometheus's: pairwise by name, then value.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;

pub const METRIC_NAME: &str = "__name__";

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set; drops empty values, sorts by name, keeps the last of duplicates.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Labels(obs_otlp_prom::label_set(pairs))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::new(
            pairs
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// A copy with only the labels whose names are in `names`.
    pub fn keep<S: AsRef<str>>(&self, names: &[S]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| names.iter().any(|k| k.as_ref() == n))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the labels whose names are in `names`.
    pub fn without<S: AsRef<str>>(&self, names: &[S]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| !names.iter().any(|k| k.as_ref() == n))
                .cloned()
                .collect(),
        )
    }

    pub fn without_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }

    /// A compact key for hashing a subset of labels (`name\xffvalue\xff...`).
    pub fn key(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.0 {
            s.push_str(n);
            s.push('\u{ff}');
            s.push_str(v);
            s.push('\u{ff}');
        }
        s
    }

    /// Go's `labels.String()`: `{__name__="up", job="node"}`, the form Prometheus puts in
    /// error messages.
    pub fn go_string(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        format!("{{{}}}", pairs.join(", "))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

/// A label name as Prometheus accepts it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// A metric name as Prometheus accepts it: a label name that may also contain `:`.
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_' || x == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, how Prometheus and Loki write numbers into
/// API answers and labels (`le`, `quantile`, `count_values`): `0.5`, `1`, `+Inf`, `NaN`.
pub use obs_otlp_prom::format_float;

/// Lets maps keyed by `Labels` be searched with the pairs of a canonical label set (sorted,
/// unique names, no empty values) without building a `Labels`: both hash as the pair slice.
impl std::borrow::Borrow<[(String, String)]> for Labels {
    fn borrow(&self) -> &[(String, String)] {
        &self.0
    }
}

/// True when `pairs` is already a canonical label set (what [`Labels::new`] would keep).
pub fn is_canonical(pairs: &[(String, String)]) -> bool {
    pairs.iter().all(|(_, v)| !v.is_empty()) && pairs.windows(2).all(|w| w[0].0 < w[1].0)
}

/// Prometheus's text form: `name{a="b", c="d"}`; `{}` when empty.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        let rest: Vec<_> = self.0.iter().filter(|(n, _)| n != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (n, v)) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sorts_dedups_and_drops_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn canonical_pairs_find_their_labels_in_a_map() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let pairs = l.clone().into_pairs();
        assert!(is_canonical(&pairs));
        let map: std::collections::HashMap<Labels, u32> = [(l, 7)].into();
        assert_eq!(map.get(pairs.as_slice()), Some(&7));
        let unsorted = vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ];
        assert!(!is_canonical(&unsorted));
        assert!(!is_canonical(&[("a".to_string(), String::new())]));
    }

    #[test]
    fn set_remove_keep_without() {
        let mut l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        l.set("instance", "h:9100");
        assert_eq!(l.to_string(), r#"up{instance="h:9100", job="node"}"#);
        l.set("job", "");
        assert_eq!(l.to_string(), r#"up{instance="h:9100"}"#);
        assert_eq!(l.keep(&["instance"]).to_string(), r#"{instance="h:9100"}"#);
        assert_eq!(l.without_name().to_string(), r#"{instance="h:9100"}"#);
        l.remove("instance");
        assert_eq!(l.to_string(), "up");
        assert_eq!(Labels::default().to_string(), "{}");
    }
}

/// One shared `Arc` per distinct label set across the head and every block, so a series is
/// the same pointer wherever it is stored and a query joins its parts by address.
#[derive(Debug, Default)]
pub(crate) struct Interner(Mutex<FxHashSet<Arc<Labels>>>);

impl Interner {
    pub(crate) fn intern(&self, labels: Labels) -> Arc<Labels> {
        let mut set = self.0.lock().expect("interner lock");
        if let Some(a) = set.get(&labels) {
            return a.clone();
        }
        let a = Arc::new(labels);
        set.insert(a.clone());
        a
    }

    /// Forgets label sets nothing else holds any more (series gone from head and blocks).
    pub(crate) fn sweep(&self) {
        self.0
            .lock()
            .expect("interner lock")
            .retain(|a| Arc::strong_count(a) > 1);
    }
}
