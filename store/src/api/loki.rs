//! Loki-compatible API: push (JSON and protobuf + snappy) and the query endpoints Grafana's
//! Loki data source calls. Errors are plain text with a 4xx/5xx status, as Loki answers.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::params::{fmt_value, now_ns, parse_duration_ns, parse_time_ns, read_body, secs, Params};
use super::AppState;
use crate::convert;
use crate::ingest::IngestError;
use crate::logql::metric::{self, Series, Val};
use crate::logql::{self, Limits, QueryError, Scanned, StreamOut};
use crate::model::Labels;

/// The Loki version we answer as: Grafana enables features by it.
pub(crate) const LOKI_COMPAT_VERSION: &str = "3.1.0";

pub(crate) fn push_router() -> Router<AppState> {
    Router::new().route("/loki/api/v1/push", post(push))
}

pub(crate) fn query_router() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route("/loki/api/v1/index/stats", get(index_stats).post(index_stats))
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/api/v1/tail", get(tail))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
}

/// A Loki-shaped error: plain text and a status.
#[derive(Debug)]
pub(crate) struct LokiError(StatusCode, String);

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1 + "\n",
        )
            .into_response()
    }
}

impl From<QueryError> for LokiError {
    fn from(e: QueryError) -> Self {
        let status = if e.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        LokiError(status, e.to_string())
    }
}

impl From<(StatusCode, String)> for LokiError {
    fn from((s, m): (StatusCode, String)) -> Self {
        LokiError(s, m)
    }
}

