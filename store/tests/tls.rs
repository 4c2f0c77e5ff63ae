//! `[store.tls]` serves the HTTP API over TLS (rustls): a client that trusts the certificate
//! gets answers; plain HTTP gets none; a bad certificate file is a clear start-up error.

use std::sync::Arc;
use std::time::Duration;

use obs_store::{Store, StoreConfig};

#[tokio::test]
async fn http_api_is_served_over_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let cfg: StoreConfig = toml::from_str(&format!(
        "http_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        dir.path().join("cert.pem"),
        dir.path().join("key.pem")
    ))
    .unwrap();
    let settings = cfg.resolve(dir.path().join("data")).unwrap();
    let store = Store::bind(settings).await.unwrap();
    let port = store.http_addr().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(store.serve(async move {
        let _ = stop_rx.await;
    }));

    let body = tokio::task::spawn_blocking(move || {
        let root = ureq_tls::tls::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        let tls = ureq_tls::tls::TlsConfig::builder()
            .root_certs(ureq_tls::tls::RootCerts::Specific(Arc::new(vec![root])))
            .build();
        let agent: ureq_tls::Agent = ureq_tls::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let plain = agent.get(&format!("http://localhost:{port}/ready")).call();
        assert!(plain.is_err(), "plain HTTP must not be answered on a TLS port");
        let mut resp = agent
            .get(&format!("https://localhost:{port}/ready"))
            .call()
            .unwrap();
        resp.body_mut().read_to_string().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(body, "ready\n");
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn a_missing_certificate_file_is_a_clear_error() {
    let cfg: StoreConfig =
        toml::from_str("[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n")
            .unwrap();
    let err = cfg.resolve("/tmp/obs-unused".into()).unwrap_err().to_string();
    assert!(
        err.contains("cannot read the TLS certificate /nonexistent/cert.pem"),
        "{err}"
    );
}
