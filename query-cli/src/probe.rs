//! `obs probe run NAME`: runs one `[[collector.probes]]` check now, from this machine, and
//! prints what it saw: each phase's time, the status, the certificate, each condition with
//! the value its left side had, and why it failed. For debugging a check before (or after)
//! the collector runs it every interval.

use std::process::ExitCode;

use obs_collector::ProbeOutcome;

use crate::cli::{Output, ProbeRunArgs};

pub(crate) fn run(args: ProbeRunArgs) -> ExitCode {
    match probe(&args) {
        Ok(o) if o.success => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(crate::EXIT_USAGE)
        }
    }
}

fn probe(args: &ProbeRunArgs) -> Result<ProbeOutcome, String> {
    let cfg = crate::config::load(&args.config).map_err(|e| e.to_string())?;
    let probes = &cfg.collector.probes;
    let probe = probes.iter().find(|p| p.name == args.name).ok_or_else(|| {
        let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        match names.is_empty() {
            true => format!("{} has no [[collector.probes]]", args.config.display()),
            false => format!(
                "no probe named {:?} in {} (there are: {})",
                args.name,
                args.config.display(),
                names.join(", ")
            ),
        }
    })?;
    let checked = probe.check()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let o = rt.block_on(obs_collector::probe_once(&checked));
    match args.output {
        Output::Json | Output::Raw => println!("{:#}", json(checked.target(), &o)),
        Output::Human => print!("{}", human(checked.name(), checked.target(), &o)),
    }
    Ok(o)
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn human(name: &str, target: &str, o: &ProbeOutcome) -> String {
    let mut out = format!(
        "probe {name} -> {target}: {} in {}\n",
        if o.success { "UP" } else { "DOWN" },
        ms(o.duration)
    );
    if let Some(ip) = o.ip {
        out += &format!("  address     {ip}\n");
    }
    for (phase, took) in &o.phases {
        out += &format!("  {phase:<11} {}\n", ms(*took));
    }
    if let Some(s) = o.status {
        out += &format!(
            "  status      {s}{}\n",
            if o.redirects > 0 {
                format!(" after {} redirect(s)", o.redirects)
            } else {
                String::new()
            }
        );
    }
    if let Some(t) = o.cert_not_after {
        let when = chrono::DateTime::from_timestamp(t, 0).map_or(t.to_string(), |d| d.to_rfc3339());
        out += &format!("  certificate expires {when}\n");
    }
    if let Some(r) = &o.dns_rcode {
        out += &format!("  rcode       {r}\n");
    }
    for a in &o.dns_answers {
        out += &format!("  answer      {a}\n");
    }
    for c in &o.conditions {
        out += &format!(
            "  [{}] {}   (was {})\n",
            if c.success { "ok" } else { "FAIL" },
            c.condition,
            c.value
        );
    }
    if let Some(f) = &o.failure {
        out += &format!("  failed: {f}\n");
    }
    out
}

fn json(target: &str, o: &ProbeOutcome) -> serde_json::Value {
    serde_json::json!({
        "target": target,
        "success": o.success,
        "failure": o.failure,
        "duration_seconds": o.duration.as_secs_f64(),
        "phases": o.phases.iter().map(|(p, d)| (p.to_string(), serde_json::json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
        "ip": o.ip.map(|ip| ip.to_string()),
        "status": o.status,
        "redirects": o.redirects,
        "tls": o.tls,
        "cert_not_after": o.cert_not_after,
        "dns_rcode": o.dns_rcode,
        "dns_answers": o.dns_answers,
        "conditions": o.conditions.iter().map(|c| serde_json::json!({
            "condition": c.condition, "success": c.success, "value": c.value,
        })).collect::<Vec<_>>(),
    })
}
