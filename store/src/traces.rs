//! Traces on disk: one document per span in day partitions (by span start; see
//! `partitions.rs` for commit payloads and replay), looked up by trace id and searched with
//! TraceQL.
//!
//! # Schema v1 (`<data_dir>/traces/v1/<YYYY-MM-DD>/`)
//!
//! | field      | type  | options               | holds                                         |
//! |------------|-------|-----------------------|-----------------------------------------------|
//! | `trace_id` | text  | raw, stored           | 32 lowercase hex digits                       |
//! | `root`     | u64   | indexed, fast         | 1 for a span without parent                   |
//! | `name`     | text  | raw terms             | span name                                     |
//! | `service`  | text  | raw terms             | `service.name` of the span's resource         |
//! | `status`   | u64   | indexed, fast         | OTLP status code                              |
//! | `kind`     | u64   | indexed, fast         | OTLP span kind                                |
//! | `start`    | i64   | fast, stored (*)      | start, Unix ns                                |
//! | `duration` | u64   | fast, stored (*)      | nanoseconds                                   |
//! | `attr`     | text  | raw terms             | `resource.<k>=<v>` and `span.<k>=<v>`         |
//! | `otlp`     | bytes | stored                | encoded `ResourceSpans` holding only the span |
//!
//! (*) Partitions created before 2026-12 also index `start` and `duration`; ranges over them
//! are read from the fast fields either way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING};
use tantivy::{DocAddress, Index, Order, Searcher, TantivyDocument, Term};

use crate::convert::attr as attr_string;
use crate::model::SpanBatch;
use crate::partitions::{IndexError, Partitions};
use crate::traceql::{Scope, SpanView};

#[derive(Debug, Clone, Copy)]
struct Fields {
    trace_id: Field,
    root: Field,
    name: Field,
    service: Field,
    status: Field,
    kind: Field,
    start: Field,
    duration: Field,
    attr: Field,
    otlp: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        trace_id: b.add_text_field("trace_id", STRING | STORED),
        root: b.add_u64_field("root", INDEXED | FAST),
        name: b.add_text_field("name", STRING),
        service: b.add_text_field("service", STRING),
        status: b.add_u64_field("status", INDEXED | FAST),
        kind: b.add_u64_field("kind", INDEXED | FAST),
        start: b.add_i64_field("start", FAST | STORED),
        duration: b.add_u64_field("duration", FAST | STORED),
        attr: b.add_text_field("attr", STRING),
        otlp: b.add_bytes_field("otlp", STORED),
    };
    (b.build(), f)
}

/// A stored span, decoded.
#[derive(Debug, Clone)]
pub(crate) struct StoredSpan {
    pub(crate) trace_id: String,
    pub(crate) start_ns: i64,
    pub(crate) duration_ns: i64,
    pub(crate) otlp: ResourceSpans,
}

impl StoredSpan {
    pub(crate) fn span(&self) -> &Span {
        &self.otlp.scope_spans[0].spans[0]
    }

    pub(crate) fn service(&self) -> String {
        self.attr(Scope::Resource, "service.name")
            .unwrap_or_else(|| "unknown_service".into())
    }
}

impl SpanView for StoredSpan {
    fn name(&self) -> &str {
        &self.span().name
    }
    fn status(&self) -> i32 {
        self.span().status.as_ref().map_or(0, |s| s.code)
    }
    fn kind(&self) -> i32 {
        self.span().kind
    }
    fn duration_ns(&self) -> i64 {
        self.duration_ns
    }
    fn status_message(&self) -> &str {
        self.span().status.as_ref().map_or("", |s| s.message.as_str())
    }
    fn attr(&self, scope: Scope, key: &str) -> Option<String> {
        let span = || {
            self.span()
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(attr_string)
        };
        let resource = || {
            self.otlp
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == key)
                .map(attr_string)
        };
        match scope {
            Scope::Span => span(),
            Scope::Resource => resource(),
            Scope::Any => span().or_else(resource),
        }
    }
}

/// A stored span's `ResourceSpans` as far as indexing reads it: the resource's and the span's
/// attributes (tags as in OTLP; prost skips the other fields without building them).
#[derive(Clone, PartialEq, prost::Message)]
struct AttributesOnly {
    #[prost(message, optional, tag = "1")]
    resource: Option<Attributes>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpansAttributes>,
}

/// `Resource.attributes` (tag 1).
#[derive(Clone, PartialEq, prost::Message)]
struct Attributes {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

/// `ScopeSpans.spans` (tag 2), each with `Span.attributes` (tag 9).
#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpansAttributes {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<SpanAttributes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SpanAttributes {
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
}

#[derive(Debug)]
pub(crate) struct TraceIndex {
    /// Commit, retention and disk usage are the partitions' (the engine calls them directly).
    pub(crate) parts: Partitions,
    fields: Fields,
}

fn setup(_: &Index) {}

/// Matches everything in any partition: trace lookups without a time range.
const ALL_TIME: (i64, i64) = (i64::MIN / 2, i64::MAX / 2);

