//! OTLP/HTTP ingest (`/v1/logs`, `/v1/traces`, `/v1/metrics`): protobuf or
//! JSON bodies, optionally gzip'd. Answers as the OTLP spec asks: the response in the request's
//! encoding; errors as a `google.rpc.Status` (protobuf) or its JSON form, 400 for bad data
//! (the client must not retry) and 503 when a retry can help.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::params::{now_ns, read_body};
use super::AppState;
use crate::convert;
use crate::ingest::IngestError;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Proto,
    Json,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, (StatusCode, String)> {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
    {
        t if t.starts_with("application/x-protobuf") || t.starts_with("application/protobuf") => {
            Ok(Encoding::Proto)
        }
        t if t.starts_with("application/json") => Ok(Encoding::Json),
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {other:?}: use application/x-protobuf or application/json"),
        )),
    }
}

/// `google.rpc.Status`, the OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error(enc: Encoding, status: StatusCode, message: String) -> Response {
    // gRPC codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE.
    let code = match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        _ => 14,
    };
    match enc {
        Encoding::Proto => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus { code, message }.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            axum::Json(serde_json::json!({"code": code, "message": message})),
        )
            .into_response(),
    }
}

fn ingest_error(enc: Encoding, e: IngestError) -> Response {
    match e {
        IngestError::BadRequest(m) | IngestError::Limit(m) => error(enc, StatusCode::BAD_REQUEST, m),
        IngestError::Unavailable(m) => error(enc, StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

/// Decodes an OTLP request body in either encoding.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    enc: Encoding,
    body: &[u8],
) -> Result<T, String> {
    match enc {
        Encoding::Proto => T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}")),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| format!("invalid OTLP JSON: {e}")),
    }
}

fn respond<T: Message + serde::Serialize>(enc: Encoding, msg: &T) -> Response {
    match enc {
        Encoding::Proto => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            msg.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => axum::Json(msg).into_response(),
    }
}

/// Reads and decodes an OTLP request; on failure, the response to send.
async fn request<T>(headers: &HeaderMap, body: Body) -> Result<(Encoding, T), Response>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    let enc = encoding(headers).map_err(IntoResponse::into_response)?;
    let body = read_body(headers, body)
        .await
        .map_err(|(status, msg)| error(enc, status, msg))?;
    let req = decode(enc, &body).map_err(|msg| error(enc, StatusCode::BAD_REQUEST, msg))?;
    Ok((enc, req))
}

async fn logs(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (enc, req): (_, ExportLogsServiceRequest) = match request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let batch = convert::otlp_logs(&req, now_ns());
    let lines = batch.entry_count();
    let too_old = match st.engine.ingest_logs(batch).await {
        Ok(n) => n,
        Err(IngestError::Limit(reason)) => return respond(enc, &convert::refused_logs(lines, reason)),
        Err(e) => return ingest_error(enc, e),
    };
    let mut resp = ExportLogsServiceResponse::default();
    if too_old > 0 {
        resp.partial_success = Some(ExportLogsPartialSuccess {
            rejected_log_records: too_old as i64,
            error_message: convert::TOO_OLD.into(),
        });
    }
    respond(enc, &resp)
}

async fn traces(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (enc, req): (_, ExportTraceServiceRequest) = match request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let batch = match convert::otlp_traces(&req) {
        Ok(b) => b,
        Err(msg) => return error(enc, StatusCode::BAD_REQUEST, msg),
    };
    let too_old = match st.engine.ingest_spans(batch).await {
        Ok(n) => n,
        Err(e) => return ingest_error(enc, e),
    };
    let mut resp = ExportTraceServiceResponse::default();
    if too_old > 0 {
        resp.partial_success = Some(ExportTracePartialSuccess {
            rejected_spans: too_old as i64,
            error_message: convert::TOO_OLD.into(),
        });
    }
    respond(enc, &resp)
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (enc, req): (_, ExportMetricsServiceRequest) = match request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (rejected, reason) = match st.engine.ingest_otlp_metrics(&req).await {
        Ok(r) => r,
        Err(e) => return ingest_error(enc, e),
    };
    let mut resp = ExportMetricsServiceResponse::default();
    if rejected > 0 {
        resp.partial_success = Some(ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message: reason.unwrap_or_default(),
        });
    }
    respond(enc, &resp)
}
