//! Replays what Grafana (10/11) sends when a user adds the Prometheus, Loki and Tempo data
//! sources ("Save & test") and opens Explore (label browsers, range queries, logs volume,
//! trace search, trace view), against a real store fed by the OpenTelemetry Python SDK, and
//! checks every answer field by field against the shapes in `shared/design.md` (which are
//! the upstream APIs' shapes). Requests carry Grafana's methods, encodings and headers.

use std::time::{Duration, Instant};

use obs_e2e::{enc, now_ns, otlp_send, StoreProc};
use serde_json::{json, Value};

/// Checks `v` against `template` field by field: objects must have every key of the
/// template (more are allowed), a one-element template array needs a non-empty array whose
/// every element matches it, a longer one is a tuple matched position by position (an empty
/// template array accepts any array), `"<string>"`, `"<number>"`,
/// `"<bool>"`, `"<ns>"` (integer nanoseconds as a string), `"<float>"` (a Prometheus sample
/// value string) and `"<any>"` match by type, every other value must be equal.
fn conforms(v: &Value, template: &Value, path: &str) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{path}: expected {what}, got {v}"));
    match template {
        Value::String(t) if t.starts_with('<') => {
            let ok = match t.as_str() {
                "<any>" => true,
                "<string>" => v.is_string(),
                "<number>" => v.is_number(),
                "<bool>" => v.is_boolean(),
                "<ns>" => v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()),
                "<float>" => v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()),
                other => panic!("unknown template type {other}"),
            };
            if ok {
                Ok(())
            } else {
                fail(t)
            }
        }
        Value::Object(fields) => {
            let Some(obj) = v.as_object() else {
                return fail("an object");
            };
            for (k, t) in fields {
                match obj.get(k) {
                    Some(x) => conforms(x, t, &format!("{path}.{k}"))?,
                    None => return Err(format!("{path}: field `{k}` missing in {v}")),
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(arr) = v.as_array() else {
                return fail("an array");
            };
            if items.len() > 1 {
                // A tuple such as a sample [time, "value"]: position by position.
                if arr.len() != items.len() {
                    return fail(&format!("{} elements", items.len()));
                }
                return arr
                    .iter()
                    .zip(items)
                    .enumerate()
                    .try_for_each(|(i, (x, t))| conforms(x, t, &format!("{path}[{i}]")));
            }
            let Some(t) = items.first() else { return Ok(()) };
            if arr.is_empty() {
                return fail("a non-empty array");
            }
            arr.iter()
                .enumerate()
                .try_for_each(|(i, x)| conforms(x, t, &format!("{path}[{i}]")))
        }
        _ if v == template => Ok(()),
        _ => fail(&template.to_string()),
    }
}

/// Grafana's data source proxy: the headers it adds, a form body on POST.
struct Grafana {
    base: String,
    agent: ureq::Agent,
}

impl Grafana {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Grafana {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// (status, content type, body bytes)
    fn call(&self, method: &str, path: &str, form: Option<&str>, accept: &str) -> (u16, String, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        let mut resp = match form {
            Some(body) => self
                .agent
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", accept)
                .header("user-agent", "Grafana/11.3.0")
                .header("x-grafana-org-id", "1")
                .send(body.as_bytes()),
            None => {
                assert_eq!(method, "GET");
                self.agent
                    .get(&url)
                    .header("accept", accept)
                    .header("user-agent", "Grafana/11.3.0")
                    .header("x-grafana-org-id", "1")
                    .call()
            }
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|h| h.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let body = resp.body_mut().read_to_vec().unwrap();
        (resp.status().as_u16(), ctype, body)
    }

    /// A JSON request that must answer 200 with a body shaped like `template`.
    fn expect(&self, method: &str, path: &str, form: Option<&str>, template: Value) -> Value {
        let (status, ctype, body) = self.call(method, path, form, "application/json");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{method} {path} {form:?}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{path}: content-type {ctype}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        if let Err(e) = conforms(&v, &template, "$") {
            panic!("{method} {path} {form:?}: {e}");
        }
        v
    }
}

fn prometheus_success(data: Value) -> Value {
    json!({"status": "success", "data": data})
}

/// OTLP/HTTP JSON metrics: a counter and a gauge for two hosts, a sample every 15 s.
fn push_metrics(store: &StoreProc, now: i64) {
    let points = |v0: f64, step: f64| -> Vec<Value> {
        (0..20)
            .map(|i| json!({"timeUnixNano": (now - (19 - i) * 15_000_000_000).to_string(), "asDouble": v0 + step * i as f64}))
            .collect()
    };
    let resource = |host: &str| {
        json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": "node"}},
        {"key": "service.instance.id", "value": {"stringValue": host}}]})
    };
    let with_device = |mut p: Value| {
        p["attributes"] = json!([{"key": "device", "value": {"stringValue": "eth0"}}]);
        p
    };
    let per_host: Vec<Value> = ["h1", "h2"]
        .iter()
        .map(|h| {
            let counter: Vec<Value> = points(1000.0, 150.0).into_iter().map(with_device).collect();
            json!({
                "resource": resource(h),
                "scopeMetrics": [{"metrics": [
                    {"name": "node_network_receive_bytes_total",
                     "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": counter}},
                    {"name": "node_load1", "gauge": {"dataPoints": points(0.5, 0.01)}}
                ]}]
            })
        })
        .collect();
    let body = json!({ "resourceMetrics": per_host });
    let (status, text) = obs_e2e::http_post(
        &store.url("/v1/metrics"),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
}