impl From<IngestError> for LokiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BadRequest(m) | IngestError::Limit(m) => LokiError(StatusCode::BAD_REQUEST, m),
            IngestError::Unavailable(m) => LokiError(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

fn bad(msg: impl Into<String>) -> LokiError {
    LokiError(StatusCode::BAD_REQUEST, msg.into())
}

type Result<T> = std::result::Result<T, LokiError>;

fn success(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

async fn push(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<StatusCode> {
    let body = read_body(&headers, body).await?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let batch = if ctype.starts_with("application/json") {
        convert::loki_push_json(&body)
    } else if ctype.is_empty() || ctype.starts_with("application/x-protobuf") {
        convert::loki_push_proto(&body)
    } else {
        return Err(LokiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {ctype:?}: use application/json or application/x-protobuf"),
        ));
    }
    .map_err(bad)?;
    let too_old = st.engine.ingest_logs(batch).await?;
    if too_old > 0 {
        return Err(bad(format!(
            "{too_old} entries are older than the retention period and were not stored; the others were"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `[start, end]` from the params (default start: `since`, else `default_ns`, before `end`),
/// bounded.
fn range(p: &Params, default_ns: i64, limits: &Limits) -> Result<(i64, i64)> {
    let end = p
        .get("end")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or_else(now_ns);
    let since = p
        .get("since")
        .map(parse_duration_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or(default_ns);
    let start = p
        .get("start")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or(end - since);
    if end < start {
        return Err(bad("end timestamp must not be before start time"));
    }
    if end - start > limits.max_range_ns {
        return Err(bad(format!(
            "the query time range exceeds the limit (query length: {}s, limit: {}s); shorten it",
            (end - start) / 1_000_000_000,
            limits.max_range_ns / 1_000_000_000
        )));
    }
    Ok((start, end))
}

fn limit_param(p: &Params) -> Result<usize> {
    p.get("limit").map_or(Ok(100), |l| {
        l.parse().map_err(|_| bad(format!("invalid limit {l:?}")))
    })
}

fn backward(p: &Params) -> Result<bool> {
    match p.get("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("backward") => Ok(true),
        Some("forward") => Ok(false),
        Some(d) => Err(bad(format!("invalid direction {d:?}: use forward or backward"))),
    }
}

fn stats_json(scanned: Scanned, started: std::time::Instant) -> Value {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    json!({"summary": {
        "bytesProcessedPerSecond": (scanned.bytes as f64 / secs) as u64,
        "linesProcessedPerSecond": (scanned.lines as f64 / secs) as u64,
        "totalBytesProcessed": scanned.bytes,
        "totalLinesProcessed": scanned.lines,
        "execTime": secs,
    }})
}

pub(crate) fn streams_json(streams: Vec<StreamOut>) -> Value {
    Value::Array(
        streams
            .into_iter()
            .map(|s| {
                let values: Vec<Value> = s
                    .entries
                    .into_iter()
                    .map(|(ts, line)| json!([ts.to_string(), line]))
                    .collect();
                json!({"stream": s.labels, "values": values})
            })
            .collect(),
    )
}

fn matrix_json(series: Vec<Series>, times: &[i64]) -> Value {
    Value::Array(
        series
            .into_iter()
            .map(|s| {
                let values: Vec<Value> = s
                    .points
                    .iter()
                    .zip(times)
                    .filter_map(|(p, &t)| p.map(|v| json!([secs(t), fmt_value(v)])))
                    .collect();
                json!({"metric": s.labels, "values": values})
            })
            .collect(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(move || crate::guard::deep(f))
        .await
        .map_err(|e| {
            LokiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("query task failed: {e}"),
            )
        })?
}

async fn query_range(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let q = p.required("query").map_err(bad)?.to_string();
    let (start, end) = range(&p, 3_600_000_000_000, &st.limits)?;
    let limit = limit_param(&p)?;
    let backward = backward(&p)?;
    let step = match p.get("step") {
        Some(s) => parse_duration_ns(s).map_err(bad)?,
        None => ((end - start) / 250 + 999_999_999).max(1_000_000_000) / 1_000_000_000 * 1_000_000_000,
    };
    let started = std::time::Instant::now();
    blocking(move || {
        let limits = st.limits;
        match logql::parse(&q)? {
            ::logql::Expr::Log(lq) => {
                let (streams, scanned) =
                    logql::query_logs(st.engine.logs(), &lq, start, end + 1, limit, backward, &limits)?;
                Ok(success(json!({
                    "resultType": "streams",
                    "result": streams_json(streams),
                    "stats": stats_json(scanned, started),
                })))
            }
            ::logql::Expr::Metric(mq) => {
                let n = (end - start) / step + 1;
                if n as usize > limits.max_steps {
                    return Err(bad(format!(
                        "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                        limits.max_steps
                    )));
                }
                let times: Vec<i64> = (0..n).map(|i| start + i * step).collect();
                let result = match metric::eval(st.engine.logs(), &mq, &times, &limits)? {
                    Val::Vector(series) => matrix_json(series, &times),
                    Val::Scalar(v) => {
                        let values: Vec<Value> = times.iter().map(|&t| json!([secs(t), fmt_value(v)])).collect();
                        json!([{"metric": {}, "values": values}])
                    }
                };
                Ok(success(json!({
                    "resultType": "matrix",
                    "result": result,
                    "stats": stats_json(Scanned::default(), started),
                })))
            }
            _ => Err(bad("unsupported query")),
        }
    })
    .await
}

async fn query(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let q = p.required("query").map_err(bad)?.to_string();
    let t = p
        .get("time")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or_else(now_ns);
    let started = std::time::Instant::now();
    blocking(move || match logql::parse(&q)? {
        ::logql::Expr::Log(_) => Err(bad(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        ::logql::Expr::Metric(mq) => {
            let (result_type, result) = match metric::eval(st.engine.logs(), &mq, &[t], &st.limits)? {
                Val::Vector(series) => (
                    "vector",
                    Value::Array(
                        series
                            .into_iter()
                            .filter_map(|s| s.points[0].map(|v| json!({"metric": s.labels, "value": [secs(t), fmt_value(v)]})))
                            .collect(),
                    ),
                ),
                Val::Scalar(v) => ("scalar", json!([secs(t), fmt_value(v)])),
            };
            Ok(success(json!({
                "resultType": result_type,
                "result": result,
                "stats": stats_json(Scanned::default(), started),
            })))
        }
        _ => Err(bad("unsupported query")),
    })
    .await
}

const SIX_HOURS_NS: i64 = 6 * 3_600_000_000_000;

/// Streams matching a selector in `[start, end]`: (labels, lines, bytes).
fn matching_streams(st: &AppState, selector: &str, start: i64, end: i64) -> Result<Vec<(Labels, u64, u64)>> {
    let sel = match logql::parse(selector)? {
        ::logql::Expr::Log(lq) => lq.selector,
        _ => return Err(bad(format!("{selector:?} is not a stream selector"))),
    };
    let idx = st.engine.logs();
    let clauses = logql::selector_clauses(idx, &sel)?;
    let searchers = idx.searchers(start, end + 1);
    let query = idx.query(start, end + 1, clauses);
    let mut by_labels: BTreeMap<Labels, (u64, u64)> = BTreeMap::new();
    for (_, s) in idx
        .stream_stats(&searchers, &query, (start, end + 1))
        .map_err(QueryError::from)?
    {
        let mut reader = idx.reader(&searchers[s.part]);
        let hit = reader.hit(s.addr).map_err(QueryError::from)?;
        let e = by_labels.entry(hit.labels.clone()).or_default();
        e.0 += s.lines;
        e.1 += s.bytes;
    }
    if by_labels.len() > st.limits.max_series {
        return Err(bad(format!(
            "more than {} streams match; narrow the selector",
            st.limits.max_series
        )));
    }
    Ok(by_labels.into_iter().map(|(l, (n, b))| (l, n, b)).collect())
}

async fn labels(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = range(&p, SIX_HOURS_NS, &st.limits)?;
    let query = p.get("query").map(str::to_string);
    blocking(move || {
        let names: std::collections::BTreeSet<String> = match query {
            Some(q) => matching_streams(&st, &q, start, end)?
                .into_iter()
                .flat_map(|(l, _, _)| l.into_keys())
                .collect(),
            None => st
                .engine
                .logs()
                .label_terms(start, end + 1, None)
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        };
        Ok(success(json!(names)))
    })
    .await
}

async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Json<Value>> {
    let (start, end) = range(&p, SIX_HOURS_NS, &st.limits)?;
    let query = p.get("query").map(str::to_string);
    blocking(move || {
        let values: std::collections::BTreeSet<String> = match query {
            Some(q) => matching_streams(&st, &q, start, end)?
                .into_iter()
                .filter_map(|(mut l, _, _)| l.remove(&name))
                .collect(),
            None => st
                .engine
                .logs()
                .label_terms(start, end + 1, Some(&name))
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
        };
        Ok(success(json!(values)))
    })
    .await
}

async fn series(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = range(&p, SIX_HOURS_NS, &st.limits)?;
    let mut selectors: Vec<String> = p
        .all("match[]")
        .into_iter()
        .chain(p.all("match"))
        .map(str::to_string)
        .collect();
    if selectors.is_empty() {
        return Err(bad("missing parameter \"match[]\""));
    }
    selectors.dedup();
    blocking(move || {
        let mut all = std::collections::BTreeSet::new();
        for sel in &selectors {
            all.extend(
                matching_streams(&st, sel, start, end)?
                    .into_iter()
                    .map(|(l, _, _)| l),
            );
        }
        Ok(Json(json!({"status": "success", "data": all})))
    })
    .await
}

async fn index_stats(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = range(&p, 3_600_000_000_000, &st.limits)?;
    let q = p.required("query").map_err(bad)?.to_string();
    blocking(move || {
        let streams = matching_streams(&st, &q, start, end)?;
        let (lines, bytes) = streams.iter().fold((0, 0), |a, s| (a.0 + s.1, a.1 + s.2));
        Ok(Json(
            json!({"streams": streams.len(), "chunks": streams.len(), "entries": lines, "bytes": bytes}),
        ))
    })
    .await
}

/// Which labels volumes are grouped by: `targetLabels`, else the selector's label names.
fn volume_keys(p: &Params, q: &str) -> Result<Vec<String>> {
    if let Some(t) = p.get("targetLabels") {
        return Ok(t
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect());
    }
    match logql::parse(q)? {
        ::logql::Expr::Log(lq) => Ok(lq.selector.matchers.into_iter().map(|m| m.name).collect()),
        _ => Err(bad("volume needs a stream selector")),
    }
}

fn grouped(labels: &Labels, keys: &[String], by_series: bool) -> Labels {
    if by_series && keys.is_empty() {
        return labels.clone();
    }
    labels
        .iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn volume(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = range(&p, 3_600_000_000_000, &st.limits)?;
    let q = p.required("query").map_err(bad)?.to_string();
    let limit = limit_param(&p)?;
    let keys = crate::guard::deep(|| volume_keys(&p, &q))?;
    let by_series = p.get("aggregateBy") != Some("labels");
    blocking(move || {
        let mut vols: HashMap<Labels, u64> = HashMap::new();
        for (labels, _, bytes) in matching_streams(&st, &q, start, end)? {
            *vols.entry(grouped(&labels, &keys, by_series)).or_default() += bytes;
        }
        let mut vols: Vec<_> = vols.into_iter().collect();
        vols.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        vols.truncate(limit);
        let result: Vec<Value> = vols
            .into_iter()
            .map(|(l, b)| json!({"metric": l, "value": [secs(end), b.to_string()]}))
            .collect();
        Ok(success(json!({"resultType": "vector", "result": result})))
    })
    .await
}

async fn volume_range(State(st): State<AppState>, p: Params) -> Result<Json<Value>> {
    let (start, end) = range(&p, 3_600_000_000_000, &st.limits)?;
    let q = p.required("query").map_err(bad)?.to_string();
    let keys = crate::guard::deep(|| volume_keys(&p, &q))?;
    let step = p
        .get("step")
        .map(parse_duration_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or(60_000_000_000);
    blocking(move || {
        let by = if keys.is_empty() {
            String::new()
        } else {
            format!(" by ({})", keys.join(","))
        };
        let expr = format!("sum{by} (bytes_over_time({q} [{}ms]))", step / 1_000_000);
        let mq = match logql::parse(&expr)? {
            ::logql::Expr::Metric(m) => m,
            _ => return Err(bad("volume needs a stream selector")),
        };
        let n = ((end - start) / step + 1) as usize;
        if n > st.limits.max_steps {
            return Err(bad("too many steps; increase step"));
        }
        let times: Vec<i64> = (0..n as i64).map(|i| start + i * step).collect();
        let Val::Vector(series) = metric::eval(st.engine.logs(), &mq, &times, &st.limits)? else {
            return Err(bad("volume needs a stream selector"));
        };
        Ok(success(
            json!({"resultType": "matrix", "result": matrix_json(series, &times)}),
        ))
    })
    .await
}

async fn buildinfo() -> Json<Value> {
    Json(json!({
        "version": LOKI_COMPAT_VERSION,
        "revision": format!("obs-{}", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// Live tail over a WebSocket: every second, the lines that arrived since the last message.
async fn tail(State(st): State<AppState>, ws: WebSocketUpgrade, p: Params) -> Result<Response> {
    let q = p.required("query").map_err(bad)?.to_string();
    let lq = crate::guard::deep(|| match logql::parse(&q)? {
        ::logql::Expr::Log(lq) => Ok(lq),
        _ => Err(bad("tail needs a log query")),
    })?;
    let start = p
        .get("start")
        .map(parse_time_ns)
        .transpose()
        .map_err(bad)?
        .unwrap_or_else(|| now_ns() - 3_600_000_000_000);
    let limit = limit_param(&p)?.min(st.limits.max_entries);
    Ok(ws.on_upgrade(move |socket| async move {
        tail_loop(socket, st, &lq, start, limit).await;
        crate::guard::deep(move || drop(lq));
    }))
}

async fn tail_loop(mut socket: WebSocket, st: AppState, lq: &::logql::LogQuery, start: i64, limit: usize) {
    let mut from = start;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        // Stop as soon as the client goes away, not at the next send.
        tokio::select! {
            _ = tick.tick() => {}
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        }
        let (st2, lq2) = (st.clone(), lq.clone());
        let to = now_ns() + 1;
        let result = tokio::task::spawn_blocking(move || {
            crate::guard::deep(|| {
                logql::query_logs(st2.engine.logs(), &lq2, from, to, limit, false, &st2.limits)
            })
        })
        .await;
        let streams = match result {
            Ok(Ok((streams, _))) => streams,
            Ok(Err(e)) => {
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1011,
                        reason: e.to_string().into(),
                    })))
                    .await;
                return;
            }
            Err(_) => return,
        };
        if let Some(last) = streams.iter().flat_map(|s| s.entries.iter().map(|e| e.0)).max() {
            from = last + 1;
            let msg = json!({"streams": streams_json(streams), "dropped_entries": null});
            if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
                return;
            }
        }
    }
}
