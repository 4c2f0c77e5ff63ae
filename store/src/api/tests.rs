//! Handler tests: the router driven with `oneshot`, no server, over a real engine in a temp dir.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use prost::Message;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::config::TokenConfig;

pub(crate) struct TestStore {
    _dir: tempfile::TempDir,
    pub(crate) state: AppState,
    tokens: Tokens,
}

impl TestStore {
    pub(crate) fn new(tokens: &[TokenConfig]) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::open(
            dir.path(),
            crate::Retention::all(Duration::from_secs(100 * 365 * 86400)),
        )
        .unwrap();
        let heartbeats = crate::uptime::Heartbeats::open(Vec::new(), dir.path(), engine.clone(), 0);
        TestStore {
            _dir: dir,
            state: AppState {
                metrics: Metrics::new(),
                rules: crate::rules::Rules::new(crate::rules::RulesSettings::none(), engine.clone(), None),
                notifier: None,
                heartbeats,
                status_page: crate::uptime::StatusPage::new(Default::default()),
                engine,
                limits: Limits::default(),
            },
            tokens: Tokens::load(tokens).unwrap(),
        }
    }

    pub(crate) fn app(&self) -> Router {
        router(self.state.clone(), &self.tokens)
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn get_json(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub(crate) async fn post(&self, uri: &str, ctype: &str, body: impl Into<Body>) -> (StatusCode, String) {
        self.send(
            Request::post(uri)
                .header("content-type", ctype)
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    pub(crate) fn commit(&self) {
        self.state.engine.commit().unwrap();
    }
}

pub(crate) fn token(name: &str, role: Role, secret: &str) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        role,
        token_file: None,
        token: Some(secret.into()),
    }
}

fn enc(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// Pushes `n` lines a second apart, starting at second 1000, to two streams.
async fn seed(s: &TestStore) {
    let mut api = Vec::new();
    let mut web = Vec::new();
    for i in 0..60i64 {
        let ts = ((1000 + i) * 1_000_000_000).to_string();
        api.push(json!([ts, format!("level=error msg=\"boom {i}\" status=500")]));
        web.push(json!([ts, format!("level=info msg=\"ok {i}\" status=200")]));
    }
    let body = json!({"streams": [
        {"stream": {"job": "api", "host": "n1"}, "values": api},
        {"stream": {"job": "web", "host": "n2"}, "values": web},
    ]});
    let (status, msg) = s
        .post("/loki/api/v1/push", "application/json", body.to_string())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{msg}");
    s.commit();
}

#[tokio::test]
async fn ready_is_open_and_metrics_need_a_query_token() {
    let s = TestStore::new(&[
        token("grafana", Role::Query, "grafana-token-123"),
        token("n", Role::Ingest, "ingest-token-123"),
    ]);
    assert_eq!(s.get("/ready").await, (StatusCode::OK, "ready\n".to_string()));
    assert_eq!(s.get("/metrics").await.0, StatusCode::UNAUTHORIZED);
    let with = |t: &str| {
        Request::get("/metrics")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(s.send(with("ingest-token-123")).await.0, StatusCode::FORBIDDEN);
    let (status, body) = s.send(with("grafana-token-123")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("obs_store_log_lines_ingested_total 0"), "{body}");
    let retention = 100u64 * 365 * 86400; // TestStore keeps everything
    assert!(
        body.contains(&format!(
            "obs_store_retention_seconds{{signal=\"traces\"}} {retention}"
        )),
        "{body}"
    );
    let gauge = |name: &str| -> f64 {
        let line = body
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {body}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert!(gauge("obs_store_disk_avail_bytes") <= gauge("obs_store_disk_size_bytes"));
    assert!(gauge("obs_store_disk_size_bytes") > 0.0);
    // An ingest token can push; a query token cannot.
    let push = |t: &str| {
        Request::post("/loki/api/v1/push")
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"streams":[]}"#))
            .unwrap()
    };
    assert_eq!(s.send(push("ingest-token-123")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.send(push("grafana-token-123")).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn grafana_health_check_answers_two_at_t4() {
    let s = TestStore::new(&[]);
    let v = s
        .get_json(&format!(
            "/loki/api/v1/query?query={}&time=4",
            enc("vector(1)+vector(1)")
        ))
        .await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"], json!([{"metric": {}, "value": [4, "2"]}]));
    // Grafana's backend sends the time in nanoseconds; the one sample must still be 2.
    let v = s
        .get_json(&format!(
            "/loki/api/v1/query?query={}&time=4000000000",
            enc("vector(1)+vector(1)")
        ))
        .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "2");
}

#[tokio::test]
async fn pushed_lines_come_back_newest_first_with_loki_shapes() {
    let s = TestStore::new(&[]);
    seed(&s).await;
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start=1000000000000&end=1100000000000&limit=3&direction=backward",
        enc(r#"{job="api"} |= "boom""#)
    );
    let v = s.get_json(&uri).await;
    assert_eq!(v["data"]["resultType"], "streams");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    // As in Loki 3, structured metadata (here the detected level, and the error issue the line
    // was grouped into) is part of the result labels.
    let mut stream = result[0]["stream"].clone();
    let issue = stream.as_object_mut().unwrap().remove("error_issue");
    assert_eq!(issue.and_then(|i| i.as_str().map(str::len)), Some(12));
    assert_eq!(
        stream,
        json!({"job": "api", "host": "n1", "detected_level": "error"})
    );
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(
        values[0],
        json!(["1059000000000", "level=error msg=\"boom 59\" status=500"])
    );
    assert_eq!(values[2][0], "1057000000000");
    assert!(
        v["data"]["stats"]["summary"]["totalLinesProcessed"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

#[tokio::test]
async fn logs_volume_query_groups_by_level() {
    let s = TestStore::new(&[]);
    seed(&s).await;
    let q = r#"sum by (level) (count_over_time({host=~"n.*"} | logfmt [10s]))"#;
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start=1010&end=1050&step=10s",
        enc(q)
    );
    let v = s.get_json(&uri).await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let result = v["data"]["result"].as_array().unwrap();
    let levels: Vec<&str> = result
        .iter()
        .map(|r| r["metric"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "info"]);
    assert_eq!(result[0]["values"][0], json!([1010, "10"]));
    assert_eq!(result[0]["values"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn labels_values_series_stats_and_volume() {
    let s = TestStore::new(&[]);
    seed(&s).await;
    let window = "start=1000000000000&end=1100000000000";
    let v = s.get_json(&format!("/loki/api/v1/labels?{window}")).await;
    assert_eq!(v["data"], json!(["host", "job"]));
    // `since` counts back from `end`.
    let v = s
        .get_json("/loki/api/v1/labels?end=1059000000000&since=10s")
        .await;
    assert_eq!(v["data"], json!(["host", "job"]));
    let v = s
        .get_json("/loki/api/v1/labels?end=200000000000000&since=1s")
        .await;
    assert_eq!(v["data"], json!([]));
    let v = s
        .get_json(&format!("/loki/api/v1/label/job/values?{window}"))
        .await;
    assert_eq!(v["data"], json!(["api", "web"]));
    let v = s
        .get_json(&format!(
            "/loki/api/v1/label/job/values?{window}&query={}",
            enc(r#"{host="n2"}"#)
        ))
        .await;
    assert_eq!(v["data"], json!(["web"]));
    let v = s
        .get_json(&format!(
            "/loki/api/v1/series?{window}&match[]={}",
            enc(r#"{job=~".+"}"#)
        ))
        .await;
    assert_eq!(
        v["data"],
        json!([{"host": "n1", "job": "api"}, {"host": "n2", "job": "web"}])
    );
    let v = s
        .get_json(&format!(
            "/loki/api/v1/index/stats?{window}&query={}",
            enc(r#"{job="api"}"#)
        ))
        .await;
    assert_eq!(
        (v["streams"].as_u64(), v["entries"].as_u64()),
        (Some(1), Some(60))
    );
    let v = s
        .get_json(&format!(
            "/loki/api/v1/index/volume?{window}&query={}",
            enc(r#"{job=~".+"}"#)
        ))
        .await;
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(
        result[0]["metric"],
        json!({"job": "api"}),
        "api lines are longer, so first"
    );
    let v = s
        .get_json(&format!(
            "/loki/api/v1/index/volume_range?{window}&step=60s&query={}",
            enc(r#"{job="web"}"#)
        ))
        .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let v = s.get_json("/loki/api/v1/status/buildinfo").await;
    assert_eq!(v["version"], crate::api::loki::LOKI_COMPAT_VERSION);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_nothing_is_stored() {
    let s = TestStore::new(&[]);
    let (status, body) = s
        .post(
            "/loki/api/v1/push",
            "application/json",
            r#"{"streams": [{"stream": {}}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid push JSON"), "{body}");
    let (status, body) = s
        .post("/loki/api/v1/push", "application/x-protobuf", "garbage")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("snappy"), "{body}");
    let big = vec![b'x'; params::MAX_BODY_BYTES + 1];
    let (status, body) = s.post("/loki/api/v1/push", "application/json", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("16777216-byte limit"), "{body}");
    let (status, body) = s
        .get(&format!(
            "/loki/api/v1/query_range?query={}",
            enc(r#"{job="api""#)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("parse error at line 1"), "{body}");
    let (status, body) = s
        .get(&format!("/loki/api/v1/query?query={}", enc(r#"{job="api"}"#)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not supported as an instant query"), "{body}");
    s.commit();
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("obs_store_log_lines_ingested_total 0"),
        "{metrics}"
    );
}

/// Regression (issue 21): a Loki push with a 200 KB label value, and one with 100,000
/// streams, were stored.
#[tokio::test]
async fn pushes_over_an_ingest_limit_are_refused_whole_and_counted() {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    let s = TestStore::new(&[]);
    let ok = json!({"stream": {"job": "ok"}, "values": [["1000000000000", "kept"]]});
    let long = json!({"stream": {"job": "x".repeat(200_000)}, "values": [["1000000000000", "lost"]]});
    let body = json!({"streams": [ok, long]}).to_string();
    let (status, body) = s.post("/loki/api/v1/push", "application/json", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("stream {job=\"xxxx"), "{body}");
    assert!(
        body.contains(
            "a value of 200000 bytes for label job; the limit is 2048 (max_label_value_length in [store])"
        ),
        "{body}"
    );

    let many: Vec<Value> = (0..100_000)
        .map(|i| json!({"stream": {"i": i.to_string()}, "values": [["1000000000000", "x"]]}))
        .collect();
    let body = json!({"streams": many}).to_string();
    let (status, body) = s.post("/loki/api/v1/push", "application/json", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("the push holds 100000 streams; the limit is 5000"),
        "{body}"
    );

    // OTLP: a partial success that rejects every record, with the reason.
    let attrs: String = (0..16)
        .map(|i| {
            format!(
                r#"{{"key":"k8s.pod.name{}","value":{{"stringValue":"v"}}}},"#,
                if i == 0 { String::new() } else { format!("_{i}") }
            )
        })
        .collect();
    let otlp = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{attrs}{{"key":"obs.index_labels","value":{{"stringValue":"{}"}}}}]}},
        "scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1000000000000","body":{{"stringValue":"a"}}}},{{"timeUnixNano":"1000000000001","body":{{"stringValue":"b"}}}}]}}]}}]}}"#,
        (1..16)
            .map(|i| format!("k8s.pod.name_{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, body) = s.post("/v1/logs", "application/json", otlp.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: ExportLogsServiceResponse = serde_json::from_str(&body).unwrap();
    let partial = resp.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_log_records, 2);
    assert!(
        partial
            .error_message
            .contains("labels; the limit is 15 (max_label_names_per_series"),
        "{partial:?}"
    );
    let req: ExportLogsServiceRequest = serde_json::from_str(&otlp).unwrap();
    let (status, body) = s
        .post("/v1/logs", "application/x-protobuf", req.encode_to_vec())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    s.commit();
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("obs_store_log_lines_ingested_total 0"),
        "{metrics}"
    );
    for (limit, n) in [
        ("max_label_value_length", 1),
        ("max_streams_per_push", 1),
        ("max_label_names_per_series", 2),
    ] {
        let line = format!("obs_store_pushes_refused_total{{limit=\"{limit}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

/// Issue 21's audit: pushed data nested deep (an attribute map in a map, 1,000 levels) is
/// refused by the decoders' own nesting limits (prost: 100, serde_json: 128), never walked
/// deep enough to overflow a stack.
#[tokio::test]
async fn deeply_nested_pushes_are_refused_by_the_decoders() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
    let s = TestStore::new(&[]);
    let json_value = format!(
        "{}{{\"stringValue\":\"x\"}}{}",
        r#"{"kvlistValue":{"values":[{"key":"k","value":"#.repeat(1_000),
        "}]}}".repeat(1_000)
    );
    let json_body =
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{json_value}}}]}}]}}]}}"#);
    let (status, body) = s.post("/v1/logs", "application/json", json_body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("recursion limit"), "{body}");
    let (status, body) = s
        .post(
            "/loki/api/v1/push",
            "application/json",
            format!(
                r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["1","x",{}]]}}]}}"#,
                "[".repeat(10_000)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("x".into())),
    };
    for _ in 0..150 {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(value),
                    ..Default::default()
                }],
            })),
        };
    }
    let mut req: ExportLogsServiceRequest = serde_json::from_str(
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#,
    )
    .unwrap();
    req.resource_logs[0].scope_logs[0].log_records[0].body = Some(value);
    let (status, body) = s
        .post("/v1/logs", "application/x-protobuf", req.encode_to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("recursion limit"), "{body}");
}

