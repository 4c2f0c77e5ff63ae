//! The `obs` command line as a newcomer meets it: help, version, config check, and clear
//! errors for bad flags.

use obs_e2e::{obs_bin, Proc};

fn obs(args: &[&str]) -> (i32, String, String) {
    let dir = std::env::temp_dir();
    Proc::run(obs_bin(), args, &dir)
}

#[test]
fn help_lists_every_subcommand() {
    let (code, out, _) = obs(&["--help"]);
    assert_eq!(code, 0);
    for cmd in [
        "up",
        "store",
        "collector",
        "backup",
        "query",
        "status",
        "config",
        "version",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(cmd)),
            "missing {cmd} in:\n{out}"
        );
    }
}

#[test]
fn every_level_has_help() {
    for args in [
        &["up", "--help"][..],
        &["store", "--help"],
        &["collector", "--help"],
        &["backup", "--help"],
        &["backup", "create", "--help"],
        &["query", "--help"],
        &["query", "logs", "--help"],
        &["status", "--help"],
        &["config", "check", "--help"],
    ] {
        let (code, out, err) = obs(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage: obs"), "{args:?}:\n{out}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let (code, out, _) = obs(&["version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("obs {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn config_check_accepts_a_good_file_and_points_at_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "version = 1\n[[collector.files]]\npaths = [\"/var/log/*.log\"]\n",
    )
    .unwrap();
    let (code, out, err) = obs(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok") && out.contains("1 file source(s)"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[store]\nretention = \"30d\"\nhttp_port = 9700\n",
    )
    .unwrap();
    let (code, _, err) = obs(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:4:1: unknown field `http_port`"), "{err}");
    assert!(err.contains("4 | http_port = 9700"), "{err}");

    // Rules are compiled as the collector compiles them.
    std::fs::write(
        &bad,
        "version = 1\n[[collector.files]]\npaths = [\"/x/*.log\"]\n[[collector.files.relabel]]\nregex = \"(\"\naction = \"drop\"\n",
    )
    .unwrap();
    let (code, _, err) = obs(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[[collector.files]] #1 relabel rule #1: regex"),
        "{err}"
    );

    let (code, _, err) = obs(&["config", "check", "/nonexistent/obs.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn a_collector_with_a_bad_store_url_says_which_flag_is_wrong() {
    let (code, _, err) = obs(&["collector", "--store", "not a url"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("store endpoint \"not a url\" is not a URL"), "{err}");
    let (code, _, err) = obs(&[
        "collector",
        "--file",
        "[",
        "--data-dir",
        "/tmp/obs-cli-test-unused",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("paths: \"[\""), "{err}");
}
