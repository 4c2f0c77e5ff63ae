//! HTTP(S) probes. Each phase is timed as blackbox_exporter times it: `resolve` (the
//! system resolver), `connect` (TCP), `tls` (the rustls handshake; the peer chain's earliest
//! NotAfter is read with x509-parser), `processing` (request sent until the response
//! headers) and `transfer` (the body). A connection is made by hand rather than through a
//! pooled client so that each phase is seen, and every request gets a fresh connection as
//! a visitor's would. Redirects are followed up to 10, their phases summed. The first MiB
//! of the body is kept for conditions; the rest is read and dropped.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Checked, Outcome, Phases};

const MAX_REDIRECTS: u32 = 10;
/// Body bytes kept for conditions.
const KEEP_BODY: usize = 1 << 20;

pub(super) fn parse_url(u: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(u).map_err(|e| format!("url = {u:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url = {u:?} must start with http:// or https://"));
    }
    if url.host().is_none() {
        return Err(format!("url = {u:?} has no host"));
    }
    Ok(url)
}

/// Checks `headers` as HTTP header names and values.
pub(super) fn parse_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header {k:?} is not a header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("header {k:?} has a value that cannot be sent"))?;
            Ok((name, value))
        })
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client config: the web's roots plus `ca_file`, or no verification at all. The
/// common case (neither) is built once and shared by every probe.
pub(super) fn tls_config(skip_verify: bool, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let builder = || {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))
    };
    if skip_verify {
        return Ok(Arc::new(
            builder()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
                .with_no_client_auth(),
        ));
    }
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let Some(ca) = ca_file else {
        if let Some(c) = DEFAULT.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(builder()?.with_root_certificates(roots).with_no_client_auth());
        return Ok(DEFAULT.get_or_init(|| c).clone());
    };
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no PEM certificate", ca.display()));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    }
    Ok(Arc::new(
        builder()?.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// `tls_skip_verify`: any certificate is accepted, but handshake signatures are still
/// checked against the certificate presented.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Requests `url`, following redirects.
pub(super) async fn check(
    probe: &Checked,
    url: &url::Url,
    o: &mut Outcome,
    ph: &mut Phases,
) -> Result<(), String> {
    let p = &probe.probe;
    let mut url = url.clone();
    let mut method =
        Method::from_bytes(p.method.as_deref().unwrap_or("GET").as_bytes()).unwrap_or(Method::GET);
    let mut body = p.body.clone().unwrap_or_default();
    loop {
        let location = request(probe, &url, &method, &body, o, ph).await?;
        let redirect = matches!(o.status, Some(301 | 302 | 303 | 307 | 308));
        let Some(loc) = location.filter(|_| redirect && p.follow_redirects) else {
            return Ok(());
        };
        if o.redirects == MAX_REDIRECTS {
            return Err(format!(
                "more than {MAX_REDIRECTS} redirects from {}",
                probe.target()
            ));
        }
        url = url
            .join(&loc)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("{url} redirects to {loc:?}, which is not an http(s) URL"))?;
        o.redirects += 1;
        if o.status == Some(303) || (matches!(o.status, Some(301 | 302)) && method == Method::POST) {
            method = Method::GET;
            body.clear();
        }
        ph.enter("resolve");
    }
}

/// One request on a new connection; the `Location` of the answer.
async fn request(
    probe: &Checked,
    url: &url::Url,
    method: &Method,
    body: &str,
    o: &mut Outcome,
    ph: &mut Phases,
) -> Result<Option<String>, String> {
    let p = &probe.probe;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{url} has no host")),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = super::resolve(&host, port, p.ip_protocol).await?;
    o.ip = Some(addr.ip());
    ph.enter("connect");
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr} for {url}: {e}"))?;
    o.connected = true;
    let mut req = Request::builder()
        .method(method.clone())
        .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
        .header(HOST, &url[url::Position::BeforeHost..url::Position::AfterPort])
        .header(USER_AGENT, concat!("obs-probe/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("cannot build the request for {url}: {e}"))?;
    for (k, v) in parse_headers(&p.headers)? {
        req.headers_mut().insert(k, v);
    }
    if url.scheme() != "https" {
        o.tls = false;
        o.cert_not_after = None;
        return exchange(tcp, req, url, o, ph).await;
    }
    ph.enter("tls");
    let cfg = match &probe.tls {
        Some(c) => c.clone(),
        None => tls_config(p.tls_skip_verify, p.ca_file.as_deref())?,
    };
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host} as a TLS name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
    o.tls = true;
    o.cert_not_after = earliest_not_after(stream.get_ref().1.peer_certificates().unwrap_or_default());
    exchange(stream, req, url, o, ph).await
}

/// The earliest NotAfter of a certificate chain, in Unix seconds.
fn earliest_not_after(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

/// Aborts the connection task when the exchange ends or is cut off by the timeout.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<S>(
    io: S,
    req: Request<Full<Bytes>>,
    url: &url::Url,
    o: &mut Outcome,
    ph: &mut Phases,
) -> Result<Option<String>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ph.enter("processing");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP to {url}: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("no HTTP response from {url}: {e}"))?;
    o.status = Some(resp.status().as_u16());
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ph.enter("transfer");
    let mut body = resp.into_body();
    o.body.clear();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body from {url}: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = KEEP_BODY.saturating_sub(o.body.len());
            o.body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(location)
}
