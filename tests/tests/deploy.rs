//! Deploying: `obs install` (dry-run output pinned, units checked by `systemd-analyze verify`,
//! owners and modes of what it writes), `obs token create|revoke` against a running store (no
//! restart), completions and man pages, and the deploy/ files (Kubernetes, Nomad, Compose)
//! parsed and checked against the collector config they carry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use obs_e2e::{http_post, now_ns, obs_bin, Proc, StoreProc};
use serde_json::Value;

fn obs(args: &[&str], dir: &Path) -> String {
    let (code, out, err) = Proc::run(obs_bin(), args, dir);
    assert_eq!(code, 0, "obs {args:?}\n{out}{err}");
    out
}

#[test]
fn install_dry_runs_print_every_file_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut settings = insta::Settings::clone_current();
    // Which of these groups exist depends on the machine.
    settings.add_filter(
        r"SupplementaryGroups=.*",
        "SupplementaryGroups=[groups present here]",
    );
    settings.bind(|| {
        insta::assert_snapshot!(
            "install_store",
            obs(&["install", "store", "--dry-run", "--bin", "/usr/bin/obs"], d)
        );
        insta::assert_snapshot!(
            "install_collector",
            obs(
                &[
                    "install",
                    "collector",
                    "--store",
                    "https://store.mesh:9701",
                    "--token-file",
                    "/root/node-a.token",
                    "--dry-run",
                    "--bin",
                    "/usr/bin/obs",
                ],
                d
            )
        );
        insta::assert_snapshot!(
            "install_backup",
            obs(
                &[
                    "install",
                    "backup",
                    "--config",
                    "/root/obs.toml",
                    "--password-file",
                    "/root/repo.password",
                    "--dry-run",
                    "--bin",
                    "/usr/bin/obs",
                ],
                d
            )
        );
        insta::assert_snapshot!(
            "uninstall_collector",
            obs(&["uninstall", "collector", "--purge", "--dry-run"], d)
        );
    });
    let (code, _, err) = Proc::run(obs_bin(), &["install", "collector", "--dry-run"], d);
    assert_eq!(code, 1);
    assert!(err.contains("--store https://STORE:9701"), "{err}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn installed_units_pass_systemd_analyze_and_secrets_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root");
    std::fs::write(d.join("node.token"), "ingest-secret-node-a\n").unwrap();
    std::fs::write(d.join("repo.password"), "correct horse\n").unwrap();
    let bin = obs_bin().to_str().unwrap();
    let root_s = root.to_str().unwrap();
    let token = d.join("node.token");
    let password = d.join("repo.password");
    let runs: [&[&str]; 3] = [
        &["install", "store", "--root", root_s, "--bin", bin],
        &[
            "install",
            "collector",
            "--store",
            "http://127.0.0.1:9701",
            "--token-file",
            token.to_str().unwrap(),
            "--root",
            root_s,
            "--bin",
            bin,
        ],
        &[
            "install",
            "backup",
            "--password-file",
            password.to_str().unwrap(),
            "--root",
            root_s,
            "--bin",
            bin,
        ],
    ];
    for args in runs {
        let out = obs(args, d);
        assert!(out.contains("skipped `systemctl enable --now"), "{out}");
    }
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    assert_eq!(mode(&at("/etc/obs/tokens/collector.token")), 0o600);
    assert_eq!(
        std::fs::read_to_string(at("/etc/obs/tokens/collector.token")).unwrap(),
        "ingest-secret-node-a\n"
    );
    assert_eq!(mode(&at("/etc/obs/backup.password")), 0o600);
    assert_eq!(mode(&at("/etc/obs/obs.toml")), 0o640);
    assert_eq!(mode(&at("/etc/obs/tokens")), 0o750);
    for s in ["store", "collector", "backup"] {
        assert_eq!(mode(&at(&format!("/var/lib/obs/{s}"))), 0o750, "{s}");
    }
    // The first install wrote the config; the next ones kept it.
    let config = std::fs::read_to_string(at("/etc/obs/obs.toml")).unwrap();
    assert!(
        config.contains("[store]") && !config.contains("[collector]"),
        "{config}"
    );
    let analyze = obs_e2e::which("systemd-analyze");
    for s in ["store", "collector", "backup"] {
        let unit = at(&format!("/etc/systemd/system/obs-{s}.service"));
        let text = std::fs::read_to_string(&unit).unwrap();
        assert!(
            text.contains("ProtectSystem=strict") && text.contains("NoNewPrivileges=yes"),
            "{text}"
        );
        assert!(
            text.contains(&format!("ReadWritePaths=/var/lib/obs/{s}\n")),
            "{text}"
        );
        let (code, out, err) = Proc::run(&analyze, &["verify", unit.to_str().unwrap()], d);
        assert_eq!(
            code, 0,
            "systemd-analyze verify obs-{s}.service:\n{out}{err}\n{text}"
        );
    }
    let store = std::fs::read_to_string(at("/etc/systemd/system/obs-store.service")).unwrap();
    assert!(
        store.contains("CapabilityBoundingSet=\n"),
        "the store gets no capability: {store}"
    );
    let backup = std::fs::read_to_string(at("/etc/systemd/system/obs-backup.service")).unwrap();
    assert!(
        backup.contains("AmbientCapabilities=CAP_DAC_READ_SEARCH\n"),
        "{backup}"
    );
}

