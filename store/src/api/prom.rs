//! Prometheus-compatible API: remote_write ingest and the query endpoints Grafana's
//! Prometheus data source calls. Responses and errors have Prometheus's exact shapes:
//! `{"status":"success","data":…,"warnings":[…]}` and
//! `{"status":"error","errorType":"bad_data","error":"…"}`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::params::{fmt_value, now_ns, parse_duration_ns, read_body, with_value_str, Params};
use super::AppState;
use crate::convert_metrics;
use crate::ingest::IngestError;
use crate::promql::{self, Options, QueryValue};
use crate::tsdb::{Labels, Matcher};

/// The Prometheus version whose API we implement; Grafana enables features by it.
pub(crate) const PROMETHEUS_COMPAT_VERSION: &str = "2.53.0";
/// Prometheus's cap on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

pub(crate) fn write_router() -> Router<AppState> {
    Router::new().route("/api/v1/write", post(write))
}

pub(crate) fn query_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/status/buildinfo", get(buildinfo))
}

/// A Prometheus-shaped error.
#[derive(Debug)]
pub(crate) struct PromError {
    status: StatusCode,
    kind: &'static str,
    msg: String,
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind, "error": self.msg});
        (self.status, Json(body)).into_response()
    }
}

fn bad(msg: impl Into<String>) -> PromError {
    PromError {
        status: StatusCode::BAD_REQUEST,
        kind: "bad_data",
        msg: msg.into(),
    }
}

impl From<promql::Error> for PromError {
    fn from(e: promql::Error) -> Self {
        let (status, kind) = match &e {
            promql::Error::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            promql::Error::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            promql::Error::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            promql::Error::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        PromError {
            status,
            kind,
            msg: e.to_string(),
        }
    }
}

type Result<T, E = PromError> = std::result::Result<T, E>;

async fn write(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let text = |status: StatusCode, msg: String| (status, msg + "\n").into_response();
    // remote_write says `Content-Encoding: snappy` for its block-compressed body, which the
    // decoder below unpacks; any other encoding is the generic body reader's business.
    let mut headers = headers;
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"snappy"))
    {
        headers.remove(header::CONTENT_ENCODING);
    }
    let body = match read_body(&headers, body).await {
        Ok(b) => b,
        Err((status, msg)) => return text(status, msg),
    };
    let (batch, metadata) = match convert_metrics::remote_write(&body) {
        Ok(x) => x,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    st.engine.tsdb().set_metadata(metadata);
    match st.engine.ingest_samples(batch).await {
        Ok(0) => StatusCode::NO_CONTENT.into_response(),
        Ok(too_old) => text(
            StatusCode::BAD_REQUEST,
            format!(
                "{too_old} samples are older than the retention period and were not stored; the others were"
            ),
        ),
        Err(IngestError::BadRequest(m) | IngestError::Limit(m)) => text(StatusCode::BAD_REQUEST, m),
        Err(IngestError::Unavailable(m)) => text(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

/// A time as Prometheus takes it: float Unix seconds, rounded to the millisecond, or RFC 3339.
fn param_time(p: &Params, name: &str) -> Result<Option<i64>> {
    p.get(name)
        .map(|s| match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((f * 1000.0).round() as i64),
            _ => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    bad(format!(
                        "invalid parameter {name:?}: cannot parse {s:?} to a valid timestamp"
                    ))
                }),
        })
        .transpose()
}

fn param_duration_ms(p: &Params, name: &str) -> Result<Option<i64>> {
    p.get(name)
        .map(|s| {
            parse_duration_ns(s).map(|ns| ns / 1_000_000).map_err(|_| {
                bad(format!(
                    "invalid parameter {name:?}: cannot parse {s:?} to a valid duration"
                ))
            })
        })
        .transpose()
}

fn options(p: &Params) -> Result<Options> {
    let mut opts = Options::default();
    if let Some(ms) = param_duration_ms(p, "timeout")? {
        opts.timeout = opts.timeout.min(Duration::from_millis(ms.max(1) as u64));
    }
    Ok(opts)
}

fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// Prometheus renders times as float seconds, integers without a fraction.
fn ts(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn metric_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(n, v)| (n.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// A query's answer as the Prometheus API shapes it. Matrices serialize straight from the
/// series (a 10,000-series answer would otherwise build a JSON tree of every point).
#[derive(Serialize)]
struct Answer<'a> {
    status: &'static str,
    data: AnswerData<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    infos: &'a [String],
}

#[derive(Serialize)]
struct AnswerData<'a> {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    result: AnswerResult<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnswerResult<'a> {
    Json(Value),
    Matrix(#[serde(serialize_with = "matrix_json")] &'a [promql::Series]),
}

fn matrix_json<S: serde::Serializer>(m: &&[promql::Series], s: S) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::{SerializeMap, SerializeSeq};
    struct Labels<'a>(&'a crate::tsdb::Labels);
    impl Serialize for Labels<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (n, v) in self.0.iter() {
                map.serialize_entry(n, v)?;
            }
            map.end()
        }
    }
    struct Points<'a>(&'a [(i64, f64)]);
    impl Serialize for Points<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for &(t, v) in self.0 {
                with_value_str(v, |v| {
                    if t % 1000 == 0 {
                        seq.serialize_element(&(t / 1000, v))
                    } else {
                        seq.serialize_element(&(t as f64 / 1000.0, v))
                    }
                })?;
            }
            seq.end()
        }
    }
    #[derive(Serialize)]
    struct SeriesJson<'a> {
        metric: Labels<'a>,
        values: Points<'a>,
    }
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for series in m.iter() {
        seq.serialize_element(&SeriesJson {
            metric: Labels(&series.metric),
            values: Points(&series.points),
        })?;
    }
    seq.end()
}

