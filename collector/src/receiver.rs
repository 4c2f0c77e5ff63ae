//! The OTLP receiver for local apps (gRPC on 4317, HTTP on 4318, the standard ports) and the
//! collector's own `/metrics` on the HTTP port.
//!
//! A request is answered only once it is in the spool and the spool is fsynced (group
//! commit), so an app whose export succeeded never loses it to a collector crash. A malformed
//! request gets 400 / `InvalidArgument` naming what was wrong. Non-loopback addresses need a
//! token (`otlp_token_file`): the collector refuses to start without one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response as GrpcResponse, Status};

use crate::spool::{Kind, Spool};
use crate::Stats;

/// Largest request body accepted (as the store does).
const MAX_BODY_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
struct Receiver {
    spool: Arc<Spool>,
    token: Option<Arc<str>>,
    stats: Arc<Stats>,
}

impl Receiver {
    /// Spools one encoded request and waits for it to be durable.
    async fn accept(&self, kind: Kind, body: Vec<u8>) -> Result<(), String> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || {
            let pos = spool.append(kind, &body)?;
            spool.sync_to(pos)
        })
        .await
        .map_err(|e| format!("spool task failed: {e}"))?
        .map_err(|e| format!("cannot write to the spool: {e}"))
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(t) => header
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|h| h.trim() == &**t),
        }
    }

    fn check_grpc<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let h = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.authorized(h) {
            true => Ok(()),
            false => Err(Status::unauthenticated("missing or wrong bearer token")),
        }
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<GrpcResponse<ExportLogsServiceResponse>, Status> {
        self.check_grpc(&req)?;
        let body = req.into_inner().encode_to_vec();
        self.accept(Kind::Logs, body).await.map_err(Status::unavailable)?;
        Ok(GrpcResponse::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<GrpcResponse<ExportTraceServiceResponse>, Status> {
        self.check_grpc(&req)?;
        let body = req.into_inner().encode_to_vec();
        self.accept(Kind::Traces, body)
            .await
            .map_err(Status::unavailable)?;
        Ok(GrpcResponse::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        req: Request<ExportMetricsServiceRequest>,
    ) -> Result<GrpcResponse<ExportMetricsServiceResponse>, Status> {
        self.check_grpc(&req)?;
        let body = req.into_inner().encode_to_vec();
        self.accept(Kind::Metrics, body)
            .await
            .map_err(Status::unavailable)?;
        Ok(GrpcResponse::new(ExportMetricsServiceResponse::default()))
    }
}

fn plain(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

/// Decodes an OTLP/HTTP body (protobuf or JSON, optionally gzip) to protobuf bytes.
fn decode_http<T: Message + Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<u8>, bool), String> {
    let gz;
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("invalid gzip body: {e}"))?;
            gz = out;
            &gz[..]
        }
        None | Some("identity") => body,
        Some(other) => {
            return Err(format!(
                "unsupported Content-Encoding {other:?}: use gzip or none"
            ))
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") {
        let msg: T = serde_json::from_slice(body).map_err(|e| format!("invalid OTLP JSON: {e}"))?;
        Ok((msg.encode_to_vec(), true))
    } else if ctype.starts_with("application/x-protobuf") || ctype.starts_with("application/protobuf") {
        T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))?;
        Ok((body.to_vec(), false))
    } else {
        Err(format!(
            "unsupported Content-Type {ctype:?}: use application/x-protobuf or application/json"
        ))
    }
}

async fn http_export<T: Message + Default + serde::de::DeserializeOwned>(
    r: &Receiver,
    kind: Kind,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !r.authorized(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        return plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
    }
    let (encoded, json) = match decode_http::<T>(&headers, &body) {
        Ok(x) => x,
        Err(msg) => return plain(StatusCode::BAD_REQUEST, msg),
    };
    if let Err(msg) = r.accept(kind, encoded).await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, msg);
    }
    // An empty Export*ServiceResponse: `{}` in JSON, zero bytes in protobuf.
    match json {
        true => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        false => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response(),
    }
}

/// Refuses a non-loopback listener without a token.
pub(crate) fn check_addr(addr: SocketAddr, token: Option<&str>, what: &str) -> crate::Result<()> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(crate::error::config(format!(
            "refusing to listen on {addr} ({what}) without a token: set [collector] otlp_token_file, or keep the receiver on 127.0.0.1"
        )));
    }
    Ok(())
}

/// Binds both listeners now (so a port in use is reported at start) and serves them until
/// shutdown.
pub(crate) async fn start(
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    token: Option<String>,
    spool: Arc<Spool>,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<tokio::task::JoinHandle<()>> {
    check_addr(grpc_addr, token.as_deref(), "OTLP/gRPC receiver")?;
    check_addr(http_addr, token.as_deref(), "OTLP/HTTP receiver")?;
    let r = Receiver {
        spool,
        token: token.map(|t| Arc::from(t.trim())),
        stats,
    };
    let bind = |addr: SocketAddr, what: &'static str| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| crate::Error::Listen { addr, what, source })
    };
    let grpc_listener = bind(grpc_addr, "OTLP/gRPC receiver").await?;
    let http_listener = bind(http_addr, "OTLP/HTTP receiver").await?;
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "OTLP receiver listening");
    let app = axum::Router::new()
        .route(
            "/v1/logs",
            post(|State(r): State<Receiver>, h: HeaderMap, b: Bytes| async move {
                http_export::<ExportLogsServiceRequest>(&r, Kind::Logs, h, b).await
            }),
        )
        .route(
            "/v1/traces",
            post(|State(r): State<Receiver>, h: HeaderMap, b: Bytes| async move {
                http_export::<ExportTraceServiceRequest>(&r, Kind::Traces, h, b).await
            }),
        )
        .route(
            "/v1/metrics",
            post(|State(r): State<Receiver>, h: HeaderMap, b: Bytes| async move {
                http_export::<ExportMetricsServiceRequest>(&r, Kind::Metrics, h, b).await
            }),
        )
        .route(
            "/metrics",
            get(|State(r): State<Receiver>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::render(&r.stats, &r.spool),
                )
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(r.clone());
    let grpc = tonic::transport::Server::builder()
        .add_service(
            LogsServiceServer::new(r.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_BODY_BYTES),
        )
        .add_service(
            TraceServiceServer::new(r.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_BODY_BYTES),
        )
        .add_service(
            MetricsServiceServer::new(r)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_BODY_BYTES),
        );
    let mut stop_http = shutdown.clone();
    Ok(tokio::spawn(async move {
        let grpc = grpc.serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            async move {
                let _ = shutdown.wait_for(|s| *s).await;
            },
        );
        let http = axum::serve(http_listener, app).with_graceful_shutdown(async move {
            let _ = stop_http.wait_for(|s| *s).await;
        });
        let (g, h) = tokio::join!(grpc, http);
        if let Err(e) = g {
            tracing::error!(error = %e, "OTLP/gRPC receiver stopped");
        }
        if let Err(e) = h {
            tracing::error!(error = %e, "OTLP/HTTP receiver stopped");
        }
    }))
}