/// Pushes one line with `token`: the HTTP status.
fn push(store: &StoreProc, token: &str) -> u16 {
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"enrol"}},"values":[["{}","hello"]]}}]}}"#,
        now_ns()
    );
    let url = store.url("/loki/api/v1/push");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    let _ = http_post;
    resp.status().as_u16()
}

fn wait_status(store: &StoreProc, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = push(store, token);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a push with the token answers {got}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_created_token_works_and_a_revoked_one_is_refused_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = StoreProc::start_with_config(
        d,
        "# the admin's token\n[[store.tokens]]\nname = \"admin\"\nrole = \"admin\"\ntoken = \"admin-secret-deploy\"\n",
    );
    let pid = store.proc.pid();
    let config = d.join("store.toml");
    let cfg = config.to_str().unwrap();
    let out = obs(
        &[
            "token",
            "create",
            "node-a",
            "--role",
            "ingest",
            "--store-config",
            cfg,
        ],
        d,
    );
    assert!(out.contains("created token \"node-a\" (ingest)"), "{out}");
    let file: PathBuf = d.join("tokens/node-a.token");
    assert_eq!(mode(&file), 0o600);
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(push(&store, "not-a-token-at-all"), 401);
    wait_status(&store, &secret, 204);
    let list = obs(&["token", "list", "--store-config", cfg], d);
    assert!(
        list.contains("node-a") && list.contains("ingest") && !list.contains(&secret),
        "{list}"
    );
    let out = obs(&["token", "revoke", "node-a", "--store-config", cfg], d);
    assert!(out.contains("revoked token \"node-a\""), "{out}");
    assert!(!file.exists());
    wait_status(&store, &secret, 401);
    assert_eq!(push(&store, "admin-secret-deploy"), 204);
    assert_eq!(store.proc.pid(), pid, "the same store process throughout");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("# the admin's token"));
}

#[test]
fn completions_and_man_pages_come_from_the_command_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bash = obs(&["completions", "bash"], d);
    assert!(
        bash.contains("_obs()") && bash.contains("install") && bash.contains("--dry-run"),
        "{bash}"
    );
    for shell in ["zsh", "fish"] {
        assert!(obs(&["completions", shell], d).contains("errors"), "{shell}");
    }
    let out = obs(&["man", "--out", "man"], d);
    assert!(out.starts_with("wrote "), "{out}");
    for page in ["obs.1", "obs-install.1", "obs-token.1", "obs-errors.1"] {
        let text = std::fs::read_to_string(d.join("man").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

/// Checks a collector config with `obs config check` and returns every path it reads or
/// writes.
fn collector_paths(toml_text: &str, dir: &Path) -> Vec<String> {
    let file = dir.join("collector.toml");
    std::fs::write(&file, toml_text).unwrap();
    obs(&["config", "check", file.to_str().unwrap()], dir);
    let v: toml::Value = toml::from_str(toml_text).unwrap();
    let c = &v["collector"];
    let mut paths: Vec<String> = [
        "data_dir",
        "token_file",
        "kubernetes_pods_dir",
        "docker_containers_dir",
    ]
    .iter()
    .filter_map(|k| c.get(*k).and_then(|p| p.as_str()).map(str::to_string))
    .collect();
    if let Some(d) = c
        .get("journald")
        .and_then(|j| j.get("directory"))
        .and_then(|p| p.as_str())
    {
        paths.push(d.to_string());
    }
    for f in c.get("files").and_then(|f| f.as_array()).into_iter().flatten() {
        for p in f["paths"].as_array().unwrap() {
            paths.push(p.as_str().unwrap().to_string());
        }
    }
    paths
}

/// Every path the config uses is under a mount, and every mount holds a path the config uses.
fn check_mounts(what: &str, paths: &[String], mounts: &[String], also_mounted: &[&str]) {
    let under = |p: &str, m: &str| p == m || p.starts_with(&format!("{}/", m.trim_end_matches('/')));
    for p in paths {
        assert!(
            mounts.iter().any(|m| under(p, m)) || also_mounted.iter().any(|m| under(p, m)),
            "{what}: the config's {p} is not mounted ({mounts:?})"
        );
    }
    for m in mounts {
        assert!(
            paths.iter().any(|p| under(p, m)),
            "{what}: {m} is mounted but the config never reads it"
        );
    }
}

/// All values under `key` anywhere in `v` (HCL blocks may come as objects or arrays).
fn find_all<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == key {
                    match child {
                        Value::Array(items) => out.extend(items.iter()),
                        other => out.push(other),
                    }
                }
                find_all(child, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_all(i, key, out)),
        _ => {}
    }
}

