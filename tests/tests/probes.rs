//! Probes against real local servers: an HTTP server that answers 200, then 503, then hangs,
//! then closes the connection; an HTTPS server whose certificate expires in 3 days; a TCP
//! port that refuses; a DNS server; ICMP to the loopback address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use obs_collector::{probe_once, Probe, ProbeOutcome};

const OK: u8 = 0;
const UNAVAILABLE: u8 = 1;
const HANG: u8 = 2;
const CLOSE: u8 = 3;
const HUGE: u8 = 4;

/// Reads one request head; answers as `mode` says. `/old` always redirects to `/health`.
fn answer(mut conn: impl Read + Write, mode: u8) {
    let mut reader = BufReader::new(&mut conn);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let text = match (mode, path.as_str()) {
        (_, "/old") => reply("302 Found", "location: /health\r\n", ""),
        (OK, _) => reply("200 OK", "", r#"{"status":"UP","checks":[1,2]}"#),
        (UNAVAILABLE, _) => reply("503 Service Unavailable", "", r#"{"status":"DOWN"}"#),
        (HUGE, _) => {
            // 20 MiB of body, deeply nested JSON at that: kept to 1 MiB, never parsed whole.
            let body = "[".repeat(20 << 20);
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = conn.write_all(body.as_bytes());
            return;
        }
        (HANG, _) => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        _ => return,
    };
    let _ = conn.write_all(text.as_bytes());
}

/// An HTTP server on 127.0.0.1 whose answers the test switches.
fn http_server() -> (u16, Arc<AtomicU8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mode = Arc::new(AtomicU8::new(OK));
    let m = mode.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mode = m.load(Ordering::SeqCst);
            std::thread::spawn(move || answer(conn, mode));
        }
    });
    (port, mode)
}

/// An HTTPS server with the certificate and key in these PEM files.
fn https_server(cert: &std::path::Path, key: &std::path::Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                answer(rustls::StreamOwned::new(tls, conn), OK);
            });
        }
    });
    port
}

/// A DNS server on UDP: `app.mesh.` has A 10.1.2.3, every other name is NXDOMAIN.
fn dns_server() -> u16 {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record};
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.add_queries(q.queries.clone());
            let name = q.queries.first().map(|q| q.name().to_ascii()).unwrap_or_default();
            if name == "app.mesh." {
                let owner = Name::from_ascii("app.mesh.").unwrap();
                r.add_answer(Record::from_rdata(owner, 60, RData::A(A::new(10, 1, 2, 3))));
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
        }
    });
    port
}

fn probe(toml_text: &str) -> ProbeOutcome {
    let p: Probe = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"));
    let checked = p.check().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(probe_once(&checked))
}

fn phase(o: &ProbeOutcome, name: &str) -> Option<Duration> {
    o.phases.iter().find(|(p, _)| *p == name).map(|(_, d)| *d)
}

#[test]
fn http_up_then_503_then_hanging_then_closed() {
    let (port, mode) = http_server();
    let cfg = format!(
        r#"name = "api"
url = "http://127.0.0.1:{port}/old"
timeout_secs = 1
conditions = ["[BODY].status == UP", "[RESPONSE_TIME] < 900", "len([BODY].checks) == 2"]"#
    );
    let o = probe(&cfg);
    assert!(o.success, "{o:?}");
    assert_eq!((o.status, o.redirects, o.tls), (Some(200), 1, false));
    assert!(o.conditions.iter().all(|c| c.success), "{:?}", o.conditions);
    for p in ["resolve", "connect", "processing", "transfer"] {
        assert!(phase(&o, p).is_some(), "phase {p} in {:?}", o.phases);
    }
    assert!(phase(&o, "tls").is_none());

    mode.store(UNAVAILABLE, Ordering::SeqCst);
    let o = probe(&cfg.replace("/old", "/health"));
    assert!(!o.success);
    assert_eq!(o.status, Some(503));
    assert_eq!(
        o.failure.as_deref(),
        Some(format!("HTTP 503 from http://127.0.0.1:{port}/health").as_str())
    );
    let body = o
        .conditions
        .iter()
        .find(|c| c.condition.contains(".status"))
        .unwrap();
    assert!(!body.success && body.value == "DOWN", "{body:?}");
    // A condition on [STATUS] replaces the status check: 503 is what this probe expects.
    let o = probe(&format!(
        "name = \"maint\"\nurl = \"http://127.0.0.1:{port}/\"\nconditions = [\"[STATUS] == any(503, 200)\"]"
    ));
    assert!(o.success, "{o:?}");

    mode.store(HANG, Ordering::SeqCst);
    let o = probe(&cfg.replace("/old", "/health"));
    assert!(!o.success);
    assert_eq!(o.failure.as_deref(), Some("processing timeout after 1s"));
    assert!(o.duration >= Duration::from_secs(1) && o.status.is_none());

    mode.store(HUGE, Ordering::SeqCst);
    let o = probe(&format!(
        "name = \"big\"\nurl = \"http://127.0.0.1:{port}/health\"\ntimeout_secs = 5\nconditions = [\"[BODY].status == UP\"]"
    ));
    assert_eq!(o.status, Some(200), "{:?}", o.failure);
    assert_eq!(o.body.len(), 1 << 20, "the body kept for conditions is bounded");
    assert!(
        !o.success && o.conditions[0].value == "(none)",
        "{:?}",
        o.conditions
    );

    mode.store(CLOSE, Ordering::SeqCst);
    let o = probe(&cfg);
    assert!(!o.success);
    let f = o.failure.unwrap();
    assert!(
        f.starts_with(&format!("no HTTP response from http://127.0.0.1:{port}/health")),
        "{f}"
    );
}

