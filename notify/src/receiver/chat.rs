//! Messages for people: ntfy, gotify, telegram, discord, slack and the text of an email.
//!
//! Every service gets the same text: a title (`[FIRING:2] HostDown`, `[RESOLVED] HostDown`),
//! one line per alert (its `summary`, or its labels) with its `description` below, and a
//! link. Each service has a size limit; [`fit`] keeps whole alert lines while they fit and
//! counts the rest ("… and 12 more"), so a storm of alerts is one readable message rather
//! than a request the service refuses (and we would retry forever).

use serde_json::{json, Value};

use super::alertmanager::alert_status;
use super::HttpRequest;
use crate::dispatch::Notification;

/// What every message says.
#[derive(Debug)]
pub(crate) struct Text {
    pub title: String,
    /// One entry per alert: its line and, indented, its description.
    pub alerts: Vec<String>,
    pub firing: bool,
    /// The group's common `severity` label ("" when alerts differ or have none).
    pub severity: String,
    /// Where to look (the external URL's alert list), when known.
    pub link: Option<String>,
}

impl Text {
    pub(crate) fn new(n: &Notification, external_url: &str) -> Text {
        let common = n.common_labels();
        let name = common
            .get("alertname")
            .cloned()
            .unwrap_or_else(|| "alerts".into());
        let firing = n.alerts.iter().filter(|a| !a.resolved(n.at)).count();
        let title = if firing > 0 {
            format!("[FIRING:{firing}] {name}")
        } else {
            format!("[RESOLVED] {name}")
        };
        let alerts = n
            .alerts
            .iter()
            .map(|a| {
                let summary = a
                    .annotations
                    .get("summary")
                    .cloned()
                    .unwrap_or_else(|| crate::alert::label_text(&a.labels));
                let mut s = format!("{}: {summary}", alert_status(a, n.at));
                if let Some(d) = a.annotations.get("description") {
                    s.push_str("\n  ");
                    s.push_str(d);
                }
                s
            })
            .collect();
        Text {
            title,
            alerts,
            firing: firing > 0,
            severity: common.get("severity").cloned().unwrap_or_default(),
            link: (!external_url.is_empty())
                .then(|| format!("{}/api/v1/alerts", external_url.trim_end_matches('/'))),
        }
    }

    /// The alert lines in at most `limit` bytes.
    pub(crate) fn body(&self, limit: usize) -> String {
        fit(&self.alerts, limit)
    }
}

