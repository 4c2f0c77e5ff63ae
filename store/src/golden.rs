//! Golden tests for the on-disk formats as a whole: `tests/fixtures/store-v6/` is a data dir
//! written by this release's formats (WAL v1, log schema v6, trace schema v1): committed lines
//! (some with an id, one with numbers, found by needles through the bloom filters) and spans,
//! plus one WAL record written after the last commit. The store must open it, replay that
//! record, and answer the same queries. Once released, a new format version keeps this
//! fixture and adds its own (ARCHITECTURE.md).
//!
//! Rewrite the fixture (only for a deliberate format change before the first release):
//! `OBS_REGENERATE_GOLDEN=1 cargo test -p obs-store golden`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Retention;
use crate::ingest::Engine;
use crate::logql::{self, Limits};
use crate::model::{LogBatch, LogEntry, LogStream, SpanBatch};

const RETENTION: Retention = Retention {
    logs: LONG,
    traces: LONG,
    metrics: LONG,
};
const LONG: Duration = Duration::from_secs(200 * 365 * 86400);
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600_000_000_000;

/// The fixture of this release's formats.
const FIXTURE: &str = "store-v6";
/// A line with an id.
const ID_LINE: &str = "req 4bf92f3577b34da6a3ce929d0e0e4736 done";
/// A line with numbers.
const NUMBER_LINE: &str = "took 48213 us for user 7395061";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn logs(job: &str, lines: &[&str]) -> LogBatch {
    LogBatch {
        streams: vec![LogStream {
            labels: [("job".to_string(), job.to_string())].into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| LogEntry {
                    ts_ns: T0 + i as i64 * 1_000_000_000,
                    line: l.to_string(),
                    metadata: vec![("trace_id".into(), "ab".repeat(16))],
                })
                .collect(),
        }],
    }
}

fn spans() -> SpanBatch {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let span = |id: u8, parent: Option<u8>, name: &str| Span {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: T0 as u64,
        end_time_unix_nano: T0 as u64 + 5_000_000,
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, None, "root"), span(2, Some(1), "child")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    crate::convert::otlp_traces(&req).unwrap()
}

async fn write_fixture(dir: &Path) {
    let (engine, _) = Engine::open(dir, RETENTION).unwrap();
    engine
        .ingest_logs(logs("committed", &["first line", "second line"]))
        .await
        .unwrap();
    engine
        .ingest_logs(logs("ids", &[ID_LINE, "req other", NUMBER_LINE]))
        .await
        .unwrap();
    engine.ingest_spans(spans()).await.unwrap();
    engine.commit().unwrap();
    engine
        .ingest_logs(logs("in-wal-only", &["replayed line"]))
        .await
        .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[tokio::test]
async fn the_data_dir_opens_replays_and_answers() {
    if std::env::var_os("OBS_REGENERATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(fixture(FIXTURE));
        write_fixture(&fixture(FIXTURE)).await;
    }
    opens_replays_and_answers(FIXTURE);
}

fn opens_replays_and_answers(name: &str) {
    assert!(
        fixture(name).join("wal").is_dir(),
        "fixture missing: {}",
        fixture(name).display()
    );
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    let (engine, report) = Engine::open(dir.path(), RETENTION).unwrap();
    assert!(report.quarantined.is_empty(), "{name}");
    let q = |sel: &str| {
        let ::logql::Expr::Log(lq) = logql::parse(sel).unwrap() else {
            panic!()
        };
        let (streams, _) = logql::query_logs(
            engine.logs(),
            &lq,
            T0,
            T0 + 86_400_000_000_000,
            100,
            false,
            &Limits::default(),
        )
        .unwrap();
        streams
            .into_iter()
            .flat_map(|s| s.entries.into_iter().map(|e| e.1))
            .collect::<Vec<_>>()
    };
    assert_eq!(q(r#"{job="committed"}"#), ["first line", "second line"], "{name}");
    let by_metadata = format!(r#"{{job="committed"}} | trace_id="{}""#, "ab".repeat(16));
    assert_eq!(q(&by_metadata), ["first line", "second line"], "{name}: metadata");
    assert_eq!(
        q(r#"{job="in-wal-only"}"#),
        ["replayed line"],
        "{name}: the WAL record is replayed"
    );
    // The hint of an id fragment looks only at blocks whose filter may hold its pieces: a
    // filter read differently than it was written would miss the line.
    for needle in [
        "77b34da6a3ce",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "e0e4736 done",
        "req 4bf92f",
    ] {
        let found = q(&format!(r#"{{job="ids"}} |= "{needle}""#));
        assert_eq!(found, [ID_LINE], "{name}: needle {needle}");
    }
    // Numbers are found by their windows in the filters (needles that start at a word's
    // start: no fallback to every block with ids).
    for needle in ["took 48213 us", "user 739506", " 7395061"] {
        let found = q(&format!(r#"{{job="ids"}} |= "{needle}""#));
        assert_eq!(found, [NUMBER_LINE], "{name}: needle {needle}");
    }
    let trace = engine.traces().trace(&"ab".repeat(16), 10).unwrap();
    let names: Vec<&str> = trace.iter().map(|s| s.span().name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"root") && names.contains(&"child"));
    assert_eq!(
        engine
            .traces()
            .tag_values(T0, T0 + 86_400_000_000_000, None, "name")
            .into_iter()
            .collect::<Vec<_>>(),
        ["child", "root"]
    );
}

/// Builds before 0.1.0's log format was settled wrote schemas v1 to v4: such a data dir is
/// refused at start, naming the schema and what to do, rather than misread.
#[test]
fn a_log_index_of_an_older_schema_is_refused_with_what_to_do() {
    for old in ["v1", "v2", "v3", "v4"] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(FIXTURE), dir.path());
        std::fs::create_dir_all(dir.path().join("logs").join(old).join("2026-01-01")).unwrap();
        let e = Engine::open(dir.path(), RETENTION).unwrap_err().to_string();
        assert!(
            e.contains(&format!("holds log partitions of schema {old}")),
            "{e}"
        );
        assert!(e.contains("this build reads only schema v6. Move"), "{e}");
    }
}