#[test]
fn https_certificate_that_expires_in_three_days() {
    let dir = tempfile::tempdir().unwrap();
    let three_days = Duration::from_secs(3 * 86400 + 3600);
    let (ca, cert, key) = obs_e2e::tls_files_expiring(dir.path(), Some(three_days));
    let port = https_server(&cert, &key);
    let url = format!("https://localhost:{port}/health");
    let o = probe(&format!(
        "name = \"tls\"\nurl = \"{url}\"\nca_file = \"{}\"\nconditions = [\"[CERTIFICATE_EXPIRATION] > 336h\"]",
        ca.display()
    ));
    assert_eq!((o.status, o.tls), (Some(200), true), "{o:?}");
    let expiry = o.cert_not_after.expect("the certificate's expiry");
    let left = expiry - obs_e2e::now_ns() / 1_000_000_000;
    assert!((3 * 86400..3 * 86400 + 3700).contains(&left), "{left}s left");
    assert!(phase(&o, "tls").is_some());
    assert!(!o.success);
    let f = o.failure.unwrap();
    assert!(
        f.starts_with(&format!("TLS certificate of {url} expires in 3 days")),
        "{f}"
    );
    // 48h is still fine.
    let o = probe(&format!(
        "name = \"tls\"\nurl = \"{url}\"\nca_file = \"{}\"\nconditions = [\"[CERTIFICATE_EXPIRATION] > 48h\"]",
        ca.display()
    ));
    assert!(o.success, "{o:?}");
    // Without the private CA the certificate is not trusted...
    let o = probe(&format!("name = \"tls\"\nurl = \"{url}\""));
    assert!(!o.success && o.status.is_none());
    let f = o.failure.unwrap();
    assert!(
        f.contains("TLS handshake with localhost") && f.contains("UnknownIssuer"),
        "{f}"
    );
    // ...unless verification is off, and the expiry is still reported.
    let o = probe(&format!(
        "name = \"tls\"\nurl = \"{url}\"\ntls_skip_verify = true"
    ));
    assert!(o.success && o.cert_not_after == Some(expiry), "{o:?}");
}

#[test]
fn tcp_dns_and_icmp() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = probe(&format!("name = \"db\"\ntcp = \"127.0.0.1:{refused}\""));
    assert!(!o.success && !o.connected);
    let f = o.failure.unwrap();
    assert!(
        f.contains(&format!("cannot connect to 127.0.0.1:{refused}")) && f.contains("refused"),
        "{f}"
    );
    // A probe that wants the port closed.
    let o = probe(&format!(
        "name = \"closed\"\ntcp = \"127.0.0.1:{refused}\"\nconditions = [\"[CONNECTED] == false\"]"
    ));
    assert!(o.success, "{o:?}");
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = probe(&format!(
        "name = \"db\"\ntcp = \"127.0.0.1:{}\"",
        open.local_addr().unwrap().port()
    ));
    assert!(o.success && o.connected, "{o:?}");

    let dns = dns_server();
    let o = probe(&format!(
        "name = \"dns\"\ndns = \"app.mesh\"\nserver = \"127.0.0.1:{dns}\"\nconditions = [\"[IP] == 10.1.2.3\", \"[DNS_RCODE] == NOERROR\"]"
    ));
    assert!(o.success, "{o:?}");
    assert_eq!(o.dns_answers, ["A 10.1.2.3"]);
    assert!(phase(&o, "query").is_some());
    let o = probe(&format!(
        "name = \"dns\"\ndns = \"gone.mesh\"\nserver = \"127.0.0.1:{dns}\""
    ));
    assert!(!o.success);
    assert_eq!(o.dns_rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(o.failure.as_deref(), Some("DNS NXDOMAIN for gone.mesh"));

    // Ping works where the kernel allows it; where it does not, the error says what to set.
    let o = probe("name = \"lo\"\nicmp = \"127.0.0.1\"\ntimeout_secs = 2");
    match o.failure {
        None => assert!(o.success && phase(&o, "rtt").is_some(), "{o:?}"),
        Some(f) => assert!(f.contains("net.ipv4.ping_group_range"), "{f}"),
    }
}
