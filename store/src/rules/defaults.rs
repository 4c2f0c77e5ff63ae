//! The built-in rule pack (`defaults.yml`), loaded when `[store.rules] defaults = true` and
//! written out by `obs rules defaults --out FILE`.

/// The pack's text, in Prometheus's rule-file format.
pub const PACK: &str = include_str!("defaults.yml");

#[cfg(test)]
mod tests {
    use super::super::file::{parse, Lang};

    #[test]
    fn the_pack_loads_and_every_alert_says_what_to_do() {
        let groups = parse("defaults.yml", super::PACK, Lang::PromQL).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
            )
        });
        let rules: Vec<_> = groups.iter().flat_map(|g| &g.rules).collect();
        assert!(rules.len() >= 15, "{} rules", rules.len());
        for r in rules {
            let get =
                |k: &str, l: &[(String, String)]| l.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert!(
                get("severity", &r.labels).is_some(),
                "{} has a severity",
                r.name()
            );
            assert!(
                get("summary", &r.annotations).is_some(),
                "{} has a summary",
                r.name()
            );
            assert!(
                get("description", &r.annotations).is_some_and(|d| d.len() > 40),
                "{} has a description",
                r.name()
            );
        }
    }
}
