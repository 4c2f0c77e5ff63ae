//! Harness for cross-process tests: locate (or build) the `obs` binary, start it on free
//! loopback ports with a temporary data dir, wait until it is ready, and always kill it by PID
//! when the test ends — a [`Proc`] kills its process in `Drop`, even when the test panics.
//!
//! ```no_run
//! use obs_e2e::{free_port, Proc};
//! let dir = tempfile::tempdir().unwrap();
//! let port = free_port();
//! let mut store = Proc::obs("store", &["store", "--http-addr", &format!("127.0.0.1:{port}")], dir.path());
//! store.wait_http_ok(&format!("http://127.0.0.1:{port}/ready"), std::time::Duration::from_secs(20));
//! ```

pub mod browser;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `obs` binary under test: `$OBS_BIN`, or the workspace's own. `cargo test --workspace`
/// builds it; when it is missing or older than any source file (e.g. `cargo test -p obs-e2e`
/// after an edit), it is built once per test process with the tests' profile.
pub fn obs_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("OBS_BIN") {
            return PathBuf::from(bin);
        }
        // current_exe is target/<profile>/deps/<test>-<hash>; the binary is target/<profile>/obs.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile> dir");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let bin = profile_dir.join("obs");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let sources = [
            "query-cli",
            "store",
            "collector",
            "backup",
            "notify",
            "otlp-prom",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .iter()
        .filter_map(|p| newest_mtime(&workspace.join(p)))
        .max();
        if built.is_some() && built >= sources {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace)
            .args(["build", "--quiet", "-p", "obs", "--bin", "obs"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for the obs binary");
        assert!(status.success(), "cargo build -p obs failed");
        assert!(bin.exists(), "obs binary missing at {}", bin.display());
        bin
    })
}