#[tokio::test]
async fn otlp_http_logs_in_protobuf_and_json() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let s = TestStore::new(&[]);
    let json_body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
        "scopeLogs":[{"logRecords":[{"timeUnixNano":"1000000000000","severityNumber":13,"body":{"stringValue":"low stock"},
        "traceId":"5b8efff798038103d269b633813fc60c","attributes":[{"key":"sku","value":{"intValue":"42"}}]}]}]}]}"#;
    let (status, body) = s.post("/v1/logs", "application/json", json_body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let req: ExportLogsServiceRequest = serde_json::from_str(json_body).unwrap();
    let mut req2 = req.clone();
    req2.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano = 1_001_000_000_000;
    let (status, _) = s
        .post("/v1/logs", "application/x-protobuf", req2.encode_to_vec())
        .await;
    assert_eq!(status, StatusCode::OK);
    s.commit();
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start=999&end=1002&direction=forward",
        enc(r#"{service_name="shop", level="warn"} | sku="42""#)
    );
    let v = s.get_json(&uri).await;
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0][1], "low stock");
    let (status, body) = s.post("/v1/logs", "application/json", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid OTLP JSON"), "{body}");
}

#[tokio::test]
async fn unknown_paths_say_so() {
    let s = TestStore::new(&[]);
    let (status, body) = s.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("/nope"));
}