fn render(out: &promql::Output, t: i64) -> Response {
    let (result_type, result) = match &out.value {
        QueryValue::Scalar(_, v) => ("scalar", AnswerResult::Json(json!([ts(t), fmt_value(*v)]))),
        QueryValue::String(_, s) => ("string", AnswerResult::Json(json!([ts(t), s]))),
        QueryValue::Vector(v) => (
            "vector",
            AnswerResult::Json(Value::Array(
                v.iter()
                    .map(|s| json!({"metric": metric_json(&s.metric), "value": [ts(t), fmt_value(s.v)]}))
                    .collect(),
            )),
        ),
        QueryValue::Matrix(m) => ("matrix", AnswerResult::Matrix(m)),
    };
    Json(Answer {
        status: "success",
        data: AnswerData { result_type, result },
        warnings: &out.annotations.warnings,
        infos: &out.annotations.infos,
    })
    .into_response()
}

fn query_param(p: &Params) -> Result<&str> {
    p.get("query").filter(|q| !q.trim().is_empty()).ok_or_else(|| {
        bad("invalid parameter \"query\": unknown position: parse error: no expression found in input")
    })
}

/// Runs query work off the async threads, on a deep stack (see [`crate::guard`]).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(move || crate::guard::deep(f))
        .await
        .map_err(|e| PromError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: format!("query task failed: {e}"),
        })
}

async fn query(State(st): State<AppState>, p: Params) -> Result<Response> {
    let q = query_param(&p)?.to_string();
    let t = param_time(&p, "time")?.unwrap_or_else(now_ms);
    let opts = options(&p)?;
    let engine = st.engine.clone();
    let out = blocking(move || promql::instant(engine.tsdb(), &promql::parse(&q)?, t, &opts)).await??;
    Ok(render(&out, t))
}

async fn query_range(State(st): State<AppState>, p: Params) -> Result<Response> {
    let q = query_param(&p)?.to_string();
    let start = param_time(&p, "start")?.ok_or_else(|| bad("invalid parameter \"start\": missing"))?;
    let end = param_time(&p, "end")?.ok_or_else(|| bad("invalid parameter \"end\": missing"))?;
    if end < start {
        return Err(bad(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = param_duration_ms(&p, "step")
        .map_err(|_| bad("invalid parameter \"step\": cannot parse to a valid duration"))?
        .ok_or_else(|| bad("invalid parameter \"step\": missing"))?;
    if step <= 0 {
        return Err(bad(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let opts = options(&p)?;
    let engine = st.engine.clone();
    let out = blocking(move || promql::range(engine.tsdb(), &promql::parse(&q)?, start, end, step, &opts))
        .await??;
    Ok(render(&out, end))
}

/// The `match[]` selectors, each a list of alternatives (`{a="1" or b="2"}`).
fn match_params(p: &Params) -> Result<Vec<Vec<Matcher>>> {
    let mut out = Vec::new();
    for s in p.all("match[]") {
        out.extend(promql::selector_matchers(s).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

/// Labels of every series matching any `match[]` (all series without one) in the range.
async fn matching_series(st: &AppState, p: &Params, required: bool) -> Result<Vec<std::sync::Arc<Labels>>> {
    let sets = match_params(p)?;
    if required && sets.is_empty() {
        return Err(bad("no match[] parameter provided"));
    }
    let start = param_time(p, "start")?.unwrap_or(i64::MIN);
    let end = param_time(p, "end")?.unwrap_or(i64::MAX);
    let engine = st.engine.clone();
    blocking(move || {
        let sets = if sets.is_empty() { vec![Vec::new()] } else { sets };
        let mut all: Vec<_> = sets
            .iter()
            .flat_map(|m| engine.tsdb().series_labels(m, start, end))
            .collect();
        all.sort();
        all.dedup();
        all
    })
    .await
}

fn success(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

async fn labels(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let names: BTreeSet<String> = matching_series(&st, &p, false)
        .await?
        .iter()
        .flat_map(|l| l.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
        .collect();
    Ok(success(json!(names)))
}

async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Json<Value>> {
    if !crate::tsdb::labels::is_valid_label_name(&name) {
        return Err(bad(format!("invalid label name: {name:?}")));
    }
    let values: BTreeSet<String> = matching_series(&st, &p, false)
        .await?
        .iter()
        .filter_map(|l| l.get(&name).map(str::to_string))
        .collect();
    Ok(success(json!(values)))
}

async fn series(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let series = matching_series(&st, &p, true).await?;
    Ok(success(Value::Array(
        series.iter().map(|l| metric_json(l)).collect(),
    )))
}

async fn metadata(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let wanted = p.get("metric");
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let data: Map<String, Value> = st
        .engine
        .tsdb()
        .metadata()
        .into_iter()
        .filter(|(name, _)| wanted.is_none_or(|w| w == name))
        .take(limit)
        .map(|(name, m)| (name, json!([m])))
        .collect();
    Ok(success(Value::Object(data)))
}

/// Exemplars are not stored; an empty answer is what Grafana expects then.
async fn exemplars() -> Json<Value> {
    success(json!([]))
}

/// The store evaluates no recording or alerting rules.
async fn buildinfo() -> Json<Value> {
    success(json!({
        "version": PROMETHEUS_COMPAT_VERSION,
        "revision": format!("obs-{}", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
