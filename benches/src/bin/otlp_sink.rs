//! A receiver that accepts OTLP/gRPC exports and throws them away, so that
//! `benches/scripts/collector-throughput` measures the collector and not what it ships to
//! (Vector's file -> TCP test does the same with a socket that only counts).
//!
//! It decompresses each request (gzip or zstd, as a real receiver must), does not decode
//! it, and answers with an empty success. Usage: `otlp-sink 127.0.0.1:PORT`; on SIGTERM or
//! Ctrl-C it prints the requests and decompressed bytes it received.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, Bytes, Service};
use tonic::server::{Grpc, NamedService, UnaryService};

/// Hands over each message as bytes, undecoded; answers are empty messages.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(bytes::Buf::copy_to_bytes(src, bytes::Buf::remaining(src))))
    }
}

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

impl<const K: usize> UnaryService<Bytes> for Sink<K> {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;
    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0
            .bytes
            .fetch_add(req.get_ref().len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(tonic::Response::new(Bytes::new())) })
    }
}

impl<const K: usize> Service<http::Request<Body>> for Sink<K> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Zstd)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(64 << 20);
            Ok(grpc.unary(sink, req).await)
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
