//! The shipper: reads the spool from its acknowledged position, sends records to the store
//! over OTLP/gRPC, and acknowledges them in the spool once the store accepted them.
//!
//! Consecutive records of one kind go out as one request: an OTLP `Export*ServiceRequest`
//! is a repeated field, so concatenated payloads are a valid request and the collector
//! never decodes what it ships (`grpc.rs` frames the bytes as they are). Requests are
//! compressed (zstd by default), carry the bearer token, and are retried with exponential
//! backoff and jitter until delivered. A request the store calls malformed
//! (`InvalidArgument`) can never succeed: it is counted, logged and skipped.
//!
//! The store is one [`Route`]; each `[[collector.forward]]` is another, shipping the same
//! spool through its own cursor with the same pipeline (`forward.rs` for HTTP protocols).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use prost::Message;
use tokio::sync::watch;
use tonic::{Code, Status};

use crate::grpc::Exporter;
use crate::spool::{Kind, Position, Record, Spool};

/// Where and how to ship.
#[derive(Debug, Clone)]
pub(crate) struct ExportConfig {
    /// `http://host:port` or `https://host:port` of the store's OTLP/gRPC listener.
    pub endpoint: String,
    pub token: Option<String>,
    /// `zstd`, `gzip` or `none`.
    pub compression: String,
    /// PEM CA certificate to trust for `https` (else the system's web PKI roots).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Shipping counters, exported on the collector's `/metrics`.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub sent_requests: AtomicU64,
    /// Spool records delivered (or skipped as malformed): equal to the spool's appended
    /// records once everything is shipped.
    pub sent_records: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub retries: AtomicU64,
    pub rejected_requests: AtomicU64,
    /// Items the store accepted the request but refused (OTLP partial success).
    pub rejected_items: AtomicU64,
    /// Unix seconds of the last successful delivery.
    pub last_success: AtomicU64,
    /// Unix seconds of the first failed attempt since the last delivery (0: none failed).
    pub failing_since: AtomicU64,
}

/// (items rejected, message) from an OTLP export response's partial success.
fn partial_success(kind: Kind, body: &[u8]) -> Option<(i64, String)> {
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    let (n, msg) = match kind {
        Kind::Logs => {
            let p = logs::v1::ExportLogsServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_log_records, p.error_message)
        }
        Kind::Metrics => {
            let p = metrics::v1::ExportMetricsServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_data_points, p.error_message)
        }
        Kind::Traces => {
            let p = trace::v1::ExportTraceServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (p.rejected_spans, p.error_message)
        }
    };
    (n > 0 || !msg.is_empty()).then_some((n, msg))
}

/// Where a route ships: OTLP/gRPC (the store, or an `otlp` forward) or an HTTP forward.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    Grpc(Exporter),
    Http(crate::forward::HttpSink),
}

impl Sink {
    fn carries(&self, kind: Kind) -> bool {
        match self {
            Sink::Grpc(_) => true,
            Sink::Http(h) => h.carries(kind),
        }
    }

    async fn send(&self, kind: Kind, body: Bytes) -> Result<Bytes, Status> {
        match self {
            Sink::Grpc(e) => e.send(kind, body).await,
            Sink::Http(h) => h.send(kind, body).await,
        }
    }
}

/// One consumer of the spool and where it ships.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The spool consumer: 0 for the store, `i` for the `i`-th forward.
    pub consumer: usize,
    /// `store`, or the forward's name (in log lines).
    pub name: String,
    pub sink: Sink,
    /// Spooled payload per request at most: what a crash can make the collector send twice.
    pub max_request_bytes: usize,
    /// Requests on the wire at once.
    pub max_in_flight: usize,
    pub stats: Arc<ExportStats>,
}

/// Backoff before retry `attempt` (1-based): 200 ms doubling to 30 s, with ±50% jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(8)).min(30_000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Groups consecutive records of one kind into requests of at most `max_bytes` (a larger
/// record goes alone).
fn requests(records: Vec<Record>, max_bytes: usize) -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = Vec::new();
    for r in records {
        match out.last_mut() {
            Some(o) if o.kind == r.kind && o.body.len() + r.payload.len() <= max_bytes => {
                o.body.extend_from_slice(&r.payload);
                o.end = r.end;
                o.records += 1;
            }
            _ => out.push(Outgoing {
                kind: r.kind,
                body: r.payload,
                end: r.end,
                records: 1,
            }),
        }
    }
    out
}

/// One request to send: spool records of one kind, concatenated.
struct Outgoing {
    kind: Kind,
    body: Vec<u8>,
    /// The spool position to acknowledge once it is delivered.
    end: Position,
    records: u64,
}