/// The newest modification time of a file, or of any file below a directory (skipping
/// `tests/fixtures`, which tests do not compile).
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    if path.ends_with("fixtures") {
        return None;
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// A free TCP port on 127.0.0.1, checked by binding it, for a process started next to bind.
///
/// It is taken below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by
/// default), where ports bound to `:0` and the local ends of outgoing connections come from:
/// a port found free by binding `:0` was sometimes taken by another test's connection before
/// the process that was to listen on it started ("Address already in use"). Each test binary
/// walks its own stretch of the range below (from its pid), and never hands a port out twice.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000, ephemeral_from.saturating_sub(10_000));
    if span >= 1_000 {
        let start = std::process::id().wrapping_mul(97) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = (low + (start + n) % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A child process that is killed (SIGKILL) and reaped when dropped. Its stdout and stderr go
/// to files in `dir`, shown by [`Proc::output`] and in panic messages.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program args…` with `dir` as working directory.
    pub fn spawn(name: &str, program: &Path, args: &[&str], dir: &Path) -> Proc {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            exited: None,
        }
    }

    /// Starts the `obs` binary with `args`.
    pub fn obs(name: &str, args: &[&str], dir: &Path) -> Proc {
        Proc::spawn(name, obs_bin(), args, dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process printed so far: (stdout, stderr).
    pub fn output(&self) -> (String, String) {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.stdout), read(&self.stderr))
    }

    pub fn describe(&self) -> String {
        let (out, err) = self.output();
        format!(
            "--- {} stdout ---\n{out}--- {} stderr ---\n{err}",
            self.name, self.name
        )
    }

    /// Polls `url` until it answers 200, panicking with the process output on timeout or if
    /// the process exits first.
    pub fn wait_http_ok(&mut self, url: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                panic!(
                    "{} exited with {status} before {url} was ready\n{}",
                    self.name,
                    self.describe()
                );
            }
            if let Ok((200, _)) = http_get(url) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not ready after {timeout:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the process has printed `text` on stderr.
    pub fn wait_stderr(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().1.contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                panic!(
                    "{} exited with {status} before printing {text:?}\n{}",
                    self.name,
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} after {timeout:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), signal).expect("send signal");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command to completion: (exit code, stdout, stderr).
    pub fn run(program: &Path, args: &[&str], dir: &Path) -> (i32, String, String) {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A real S3 server (SeaweedFS) for a test: the one `scripts/test` started (found through
/// `AWS_ENDPOINT_URL` and `OBS_TEST_S3_BUCKET`), or one started now by `scripts/s3-server`
/// and killed by PID when this guard drops.
#[derive(Debug)]
pub struct S3Server {
    vars: std::collections::HashMap<String, String>,
    started: Option<tempfile::TempDir>,
}

impl S3Server {
    /// The server of this run, and rustls's ring provider installed for the tests' own S3
    /// clients (object_store's client takes the process-wide provider, as in obs).
    pub fn start() -> S3Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let names = [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "OBS_TEST_S3_BUCKET",
        ];
        let from_env: Option<std::collections::HashMap<_, _>> = names
            .iter()
            .map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
            .collect();
        if let Some(vars) = from_env {
            return S3Server { vars, started: None };
        }
        let dir = tempfile::tempdir().expect("tempdir for the S3 server");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-server");
        let status = Command::new(&script)
            .arg("start")
            .arg(dir.path())
            .status()
            .expect("run scripts/s3-server");
        assert!(status.success(), "scripts/s3-server start failed");
        let env = std::fs::read_to_string(dir.path().join("env")).expect("s3-server env file");
        let vars = env
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        S3Server {
            vars,
            started: Some(dir),
        }
    }

    /// One of the AWS_* variables (or OBS_TEST_S3_BUCKET) for this server.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{name} not set for the S3 server"))
    }

    pub fn endpoint(&self) -> &str {
        self.var("AWS_ENDPOINT_URL")
    }

    pub fn bucket(&self) -> &str {
        self.var("OBS_TEST_S3_BUCKET")
    }

    /// Sets the AWS_* variables of this server in this process (and so its children), as a
    /// user would for `obs backup --repo s3://…`.
    pub fn export_env(&self) {
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        ] {
            std::env::set_var(name, self.var(name));
        }
        std::env::set_var("AWS_ALLOW_HTTP", "true");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            if std::thread::panicking() {
                // A failed test shows why the server refused, e.g. a disk it found too full.
                let log = std::fs::read_to_string(dir.path().join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!("--- last lines of weed.log ---");
                tail.iter().rev().for_each(|l| eprintln!("{l}"));
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-server");
            let _ = Command::new(script).arg("stop").arg(dir.path()).status();
        }
    }
}

/// Now, in nanoseconds since the Unix epoch (log and span timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// POST `body` with `content_type` to `url`: (status, body), whatever the status.
pub fn http_post(url: &str, content_type: &str, body: &[u8]) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Runs `tests/python/otlp_send.py` (the OpenTelemetry Python SDK) against `endpoint` and
/// returns what it printed last (JSON: the trace ids it sent). `extra` are more arguments.
pub fn otlp_send(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    service: &str,
    (logs, traces): (usize, usize),
    extra: &[&str],
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otlp_send.py");
    let (logs, traces) = (logs.to_string(), traces.to_string());
    let mut args = vec![
        script.to_str().expect("utf-8 path"),
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
        "--service",
        service,
        "--logs",
        &logs,
        "--traces",
        &traces,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = Proc::run(Path::new("python3"), &args, dir);
    assert_eq!(code, 0, "otlp_send.py failed\nstdout: {out}\nstderr: {err}");
    serde_json::from_str(out.trim().lines().last().expect("a JSON line")).expect("JSON")
}

/// A store started on a free port with its own data dir; restartable on the same data.
#[derive(Debug)]
pub struct StoreProc {
    pub proc: Proc,
    pub port: u16,
    pub grpc_port: u16,
    pub data: PathBuf,
    dir: PathBuf,
    /// The config file it was started with (used again on restart).
    config: Option<PathBuf>,
}

impl StoreProc {
    pub fn start(dir: &Path) -> StoreProc {
        let data = dir.join("store-data");
        StoreProc::start_on(dir, &data, free_port())
    }

    /// A plain store on an existing data dir.
    pub fn start_on_data(dir: &Path, data: &Path) -> StoreProc {
        StoreProc::start_on(dir, data, free_port())
    }

    /// A plain store on a given port (e.g. one a client already tried to reach).
    pub fn start_on_port(dir: &Path, data: &Path, port: u16) -> StoreProc {
        StoreProc::start_on(dir, data, port)
    }

    fn start_on(dir: &Path, data: &Path, port: u16) -> StoreProc {
        StoreProc::start_on_ports(dir, data, port, free_port())
    }

    /// A plain store on given HTTP and gRPC ports (e.g. ones a collector is retrying).
    pub fn start_on_ports(dir: &Path, data: &Path, port: u16, grpc_port: u16) -> StoreProc {
        let addr = format!("127.0.0.1:{port}");
        let grpc = format!("127.0.0.1:{grpc_port}");
        let mut proc = Proc::obs(
            "store",
            &[
                "store",
                "--data-dir",
                data.to_str().expect("utf-8 path"),
                "--http-addr",
                &addr,
                "--grpc-addr",
                &grpc,
            ],
            dir,
        );
        proc.wait_http_ok(&format!("http://{addr}/ready"), Duration::from_secs(60));
        StoreProc {
            proc,
            port,
            grpc_port,
            data: data.to_path_buf(),
            dir: dir.to_path_buf(),
            config: None,
        }
    }

    /// `host:port` of OTLP/gRPC ingest.
    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// A store started with `config` (TOML, `version = 1` added), on free ports; for configs
    /// whose HTTP port is not plain HTTP (TLS), readiness is its "listening" log line.
    pub fn start_with_config(dir: &Path, config: &str) -> StoreProc {
        StoreProc::start_with_config_on(dir, config, free_port(), free_port())
    }

    /// [`StoreProc::start_with_config`] on given ports (e.g. ones collectors already retry).
    pub fn start_with_config_on(dir: &Path, config: &str, port: u16, grpc_port: u16) -> StoreProc {
        let data = dir.join("store-data");
        let file = dir.join("store.toml");
        std::fs::write(
            &file,
            format!("version = 1\n[store]\nhttp_addr = \"127.0.0.1:{port}\"\ngrpc_addr = \"127.0.0.1:{grpc_port}\"\n{config}"),
        )
        .expect("write store config");
        StoreProc::start_config_file(dir, &data, port, grpc_port, file)
    }

    fn start_config_file(dir: &Path, data: &Path, port: u16, grpc_port: u16, file: PathBuf) -> StoreProc {
        let mut proc = Proc::obs(
            "store",
            &[
                "store",
                "--config",
                file.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
            ],
            dir,
        );
        proc.wait_stderr("store otlp/grpc listening", Duration::from_secs(60));
        StoreProc {
            proc,
            port,
            grpc_port,
            data: data.to_path_buf(),
            dir: dir.to_path_buf(),
            config: Some(file),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL, then start again on the same data dir and ports.
    pub fn kill_and_restart(self) -> StoreProc {
        self.kill_and_restart_after(Duration::ZERO)
    }

    /// SIGKILL, stay down for `down`, then start again on the same data dir and ports.
    pub fn kill_and_restart_after(self, down: Duration) -> StoreProc {
        self.kill_and_restart_when(|| std::thread::sleep(down))
    }

    /// SIGKILL, run `while_down`, then start again on the same data dir and ports.
    pub fn kill_and_restart_when(self, while_down: impl FnOnce()) -> StoreProc {
        let StoreProc {
            mut proc,
            port,
            grpc_port,
            data,
            dir,
            config,
        } = self;
        proc.signal(Signal::SIGKILL);
        proc.wait_timeout(Duration::from_secs(10))
            .expect("store did not die on SIGKILL");
        while_down();
        match config {
            // The stderr file is truncated by the new process, so readiness is seen afresh.
            Some(file) => StoreProc::start_config_file(&dir, &data, port, grpc_port, file),
            None => StoreProc::start_on_ports(&dir, &data, port, grpc_port),
        }
    }

    /// The lines a LogQL query returns over the last hour (up to 1000), as (stream labels,
    /// line); none if the store does not answer 200.
    pub fn log_lines(&self, logql: &str) -> Vec<(serde_json::Value, String)> {
        let url = self.url(&format!(
            "/loki/api/v1/query_range?query={}&since=1h&limit=1000&direction=forward",
            enc(logql)
        ));
        let Ok((200, body)) = http_get(&url) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| {
                s["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| (s["stream"].clone(), e[1].as_str().unwrap_or("").to_string()))
            })
            .collect()
    }

    /// Polls [`StoreProc::log_lines`] until there are `want` lines (30 s), failing with the
    /// output of `sender` (the process expected to deliver them) if they do not come.
    pub fn wait_log_lines(
        &self,
        logql: &str,
        want: usize,
        sender: &mut Proc,
    ) -> Vec<(serde_json::Value, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.log_lines(logql);
            if got.len() >= want {
                return got;
            }
            assert!(
                sender.wait_timeout(Duration::ZERO).is_none(),
                "{} exited: {}",
                sender.name,
                sender.describe()
            );
            assert!(
                Instant::now() < deadline,
                "{logql}: {} of {want} lines: {got:?}\n{}",
                got.len(),
                sender.describe()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// GET a JSON endpoint, panicking with the store's output on failure.
    pub fn get_json(&self, path_and_query: &str) -> serde_json::Value {
        let (status, body) = http_get(&self.url(path_and_query)).expect("store reachable");
        assert_eq!(status, 200, "{path_and_query}: {body}\n{}", self.proc.describe());
        serde_json::from_str(&body).expect("JSON body")
    }
}

/// Test TLS material: a CA and a `localhost` server certificate it signed, as PEM files in
/// `dir`: (ca.pem, cert.pem, key.pem).
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    tls_files_expiring(dir, None)
}

/// [`tls_files`] with a server certificate that expires `valid_for` from now.
pub fn tls_files_expiring(dir: &Path, valid_for: Option<Duration>) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
    let named = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = named("obs test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
    params.distinguished_name = named("localhost");
    if let Some(d) = valid_for {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + (now + d);
    }
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca_cert.pem()).expect("write ca");
    std::fs::write(&paths.1, cert.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

/// URL-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// GET a JSON document that must be there (200), panicking with what came instead.
pub fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = http_get(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

/// The path of an installed program; panics naming how `scripts/test` installs it.
pub fn which(bin: &str) -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{bin} is not installed: scripts/test installs it (apt-get install {bin})"
    );
    path.into()
}

/// GET `url`: (status, body), whatever the status.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    http_get_within(url, Duration::from_secs(5))
}

/// [`http_get`] with a longer budget, for slow queries in benchmarks.
pub fn http_get_within(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// One sample to send: a series' labels, a timestamp in ms and a value.
pub type Point<'a> = (&'a [(&'a str, &'a str)], i64, f64);

/// Sends samples by Prometheus remote_write 1.0, one series per sample; the store's (or a
/// peer's) HTTP status.
pub fn remote_write(url: &str, samples: &[Point]) -> Result<u16, String> {
    use obs_store::prompb;
    use prost::Message;
    let timeseries = samples
        .iter()
        .map(|(labels, t, v)| prompb::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| prompb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![prompb::Sample {
                value: *v,
                timestamp: *t,
            }],
        })
        .collect();
    let req = prompb::WriteRequest {
        timeseries,
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .map_err(|e| e.to_string())?;
    http_post(url, "application/x-protobuf", &body).map(|(status, _)| status)
}

/// One HTTP request an [`HttpRecorder`] received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A local HTTP server that records every request and answers with a status the test sets
/// (200 at first): the stand-in for webhook, ntfy and chat services.
#[derive(Debug)]
pub struct HttpRecorder {
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    status: std::sync::Arc<AtomicU32>,
}

impl HttpRecorder {
    pub fn start() -> HttpRecorder {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a recorder port");
        let port = listener.local_addr().expect("local addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let status = std::sync::Arc::new(AtomicU32::new(200));
        let (reqs, st) = (requests.clone(), status.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("").to_string(),
                );
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let code = st.load(Ordering::Relaxed);
                let mut conn = reader.into_inner();
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                if code < 300 {
                    reqs.lock().expect("recorder lock").push(Recorded {
                        method,
                        path,
                        headers,
                        body,
                    });
                }
            }
        });
        HttpRecorder {
            port,
            requests,
            status,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The status later requests get (requests answered with 300 or more are not recorded).
    pub fn answer(&self, status: u32) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("recorder lock").clone()
    }

    /// Waits until `ok` holds for the requests so far.
    pub fn wait(&self, what: &str, timeout: Duration, ok: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if ok(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "{what}: not received; got {r:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