/// Joins `lines` with newlines in at most `limit` bytes: whole lines while they fit, then
/// "… and N more"; a first line longer than the limit is cut at a character boundary.
pub(crate) fn fit(lines: &[String], limit: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i - 1;
        let more = if rest > 0 {
            format!("\n… and {rest} more")
        } else {
            String::new()
        };
        let sep = usize::from(!out.is_empty());
        if out.len() + sep + line.len() + more.len() <= limit {
            if sep == 1 {
                out.push('\n');
            }
            out.push_str(line);
            continue;
        }
        let more = format!("… and {} more", lines.len() - i);
        if out.is_empty() {
            // Not even one line fits: cut it, keeping room for the count.
            let room = limit.saturating_sub(more.len() + "…\n".len());
            out.push_str(cut(line, room));
            out.push_str("…\n");
        } else {
            out.push('\n');
        }
        out.push_str(&more);
        break;
    }
    if out.len() > limit {
        // Only when the limit is smaller than "… and N more" itself.
        return cut(&out, limit).to_string();
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// ntfy's message limit (bigger messages become attachments).
const NTFY_LIMIT: usize = 4096;
/// Telegram's `sendMessage` text limit.
const TELEGRAM_LIMIT: usize = 4096;
/// Discord's embed title and description limits.
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
/// Slack truncates a message's text beyond this.
const SLACK_LIMIT: usize = 40_000;
/// Gotify has no documented limit; keep a phone's notification readable.
const GOTIFY_LIMIT: usize = 16 * 1024;

/// ntfy: `POST <topic url>` with the message as the body; title, priority (from
/// `severity`), tags and click link in headers.
pub(crate) fn ntfy(t: &Text, url: &str) -> HttpRequest {
    let priority = match (t.firing, t.severity.as_str()) {
        (false, _) => "low",
        (_, "critical") => "urgent",
        (_, "warning") => "high",
        _ => "default",
    };
    let tags = if t.firing {
        "rotating_light"
    } else {
        "white_check_mark"
    };
    let mut headers = vec![
        ("X-Title".to_string(), t.title.clone()),
        ("X-Priority".to_string(), priority.to_string()),
        ("X-Tags".to_string(), tags.to_string()),
    ];
    if let Some(link) = &t.link {
        headers.push(("X-Click".to_string(), link.clone()));
    }
    HttpRequest {
        url: url.to_string(),
        content_type: "text/plain; charset=utf-8",
        headers,
        body: t.body(NTFY_LIMIT).into_bytes(),
    }
}

/// Gotify: `POST <server>/message` with the application token in `X-Gotify-Key`.
pub(crate) fn gotify(t: &Text, url: &str, token: &str) -> HttpRequest {
    let priority = match (t.firing, t.severity.as_str()) {
        (false, _) => 2,
        (_, "critical") => 8,
        (_, "warning") => 5,
        _ => 4,
    };
    let mut body = json!({
        "title": t.title,
        "message": t.body(GOTIFY_LIMIT),
        "priority": priority,
        "extras": {"client::display": {"contentType": "text/plain"}},
    });
    if let Some(link) = &t.link {
        body["extras"]["client::notification"] = json!({"click": {"url": link}});
    }
    json_request(
        format!("{url}/message"),
        vec![("X-Gotify-Key".to_string(), token.to_string())],
        &body,
    )
}

/// Telegram's Bot API: `POST <api>/bot<token>/sendMessage` with plain text (no parse mode,
/// so no character in an alert can make the API refuse the message).
pub(crate) fn telegram(t: &Text, api: &str, token: &str, chat_id: &str) -> HttpRequest {
    let link = t.link.as_deref().map(|l| format!("\n\n{l}")).unwrap_or_default();
    let head = format!("{}\n\n", t.title);
    let room = TELEGRAM_LIMIT.saturating_sub(head.len() + link.len());
    let text = cut(&format!("{head}{}{link}", t.body(room)), TELEGRAM_LIMIT).to_string();
    // A numeric chat id is sent as a number, a channel's `@name` as a string.
    let chat: Value = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat_id));
    json_request(
        format!("{api}/bot{token}/sendMessage"),
        Vec::new(),
        &json!({"chat_id": chat, "text": text, "disable_web_page_preview": true}),
    )
}

fn color(t: &Text) -> u32 {
    match (t.firing, t.severity.as_str()) {
        (false, _) => 0x2EB67D,
        (_, "critical") => 0xD63232,
        (_, "warning") => 0xE8A33D,
        _ => 0x3B82F6,
    }
}

/// Discord: an execute-webhook call with one embed; mentions in alert text never ping.
pub(crate) fn discord(t: &Text, webhook: &str) -> HttpRequest {
    let mut embed = json!({
        "title": cut(&t.title, DISCORD_TITLE),
        "description": t.body(DISCORD_DESCRIPTION),
        "color": color(t),
    });
    if let Some(link) = &t.link {
        embed["url"] = json!(link);
    }
    json_request(
        webhook.to_string(),
        Vec::new(),
        &json!({"username": "obs", "embeds": [embed], "allowed_mentions": {"parse": []}}),
    )
}

/// Slack: an incoming-webhook message with one coloured attachment.
pub(crate) fn slack(t: &Text, webhook: &str) -> HttpRequest {
    let mut attachment = json!({
        "color": format!("#{:06x}", color(t)),
        "title": t.title,
        "text": t.body(SLACK_LIMIT - t.title.len()),
        "fallback": t.title,
    });
    if let Some(link) = &t.link {
        attachment["title_link"] = json!(link);
    }
    json_request(
        webhook.to_string(),
        Vec::new(),
        &json!({"text": t.title, "attachments": [attachment]}),
    )
}

