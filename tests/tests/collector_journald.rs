//! The collector follows a real systemd journal (written by systemd-journal-remote, since no
//! journald runs here) through `journalctl -o json -f`; entries arrive in the store with
//! unit, service and level, entries written while it runs follow, and a restart continues
//! after the saved cursor without sending anything twice.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use obs_e2e::{free_port, Proc, StoreProc};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Appends entries (MESSAGE, PRIORITY) for nginx.service to a journal file in `dir`.
fn write_journal(dir: &Path, entries: &[(&str, u8)]) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let mut export = String::new();
    for (i, (msg, prio)) in entries.iter().enumerate() {
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n_HOSTNAME=web-1\n_SYSTEMD_UNIT=nginx.service\nSYSLOG_IDENTIFIER=nginx\n_PID=4242\nPRIORITY={prio}\nMESSAGE={msg}\n\n",
            now_us + i as u128,
            now_us + i as u128
        ));
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-journal-remote (scripts/test installs it)");
    child.stdin.take().unwrap().write_all(export.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

const NGINX: &str = r#"{unit="nginx.service"}"#;

#[test]
fn journal_entries_arrive_follow_and_resume_after_the_cursor() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let journal = dir.join("journal");
    std::fs::create_dir(&journal).unwrap();
    write_journal(&journal, &[("upstream timed out", 3), ("GET / 200", 6)]);
    let store = StoreProc::start(dir);
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nhost_metrics = false\notlp_grpc_addr = \"127.0.0.1:{}\"\notlp_http_addr = \"127.0.0.1:{}\"\n[collector.journald]\ndirectory = \"{}\"\nstart_at = \"beginning\"\n",
            free_port(),
            free_port(),
            journal.display()
        ),
    )
    .unwrap();
    let args = [
        "collector",
        "--config",
        "collector.toml",
        "--store",
        &format!("http://{}", store.grpc_addr()),
        "--data-dir",
        "cdata",
    ];
    let mut collector = Proc::obs("collector-1", &args, dir);
    let got = store.wait_log_lines(NGINX, 2, &mut collector);
    let error = got
        .iter()
        .find(|(_, l)| l == "upstream timed out")
        .expect("the error entry");
    assert_eq!(error.0["level"], "error");
    assert_eq!(error.0["service_name"], "nginx");
    assert_eq!(error.0["host_name"], "web-1");
    assert_eq!(error.0["pid"], "4242", "journal fields are structured metadata");

    write_journal(&journal, &[("worker exited", 4)]);
    let got = store.wait_log_lines(NGINX, 3, &mut collector);
    assert_eq!(
        got.iter().find(|(_, l)| l == "worker exited").unwrap().0["level"],
        "warn"
    );

    collector.signal(Signal::SIGTERM);
    assert!(collector
        .wait_timeout(Duration::from_secs(30))
        .expect("stops on SIGTERM")
        .success());
    write_journal(&journal, &[("reloaded", 6)]);
    let mut collector = Proc::obs("collector-2", &args, dir);
    let got = store.wait_log_lines(NGINX, 4, &mut collector);
    // One more entry: the journal is read in order, so whatever the restart read twice has
    // arrived before it.
    write_journal(&journal, &[("settled", 6)]);
    let got_after = store.wait_log_lines(NGINX, 5, &mut collector);
    assert_eq!(
        got_after.len(),
        5,
        "nothing read twice after the restart: {got_after:?} (was {got:?})"
    );
}
