//! Every receiver type against a real peer: ntfy, gotify, telegram, discord and slack
//! against a local HTTP recorder (method, path, headers and body as each service documents
//! its API), email against a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH.
//! Messages go through `obs alerts test RECEIVER --config F`, the path an operator uses.

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{free_port, HttpRecorder, Proc, Recorded};

fn alerts_test(dir: &Path, cfg: &Path, receiver: &str) -> (i32, String, String) {
    Proc::run(
        obs_e2e::obs_bin(),
        &["alerts", "test", receiver, "--config", cfg.to_str().unwrap()],
        dir,
    )
}

fn one(hook: &HttpRecorder, path_prefix: &str) -> Recorded {
    let got: Vec<Recorded> = hook
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(path_prefix))
        .collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    got.into_iter().next().unwrap()
}

#[test]
fn chat_services_get_their_documented_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hook = HttpRecorder::start();
    std::fs::write(dir.join("ntfy.token"), "tk_ntfy\n").unwrap();
    std::fs::write(dir.join("gotify.token"), "AppToken1").unwrap();
    std::fs::write(dir.join("bot.token"), "123456:ABC-DEF").unwrap();
    std::fs::write(dir.join("discord.url"), hook.url("/api/webhooks/42/secret")).unwrap();
    std::fs::write(dir.join("slack.url"), hook.url("/services/T0/B0/secret")).unwrap();
    let cfg = dir.join("obs.toml");
    let d = dir.display();
    std::fs::write(
        &cfg,
        format!(
            r#"version = 1
[store.alerting]
external_url = "http://store.mesh:9700"
[[store.alerting.receivers]]
name = "phone"
type = "ntfy"
url = "{ntfy}"
token_file = "{d}/ntfy.token"
[[store.alerting.receivers]]
name = "gotify"
type = "gotify"
url = "{base}"
token_file = "{d}/gotify.token"
[[store.alerting.receivers]]
name = "tg"
type = "telegram"
url = "{base}"
token_file = "{d}/bot.token"
chat_id = "-1001234"
[[store.alerting.receivers]]
name = "discord"
type = "discord"
url_file = "{d}/discord.url"
[[store.alerting.receivers]]
name = "slack"
type = "slack"
url_file = "{d}/slack.url"
[store.alerting.route]
receiver = "phone"
"#,
            ntfy = hook.url("/obs-alerts"),
            base = hook.url(""),
        ),
    )
    .unwrap();
    for r in ["phone", "gotify", "tg", "discord", "slack"] {
        let (code, out, err) = alerts_test(dir, &cfg, r);
        assert_eq!(code, 0, "{r}: {out}{err}");
        assert!(out.starts_with(&format!("{r} answered 200")), "{out}");
    }
    let link = "http://store.mesh:9700/api/v1/alerts";
    // ntfy: POST to the topic, the message as the body, the rest in headers.
    let r = one(&hook, "/obs-alerts");
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("authorization"), Some("Bearer tk_ntfy"));
    assert_eq!(r.header("x-title"), Some("[FIRING:1] ObsTestNotification"));
    assert_eq!(r.header("x-priority"), Some("default"));
    assert_eq!(r.header("x-tags"), Some("rotating_light"));
    assert_eq!(r.header("x-click"), Some(link));
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "firing: A test notification from obs"
    );
    // gotify: POST /message, the app token in X-Gotify-Key, JSON with title/message/priority.
    let r = one(&hook, "/message");
    assert_eq!(
        (r.method.as_str(), r.header("x-gotify-key")),
        ("POST", Some("AppToken1"))
    );
    assert_eq!(r.header("authorization"), None);
    let j = r.json();
    assert_eq!(j["title"], "[FIRING:1] ObsTestNotification");
    assert_eq!(j["message"], "firing: A test notification from obs");
    assert_eq!(j["priority"], 4);
    assert_eq!(j["extras"]["client::notification"]["click"]["url"], link);
    // telegram: POST /bot<token>/sendMessage with chat_id (a number) and text.
    let r = one(&hook, "/bot");
    assert_eq!(r.path, "/bot123456:ABC-DEF/sendMessage");
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let j = r.json();
    assert_eq!(j["chat_id"], -1001234);
    assert_eq!(
        j["text"],
        format!("[FIRING:1] ObsTestNotification\n\nfiring: A test notification from obs\n\n{link}")
    );
    // discord: execute webhook with an embed; mentions never ping.
    let r = one(&hook, "/api/webhooks/42/secret");
    let j = r.json();
    assert_eq!(j["embeds"][0]["title"], "[FIRING:1] ObsTestNotification");
    assert_eq!(
        j["embeds"][0]["description"],
        "firing: A test notification from obs"
    );
    assert_eq!(j["embeds"][0]["url"], link);
    assert_eq!(j["allowed_mentions"]["parse"], serde_json::json!([]));
    // slack: incoming webhook with text and one attachment.
    let r = one(&hook, "/services/T0/B0/secret");
    let j = r.json();
    assert_eq!(j["text"], "[FIRING:1] ObsTestNotification");
    assert_eq!(
        j["attachments"][0]["text"],
        "firing: A test notification from obs"
    );
    assert_eq!(j["attachments"][0]["title_link"], link);

    // A refused request names the service's answer; secrets in URLs are not printed.
    hook.answer(401);
    let (code, _, err) = alerts_test(dir, &cfg, "tg");
    assert_eq!(code, 1);
    assert!(err.contains("answered 401") && !err.contains("ABC-DEF"), "{err}");
    let (_, _, err) = alerts_test(dir, &cfg, "discord");
    assert!(
        err.contains("the webhook answered 401") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn receiver_configs_that_leak_or_misspell_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "type = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"",
            "put it in url_file or url_env",
        ),
        (
            "type = \"telegram\"\ntoken_env = \"OBS_NO_SUCH_VAR\"\nchat_id = \"1\"",
            "OBS_NO_SUCH_VAR (token_env) is not set",
        ),
        (
            "type = \"webhook\"\nurl = \"http://x\"\nchat_id = \"1\"",
            "chat_id not used by this type",
        ),
        (
            "type = \"email\"\nsmarthost = \"mail:587\"\nfrom = \"obs@x\"",
            "`to` needs at least one address",
        ),
        ("type = \"pager\"\nurl = \"http://x\"", "unknown variant `pager`"),
    ];
    for (receiver, want) in cases {
        let cfg = tmp.path().join("obs.toml");
        std::fs::write(
            &cfg,
            format!("version = 1\n[[store.alerting.receivers]]\nname = \"r\"\n{receiver}\n[store.alerting.route]\nreceiver = \"r\"\n"),
        )
        .unwrap();
        let (code, out, err) = alerts_test(tmp.path(), &cfg, "r");
        assert_ne!(code, 0, "{receiver}: {out}");
        assert!(err.contains(want), "{receiver}: {err}");
        // `obs config check` finds the same problem before the store does.
        let (code, out, err) = Proc::run(
            obs_e2e::obs_bin(),
            &["config", "check", cfg.to_str().unwrap()],
            tmp.path(),
        );
        assert_eq!(code, 2, "{receiver}: {out}");
        assert!(err.contains(want), "{receiver}: {err}");
    }
}

