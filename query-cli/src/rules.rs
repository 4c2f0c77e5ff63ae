//! `obs rules check|test|defaults` (rule files, read by `obs-store`'s rule engine without a
//! store) and `obs alerts` (the firing and pending alerts of a running store).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::{AlertsArgs, AlertsCommand, Output, RulesCommand};
use crate::client::StoreClient;
use crate::EXIT_USAGE;

pub(crate) fn run(cmd: RulesCommand) -> ExitCode {
    match cmd {
        RulesCommand::Check { files, loki } => {
            let lang = if loki {
                obs_store::rules::Lang::LogQL
            } else {
                obs_store::rules::Lang::PromQL
            };
            let errors = obs_store::rules::check_files(&files, lang);
            for e in &errors {
                eprintln!("{e}");
            }
            if !errors.is_empty() {
                return ExitCode::from(EXIT_USAGE);
            }
            for f in &files {
                println!("{}: ok", f.display());
            }
            ExitCode::SUCCESS
        }
        RulesCommand::Test { files } => {
            let mut failed = false;
            for f in &files {
                let report = obs_store::rules::run_test_file(f);
                failed |= !report.passed();
                write_out(&format!("{}\n", report.render()));
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        RulesCommand::Defaults { out } => match out {
            None => {
                write_out(obs_store::rules::DEFAULT_RULES);
                ExitCode::SUCCESS
            }
            Some(path) => match std::fs::write(&path, obs_store::rules::DEFAULT_RULES) {
                Ok(()) => {
                    println!(
                        "wrote the built-in rules to {}; to use your copy, set `defaults = false` and add it to `files` in [store.rules]",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            },
        },
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
fn write_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// One alert as the store's `/api/v1/alerts` lists it.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub(crate) struct Alert {
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) annotations: std::collections::BTreeMap<String, String>,
    pub(crate) state: String,
    #[serde(rename = "activeAt")]
    pub(crate) active_at: String,
    pub(crate) value: String,
}

/// The pending and firing alerts of PromQL and LogQL rules, firing first.
pub(crate) fn fetch(client: &StoreClient) -> anyhow::Result<Vec<Alert>> {
    let mut all = Vec::new();
    for path in ["/api/v1/alerts", "/prometheus/api/v1/alerts"] {
        let (status, body) = client.get(path, &[])?;
        if status != 200 {
            bail!("{path} answered {status}: {}", body.trim());
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("{path} did not answer JSON"))?;
        let alerts: Vec<Alert> = serde_json::from_value(v["data"]["alerts"].clone())
            .with_context(|| format!("{path} did not answer like Prometheus's alerts API"))?;
        all.extend(alerts);
    }
    all.sort_by(|a, b| (b.state == "firing", &a.active_at).cmp(&(a.state == "firing", &b.active_at)));
    Ok(all)
}

pub(crate) fn alerts(args: AlertsArgs) -> anyhow::Result<()> {
    if let Some(AlertsCommand::Test { receiver, config }) = &args.command {
        return test_receiver(receiver, config);
    }
    let client = StoreClient::new(&args.client, Duration::from_secs(30))?;
    if let Some(cmd) = args.command {
        return silences(&client, cmd, args.client.output);
    }
    let alerts = fetch(&client)?;
    match args.client.output {
        Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&alerts)?),
        Output::Human => print!("{}", table(&alerts)),
    }
    Ok(())
}

/// The human table: state, name, severity, since, the other labels and the summary.
pub(crate) fn table(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alerts are pending or firing\n".into();
    }
    let mut out = format!(
        "{:<8} {:<28} {:<9} {:<21} {:<32} {}\n",
        "STATE", "ALERT", "SEVERITY", "SINCE", "LABELS", "SUMMARY"
    );
    for a in alerts {
        let get = |k: &str| a.labels.get(k).map(String::as_str).unwrap_or("-");
        let rest: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let since = a.active_at.get(..19).unwrap_or(&a.active_at).replace('T', " ");
        out.push_str(&format!(
            "{:<8} {:<28} {:<9} {:<21} {:<32} {}\n",
            a.state,
            get("alertname"),
            get("severity"),
            since,
            rest.join(","),
            a.annotations.get("summary").map(String::as_str).unwrap_or("")
        ));
    }
    out
}

/// `obs alerts silence|silences|unsilence`, through the store's Alertmanager v2 silence API.
fn silences(client: &StoreClient, cmd: AlertsCommand, output: Output) -> anyhow::Result<()> {
    let check = |(status, body): (u16, String)| -> anyhow::Result<String> {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status != 200 {
            bail!(
                "the store answered {status}: {}",
                v["error"].as_str().unwrap_or(body.trim())
            );
        }
        Ok(body)
    };
    match cmd {
        AlertsCommand::Silence {
            matchers,
            duration,
            comment,
            author,
        } => {
            let list = obs_notify::parse_matchers(&matchers).map_err(|e| anyhow::anyhow!(e))?;
            let now = chrono::Utc::now();
            let ends = now + chrono::Duration::from_std(duration)?;
            let body = serde_json::json!({
                "matchers": list.iter().map(|m| serde_json::json!({
                    "name": m.name, "value": m.value,
                    "isRegex": matches!(m.op, obs_notify::Op::Regex | obs_notify::Op::NotRegex),
                    "isEqual": matches!(m.op, obs_notify::Op::Equal | obs_notify::Op::Regex),
                })).collect::<Vec<_>>(),
                "startsAt": now.to_rfc3339(),
                "endsAt": ends.to_rfc3339(),
                "createdBy": author.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "obs".into()),
                "comment": comment,
            });
            let answer = check(client.send_json("POST", "/api/v2/silences", Some(&body))?)?;
            let v: serde_json::Value = serde_json::from_str(&answer)?;
            println!("{}", v["silenceID"].as_str().unwrap_or_default());
        }
        AlertsCommand::Silences => {
            let body = check(client.get("/api/v2/silences", &[])?)?;
            let list: Vec<serde_json::Value> = serde_json::from_str(&body)?;
            match output {
                Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&list)?),
                Output::Human => {
                    println!(
                        "{:<36} {:<8} {:<20} {:<40} COMMENT",
                        "ID", "STATE", "ENDS", "MATCHERS"
                    );
                    for s in &list {
                        let ms: Vec<String> = s["matchers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| {
                                let op = match (m["isRegex"].as_bool(), m["isEqual"].as_bool()) {
                                    (Some(true), Some(false)) => "!~",
                                    (Some(true), _) => "=~",
                                    (_, Some(false)) => "!=",
                                    _ => "=",
                                };
                                format!(
                                    "{}{op}{:?}",
                                    m["name"].as_str().unwrap_or(""),
                                    m["value"].as_str().unwrap_or("")
                                )
                            })
                            .collect();
                        let ends = s["endsAt"].as_str().unwrap_or("");
                        println!(
                            "{:<36} {:<8} {:<20} {:<40} {}",
                            s["id"].as_str().unwrap_or(""),
                            s["status"]["state"].as_str().unwrap_or(""),
                            ends.get(..19).unwrap_or(ends).replace('T', " "),
                            ms.join(","),
                            s["comment"].as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
        AlertsCommand::Test { .. } => unreachable!("handled without a store"),
        AlertsCommand::Unsilence { id } => {
            check(client.send_json("DELETE", &format!("/api/v2/silence/{id}"), None)?)?;
            println!("silence {id} ended");
        }
    }
    Ok(())
}

/// `obs alerts test RECEIVER --config F`: one test message through the receiver as the
/// store would send it, and what the receiver answered.
fn test_receiver(receiver: &str, config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = crate::config::load(config)?;
    let dir = std::env::temp_dir().join(format!("obs-alerts-test-{}", std::process::id()));
    let notifier = obs_notify::Notifier::open(&cfg.store.alerting, &dir);
    let answer = match notifier {
        Ok(Some(n)) => Ok(n.test(receiver, chrono::Utc::now())),
        Ok(None) => Err(anyhow::anyhow!(
            "{} has no [store.alerting.route]: add one with a receiver",
            config.display()
        )),
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    match answer? {
        Ok((status, body)) => {
            println!("{receiver} answered {status}: {}", body.trim());
            Ok(())
        }
        Err(e) => bail!("{receiver}: {e}"),
    }
}