#[test]
fn deploy_files_parse_and_mount_exactly_what_the_collector_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Kubernetes: a ConfigMap with the config, a DaemonSet with hostPath mounts, no RBAC.
    let text = std::fs::read_to_string(format!("{DEPLOY}/kubernetes/collector.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    let paths = collector_paths(docs[0]["data"]["obs.toml"].as_str().unwrap(), d);
    let pod = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = &pod["containers"][0];
    let host_volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mounts: Vec<String> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| host_volumes.contains(&m["name"].as_str().unwrap()))
        .map(|m| m["mountPath"].as_str().unwrap().to_string())
        .collect();
    check_mounts("kubernetes", &paths, &mounts, &["/etc/obs/tokens"]);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..3], ["collector", "--config", "/etc/obs/obs.toml"]);

    // Nomad: a system job with host volumes and the config as a template.
    let text = std::fs::read_to_string(format!("{DEPLOY}/nomad/collector.nomad.hcl")).unwrap();
    let job: Value = hcl::from_str(&text).unwrap();
    assert_eq!(job["job"]["obs-collector"]["type"], "system", "{job:#}");
    let mut templates = Vec::new();
    find_all(&job, "template", &mut templates);
    let config = templates
        .iter()
        .find(|t| t["destination"] == "local/obs.toml")
        .expect("the config template");
    let paths = collector_paths(config["data"].as_str().unwrap(), d);
    let mut volume_mounts = Vec::new();
    find_all(&job, "volume_mount", &mut volume_mounts);
    let mounts: Vec<String> = volume_mounts
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    check_mounts("nomad", &paths, &mounts, &["/secrets"]);

    // Compose: the store with its config and tokens, and a volume for its data.
    let text = std::fs::read_to_string(format!("{DEPLOY}/compose/docker-compose.yml")).unwrap();
    let compose: Value = serde_saphyr::from_str(&text).unwrap();
    let store = &compose["services"]["store"];
    let command: Vec<&str> = store["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        command,
        [
            "store",
            "--config",
            "/etc/obs/obs.toml",
            "--data-dir",
            "/var/lib/obs/store"
        ]
    );
    let volumes: Vec<&str> = store["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        volumes.contains(&"./:/etc/obs:ro") && volumes.contains(&"store-data:/var/lib/obs/store"),
        "{volumes:?}"
    );
    let config = std::fs::read_to_string(format!("{DEPLOY}/compose/obs.toml")).unwrap();
    let file = d.join("compose.toml");
    std::fs::write(&file, &config).unwrap();
    obs(&["config", "check", file.to_str().unwrap()], d);
    let v: toml::Value = toml::from_str(&config).unwrap();
    assert_eq!(v["store"]["data_dir"].as_str(), Some("/var/lib/obs/store"));
}

#[test]
fn the_debian_package_holds_the_binary_units_man_pages_and_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/package-deb");
    let out = std::process::Command::new(&script)
        .arg("dev")
        .env("NO_BUILD", "1")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deb = std::fs::read_dir(root.join("target/debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let (code, listing, err) = Proc::run(
        Path::new("dpkg-deb"),
        &["--contents", deb.to_str().unwrap()],
        &root,
    );
    assert_eq!(code, 0, "{err}");
    for path in [
        "./usr/bin/obs",
        "./lib/systemd/system/obs-store.service",
        "./lib/systemd/system/obs-collector.service",
        "./lib/systemd/system/obs-backup.service",
        "./usr/share/man/man1/obs.1.gz",
        "./usr/share/man/man1/obs-install.1.gz",
        "./usr/share/bash-completion/completions/obs",
        "./usr/share/zsh/vendor-completions/_obs",
        "./usr/share/doc/obs/examples/obs.toml",
        "./usr/share/doc/obs/examples/deploy/kubernetes/collector.yaml",
        "./usr/share/doc/obs/examples/deploy/nomad/collector.nomad.hcl",
        "./usr/share/doc/obs/examples/deploy/compose/docker-compose.yml",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    let binary = listing.lines().find(|l| l.ends_with("./usr/bin/obs")).unwrap();
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");
    let (_, info, _) = Proc::run(
        Path::new("dpkg-deb"),
        &["--field", deb.to_str().unwrap(), "Package", "Depends"],
        &root,
    );
    assert!(info.contains("Package: obs") && info.contains("libc6"), "{info}");
}
