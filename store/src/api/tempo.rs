//! Tempo-compatible API for Grafana's Tempo data source: traces by id (OTLP protobuf for
//! `Accept: application/protobuf`, OTLP JSON otherwise), TraceQL and legacy tag search, tag
//! names and values (v1 and v2 shapes), echo and buildinfo. Errors are plain text, as Tempo's.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{json, Value};

use super::params::{now_ns, parse_duration_ns, parse_time_ns, Params};
use super::AppState;
use crate::traceql::{self, Expr, Field, Query, Scope, SpanView};
use crate::traces::{assemble, group_by_trace, StoredSpan};

/// The Tempo version we answer as: Grafana enables features by it.
pub(crate) const TEMPO_COMPAT_VERSION: &str = "2.6.0";
/// Spans a search may read before it must be narrowed.
const MAX_SPANS_SCANNED: usize = 200_000;
/// Spans returned for one trace.
const MAX_TRACE_SPANS: usize = 50_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(buildinfo))
}

#[derive(Debug)]
pub(crate) struct TempoError(StatusCode, String);

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1 + "\n",
        )
            .into_response()
    }
}

type Result<T> = std::result::Result<T, TempoError>;

fn bad(msg: impl Into<String>) -> TempoError {
    TempoError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> TempoError {
    TempoError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Runs query work off the async threads, on a deep stack (see [`crate::guard`]).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(move || crate::guard::deep(f))
        .await
        .map_err(internal)?
}

/// A trace id as 32 lowercase hex digits (shorter ids are left-padded, as Tempo does).
fn normalize_id(id: &str) -> Result<String> {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "invalid trace id {id:?}: expected up to 32 hex digits"
        )));
    }
    Ok(format!("{id:0>32}"))
}