pub(super) fn json_request(url: String, headers: Vec<(String, String)>, body: &Value) -> HttpRequest {
    HttpRequest {
        url,
        content_type: "application/json",
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// The plain-text body of an email: every alert, its labels, and the link.
pub(crate) fn email_body(t: &Text, n: &Notification) -> String {
    let mut s = String::new();
    for (line, a) in t.alerts.iter().zip(&n.alerts) {
        s.push_str(line);
        s.push_str("\n  ");
        s.push_str(&crate::alert::label_text(&a.labels));
        s.push_str("\n\n");
    }
    if let Some(l) = &t.link {
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::alert::Alert;

    /// `n` alerts of one group; resolved when `resolved`, with long descriptions.
    fn storm(n: usize, severity: &str, resolved: bool) -> Notification {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let alerts = (0..n)
            .map(|i| Alert {
                labels: [
                    ("alertname".to_string(), "DiskFull".to_string()),
                    ("host_name".to_string(), format!("node{i}")),
                    ("severity".to_string(), severity.to_string()),
                ]
                .into(),
                annotations: [
                    ("summary".to_string(), format!("disk full on node{i}")),
                    ("description".to_string(), "x".repeat(300)),
                ]
                .into(),
                starts_at: at - chrono::Duration::minutes(10),
                ends_at: resolved.then_some(at),
                generator_url: String::new(),
            })
            .collect();
        Notification {
            receiver: "r".into(),
            group_key: "{}:{alertname=\"DiskFull\"}".into(),
            group_labels: [("alertname".to_string(), "DiskFull".to_string())].into(),
            alerts,
            at,
        }
    }

    fn json(r: &HttpRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn a_storm_of_alerts_is_one_message_within_each_services_limit() {
        let t = Text::new(&storm(500, "critical", false), "http://store:9700");
        assert_eq!(t.title, "[FIRING:500] DiskFull");
        let r = ntfy(&t, "http://ntfy/topic");
        assert!(r.body.len() <= NTFY_LIMIT);
        assert!(String::from_utf8_lossy(&r.body).contains("more"));
        assert!(r.headers.contains(&("X-Priority".into(), "urgent".into())));
        let text = json(&telegram(&t, "http://tg", "tok", "@ops"))["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.len() <= TELEGRAM_LIMIT && text.ends_with("http://store:9700/api/v1/alerts"));
        assert!(text.contains("… and "), "{text}");
        let d = json(&discord(&t, "http://discord/hook"));
        assert!(d["embeds"][0]["description"].as_str().unwrap().len() <= DISCORD_DESCRIPTION);
        assert_eq!(d["embeds"][0]["color"], 0xD63232);
        assert_eq!(json(&gotify(&t, "http://g", "k"))["priority"], 8);
        let s = json(&slack(&t, "http://slack/hook"));
        assert!(s["attachments"][0]["text"].as_str().unwrap().len() <= SLACK_LIMIT);
        assert_eq!(s["attachments"][0]["color"], "#d63232");
    }

    #[test]
    fn resolved_messages_are_quiet() {
        let t = Text::new(&storm(2, "critical", true), "");
        assert_eq!(t.title, "[RESOLVED] DiskFull");
        let r = ntfy(&t, "http://ntfy/topic");
        assert!(r.headers.contains(&("X-Priority".into(), "low".into())));
        assert!(!r.headers.iter().any(|(k, _)| k == "X-Click"));
        assert_eq!(json(&gotify(&t, "http://g", "k"))["priority"], 2);
        assert_eq!(json(&discord(&t, "http://d"))["embeds"][0]["color"], 0x2EB67D);
    }

    fn lines(n: usize, len: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:0len$}")).collect()
    }

    #[test]
    fn fit_keeps_whole_lines_and_counts_the_rest() {
        assert_eq!(fit(&lines(3, 4), 100), "0000\n0001\n0002");
        let s = fit(&lines(100, 10), 60);
        assert!(s.len() <= 60, "{s}");
        assert!(s.ends_with("… and 96 more"), "{s}");
        assert_eq!(s.lines().count(), 5);
        // One huge line: cut at a character boundary, never past the limit.
        let s = fit(&["é".repeat(5000)], 4096);
        assert!(s.len() <= 4096 && s.ends_with("… and 1 more"), "{}", s.len());
        assert!(fit(&lines(2, 3), 4).len() <= 4);
    }
}
