//! A scenario with several hosts at explicit times: grouping, group_wait / group_interval,
//! inhibition, silences, repeat_interval and resolution.

use chrono::{DateTime, Utc};

use super::*;
use crate::inhibit::{InhibitRule, Inhibitor};
use crate::matcher::parse_list;
use crate::route::RouteConfig;
use crate::silence::{Silence, Silences};

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn alert(name: &str, host: &str, severity: &str, start: i64, end: Option<i64>) -> Alert {
    Alert {
        labels: [("alertname", name), ("host_name", host), ("severity", severity)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), format!("{name} on {host}"))].into(),
        starts_at: t(start),
        ends_at: end.map(t),
        generator_url: String::new(),
    }
}

fn dispatcher() -> Dispatcher {
    let cfg: RouteConfig = serde_json::from_value(serde_json::json!({
        "receiver": "phone", "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
        "routes": [{"matchers": ["severity=\"info\""], "receiver": "mail", "send_resolved": false}]
    }))
    .unwrap();
    let names = ["phone", "mail"].map(String::from);
    Dispatcher::new(Route::new(&cfg, &names).unwrap())
}

fn summaries(n: &Notification) -> Vec<String> {
    n.alerts
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                if a.resolved(n.at) { "resolved" } else { "firing" },
                a.annotations["summary"]
            )
        })
        .collect()
}

#[test]
fn one_incident_is_one_message_and_its_resolution_another() {
    let mut d = dispatcher();
    let (inh, sil) = (Inhibitor::default(), Silences::default());
    // Two disks of one host fire 10 s apart: one group (alertname, host_name), one message
    // after group_wait.
    d.insert(alert("DiskFull", "nas", "critical", 0, None), t(0));
    assert!(d.due(t(10), &inh, &sil).is_empty(), "group_wait holds it");
    let mut second = alert("DiskFull", "nas", "critical", 10, None);
    second.labels.insert("mountpoint".into(), "/srv".into());
    d.insert(second.clone(), t(10));
    let out = d.due(t(30), &inh, &sil);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].receiver, "phone");
    assert_eq!(out[0].group_key, "{}:{alertname=\"DiskFull\", host_name=\"nas\"}");
    assert_eq!(out[0].alerts.len(), 2);
    assert_eq!(out[0].status(), "firing");
    // Re-sent alerts (every rule evaluation) change nothing: no message until repeat_interval.
    for s in (60..4 * 3600).step_by(300) {
        d.insert(alert("DiskFull", "nas", "critical", 0, None), t(s));
        d.insert(second.clone(), t(s));
        assert!(d.due(t(s), &inh, &sil).is_empty(), "nothing new at {s}");
    }
    let out = d.due(t(4 * 3600 + 300 + 30), &inh, &sil);
    assert_eq!(out.len(), 1, "repeat_interval passed");
    // Both resolve: one resolved message at the next group_interval.
    let now = 4 * 3600 + 400;
    d.insert(alert("DiskFull", "nas", "critical", 0, Some(now)), t(now));
    let mut resolved = second.clone();
    resolved.ends_at = Some(t(now));
    d.insert(resolved, t(now));
    let out = d.due(t(now + 300), &inh, &sil);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status(), "resolved");
    assert_eq!(
        summaries(&out[0]),
        ["resolved:DiskFull on nas", "resolved:DiskFull on nas"]
    );
    assert!(d.due(t(now + 900), &inh, &sil).is_empty(), "the group is gone");
}

#[test]
fn a_down_host_inhibits_its_other_alerts_and_silences_mute() {
    let mut d = dispatcher();
    let inh = Inhibitor {
        rules: vec![InhibitRule {
            source_matchers: parse_list("alertname=\"HostDown\"").unwrap(),
            target_matchers: parse_list("severity!=\"critical\"").unwrap(),
            equal: vec!["host_name".into()],
        }],
    };
    let mut sil = Silences::default();
    d.insert(alert("HostDown", "nas", "critical", 0, None), t(0));
    d.insert(alert("Load", "nas", "warning", 0, None), t(0));
    d.insert(alert("Load", "pi", "warning", 0, None), t(0));
    d.insert(alert("Backup", "pi", "info", 0, None), t(0));
    sil.add(Silence {
        id: String::new(),
        matchers: parse_list("alertname=\"Backup\"").unwrap(),
        starts_at: t(0),
        ends_at: t(3600),
        created_by: "me".into(),
        comment: "moving the repo".into(),
        updated_at: t(0),
    })
    .unwrap();
    let mut out = d.due(t(30), &inh, &sil);
    out.sort_by(|a, b| a.group_key.cmp(&b.group_key));
    let got: Vec<(String, Vec<String>)> = out.iter().map(|n| (n.receiver.clone(), summaries(n))).collect();
    assert_eq!(
        got,
        [
            ("phone".to_string(), vec!["firing:HostDown on nas".to_string()]),
            ("phone".to_string(), vec!["firing:Load on pi".to_string()]),
        ],
        "Load on nas is inhibited by HostDown on nas; Backup is silenced"
    );
    // The host comes back: HostDown resolves and the load alert of nas is no longer muted.
    d.insert(alert("HostDown", "nas", "critical", 0, Some(400)), t(400));
    d.insert(alert("Load", "nas", "warning", 0, None), t(400));
    let mut out = d.due(t(400), &inh, &sil);
    out.sort_by(|a, b| a.group_key.cmp(&b.group_key));
    let got: Vec<Vec<String>> = out.iter().map(summaries).collect();
    assert_eq!(
        got,
        [
            vec!["resolved:HostDown on nas".to_string()],
            vec!["firing:Load on nas".to_string()]
        ]
    );
    // After the silence ends the backup alert reaches the mail receiver, which does not
    // get resolved messages.
    let out = d.due(t(3600 + 300), &inh, &sil);
    assert_eq!(
        out.iter().map(|n| n.receiver.as_str()).collect::<Vec<_>>(),
        ["mail"]
    );
    d.insert(alert("Backup", "pi", "info", 0, Some(4000)), t(4000));
    assert!(d
        .due(t(4000 + 300), &inh, &sil)
        .iter()
        .all(|n| n.receiver != "mail"));
}

#[test]
fn an_alert_older_than_group_wait_is_sent_at_once_and_a_restart_does_not_repeat() {
    let mut d = dispatcher();
    let (inh, sil) = (Inhibitor::default(), Silences::default());
    d.insert(alert("Old", "nas", "critical", -3600, None), t(0));
    assert_eq!(d.due(t(0), &inh, &sil).len(), 1);
    // A new dispatcher with the old notification log (a restart) hears the same alert.
    let log = d.log.clone();
    let mut d = dispatcher();
    d.log = log;
    d.insert(alert("Old", "nas", "critical", -3600, None), t(60));
    assert!(d.due(t(60), &inh, &sil).is_empty(), "told before the restart");
}