mod tempo {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        status, ResourceSpans, ScopeSpans, Span, Status, TracesData,
    };

    use super::*;
    use crate::convert::kv;

    const T1: [u8; 16] = [0x11; 16];
    const T2: [u8; 16] = [0x22; 16];
    const BASE: u64 = 1_000_000_000_000;

    fn span(
        trace: [u8; 16],
        id: u8,
        parent: Option<u8>,
        name: &str,
        ms: u64,
        error: bool,
        attrs: Vec<KeyValue>,
    ) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind: if parent.is_none() { 2 } else { 3 },
            start_time_unix_nano: BASE + u64::from(id) * 1_000_000,
            end_time_unix_nano: BASE + u64::from(id) * 1_000_000 + ms * 1_000_000,
            attributes: attrs,
            status: Some(Status {
                code: if error {
                    status::StatusCode::Error as i32
                } else {
                    0
                },
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let shop = |spans| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("host.name", "n1")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let db = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "db")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(
                    T1,
                    3,
                    Some(1),
                    "SELECT",
                    150,
                    true,
                    vec![kv("db.system", "sqlite")],
                )],
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                shop(vec![
                    span(
                        T1,
                        1,
                        None,
                        "GET /cart",
                        300,
                        false,
                        vec![kv("http.method", "GET")],
                    ),
                    span(T1, 2, Some(1), "render", 20, false, vec![]),
                    span(
                        T2,
                        9,
                        None,
                        "POST /pay",
                        40,
                        false,
                        vec![kv("http.method", "POST")],
                    ),
                ]),
                db,
            ],
        }
    }

    async fn seeded() -> TestStore {
        let s = TestStore::new(&[]);
        let (status, body) = s
            .post("/v1/traces", "application/x-protobuf", request().encode_to_vec())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        s.commit();
        s
    }

    #[tokio::test]
    async fn trace_by_id_in_protobuf_and_json() {
        let s = seeded().await;
        let id = "11".repeat(16);
        let req = Request::get(format!("/api/traces/{id}"))
            .header("accept", "application/protobuf")
            .body(Body::empty())
            .unwrap();
        let resp = s.app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let data = TracesData::decode(bytes).unwrap();
        let spans: Vec<&str> = data
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(spans.len(), 3);
        assert_eq!(
            data.resource_spans.len(),
            2,
            "spans regrouped under their two resources"
        );
        let v = s.get_json(&format!("/api/v2/traces/{id}")).await;
        let rs = v["trace"]["resourceSpans"].as_array().unwrap();
        assert_eq!(rs[0]["scopeSpans"][0]["spans"][0]["traceId"], id);
        let (status, body) = s.get(&format!("/api/traces/{}", "ab".repeat(16))).await;
        assert_eq!((status, body.trim()), (StatusCode::NOT_FOUND, "trace not found"));
        assert_eq!(s.get("/api/traces/xyz").await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn traceql_and_legacy_search() {
        let s = seeded().await;
        let window = "start=999&end=1001";
        let search = |q: &str| format!("/api/search?{window}&q={}", enc(q));
        let v = s
            .get_json(&search(
                r#"{ resource.service.name = "db" && status = error && duration > 100ms }"#,
            ))
            .await;
        let traces = v["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 1);
        assert_eq!(traces[0]["traceID"], "11".repeat(16));
        assert_eq!(traces[0]["rootServiceName"], "shop");
        assert_eq!(traces[0]["rootTraceName"], "GET /cart");
        assert_eq!(traces[0]["durationMs"], 300);
        assert_eq!(traces[0]["spanSet"]["matched"], 1);
        let v = s
            .get_json(&search(r#"{ .http.method = "POST" } || { name = "SELECT" }"#))
            .await;
        assert_eq!(v["traces"].as_array().unwrap().len(), 2);
        let v = s
            .get_json(&search(r#"{ name = "render" } && { name = "POST /pay" }"#))
            .await;
        assert_eq!(
            v["traces"].as_array().unwrap().len(),
            0,
            "no single trace has both"
        );
        let v = s
            .get_json(&format!(
                "/api/search?{window}&tags={}&minDuration=100ms",
                enc("service.name=shop")
            ))
            .await;
        let ids: Vec<&str> = v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["11".repeat(16)]);
        let (status, body) = s.get(&search("{ name = }")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("invalid TraceQL"), "{body}");
    }

    #[tokio::test]
    async fn tags_and_values_in_both_versions() {
        let s = seeded().await;
        let window = "start=999&end=1001";
        let v = s.get_json(&format!("/api/search/tags?{window}")).await;
        assert_eq!(
            v["tagNames"],
            json!(["db.system", "host.name", "http.method", "service.name"])
        );
        let v = s.get_json(&format!("/api/v2/search/tags?{window}")).await;
        assert_eq!(
            v["scopes"][0],
            json!({"name": "resource", "tags": ["host.name", "service.name"]})
        );
        assert_eq!(v["scopes"][2]["name"], "intrinsic");
        let v = s
            .get_json(&format!("/api/search/tag/service.name/values?{window}"))
            .await;
        assert_eq!(v["tagValues"], json!(["db", "shop"]));
        let v = s
            .get_json(&format!("/api/v2/search/tag/span.http.method/values?{window}"))
            .await;
        assert_eq!(
            v["tagValues"],
            json!([{"type": "string", "value": "GET"}, {"type": "string", "value": "POST"}])
        );
        let v = s
            .get_json(&format!("/api/v2/search/tag/name/values?{window}"))
            .await;
        assert_eq!(v["tagValues"].as_array().unwrap().len(), 4);
        assert_eq!(s.get("/api/echo").await, (StatusCode::OK, "echo".to_string()));
        let v = s.get_json("/api/status/buildinfo").await;
        assert_eq!(v["version"], crate::api::tempo::TEMPO_COMPAT_VERSION);
    }

    #[tokio::test]
    async fn malformed_spans_are_rejected_whole() {
        let s = TestStore::new(&[]);
        let mut req = request();
        req.resource_spans[1].scope_spans[0].spans[0].span_id = vec![1, 2, 3];
        let (status, body) = s
            .post("/v1/traces", "application/x-protobuf", req.encode_to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("resourceSpans[1].scopeSpans[0].spans[0]: spanId must be 8 bytes"),
            "{body}"
        );
        s.commit();
        assert_eq!(
            s.get(&format!("/api/traces/{}", "11".repeat(16))).await.0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = s
            .post("/v1/metrics", "application/x-protobuf", b"\xff\xff".to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}

mod prometheus {
    use super::*;
    use crate::convert_metrics::prompb::{MetricMetadata, WriteRequest};
    use crate::convert_metrics::tests::{encode_write, series};

    const T0: i64 = 1_700_000_000_000;

    /// node-exporter-like counters for two CPUs and a gauge, 15 s apart for 10 minutes.
    async fn seeded() -> TestStore {
        let s = TestStore::new(&[]);
        let samples = |rate: f64| -> Vec<(i64, f64)> {
            (0..41)
                .map(|i| (T0 + i * 15_000, i as f64 * 15.0 * rate))
                .collect()
        };
        let req = WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", "0"),
                        ("mode", "user"),
                        ("instance", "a"),
                    ],
                    &samples(0.5),
                ),
                series(
                    &[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", "1"),
                        ("mode", "user"),
                        ("instance", "a"),
                    ],
                    &samples(0.25),
                ),
                series(
                    &[("__name__", "node_load1"), ("instance", "a")],
                    &[(T0, 0.5), (T0 + 60_000, 1.5)],
                ),
            ],
            metadata: vec![MetricMetadata {
                r#type: 1,
                metric_family_name: "node_cpu_seconds_total".into(),
                help: "Seconds the CPUs spent in each mode.".into(),
                unit: "".into(),
            }],
        };
        // As Prometheus sends it.
        let write = Request::post("/api/v1/write")
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(Body::from(encode_write(&req)))
            .unwrap();
        let (status, body) = s.send(write).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        s
    }

    fn secs(ms: i64) -> String {
        format!("{}", ms / 1000)
    }

    #[tokio::test]
    async fn remote_write_then_instant_and_range_queries() {
        let s = seeded().await;
        let t = secs(T0 + 600_000);
        let v = s
            .get_json(&format!(
                "/api/v1/query?query={}&time={t}",
                enc("sum by (instance) (rate(node_cpu_seconds_total[5m]))")
            ))
            .await;
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["resultType"], "vector");
        let r = &v["data"]["result"][0];
        assert_eq!(r["metric"], json!({"instance": "a"}));
        assert_eq!(r["value"][0], json!((T0 + 600_000) / 1000));
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!((v - 0.75).abs() < 1e-9, "{v}");
        let v = s
            .get_json(&format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=60",
                enc("node_load1"),
                secs(T0),
                secs(T0 + 120_000)
            ))
            .await;
        assert_eq!(v["data"]["resultType"], "matrix");
        let values = &v["data"]["result"][0]["values"];
        assert_eq!(
            values,
            &json!([
                [T0 / 1000, "0.5"],
                [T0 / 1000 + 60, "1.5"],
                [T0 / 1000 + 120, "1.5"]
            ])
        );
        assert_eq!(v["data"]["result"][0]["metric"]["__name__"], "node_load1");
        // POST form, duration step, and an info annotation for a non-counter rate.
        let form = format!(
            "query={}&start={}&end={}&step=1m",
            enc("rate(node_load1[5m])"),
            secs(T0),
            secs(T0 + 120_000)
        );
        let (status, body) = s
            .post("/api/v1/query_range", "application/x-www-form-urlencoded", form)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["infos"][0].as_str().unwrap().contains("might not be a counter"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn grafana_save_and_test_and_metadata_endpoints() {
        let s = seeded().await;
        let v = s.get_json("/api/v1/query?query=1%2B1&time=4").await;
        assert_eq!(
            v,
            json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
        );
        let v = s.get_json("/api/v1/labels").await;
        assert_eq!(v["data"], json!(["__name__", "cpu", "instance", "mode"]));
        let v = s.get_json("/api/v1/label/__name__/values").await;
        assert_eq!(v["data"], json!(["node_cpu_seconds_total", "node_load1"]));
        let v = s
            .get_json(&format!(
                "/api/v1/label/cpu/values?match[]={}",
                enc("node_cpu_seconds_total{cpu=\"1\"}")
            ))
            .await;
        assert_eq!(v["data"], json!(["1"]));
        let v = s
            .get_json(&format!(
                "/api/v1/series?match[]={}",
                enc("{instance=\"a\",cpu!=\"0\"}")
            ))
            .await;
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
        let v = s.get_json("/api/v1/metadata").await;
        assert_eq!(v["data"]["node_cpu_seconds_total"][0]["type"], "counter");
        assert_eq!(
            s.get_json("/api/v1/query_exemplars?query=up").await["data"],
            json!([])
        );
        assert_eq!(s.get_json("/api/v1/rules").await["data"], json!({"groups": []}));
        assert_eq!(
            s.get_json("/api/v1/status/buildinfo").await["data"]["version"],
            "2.53.0"
        );
        // Data written before a flush reads the same from the block.
        s.state.engine.flush_metrics().unwrap();
        let v = s.get_json("/api/v1/label/__name__/values").await;
        assert_eq!(v["data"], json!(["node_cpu_seconds_total", "node_load1"]));
    }

    #[tokio::test]
    async fn times_round_to_the_millisecond_like_prometheus() {
        let s = TestStore::new(&[]);
        // 1795454865.945 is 1795454865.9449999 as a float: it must still mean ...945.
        let v = s.get_json("/api/v1/query?query=time()&time=1795454865.945").await;
        assert_eq!(v["data"]["result"], json!([1795454865.945, "1795454865.945"]));
        let v = s
            .get_json("/api/v1/query?query=time()&time=2026-11-23T10:00:00.5Z")
            .await;
        assert_eq!(v["data"]["result"][1], "1795428000.5");
    }

    #[tokio::test]
    async fn errors_have_prometheus_shapes() {
        let s = seeded().await;
        for (uri, status, kind, msg) in [
            (
                "/api/v1/query?query=sum(",
                400,
                "bad_data",
                "invalid parameter \"query\"",
            ),
            (
                "/api/v1/query?query=up&time=yesterday",
                400,
                "bad_data",
                "cannot parse \"yesterday\" to a valid timestamp",
            ),
            (
                "/api/v1/query_range?query=up&start=10&end=5&step=1",
                400,
                "bad_data",
                "end timestamp must not be before start time",
            ),
            (
                "/api/v1/query_range?query=up&start=0&end=100000&step=1",
                400,
                "bad_data",
                "exceeded maximum resolution of 11,000 points",
            ),
            (
                "/api/v1/query_range?query=up&start=0&end=10",
                400,
                "bad_data",
                "invalid parameter \"step\"",
            ),
            ("/api/v1/series", 400, "bad_data", "no match[] parameter provided"),
            (
                "/api/v1/query?query=up%5B5m%5D%20%2B%201",
                400,
                "bad_data",
                "binary expression must contain only scalar and instant vector types",
            ),
        ] {
            let (st, body) = s.get(uri).await;
            assert_eq!(st.as_u16(), status, "{uri}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "error", "{uri}");
            assert_eq!(v["errorType"], kind, "{uri}");
            assert!(v["error"].as_str().unwrap().contains(msg), "{uri}: {body}");
        }
        let q = enc("node_cpu_seconds_total + on() node_load1");
        let (st, body) = s
            .get(&format!("/api/v1/query?query={q}&time={}", secs(T0 + 60_000)))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("\"errorType\":\"execution\""), "{body}");
    }

    #[tokio::test]
    async fn bad_remote_write_is_refused_whole_with_a_reason() {
        let s = TestStore::new(&[]);
        let labels: Vec<(String, String)> = (0..31).map(|i| (format!("l{i:02}"), "v".into())).collect();
        let mut wide: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        wide[0] = ("__name__", "wide");
        let nameless = vec![("job", "x")];
        let over_limit = "has 31 labels; the limit is 30 (max_label_names_per_metric_series in [store])";
        for (bad, reason) in [(nameless, "has no metric name"), (wide, over_limit)] {
            let req = WriteRequest {
                timeseries: vec![
                    series(&[("__name__", "ok")], &[(T0, 1.0)]),
                    series(&bad, &[(T0, 1.0)]),
                ],
                metadata: vec![],
            };
            let (status, body) = s
                .post("/api/v1/write", "application/x-protobuf", encode_write(&req))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(body.contains(reason), "{body}");
            let v = s.get_json("/api/v1/label/__name__/values").await;
            assert_eq!(v["data"], json!([]), "nothing of the bad request was stored");
        }
    }
}