/// The SMTP sink, killed by PID when dropped.
struct SmtpSink {
    proc: Proc,
    port: u16,
}

impl SmtpSink {
    /// `mode`: "starttls" or "tls" (implicit). The CA is `dir/ca.pem`.
    fn start(dir: &Path, out: &Path, mode: &str) -> SmtpSink {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() {
            obs_e2e::tls_files(dir);
        }
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/smtp-sink");
        let mut proc = Proc::spawn(
            "smtp-sink",
            &script,
            &[
                &port.to_string(),
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
                "alerts@example.org",
                "s3cret",
                out.to_str().unwrap(),
                mode,
            ],
            dir,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start: {}",
                proc.describe()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = &mut proc;
        SmtpSink { proc, port }
    }
}

#[test]
fn email_goes_over_starttls_or_tls_with_auth_to_a_real_smtp_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("mail.jsonl");
    let sink = SmtpSink::start(dir, &out, "starttls");
    let smtps = SmtpSink::start(dir, &dir.join("smtps.jsonl"), "tls");
    std::fs::write(dir.join("smtp.pass"), "s3cret\n").unwrap();
    std::fs::write(dir.join("wrong.pass"), "nope\n").unwrap();
    let cfg = dir.join("obs.toml");
    let receiver = |name: &str, pass: &str, ca: bool| {
        let (port, tls) = match name {
            "smtps" => (smtps.port, "tls"),
            _ => (sink.port, "starttls"),
        };
        format!(
            "[[store.alerting.receivers]]\nname = \"{name}\"\ntype = \"email\"\nsmarthost = \"localhost:{port}\"\ntls = \"{tls}\"\nfrom = \"obs <obs@example.org>\"\nto = [\"ops@example.org\", \"me@example.org\"]\nusername = \"alerts@example.org\"\npassword_file = \"{}/{pass}\"\n{}",
            dir.display(),
            if ca { format!("ca_file = \"{}/ca.pem\"\n", dir.display()) } else { String::new() },
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[store.alerting]\nexternal_url = \"http://store.mesh:9700\"\n{}{}{}{}[store.alerting.route]\nreceiver = \"mail\"\n",
            receiver("mail", "smtp.pass", true),
            receiver("smtps", "smtp.pass", true),
            receiver("badpass", "wrong.pass", true),
            receiver("untrusted", "smtp.pass", false),
        ),
    )
    .unwrap();
    let (code, stdout, err) = alerts_test(dir, &cfg, "mail");
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.starts_with("mail answered 250"), "{stdout}");
    let mails: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m["tls"], true);
    assert_eq!(m["login"], "alerts@example.org");
    assert_eq!(m["mail_from"], "obs@example.org");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.org", "me@example.org"])
    );
    let data = m["data"].as_str().unwrap();
    assert!(data.contains("Subject: [FIRING:1] ObsTestNotification"), "{data}");
    assert!(data.contains("firing: A test notification from obs"), "{data}");
    assert!(data.contains("http://store.mesh:9700/api/v1/alerts"), "{data}");

    // A wrong password and an untrusted certificate fail with the reason, and send nothing.
    let (code, _, err) = alerts_test(dir, &cfg, "badpass");
    assert_eq!(code, 1);
    assert!(
        err.contains("535") || err.to_lowercase().contains("auth"),
        "{err}"
    );
    let (code, _, err) = alerts_test(dir, &cfg, "untrusted");
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);

    // Implicit TLS (port 465 style).
    let (code, stdout, err) = alerts_test(dir, &cfg, "smtps");
    assert_eq!(code, 0, "{stdout}{err}");
    let m: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(dir.join("smtps.jsonl")).unwrap().trim()).unwrap();
    assert_eq!(
        (&m["tls"], &m["login"]),
        (&serde_json::json!(true), &serde_json::json!("alerts@example.org"))
    );
    drop(sink.proc);
    drop(smtps.proc);
}