fn wants_proto(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

/// `tempopb.TraceByIDResponse` (v2), declared by hand: its field 1 is the trace, whose field 1
/// is the repeated `ResourceSpans` — the same wire shape as OTLP `TracesData`.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

async fn load_trace(st: &AppState, id: &str) -> Result<TracesData> {
    let id = normalize_id(id)?;
    let st = st.clone();
    let spans = blocking(move || st.engine.traces().trace(&id, MAX_TRACE_SPANS).map_err(internal)).await?;
    if spans.is_empty() {
        return Err(TempoError(StatusCode::NOT_FOUND, "trace not found".into()));
    }
    Ok(TracesData {
        resource_spans: assemble(&spans),
    })
}

fn proto(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
}

async fn trace_v1(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let data = load_trace(&st, &id).await?;
    if wants_proto(&headers) {
        return Ok(proto(data.encode_to_vec()));
    }
    Ok(Json(json!({"batches": data.resource_spans})).into_response())
}

async fn trace_v2(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let data = load_trace(&st, &id).await?;
    if wants_proto(&headers) {
        return Ok(proto(TraceByIdResponse { trace: Some(data) }.encode_to_vec()));
    }
    Ok(Json(json!({"trace": {"resourceSpans": data.resource_spans}, "status": "COMPLETE"})).into_response())
}

/// `[start, end)` in ns from Tempo's Unix-seconds params; default: the last 24 hours.
fn window(p: &Params) -> Result<(i64, i64)> {
    let end = p
        .get("end")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .map_or_else(now_ns, |e| e + 1_000_000_000);
    let start = p
        .get("start")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or(end - 86_400_000_000_000);
    if end <= start {
        return Err(bad("end must be after start"));
    }
    Ok((start, end))
}

/// Legacy search (`tags`, `minDuration`, `maxDuration`) as the TraceQL it means.
fn legacy_query(p: &Params) -> Result<String> {
    let mut conds = Vec::new();
    if let Some(tags) = p.get("tags") {
        for (k, v) in crate::logql::pipeline::logfmt_pairs(tags) {
            let field = if matches!(k.as_str(), "name" | "status" | "kind") {
                k
            } else {
                format!(".{k}")
            };
            let value = if field == "status" || field == "kind" {
                v
            } else {
                format!("{v:?}")
            };
            conds.push(format!("{field} = {value}"));
        }
    }
    for (param, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(d) = p.get(param) {
            let ns = parse_duration_ns(d).map_err(bad)?;
            conds.push(format!("duration {op} {}ns", ns));
        }
    }
    Ok(format!("{{ {} }}", conds.join(" && ")))
}

fn leaves(q: &Query) -> Vec<&Expr> {
    match q {
        Query::Spanset(e) => vec![e],
        Query::And(a, b) | Query::Or(a, b) => {
            let mut v = leaves(a);
            v.extend(leaves(b));
            v
        }
    }
}

fn trace_matches(q: &Query, spans: &[StoredSpan]) -> bool {
    match q {
        Query::Spanset(e) => spans.iter().any(|s| e.matches(s)),
        Query::And(a, b) => trace_matches(a, spans) && trace_matches(b, spans),
        Query::Or(a, b) => trace_matches(a, spans) || trace_matches(b, spans),
    }
}

fn span_json(s: &StoredSpan) -> Value {
    json!({
        "spanID": crate::convert::hex(&s.span().span_id),
        "name": s.name(),
        "startTimeUnixNano": s.start_ns.to_string(),
        "durationNanos": s.duration_ns.to_string(),
        "attributes": [{"key": "service.name", "value": {"stringValue": s.service()}}],
    })
}

async fn search(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = window(&p)?;
    let limit: usize = p.get("limit").map_or(Ok(20), |l| {
        l.parse().map_err(|_| bad(format!("invalid limit {l:?}")))
    })?;
    let spss: usize = p.get("spss").map_or(Ok(3), |l| {
        l.parse().map_err(|_| bad(format!("invalid spss {l:?}")))
    })?;
    let text = match p.get("q") {
        Some(q) => q.to_string(),
        None => legacy_query(&p)?,
    };
    blocking(move || {
        let query = traceql::parse(&text).map_err(|e| bad(e.to_string()))?;
        let traces = st.engine.traces();
        let single = match &query {
            Query::Spanset(e) => Some(e),
            _ => None,
        };
        let hints: Vec<(Option<Scope>, &str, &str)> = single
            .map(|e| {
                e.required_equalities()
                    .into_iter()
                    .filter_map(|(f, v)| match f {
                        Field::Name => Some((None, "name", v)),
                        Field::Attr(scope, k) => Some((Some(*scope), k.as_str(), v)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let candidates = traces
            .candidates(start, end, &hints, None, MAX_SPANS_SCANNED)
            .map_err(internal)?
            .map_err(|n| {
                bad(format!(
                    "the search would read more than {n} spans; narrow the query or the time range"
                ))
            })?;
        let inspected = candidates.len();
        let mut out = Vec::new();
        for (trace_id, spans) in group_by_trace(candidates) {
            if out.len() == limit {
                break;
            }
            if !trace_matches(&query, &spans) {
                continue;
            }
            let exprs = leaves(&query);
            let matched: Vec<&StoredSpan> = spans
                .iter()
                .filter(|s| exprs.iter().any(|e| e.matches(*s)))
                .collect();
            let full = traces.trace(&trace_id, MAX_TRACE_SPANS).map_err(internal)?;
            let root = full
                .iter()
                .find(|s| s.span().parent_span_id.is_empty())
                .or(full.first());
            let first = full.iter().map(|s| s.start_ns).min().unwrap_or_default();
            let last = full
                .iter()
                .map(|s| s.start_ns + s.duration_ns)
                .max()
                .unwrap_or_default();
            let spanset = json!({
                "spans": matched.iter().take(spss).map(|s| span_json(s)).collect::<Vec<_>>(),
                "matched": matched.len(),
            });
            out.push(json!({
                "traceID": trace_id,
                "rootServiceName": root.map_or("<root span not yet received>".to_string(), |r| r.service()),
                "rootTraceName": root.map_or(String::new(), |r| r.name().to_string()),
                "startTimeUnixNano": first.to_string(),
                "durationMs": (last - first) / 1_000_000,
                "spanSet": spanset.clone(),
                "spanSets": [spanset],
            }));
        }
        Ok(Json(json!({
            "traces": out,
            "metrics": {"inspectedSpans": inspected.to_string(), "completedJobs": 1, "totalJobs": 1},
        })))
    })
    .await
}

const INTRINSICS: &[&str] = &["duration", "kind", "name", "status", "statusMessage"];

async fn tags_v1(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = window(&p)?;
    blocking(move || {
        let names: BTreeSet<String> = st
            .engine
            .traces()
            .tag_names(start, end)
            .into_values()
            .flatten()
            .collect();
        Ok(Json(json!({"tagNames": names})))
    })
    .await
}

async fn tags_v2(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = window(&p)?;
    let only = p.get("scope").map(str::to_string);
    blocking(move || {
        let names = st.engine.traces().tag_names(start, end);
        let mut scopes = Vec::new();
        for scope in ["resource", "span"] {
            if only.as_deref().is_none_or(|o| o == scope || o == "all") {
                let tags: Vec<&String> = names.get(scope).map(|s| s.iter().collect()).unwrap_or_default();
                scopes.push(json!({"name": scope, "tags": tags}));
            }
        }
        if only.as_deref().is_none_or(|o| o == "intrinsic" || o == "all") {
            scopes.push(json!({"name": "intrinsic", "tags": INTRINSICS}));
        }
        Ok(Json(json!({"scopes": scopes})))
    })
    .await
}

/// Values of a tag: `resource.x`, `span.x`, `.x`, a bare attribute name, or an intrinsic.
fn values_of(st: &AppState, tag: &str, start: i64, end: i64) -> Vec<String> {
    let traces = st.engine.traces();
    match tag.trim_start_matches("span:") {
        "status" => vec!["error".into(), "ok".into(), "unset".into()],
        "kind" => [
            "client",
            "consumer",
            "internal",
            "producer",
            "server",
            "unspecified",
        ]
        .map(String::from)
        .to_vec(),
        "name" => traces.tag_values(start, end, None, "name").into_iter().collect(),
        t => {
            let (scope, key) = if let Some(k) = t.strip_prefix("resource.") {
                (Scope::Resource, k)
            } else if let Some(k) = t.strip_prefix("span.") {
                (Scope::Span, k)
            } else {
                (Scope::Any, t.trim_start_matches('.'))
            };
            traces
                .tag_values(start, end, Some(scope), key)
                .into_iter()
                .collect()
        }
    }
}

async fn tag_values_v1(
    State(st): State<AppState>,
    Path(tag): Path<String>,
    p: Params,
) -> Result<Json<Value>> {
    let (start, end) = window(&p)?;
    blocking(move || Ok(Json(json!({"tagValues": values_of(&st, &tag, start, end)})))).await
}

async fn tag_values_v2(
    State(st): State<AppState>,
    Path(tag): Path<String>,
    p: Params,
) -> Result<Json<Value>> {
    let (start, end) = window(&p)?;
    blocking(move || {
        let keyword = matches!(tag.trim_start_matches("span:"), "status" | "kind");
        let values: Vec<Value> = values_of(&st, &tag, start, end)
            .into_iter()
            .map(|v| json!({"type": if keyword { "keyword" } else { "string" }, "value": v}))
            .collect();
        Ok(Json(json!({"tagValues": values})))
    })
    .await
}

async fn buildinfo() -> Json<Value> {
    Json(json!({
        "version": TEMPO_COMPAT_VERSION,
        "revision": format!("obs-{}", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
