//! The routing tree, Alertmanager's kept small: a root with a receiver and grouping timers,
//! children chosen by label matchers (depth first, the first match unless `continue`),
//! every setting inherited from the parent unless set.

use std::time::Duration;

use serde::Deserialize;

use crate::alert::LabelSet;
use crate::matcher::{all_match, Matcher};

/// `[store.alerting.route]` and its `[[...routes]]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    #[serde(default, with = "opt_duration")]
    pub group_wait: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub group_interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {s:?}: {e} (try \"30s\" or \"4h\")"))
        })
    }
}

/// A route with everything resolved.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// Alertmanager's route key: `{}` for the root, `{}/{severity="critical"}` below it.
    pub key: String,
    pub receiver: String,
    /// Labels that split alerts into groups; `...` groups by all labels.
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub send_resolved: bool,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    children: Vec<Route>,
}

impl Route {
    /// Resolves the tree; the root must name a receiver that exists, as must every route.
    pub(crate) fn new(cfg: &RouteConfig, receivers: &[String]) -> Result<Route, String> {
        let root = Route {
            key: String::new(),
            receiver: String::new(),
            group_by: vec!["alertname".into(), "host_name".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            matchers: Vec::new(),
            continue_matching: false,
            children: Vec::new(),
        };
        if cfg.receiver.is_none() {
            return Err("[store.alerting.route] needs a receiver".into());
        }
        Route::build(cfg, &root, None, receivers)
    }

    fn build(
        cfg: &RouteConfig,
        parent: &Route,
        parent_key: Option<&str>,
        receivers: &[String],
    ) -> Result<Route, String> {
        let receiver = cfg.receiver.clone().unwrap_or_else(|| parent.receiver.clone());
        if !receivers.contains(&receiver) {
            return Err(format!(
                "route sends to receiver {receiver:?}, which is not defined in [[store.alerting.receivers]]"
            ));
        }
        let ms: Vec<String> = cfg.matchers.iter().map(|m| m.to_string()).collect();
        let own = format!("{{{}}}", ms.join(","));
        let key = match parent_key {
            None => own,
            Some(p) => format!("{p}/{own}"),
        };
        let mut route = Route {
            key: key.clone(),
            receiver,
            group_by: cfg.group_by.clone().unwrap_or_else(|| parent.group_by.clone()),
            group_wait: cfg.group_wait.unwrap_or(parent.group_wait),
            group_interval: cfg.group_interval.unwrap_or(parent.group_interval),
            repeat_interval: cfg.repeat_interval.unwrap_or(parent.repeat_interval),
            send_resolved: cfg.send_resolved.unwrap_or(parent.send_resolved),
            matchers: cfg.matchers.clone(),
            continue_matching: cfg.continue_matching,
            children: Vec::new(),
        };
        if route.group_interval.is_zero() || route.repeat_interval.is_zero() {
            return Err("group_interval and repeat_interval must be longer than 0s".into());
        }
        let children = cfg
            .routes
            .iter()
            .map(|c| Route::build(c, &route, Some(&key), receivers))
            .collect::<Result<Vec<_>, _>>()?;
        route.children = children;
        Ok(route)
    }

    /// The routes an alert with `labels` goes to (Alertmanager's `Route.Match`).
    pub(crate) fn matching(&self, labels: &LabelSet) -> Vec<&Route> {
        if !all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for c in &self.children {
            let found = c.matching(labels);
            let matched = !found.is_empty();
            all.extend(found);
            if matched && !c.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The labels of `labels` this route groups by.
    pub(crate) fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        if self.group_by.iter().any(|g| g == "...") {
            return labels.clone();
        }
        labels
            .iter()
            .filter(|(k, _)| self.group_by.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_depth_first_and_inherit() {
        let cfg: RouteConfig = serde_json::from_value(serde_json::json!({
            "receiver": "phone",
            "group_wait": "10s",
            "routes": [
                {"matchers": ["severity=\"critical\""], "receiver": "pager", "continue": true},
                {"matchers": ["team=\"db\""], "receiver": "db", "group_by": ["..."]},
                {"matchers": ["team=~\".+\""], "receiver": "mail"}
            ]
        }))
        .unwrap();
        let names = ["phone", "pager", "db", "mail"].map(String::from);
        let root = Route::new(&cfg, &names).unwrap();
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<LabelSet>()
        };
        let to = |labels: &LabelSet| {
            root.matching(labels)
                .iter()
                .map(|r| r.receiver.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(to(&l(&[("alertname", "x")])), ["phone"]);
        assert_eq!(
            to(&l(&[("severity", "critical"), ("team", "db")])),
            ["pager", "db"]
        );
        assert_eq!(to(&l(&[("team", "web")])), ["mail"]);
        let db = root.matching(&l(&[("team", "db")]))[0];
        assert_eq!(db.key, "{}/{team=\"db\"}");
        assert_eq!(db.group_wait, Duration::from_secs(10));
        assert_eq!(db.group_labels(&l(&[("team", "db"), ("x", "1")])).len(), 2);
        assert_eq!(root.key, "{}");
        assert_eq!(
            root.group_labels(&l(&[("alertname", "A"), ("host_name", "h"), ("x", "1")]))
                .len(),
            2
        );
        let bad: RouteConfig = serde_json::from_value(serde_json::json!({"receiver": "nope"})).unwrap();
        assert!(Route::new(&bad, &names).unwrap_err().contains("not defined"));
    }
}
