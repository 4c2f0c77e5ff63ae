//! A receiver that accepts OTLP/gRPC exports and throws them away, so that
//! `benches/scripts/collector-throughput` measures the collector and not what it ships to.
//! Vector's file -> TCP test does the same with a socket that only counts bytes.
//!
//! Each request's body is read to its end over HTTP/2 and counted, neither decompressed
//! nor decoded, and answered with an empty message and `grpc-status: 0`. (A real
//! receiver's work is measured with `SINK=collector`.) Usage: `otlp-sink 127.0.0.1:PORT`;
//! on SIGTERM or Ctrl-C it prints the requests and bytes it received.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, Service};
use tonic::server::NamedService;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Answers the OTLP Export of one service (`K` indexes [`SERVICES`]); all three share the
/// counts.
#[derive(Clone)]
struct Sink<const K: usize>(Arc<Counts>);

const SERVICES: [&str; 3] = [
    "opentelemetry.proto.collector.logs.v1.LogsService",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "opentelemetry.proto.collector.trace.v1.TraceService",
];

impl<const K: usize> NamedService for Sink<K> {
    const NAME: &'static str = SERVICES[K];
}

/// A unary gRPC success: one empty message (flag 0, length 0), then the status trailer.
fn success() -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = futures::stream::iter([
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
        Ok(Frame::trailers(trailers)),
    ]);
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(Body::new(StreamBody::new(frames)))
        .expect("static parts")
}

impl<const K: usize> Service<http::Request<Body>> for Sink<K> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let counts = self.0.clone();
        Box::pin(async move {
            let mut body = req.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            counts.requests.fetch_add(1, Ordering::Relaxed);
            Ok(success())
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: otlp-sink 127.0.0.1:PORT")?
        .parse()?;
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = counts.clone();
    rt.block_on(async move {
        let stop = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        tonic::transport::Server::builder()
            .add_service(Sink::<0>(served.clone()))
            .add_service(Sink::<1>(served.clone()))
            .add_service(Sink::<2>(served))
            .serve_with_shutdown(addr, stop)
            .await
    })?;
    println!(
        "otlp-sink: {} requests, {} bytes",
        counts.requests.load(Ordering::Relaxed),
        counts.bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
