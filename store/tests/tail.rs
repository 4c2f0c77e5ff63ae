//! `/loki/api/v1/tail`: a WebSocket client sees lines pushed after it connected, in Loki's
//! tail message shape.

use std::time::Duration;

use futures_util::StreamExt;
use obs_store::{Store, StoreConfig};

type Server = tokio::task::JoinHandle<Result<(), obs_store::Error>>;

/// A store on loopback ports serving until the sender fires: (HTTP port, stop, server task).
async fn serve(dir: &std::path::Path) -> (u16, tokio::sync::oneshot::Sender<()>, Server) {
    let cfg: StoreConfig =
        toml::from_str("http_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n").unwrap();
    let store = Store::bind(cfg.resolve(dir.to_path_buf()).unwrap())
        .await
        .unwrap();
    let port = store.http_addr().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(store.serve(async move {
        let _ = stop_rx.await;
    }));
    (port, stop_tx, server)
}

#[tokio::test]
async fn tail_streams_new_lines_over_a_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stop_tx, server) = serve(dir.path()).await;

    let query = "%7Bjob%3D%22tail%22%7D%20%7C%3D%20%22keep%22"; // {job="tail"} |= "keep"
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/loki/api/v1/tail?query={query}"))
            .await
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let body = serde_json::json!({"streams": [{"stream": {"job": "tail"}, "values": [
        [now.to_string(), "keep this line"],
        [(now + 1).to_string(), "drop this line"],
    ]}]})
    .to_string();
    let push = tokio::task::spawn_blocking(move || {
        ureq_tls::post(&format!("http://127.0.0.1:{port}/loki/api/v1/push"))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map(|r| r.status().as_u16())
    });
    assert_eq!(push.await.unwrap().unwrap(), 204);

    let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .expect("a tail message")
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["streams"][0]["stream"]["job"], "tail");
    let values = v["streams"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{v}");
    assert_eq!(values[0][1], "keep this line");
    assert_eq!(values[0][0], now.to_string());
    drop(ws);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A client that never finishes its request does not keep a stopping store alive: in-flight
/// requests get a bounded drain, then are closed. (An open tail does not hold it either.)
#[tokio::test]
async fn a_stopping_store_closes_requests_left_open() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (port, stop_tx, server) = serve(dir.path()).await;
    let query = "%7Bjob%3D%22tail%22%7D";
    let (_ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/loki/api/v1/tail?query={query}"))
            .await
            .unwrap();
    // A push whose body never arrives in full.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(
        b"POST /loki/api/v1/push HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"streams\":",
    )
    .await
    .unwrap();
    // The store is serving it once two requests are in flight: that push and this scrape.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while in_flight(port).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow push never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the store stops with a request left open")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "the open request was drained first, {took:?}"
    );
}

/// `obs_store_http_requests_in_flight` as a scrape of `/metrics` reports it.
async fn in_flight(port: u16) -> u64 {
    let text = tokio::task::spawn_blocking(move || {
        ureq_tls::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("obs_store_http_requests_in_flight "))
        .expect("the in-flight gauge")
        .parse()
        .unwrap()
}