/// Ships the spool along `route` until `shutdown`; never gives up on a record.
///
/// Up to `max_in_flight` requests are on the wire at once (the store answers each only
/// after its WAL fsync, so one at a time would leave the link idle); they are acknowledged
/// in the spool in order, so the acknowledged position never passes an undelivered record.
pub(crate) async fn ship(spool: Arc<Spool>, route: Route, mut shutdown: watch::Receiver<bool>) {
    let route = Arc::new(route);
    let (max_bytes, max_in_flight) = (route.max_request_bytes.max(1), route.max_in_flight.max(1));
    let consumer = route.consumer;
    let mut cursor = spool.acked(consumer);
    let mut queue: VecDeque<Outgoing> = VecDeque::new();
    let mut in_flight = FuturesOrdered::new();
    // Deliveries are recorded in the spool off this loop, one write at a time, each for the
    // latest position (an ack file write is two fsyncs; waiting for each one here held the
    // pipeline back). A request keeps its place in the pipeline until its delivery is
    // recorded, so a crash still re-sends at most `max_in_flight` requests.
    let mut delivered: Option<Position> = None;
    let (mut unrecorded, mut being_recorded) = (0, 0);
    let mut recording: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
    while !*shutdown.borrow() {
        // Fill the pipeline from the spool.
        while in_flight.len() + unrecorded + being_recorded < max_in_flight {
            if queue.is_empty() {
                // One read for every free slot: a read is a trip to the blocking pool.
                let free = max_in_flight - (in_flight.len() + unrecorded + being_recorded);
                let s = spool.clone();
                match tokio::task::spawn_blocking(move || s.read(cursor, max_bytes * free)).await {
                    Ok(Ok(batch)) => {
                        let moved = batch.next != cursor;
                        cursor = batch.next;
                        queue.extend(requests(batch.records, max_bytes));
                        if queue.is_empty() && moved {
                            continue; // a segment boundary or a quarantined segment
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot read the spool; retrying"),
                    Err(e) => tracing::error!(error = %e, "the spool reader stopped; retrying"),
                }
            }
            let Some(out) = queue.pop_front() else { break };
            // A task of its own: requests compress in parallel, on any worker.
            in_flight.push_back(Delivery(tokio::spawn(deliver(
                route.clone(),
                out,
                shutdown.clone(),
            ))));
        }
        let idle = in_flight.is_empty();
        tokio::select! {
            Some(done) = in_flight.next(), if !idle => {
                let end = match done {
                    Ok(Some(end)) => end,
                    Ok(None) => break, // shutdown while retrying
                    Err(e) => {
                        tracing::error!(error = %e, to = %route.name, "a delivery failed unexpectedly; shipping to it stops until restart");
                        break;
                    }
                };
                delivered = Some(end);
                unrecorded += 1;
            }
            written = async { recording.as_mut().expect("guarded").await }, if recording.is_some() => {
                (recording, being_recorded) = (None, 0);
                report_ack(written);
            }
            _ = spool.appended.notified(), if in_flight.len() + unrecorded + being_recorded < max_in_flight && queue.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)), if idle => {}
            _ = shutdown.changed() => {}
        }
        if recording.is_none() {
            if let Some(end) = delivered.take() {
                (unrecorded, being_recorded) = (0, unrecorded);
                recording = Some(record(&spool, consumer, end));
            }
        }
    }
    // On the way out, the last delivery is recorded before returning.
    if let Some(r) = recording {
        report_ack(r.await);
    }
    if let Some(end) = delivered {
        report_ack(record(&spool, consumer, end).await);
    }
}

/// A delivery running as a task of its own. Dropped with the shipping loop (at shutdown), it
/// is aborted, so no request outlives the loop and holds the connection open.
struct Delivery(tokio::task::JoinHandle<Option<Position>>);

impl std::future::Future for Delivery {
    type Output = Result<Option<Position>, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records in the spool, on the blocking pool, that `consumer` has everything before `end`.
fn record(
    spool: &Arc<Spool>,
    consumer: usize,
    end: Position,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let s = spool.clone();
    tokio::task::spawn_blocking(move || s.ack(consumer, end))
}

fn report_ack(written: Result<std::io::Result<()>, tokio::task::JoinError>) {
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot record delivery in the spool; those records may be sent again")
        }
        Err(e) => tracing::error!(error = %e, "the spool ack stopped; those records may be sent again"),
    }
}

/// Sends one request until the destination takes it (or calls it malformed); the spool
/// position to acknowledge, or `None` if shutdown came first. A request of a kind the
/// destination does not carry is passed over.
async fn deliver(route: Arc<Route>, out: Outgoing, mut shutdown: watch::Receiver<bool>) -> Option<Position> {
    let Outgoing {
        kind,
        body,
        end,
        records,
    } = out;
    if !route.sink.carries(kind) {
        return Some(end);
    }
    let (stats, to) = (&route.stats, route.name.as_str());
    let body = Bytes::from(body);
    let mut attempt = 0;
    loop {
        match route.sink.send(kind, body.clone()).await {
            Ok(answer) => {
                stats.sent_requests.fetch_add(1, Ordering::Relaxed);
                stats.sent_records.fetch_add(records, Ordering::Relaxed);
                stats.sent_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                stats.last_success.store(crate::now_secs(), Ordering::Relaxed);
                stats.failing_since.store(0, Ordering::Relaxed);
                if let Some((n, msg)) = partial_success(kind, &answer) {
                    stats.rejected_items.fetch_add(n.max(0) as u64, Ordering::Relaxed);
                    tracing::warn!(rejected = n, reason = %msg, to, "the destination refused part of a request");
                }
                return Some(end);
            }
            Err(s) if s.code() == Code::InvalidArgument => {
                stats.failing_since.store(0, Ordering::Relaxed);
                stats.rejected_requests.fetch_add(1, Ordering::Relaxed);
                stats.sent_records.fetch_add(records, Ordering::Relaxed);
                tracing::error!(reason = %s.message(), ?kind, bytes = body.len(), to, "the destination rejected a request as malformed; skipping it");
                return Some(end);
            }
            Err(s) => {
                attempt += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let _ = stats.failing_since.compare_exchange(
                    0,
                    crate::now_secs(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                let wait = backoff(attempt);
                let what = match s.code() {
                    Code::Unauthenticated | Code::PermissionDenied => {
                        "the destination refused the token (check token_file; for the store the role must be ingest)"
                    }
                    _ => "cannot deliver; will retry",
                };
                tracing::warn!(code = ?s.code(), error = %s.message(), retry_in = ?wait, to, "{what}");
                if sleep_or_stop(wait, &mut shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Sleeps; true if shutdown came first.
async fn sleep_or_stop(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
