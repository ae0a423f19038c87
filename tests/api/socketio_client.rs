//! The realtime API through the stock npm `socket.io-client` v4: runs `node --test` on tests/e2e/
//! against two servers started here (one on the offline assistant, one on a model that waits
//! for a release, for the resume test).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::spawn_app;
use crate::node::{require_package, run_node_tests};
use crate::slow_llm::SlowLlm;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_stock_socket_io_client_works_end_to_end() {
    require_package("socket.io-client");
    let app = spawn_app().await;
    let llm = Arc::new(SlowLlm::start(&["Hel"], &["lo", " world"]).await);
    let slow = llm.spawn_app(|_| {}).await;
    let control = release_endpoint(llm.clone()).await;
    run_node_tests(
        "tests/e2e",
        &[
            ("PIXIE_URL", format!("http://{}", app.addr)),
            ("PIXIE_SLOW_URL", format!("http://{}", slow.addr)),
            ("PIXIE_SLOW_CONTROL", control),
        ],
        NODE_TIMEOUT,
    )
    .await;
}

/// A tiny HTTP endpoint: any request to it releases the slow model and gets 200.
pub async fn release_endpoint(llm: Arc<SlowLlm>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the control endpoint");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("control endpoint address")
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let llm = llm.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                if crate::helpers::read_http_request(&mut stream)
                    .await
                    .is_some()
                {
                    llm.release();
                    answer_ok(stream).await;
                }
            });
        }
    });
    url
}

async fn answer_ok(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}
