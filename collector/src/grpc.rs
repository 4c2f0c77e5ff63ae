//! The OTLP/gRPC client: one unary `Export` call per request, over a tonic [`Channel`]
//! (HTTP/2, TLS, connect and request timeouts), with the gRPC message framed here.
//!
//! Why not `tonic::client::Grpc`: it compresses every message itself at a fixed level
//! (zstd 3, gzip 6) on the connection task, and that was a quarter of the collector's CPU.
//! Framing the message by hand (a 5-byte prefix: compressed flag, big-endian length) lets
//! the collector compress at zstd level 1, which on logs is faster and compresses as well
//! or better, and compress once however many times a request is retried. The answer is
//! read the same way: HTTP status, `grpc-status` in the trailers (or headers, for a
//! trailers-only answer), then the one response message.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tonic::codegen::http::{self, header, HeaderValue, StatusCode};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use crate::spool::Kind;

/// Request compression, named as `grpc-encoding` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn parse(name: &str) -> crate::Result<Compression> {
        Ok(match name {
            "zstd" => Compression::Zstd,
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            other => {
                return Err(crate::error::config(format!(
                    "compression {other:?}: use zstd, gzip or none"
                )))
            }
        })
    }

    fn header(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

/// Zstd level for requests: the fastest of the regular levels; on log lines it also
/// compresses better than the default 3.
const ZSTD_LEVEL: i32 = 1;

std::thread_local! {
    /// One zstd context per thread, reused: making one per request cost a few percent.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `message` as one gRPC length-prefixed message (flag, big-endian length, bytes),
/// compressed as asked.
pub(crate) fn frame(message: &[u8], compression: Compression) -> std::io::Result<Bytes> {
    let mut out = match compression {
        Compression::None => {
            let mut out = Vec::with_capacity(5 + message.len());
            out.extend_from_slice(&[0; 5]);
            out.extend_from_slice(message);
            out
        }
        Compression::Zstd => {
            // Compressed straight after the prefix.
            let bound = zstd::zstd_safe::compress_bound(message.len());
            let mut out = std::io::Cursor::new(Vec::with_capacity(5 + bound));
            out.get_mut().extend_from_slice(&[1; 5]);
            out.set_position(5);
            ZSTD.with_borrow_mut(|z| {
                let z = match z {
                    Some(z) => z,
                    None => z.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
                };
                z.compress_to_buffer(message, &mut out)
            })?;
            out.into_inner()
        }
        Compression::Gzip => {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(vec![1; 5], flate2::Compression::default());
            gz.write_all(message)?;
            gz.finish()?
        }
    };
    let len = u32::try_from(out.len() - 5)
        .map_err(|_| std::io::Error::other("a gRPC message cannot exceed 4 GiB"))?;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Ok(Bytes::from(out))
}

fn path(kind: Kind) -> &'static str {
    match kind {
        Kind::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        Kind::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Kind::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    }
}

/// The gRPC code for an HTTP status that is not 200, as gRPC's HTTP-to-gRPC status
/// mapping gives it (a proxy in between may answer with one).
fn code_of_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// An export answer is a few bytes (a partial success at most); more is not read.
const MAX_ANSWER: usize = 16 << 20;

/// The one response message of a unary call, or the call's error status.
async fn answer(resp: http::Response<tonic::body::Body>) -> Result<Bytes, Status> {
    let (parts, body) = resp.into_parts();
    let in_headers = Status::from_header_map(&parts.headers);
    if let Some(s) = in_headers.as_ref().filter(|s| s.code() != Code::Ok) {
        return Err(s.clone());
    }
    if parts.status != StatusCode::OK {
        return Err(Status::new(
            code_of_http(parts.status),
            format!("HTTP {} instead of a gRPC answer", parts.status),
        ));
    }
    let got = Limited::new(body, MAX_ANSWER).collect().await.map_err(|e| {
        Status::unavailable(format!("the answer broke off or passed {MAX_ANSWER} bytes: {e}"))
    })?;
    match got.trailers().and_then(Status::from_header_map).or(in_headers) {
        Some(s) if s.code() == Code::Ok => {}
        Some(s) => return Err(s),
        None => return Err(Status::internal("the answer carried no grpc-status")),
    }
    let data = got.to_bytes();
    // The message matters only for a partial success; a compressed one (never asked for)
    // or none at all reads as a plain success.
    let Some(&[0, a, b, c, d]) = data.get(..5) else {
        return Ok(Bytes::new());
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    match data.len() >= 5 + len {
        true => Ok(data.slice(5..5 + len)),
        false => Err(Status::internal("the answer's message is cut short")),
    }
}

/// One OTLP/gRPC destination.
#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    channel: Channel,
    auth: Option<HeaderValue>,
    compression: Compression,
    endpoint: String,
}

impl Exporter {
    /// Builds the client; connects lazily, so a store that is down is not an error here.
    pub(crate) fn new(cfg: &crate::export::ExportConfig) -> crate::Result<Exporter> {
        let mut ep = Endpoint::from_shared(cfg.endpoint.clone())
            .map_err(|e| {
                crate::error::config(format!("store endpoint {:?} is not a URL: {e}", cfg.endpoint))
            })?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .tcp_keepalive(Some(Duration::from_secs(30)));
        if cfg.endpoint.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca).map_err(|source| crate::Error::Read {
                    what: "store's CA file".into(),
                    path: ca.clone(),
                    source,
                })?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            ep = ep
                .tls_config(tls)
                .map_err(|e| crate::error::config(format!("TLS to the store {}: {e}", cfg.endpoint)))?;
        }
        let auth = match &cfg.token {
            Some(t) => Some(format!("Bearer {}", t.trim()).parse().map_err(|_| {
                crate::error::config(
                    "the store token has characters a header cannot carry: check the token file",
                )
            })?),
            None => None,
        };
        Ok(Exporter {
            channel: ep.connect_lazy(),
            auth,
            compression: Compression::parse(&cfg.compression)?,
            endpoint: cfg.endpoint.clone(),
        })
    }

    /// Sends one request (an encoded `Export*ServiceRequest`); returns the answer message.
    pub(crate) async fn send(&self, kind: Kind, body: Bytes) -> Result<Bytes, Status> {
        let framed = frame(&body, self.compression)
            .map_err(|e| Status::internal(format!("cannot compress a request: {e}")))?;
        let mut req = http::Request::post(path(kind))
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers");
        if let Some(enc) = self.compression.header() {
            req = req.header("grpc-encoding", enc);
        }
        if let Some(a) = &self.auth {
            req = req.header(header::AUTHORIZATION, a.clone());
        }
        let req = req
            .body(tonic::body::Body::new(Full::new(framed)))
            .map_err(|e| Status::internal(format!("cannot build a request: {e}")))?;
        let unreachable = |e: tonic::transport::Error| {
            let mut msg = format!("cannot reach {}: {e}", self.endpoint);
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            Status::unavailable(msg)
        };
        let mut channel = self.channel.clone();
        let resp = channel
            .ready()
            .await
            .map_err(unreachable)?
            .call(req)
            .await
            .map_err(unreachable)?;
        answer(resp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_flag_and_length_and_decompress_back() {
        let msg = b"a log line, a log line, a log line, a log line".repeat(100);
        let plain = frame(&msg, Compression::None).unwrap();
        assert_eq!(plain[0], 0);
        assert_eq!(
            u32::from_be_bytes(plain[1..5].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(&plain[5..], &msg[..]);

        let z = frame(&msg, Compression::Zstd).unwrap();
        assert_eq!(z[0], 1);
        assert_eq!(
            u32::from_be_bytes(z[1..5].try_into().unwrap()) as usize,
            z.len() - 5
        );
        assert_eq!(zstd::bulk::decompress(&z[5..], msg.len()).unwrap(), msg);

        let g = frame(&msg, Compression::Gzip).unwrap();
        assert_eq!(g[0], 1);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&g[5..]), &mut out).unwrap();
        assert_eq!(out, msg);
        assert!(Compression::parse("lz4").is_err());
    }

    fn response(
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> http::Response<tonic::body::Body> {
        let mut map = http::HeaderMap::new();
        for (k, v) in trailers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let body = http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::copy_from_slice(body))),
            Ok(http_body::Frame::trailers(map)),
        ]));
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(tonic::body::Body::new(body)).unwrap()
    }

    #[tokio::test]
    async fn answers_read_status_from_trailers_headers_or_http() {
        let msg = frame(b"partial", Compression::None).unwrap();
        let ok = answer(response(200, &[], &msg, &[("grpc-status", "0")]))
            .await
            .unwrap();
        assert_eq!(&ok[..], b"partial");

        let err = answer(response(
            200,
            &[],
            b"",
            &[("grpc-status", "3"), ("grpc-message", "bad%20batch")],
        ))
        .await
        .unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "bad batch"));

        // Trailers-only: the status comes in the headers.
        let err = answer(response(200, &[("grpc-status", "16")], b"", &[]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);

        let err = answer(response(503, &[], b"busy", &[])).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        let err = answer(response(200, &[], &msg, &[])).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "no grpc-status at all");
        let err = answer(response(200, &[], &msg[..7], &[("grpc-status", "0")]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "cut short");
    }
}