impl TraceIndex {
    pub(crate) fn open(data_dir: &Path) -> Result<TraceIndex, IndexError> {
        let (schema, fields) = schema();
        let parts = Partitions::open(data_dir.join("traces").join("v1"), schema, setup)?;
        Ok(TraceIndex { parts, fields })
    }

    pub(crate) fn apply(&self, seq: u64, batch: &SpanBatch) -> Result<usize, IndexError> {
        let f = self.fields;
        let mut adder = self.parts.adder();
        let mut added = 0;
        for s in &batch.spans {
            // Room for the values at once (the document's buffer otherwise grows by doubling).
            let room = s.otlp.len() + s.trace_id.len() + s.name.len() + s.service.len() + 256;
            let mut doc = TantivyDocument::with_capacity(room);
            doc.add_text(f.trace_id, &s.trace_id);
            doc.add_u64(f.root, u64::from(s.parent_span_id.is_empty()));
            doc.add_text(f.name, &s.name);
            doc.add_text(f.service, &s.service);
            doc.add_u64(f.status, s.status.max(0) as u64);
            doc.add_u64(f.kind, s.kind.max(0) as u64);
            doc.add_i64(f.start, s.start_ns);
            doc.add_u64(f.duration, (s.end_ns - s.start_ns).max(0) as u64);
            if let Ok(rs) = AttributesOnly::decode(s.otlp.as_slice()) {
                for kv in rs.resource.iter().flat_map(|r| &r.attributes) {
                    doc.add_text(f.attr, format!("resource.{}={}", kv.key, attr_string(kv)));
                }
                for kv in rs
                    .scope_spans
                    .iter()
                    .flat_map(|ss| &ss.spans)
                    .flat_map(|sp| &sp.attributes)
                {
                    doc.add_text(f.attr, format!("span.{}={}", kv.key, attr_string(kv)));
                }
            }
            doc.add_bytes(f.otlp, &s.otlp);
            added += usize::from(adder.add(s.start_ns, seq, doc)?);
        }
        Ok(added)
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }

    fn decode(&self, searcher: &Searcher, addr: DocAddress) -> Result<StoredSpan, tantivy::TantivyError> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let f = self.fields;
        let bytes = doc
            .get_first(f.otlp)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        let otlp = ResourceSpans::decode(bytes)
            .map_err(|e| tantivy::TantivyError::InternalError(format!("stored span does not decode: {e}")))?;
        if otlp.scope_spans.first().is_none_or(|ss| ss.spans.is_empty()) {
            return Err(tantivy::TantivyError::InternalError(
                "stored span is empty".into(),
            ));
        }
        Ok(StoredSpan {
            trace_id: doc
                .get_first(f.trace_id)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            start_ns: doc
                .get_first(f.start)
                .and_then(|v| v.as_i64())
                .unwrap_or_default(),
            duration_ns: doc
                .get_first(f.duration)
                .and_then(|v| v.as_u64())
                .unwrap_or_default() as i64,
            otlp,
        })
    }

    /// Every span of a trace, oldest first (at most `max_spans`).
    pub(crate) fn trace(
        &self,
        trace_id: &str,
        max_spans: usize,
    ) -> Result<Vec<StoredSpan>, tantivy::TantivyError> {
        let q = self.term(self.fields.trace_id, &trace_id.to_ascii_lowercase());
        let mut out = Vec::new();
        for searcher in self.parts.searchers(ALL_TIME.0, ALL_TIME.1) {
            for (_, addr) in searcher.search(
                &q,
                &TopDocs::with_limit(max_spans).order_by_fast_field::<i64>("start", Order::Asc),
            )? {
                out.push(self.decode(&searcher, addr)?);
            }
        }
        out.sort_by_key(|s| s.start_ns);
        out.truncate(max_spans);
        Ok(out)
    }

    /// Spans that start in `[start_ns, end_ns)` and carry every `(scoped key, value)` hint,
    /// newest first; at most `max` (`Err(max)` when there are more).
    pub(crate) fn candidates(
        &self,
        start_ns: i64,
        end_ns: i64,
        hints: &[(Option<Scope>, &str, &str)],
        min_duration_ns: Option<i64>,
        max: usize,
    ) -> Result<Result<Vec<StoredSpan>, usize>, tantivy::TantivyError> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(f.start, start_ns)),
                Bound::Excluded(Term::from_field_i64(f.start, end_ns)),
            )),
        )];
        if let Some(min) = min_duration_ns {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(f.duration, min.max(0) as u64)),
                    Bound::Unbounded,
                )),
            ));
        }
        for (scope, key, value) in hints {
            let q = match (scope, *key) {
                (None, "name") => self.term(f.name, value),
                (None, _) => continue,
                (Some(Scope::Resource), k) => self.term(f.attr, &format!("resource.{k}={value}")),
                (Some(Scope::Span), k) => self.term(f.attr, &format!("span.{k}={value}")),
                (Some(Scope::Any), k) => Box::new(BooleanQuery::new(vec![
                    (Occur::Should, self.term(f.attr, &format!("resource.{k}={value}"))),
                    (Occur::Should, self.term(f.attr, &format!("span.{k}={value}"))),
                ])),
            };
            clauses.push((Occur::Must, q));
        }
        let query = BooleanQuery::new(clauses);
        let mut out = Vec::new();
        for searcher in self.parts.searchers(start_ns, end_ns).iter().rev() {
            let hits = searcher.search(
                &query,
                &TopDocs::with_limit(max + 1).order_by_fast_field::<i64>("start", Order::Desc),
            )?;
            for (_, addr) in hits {
                out.push(self.decode(searcher, addr)?);
                if out.len() > max {
                    return Ok(Err(max));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Attribute names by scope (`resource`, `span`) seen in `[start_ns, end_ns)`.
    pub(crate) fn tag_names(&self, start_ns: i64, end_ns: i64) -> BTreeMap<&'static str, BTreeSet<String>> {
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for (scope, key, _) in self.attr_terms(start_ns, end_ns, "") {
            out.entry(scope).or_default().insert(key);
        }
        out
    }

    /// Values of an attribute (scoped `resource`/`span`, or both) or of the `name` intrinsic.
    pub(crate) fn tag_values(
        &self,
        start_ns: i64,
        end_ns: i64,
        scope: Option<Scope>,
        key: &str,
    ) -> BTreeSet<String> {
        if scope.is_none() && key == "name" {
            return self
                .terms(self.fields.name, start_ns, end_ns, "")
                .into_iter()
                .collect();
        }
        let scopes: &[(&str, Scope)] = &[("resource", Scope::Resource), ("span", Scope::Span)];
        let mut out = BTreeSet::new();
        for (prefix, s) in scopes {
            if scope.is_none_or(|want| want == *s || want == Scope::Any) {
                for t in self.terms(self.fields.attr, start_ns, end_ns, &format!("{prefix}.{key}=")) {
                    out.insert(t[prefix.len() + key.len() + 2..].to_string());
                }
            }
        }
        out
    }

    fn attr_terms(&self, start_ns: i64, end_ns: i64, prefix: &str) -> Vec<(&'static str, String, String)> {
        self.terms(self.fields.attr, start_ns, end_ns, prefix)
            .into_iter()
            .filter_map(|t| {
                let (scoped, value) = t.split_once('=')?;
                let (scope, key) = scoped.split_once('.')?;
                let scope = if scope == "resource" { "resource" } else { "span" };
                Some((scope, key.to_string(), value.to_string()))
            })
            .collect()
    }

    fn terms(&self, field: Field, start_ns: i64, end_ns: i64, prefix: &str) -> Vec<String> {
        let mut out = BTreeSet::new();
        for searcher in self.parts.searchers(start_ns, end_ns) {
            for seg in searcher.segment_readers() {
                let Ok(inv) = seg.inverted_index(field) else {
                    continue;
                };
                let Ok(mut stream) = inv.terms().range().ge(prefix.as_bytes()).into_stream() else {
                    continue;
                };
                while stream.advance() {
                    if !stream.key().starts_with(prefix.as_bytes()) {
                        break;
                    }
                    if let Ok(t) = std::str::from_utf8(stream.key()) {
                        out.insert(t.to_string());
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Reassembles spans into OTLP `ResourceSpans`, merging spans that share resource and scope.
pub(crate) fn assemble(spans: &[StoredSpan]) -> Vec<ResourceSpans> {
    let mut by_resource: Vec<(Vec<u8>, ResourceSpans)> = Vec::new();
    for s in spans {
        let key = s
            .otlp
            .resource
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default();
        let idx = match by_resource.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                by_resource.push((
                    key,
                    ResourceSpans {
                        resource: s.otlp.resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: s.otlp.schema_url.clone(),
                    },
                ));
                by_resource.len() - 1
            }
        };
        let rs = &mut by_resource[idx].1;
        let ss_in = &s.otlp.scope_spans[0];
        match rs.scope_spans.iter_mut().find(|ss| ss.scope == ss_in.scope) {
            Some(ss) => ss.spans.push(s.span().clone()),
            None => rs.scope_spans.push(ScopeSpans {
                scope: ss_in.scope.clone(),
                spans: vec![s.span().clone()],
                schema_url: ss_in.schema_url.clone(),
            }),
        }
    }
    by_resource.into_iter().map(|(_, rs)| rs).collect()
}

/// Per trace: its spans, grouped from candidates (newest trace first).
pub(crate) fn group_by_trace(spans: Vec<StoredSpan>) -> Vec<(String, Vec<StoredSpan>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<StoredSpan>> = HashMap::new();
    for s in spans {
        if !groups.contains_key(&s.trace_id) {
            order.push(s.trace_id.clone());
        }
        groups.entry(s.trace_id.clone()).or_default().push(s);
    }
    order
        .into_iter()
        .map(|id| {
            let spans = groups.remove(&id).unwrap_or_default();
            (id, spans)
        })
        .collect()
}
