//! `obs up` as a user runs it: starts, answers health checks, stops cleanly on SIGTERM.

use std::time::Duration;

use nix::sys::signal::Signal;
use obs_e2e::{free_port, http_get, Proc};

#[test]
fn up_serves_ready_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc_port) = (free_port(), free_port());
    let config = dir.path().join("obs.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[store]\nhttp_addr = \"127.0.0.1:{port}\"\ngrpc_addr = \"127.0.0.1:{grpc_port}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut up = Proc::obs(
        "up",
        &[
            "up",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    let base = format!("http://127.0.0.1:{port}");
    up.wait_http_ok(&format!("{base}/ready"), Duration::from_secs(30));

    let (status, body) = http_get(&format!("{base}/metrics")).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("obs_store_uptime_seconds"), "{body}");
    assert!(
        data.join("store").is_dir(),
        "store data dir created under --data-dir"
    );

    up.signal(Signal::SIGTERM);
    let exit = up
        .wait_timeout(Duration::from_secs(5))
        .expect("obs up did not stop within 5 s of SIGTERM");
    let (stdout, stderr) = up.output();
    assert!(exit.success(), "exit {exit}\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("store      {base}")), "{stdout}");
    assert!(
        stdout.contains(&format!("OTLP/gRPC 127.0.0.1:{grpc_port}")),
        "{stdout}"
    );
    assert!(stdout.contains("obs up: stopped cleanly"), "{stdout}");
    assert!(
        http_get(&format!("{base}/ready")).is_err(),
        "port still answering after exit"
    );
}

#[test]
fn up_refuses_a_public_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("obs.toml");
    std::fs::write(&config, "version = 1\n[store]\nhttp_addr = \"0.0.0.0:0\"\n").unwrap();
    let (code, _, stderr) = Proc::run(
        obs_e2e::obs_bin(),
        &["up", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without auth tokens"),
        "{stderr}"
    );
}