#[test]
fn grafana_data_source_setup_and_explore_get_upstream_shapes() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let g = Grafana::new(&store.url(""));
    let sent = otlp_send(dir, "http", &store.url(""), "shop", (6, 3), &[]);
    let trace_id = sent["trace_ids"][0].as_str().unwrap().to_string();
    let now = now_ns();
    push_metrics(&store, now);
    let (start_s, end_s) = (now / 1_000_000_000 - 3600, now / 1_000_000_000 + 60);
    let (start_ns, end_ns) = (start_s * 1_000_000_000, end_s * 1_000_000_000);

    // --- Prometheus: Save & test (POST, as httpMethod POST), then Explore.
    let v = g.expect(
        "POST",
        "/api/v1/query",
        Some("query=1%2B1&time=4"),
        prometheus_success(json!({"resultType": "scalar", "result": []})),
    );
    assert_eq!(v["data"]["result"], json!([4, "2"]));
    g.expect(
        "GET",
        "/api/v1/status/buildinfo",
        None,
        prometheus_success(json!({"version": "<string>", "revision": "<string>", "branch": "<string>", "goVersion": "<string>"})),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = g.call(
            "GET",
            &format!("/api/v1/label/__name__/values?start={start_s}&end={end_s}"),
            None,
            "application/json",
        );
        if String::from_utf8_lossy(&body).contains("node_load1") {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never became queryable");
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = g.expect(
        "GET",
        &format!("/api/v1/labels?start={start_s}&end={end_s}"),
        None,
        prometheus_success(json!(["<string>"])),
    );
    for label in ["__name__", "instance", "job", "device"] {
        assert!(
            v["data"].as_array().unwrap().contains(&json!(label)),
            "{label}: {v}"
        );
    }
    g.expect(
        "GET",
        &format!(
            "/api/v1/label/instance/values?match[]={}&start={start_s}&end={end_s}",
            enc("node_load1")
        ),
        None,
        prometheus_success(json!(["<string>"])),
    );
    g.expect(
        "GET",
        "/api/v1/metadata",
        None,
        prometheus_success(json!({"node_network_receive_bytes_total": [{"type": "counter", "help": "<string>", "unit": "<string>"}]})),
    );
    let v = g.expect(
        "POST",
        "/api/v1/series",
        Some(&format!(
            "match%5B%5D={}&start={start_s}&end={end_s}",
            enc("{__name__=\"node_load1\"}")
        )),
        prometheus_success(json!([{"__name__": "node_load1", "instance": "<string>", "job": "node"}])),
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let v = g.expect(
        "POST",
        "/api/v1/query_range",
        Some(&format!(
            "query={}&start={}&end={end_s}&step=15",
            enc("sum by (instance) (rate(node_network_receive_bytes_total[1m]))"),
            end_s - 600
        )),
        prometheus_success(json!({"resultType": "matrix", "result": [{"metric": {"instance": "<string>"}, "values": [["<number>", "<float>"]]}]})),
    );
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    let rate: f64 = values[values.len() / 2][1].as_str().unwrap().parse().unwrap();
    assert!((rate - 10.0).abs() < 1e-6, "150 bytes per 15 s is 10/s: {v}");
    g.expect(
        "POST",
        "/api/v1/query",
        Some(&format!("query={}&time={end_s}", enc("node_load1"))),
        prometheus_success(json!({"resultType": "vector", "result": [{"metric": {"__name__": "node_load1"}, "value": ["<number>", "<float>"]}]})),
    );
    g.expect(
        "GET",
        &format!(
            "/api/v1/query_exemplars?query={}&start={start_s}&end={end_s}",
            enc("node_load1")
        ),
        None,
        prometheus_success(json!([])),
    );
    g.expect(
        "GET",
        "/api/v1/rules",
        None,
        prometheus_success(json!({"groups": []})),
    );
    let (status, _, body) = g.call(
        "POST",
        "/api/v1/query",
        Some("query=sum(&time=4"),
        "application/json",
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400, "{v}");
    conforms(
        &v,
        &json!({"status": "error", "errorType": "bad_data", "error": "<string>"}),
        "$",
    )
    .unwrap();

    // --- Loki: Save & test, label browser, logs, logs volume.
    let v = g.expect(
        "GET",
        "/loki/api/v1/query?query=vector(1)%2Bvector(1)&time=4000000000",
        None,
        json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": ["<number>", "2"]}]}}),
    );
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    let (status, _, body) = g.call("GET", "/loki/api/v1/status/buildinfo", None, "application/json");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    conforms(
        &info,
        &json!({"version": "<string>", "revision": "<string>", "branch": "<string>"}),
        "$",
    )
    .unwrap();
    let sel = r#"{service_name="shop"}"#;
    let range = format!("start={start_ns}&end={end_ns}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = g.call(
            "GET",
            &format!("/loki/api/v1/query_range?query={}&{range}&limit=100", enc(sel)),
            None,
            "application/json",
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        let lines: usize = v["data"]["result"].as_array().map_or(0, |r| {
            r.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum()
        });
        if lines == 9 {
            break;
        }
        assert!(Instant::now() < deadline, "logs never became queryable: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = g.expect(
        "GET",
        &format!("/loki/api/v1/labels?{range}"),
        None,
        json!({"status": "success", "data": ["<string>"]}),
    );
    for label in ["service_name", "host_name", "level"] {
        assert!(
            v["data"].as_array().unwrap().contains(&json!(label)),
            "{label}: {v}"
        );
    }
    let v = g.expect(
        "GET",
        &format!("/loki/api/v1/label/service_name/values?{range}"),
        None,
        json!({"status": "success", "data": ["<string>"]}),
    );
    assert!(v["data"].as_array().unwrap().contains(&json!("shop")), "{v}");
    g.expect(
        "GET",
        &format!("/loki/api/v1/series?match[]={}&{range}", enc(sel)),
        None,
        json!({"status": "success", "data": [{"service_name": "shop", "level": "<string>"}]}),
    );
    let v = g.expect(
        "GET",
        &format!("/loki/api/v1/index/stats?query={}&{range}", enc(sel)),
        None,
        json!({"streams": "<number>", "chunks": "<number>", "entries": "<number>", "bytes": "<number>"}),
    );
    assert_eq!(v["entries"], 9, "{v}");
    g.expect(
        "GET",
        &format!("/loki/api/v1/index/volume?query={}&{range}&limit=5000", enc(sel)),
        None,
        json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"service_name": "shop"}, "value": ["<number>", "<float>"]}]}}),
    );
    // Explore's log query: backward, a limit, a step; trace ids come back on each line.
    let v = g.expect(
        "GET",
        &format!("/loki/api/v1/query_range?direction=backward&{range}&limit=1000&query={}&step=2000ms", enc(sel)),
        None,
        json!({"status": "success", "data": {"resultType": "streams", "result": [{"stream": {"service_name": "shop"}, "values": [["<ns>", "<string>"]]}], "stats": {}}}),
    );
    let with_trace = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stream"]["trace_id"] == json!(trace_id))
        .count();
    assert!(
        with_trace >= 1,
        "logs-to-trace needs trace_id on the lines of trace {trace_id}: {v}"
    );
    // Logs volume as Grafana 10 and Grafana 11 ask for it.
    for q in [
        format!("sum by (level) (count_over_time({sel}[1m]))"),
        format!("sum by (level, detected_level) (count_over_time({sel} | drop __error__[1m]))"),
    ] {
        let v = g.expect(
            "GET",
            &format!("/loki/api/v1/query_range?query={}&{range}&step=60000ms&limit=1000", enc(&q)),
            None,
            json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {"level": "<string>"}, "values": [["<number>", "<float>"]]}]}}),
        );
        let levels: Vec<&str> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["metric"]["level"].as_str())
            .collect();
        assert!(levels.contains(&"warn") && levels.contains(&"info"), "{q}: {v}");
    }
    let (status, _, body) = g.call(
        "GET",
        &format!("/loki/api/v1/query_range?query={}&{range}", enc("{service_name=")),
        None,
        "application/json",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // --- Tempo: Save & test, tag browser, TraceQL search, trace view.
    let (status, _, body) = g.call("GET", "/api/echo", None, "*/*");
    assert_eq!((status, body.as_slice()), (200, &b"echo"[..]));
    g.expect(
        "GET",
        "/api/status/buildinfo",
        None,
        json!({"version": "<string>", "revision": "<string>", "branch": "<string>"}),
    );
    let v = g.expect(
        "GET",
        &format!("/api/v2/search/tags?scope=resource&start={start_s}&end={end_s}"),
        None,
        json!({"scopes": [{"name": "<string>", "tags": ["<string>"]}]}),
    );
    assert!(
        v["scopes"][0]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("service.name")),
        "{v}"
    );
    g.expect("GET", "/api/search/tags", None, json!({"tagNames": ["<string>"]}));
    let v = g.expect(
        "GET",
        &format!("/api/v2/search/tag/resource.service.name/values?start={start_s}&end={end_s}"),
        None,
        json!({"tagValues": [{"type": "<string>", "value": "<string>"}]}),
    );
    assert!(
        v["tagValues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["value"] == "shop"),
        "{v}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let search = format!(
        "/api/search?q={}&limit=20&spss=3&start={start_s}&end={end_s}",
        enc(r#"{resource.service.name="shop" && name="checkout"}"#)
    );
    let v = loop {
        let (_, _, body) = g.call("GET", &search, None, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        if v["traces"].as_array().map_or(0, Vec::len) == 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "traces never became searchable: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    conforms(
        &v,
        &json!({"traces": [{
            "traceID": "<string>", "rootServiceName": "shop", "rootTraceName": "checkout",
            "startTimeUnixNano": "<ns>", "durationMs": "<number>",
            "spanSets": [{"spans": [{"spanID": "<string>", "startTimeUnixNano": "<ns>", "durationNanos": "<ns>"}], "matched": "<number>"}]
        }], "metrics": {}}),
        "$",
    )
    .unwrap();
    // Grafana's trace view asks for protobuf; JSON is OTLP JSON.
    for path in [
        format!("/api/traces/{trace_id}"),
        format!("/api/v2/traces/{trace_id}"),
    ] {
        let (status, ctype, body) = g.call("GET", &path, None, "application/protobuf");
        assert_eq!(status, 200, "{path}");
        assert_eq!(ctype, "application/protobuf", "{path}");
        assert!(body.len() > 100, "{path}: {} bytes", body.len());
    }
    let v = g.expect(
        "GET",
        &format!("/api/traces/{trace_id}"),
        None,
        json!({"batches": [{"resource": {"attributes": [{"key": "<string>", "value": {}}]},
            "scopeSpans": [{"spans": [{"traceId": "<string>", "spanId": "<string>", "name": "<string>",
                "startTimeUnixNano": "<ns>", "endTimeUnixNano": "<ns>"}]}]}]}),
    );
    let spans = v["batches"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(spans, 2, "checkout and db.query: {v}");
    let (status, _, _) = g.call(
        "GET",
        "/api/traces/00000000000000000000000000000abc",
        None,
        "application/json",
    );
    assert_eq!(status, 404);
}

#[test]
fn the_shape_checker_catches_what_grafana_would_trip_on() {
    let t = json!({"status": "success", "data": {"result": [{"value": ["<number>", "<float>"]}]}});
    assert!(conforms(
        &json!({"status": "success", "data": {"result": [{"value": [1, "2"]}]}}),
        &t,
        "$"
    )
    .is_ok());
    // A value sent as a number instead of a string, a missing field, an empty result.
    assert!(conforms(
        &json!({"status": "success", "data": {"result": [{"value": [1, 2]}]}}),
        &t,
        "$"
    )
    .is_err());
    assert!(conforms(&json!({"status": "success", "data": {}}), &t, "$").is_err());
    assert!(conforms(&json!({"status": "success", "data": {"result": []}}), &t, "$").is_err());
    assert!(conforms(&json!("123"), &json!("<ns>"), "$").is_ok());
    assert!(conforms(&json!(123), &json!("<ns>"), "$").is_err());
}
