//! The status page as HTML (one light document: inline CSS, no JavaScript, no external
//! assets, readable on a phone and offline on the mesh) and badges as SVG.

use std::fmt::Write;

use super::status::{Service, Status, DAYS};

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 100.0 => "100%".into(),
        Some(v) if v >= 99.0 => format!("{:.2}%", (v * 100.0).floor() / 100.0),
        Some(v) => format!("{v:.1}%"),
    }
}

/// "3 d 4 h", "12 min", "40 s".
fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The colour class of a day's availability.
fn level(v: Option<f64>) -> &'static str {
    match v {
        None => "none",
        Some(v) if v >= 99.9 => "good",
        Some(v) if v >= 99.0 => "fair",
        Some(v) if v >= 95.0 => "poor",
        Some(_) => "bad",
    }
}

fn state_text(state: &str) -> &'static str {
    match state {
        "up" => "Up",
        "down" => "Down",
        "degraded" => "Degraded",
        _ => "No data",
    }
}

const CSS: &str = "
:root{--bg:#fff;--fg:#1f2328;--muted:#59636e;--card:#f6f8fa;--line:#d1d9e0;--good:#1a7f37;--fair:#4ac26b;--poor:#bf8700;--bad:#cf222e;--none:#d1d9e0}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--card:#151b23;--line:#3d444d;--none:#3d444d}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
main{max-width:52rem;margin:0 auto;padding:1rem}h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.1rem;margin:0}
.banner{padding:.8rem 1rem;border-radius:.5rem;color:#fff;font-weight:600;margin:0 0 1rem}
.banner.up{background:var(--good)}.banner.degraded{background:var(--poor)}.banner.down{background:var(--bad)}
.svc{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.8rem 1rem;margin:0 0 .8rem}
.head{display:flex;justify-content:space-between;align-items:center;gap:.5rem}
.pill{font-size:.85rem;font-weight:600;padding:.1rem .6rem;border-radius:1rem;color:#fff;background:var(--none)}
.pill.up{background:var(--good)}.pill.degraded{background:var(--poor)}.pill.down{background:var(--bad)}
.target,.vantage,.note{color:var(--muted);font-size:.9rem;margin:.2rem 0;overflow-wrap:anywhere}
.nums{display:flex;flex-wrap:wrap;gap:.4rem 1.4rem;margin:.5rem 0}.nums div{min-width:5rem}
.nums dt{color:var(--muted);font-size:.8rem}.nums dd{margin:0;font-weight:600}
.bars{display:flex;gap:1px;height:1.8rem;margin-top:.4rem}.bars span{flex:1;border-radius:1px;background:var(--none)}
.bars .good{background:var(--good)}.bars .fair{background:var(--fair)}.bars .poor{background:var(--poor)}.bars .bad{background:var(--bad)}
.axis{display:flex;justify-content:space-between;color:var(--muted);font-size:.75rem}
ul{padding-left:1.2rem}footer{color:var(--muted);font-size:.8rem;margin-top:1.5rem}
";

fn service(out: &mut String, s: &Service, now: i64) {
    let id = esc(&s.name);
    let _ = write!(
        out,
        "<section class=\"svc {state}\" id=\"svc-{id}\" data-state=\"{state}\"><div class=\"head\"><h2>{id}</h2><span class=\"pill {state}\">{text}</span></div>",
        state = s.state.replace(' ', "-"),
        text = state_text(s.state),
    );
    if !s.target.is_empty() {
        let _ = write!(out, "<p class=\"target\">{}</p>", esc(&s.target));
    }
    if s.vantage_points.len() > 1 || s.state == "degraded" {
        let list = |up: bool| {
            s.vantage_points
                .iter()
                .filter(|v| v.up == up)
                .map(|v| esc(&v.host_name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (up, down) = (list(true), list(false));
        let mut parts = Vec::new();
        if !down.is_empty() {
            parts.push(format!("down from {down}"));
        }
        if !up.is_empty() {
            parts.push(format!("up from {up}"));
        }
        let _ = write!(out, "<p class=\"vantage\">{}</p>", parts.join("; "));
    }
    if let Some(m) = &s.message {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(m));
    }
    out.push_str("<dl class=\"nums\">");
    for (label, class, v) in [
        ("24 h", "uptime-24h", s.uptime.day),
        ("7 days", "uptime-7d", s.uptime.week),
        ("30 days", "uptime-30d", s.uptime.month),
    ] {
        let _ = write!(
            out,
            "<div><dt>{label}</dt><dd class=\"{class}\">{}</dd></div>",
            pct(v)
        );
    }
    if let Some(ms) = s.response_time_ms {
        let _ = write!(
            out,
            "<div><dt>Response</dt><dd class=\"response\">{ms:.0} ms</dd></div>"
        );
    }
    if let Some(t) = s.certificate_expires {
        let left = t - now;
        let text = match left >= 0 {
            true => format!("in {}", span(left)),
            false => format!("{} ago", span(-left)),
        };
        let _ = write!(
            out,
            "<div><dt>Certificate expires</dt><dd class=\"cert\">{text}</dd></div>"
        );
    }
    if let Some(t) = s.last_seen {
        let _ = write!(
            out,
            "<div><dt>Last seen</dt><dd class=\"seen\">{} ago</dd></div>",
            span(now - t)
        );
    }
    out.push_str("</dl><div class=\"bars\" role=\"img\" aria-label=\"availability per day over 90 days\">");
    let days = if s.days.is_empty() {
        vec![None; DAYS as usize]
    } else {
        s.days.clone()
    };
    for (i, d) in days.iter().enumerate() {
        let ago = DAYS as usize - 1 - i;
        let when = match ago {
            0 => "last 24 h".to_string(),
            n => format!("{n} days ago"),
        };
        let _ = write!(
            out,
            "<span class=\"{}\" title=\"{when}: {}\"></span>",
            level(*d),
            pct(*d)
        );
    }
    out.push_str("</div><div class=\"axis\"><span>90 days ago</span><span>today</span></div></section>");
}

pub(super) fn html(status: &Status, title: &str) -> String {
    let now = status.generated_at;
    let banner = match status.state {
        "down" => "Some services are down",
        "degraded" => "Some services are degraded",
        _ => "All systems operational",
    };
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title><link rel=\"icon\" href=\"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%23{icon}'/%3E%3C/svg%3E\"><style>{CSS}</style></head><body><main><h1>{t}</h1><p class=\"banner {s}\" id=\"overall\">{banner}</p>",
        t = esc(title),
        s = status.state,
        icon = match status.state {
            "down" => "cf222e",
            "degraded" => "bf8700",
            _ => "1a7f37",
        },
    );
    if status.services.is_empty() {
        out.push_str("<p class=\"note\">Nothing to show yet: add [[collector.probes]] to a collector or push a heartbeat.</p>");
    }
    for s in &status.services {
        service(&mut out, s, now);
    }
    let mut incidents: Vec<(&str, &super::status::Incident)> = status
        .services
        .iter()
        .flat_map(|s| s.incidents.iter().map(move |i| (s.name.as_str(), i)))
        .collect();
    incidents.sort_by_key(|(_, i)| std::cmp::Reverse(i.start));
    out.push_str("<section id=\"incidents\"><h2>Incidents in the last 7 days</h2>");
    if incidents.is_empty() {
        out.push_str("<p class=\"note\">No incidents.</p>");
    } else {
        out.push_str("<ul>");
        for (name, i) in incidents.iter().take(50) {
            let until = match i.end {
                Some(e) => format!("until {}", utc(e)),
                None => "ongoing".into(),
            };
            let _ = write!(
                out,
                "<li><strong>{}</strong> down from {} {until} ({})</li>",
                esc(name),
                utc(i.start),
                span(i.duration_secs)
            );
        }
        out.push_str("</ul>");
    }
    let _ = write!(
        out,
        "</section><footer>Updated {} · obs</footer></main></body></html>",
        utc(now)
    );
    out
}

/// A shields-style badge: the name, then the state and 30-day uptime.
pub(super) fn badge(s: &Service) -> String {
    let right = match s.uptime.month {
        Some(_) => format!("{} {}", s.state, pct(s.uptime.month)),
        None => s.state.to_string(),
    };
    let colour = match s.state {
        "up" => "#1a7f37",
        "degraded" => "#bf8700",
        "down" => "#cf222e",
        _ => "#8c959f",
    };
    let width = |t: &str| 10 + 7 * t.chars().count();
    let (lw, rw) = (width(&s.name), width(&right));
    let (name, right) = (esc(&s.name), esc(&right));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" aria-label=\"{name}: {right}\"><title>{name}: {right}</title>\
<rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{rw}\" height=\"20\" fill=\"{colour}\"/>\
<g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" text-anchor=\"middle\">\
<text x=\"{lx}\" y=\"14\">{name}</text><text x=\"{rx}\" y=\"14\">{right}</text></g></svg>",
        w = lw + rw,
        lx = lw / 2,
        rx = lw + rw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_read_well() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(pct(Some(99.999)), "99.99%");
        assert_eq!(pct(Some(100.0)), "100%");
        assert_eq!(pct(Some(50.04)), "50.0%");
        assert_eq!(pct(None), "–");
        assert_eq!(span(3 * 86_400 + 7200), "3 d 2 h");
        assert_eq!(span(125), "2 min");
        assert_eq!(level(Some(99.95)), "good");
        assert_eq!(level(Some(90.0)), "bad");
    }
}
