//! OTLP/gRPC ingest (tonic): the `Export` methods of the collector services, with gzip and
//! zstd request compression and bearer-token auth (role `ingest`) from the `authorization`
//! metadata. Bad data is `INVALID_ARGUMENT` (do not retry); a store that cannot write answers
//! `UNAVAILABLE` (retry).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::api::params::{now_ns, MAX_BODY_BYTES};
use crate::auth::{AuthError, Tokens};
use crate::convert;
use crate::ingest::{Engine, IngestError};
use crate::Role;

fn status(e: IngestError) -> Status {
    match e {
        IngestError::BadRequest(m) | IngestError::Limit(m) => Status::invalid_argument(m),
        IngestError::Unavailable(m) => Status::unavailable(m),
    }
}

/// Checks the bearer token in the request metadata.
#[derive(Clone, Debug)]
pub(crate) struct Auth(pub(crate) Tokens);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.0.check(header, Role::Ingest) {
            Ok(()) => Ok(req),
            Err(AuthError::Forbidden { name, .. }) => Err(Status::permission_denied(format!(
                "token {name:?} lacks the ingest role"
            ))),
            Err(AuthError::Missing) => Err(Status::unauthenticated("missing bearer token")),
            Err(AuthError::Unknown) => Err(Status::unauthenticated("unknown token")),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Logs(pub(crate) Engine);

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let batch = convert::otlp_logs(req.get_ref(), now_ns());
        let lines = batch.entry_count();
        let (rejected, reason) = match self.0.ingest_logs(batch).await {
            Ok(too_old) => (too_old, convert::TOO_OLD),
            // Over a limit: refused whole, said in a partial success (a retry cannot help).
            Err(IngestError::Limit(reason)) => {
                return Ok(Response::new(convert::refused_logs(lines, reason)))
            }
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: reason.into(),
            }),
        }))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Traces(pub(crate) Engine);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let batch = convert::otlp_traces(req.get_ref()).map_err(Status::invalid_argument)?;
        let too_old = self.0.ingest_spans(batch).await.map_err(status)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (too_old > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: too_old as i64,
                error_message: "spans older than the retention period were not stored".into(),
            }),
        }))
    }
}

pub(crate) fn trace_service(
    engine: Engine,
    tokens: Tokens,
) -> InterceptedService<TraceServiceServer<Traces>, Auth> {
    let svc = TraceServiceServer::new(Traces(engine))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_BODY_BYTES);
    InterceptedService::new(svc, Auth(tokens))
}

#[derive(Debug)]
pub(crate) struct Metrics(Engine);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        req: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let (rejected, reason) = self.0.ingest_otlp_metrics(req.get_ref()).await.map_err(status)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message: reason.unwrap_or_default(),
            }),
        }))
    }
}

pub(crate) fn metrics_service(
    engine: Engine,
    tokens: Tokens,
) -> InterceptedService<MetricsServiceServer<Metrics>, Auth> {
    let svc = MetricsServiceServer::new(Metrics(engine))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_BODY_BYTES);
    InterceptedService::new(svc, Auth(tokens))
}

pub(crate) fn logs_service(
    engine: Engine,
    tokens: Tokens,
) -> InterceptedService<LogsServiceServer<Logs>, Auth> {
    let svc = LogsServiceServer::new(Logs(engine))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_BODY_BYTES);
    InterceptedService::new(svc, Auth(tokens))
}
