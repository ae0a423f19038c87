//! The realtime API through the stock npm `socket.io-client` v4: runs `node --test` on tests/e2e/
//! against two servers started here (one on the offline assistant, one on a model that waits
//! for a release, for the resume test). Needs Node and `npm ci` at the repository root.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::helpers::spawn_app;
use crate::slow_llm::SlowLlm;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_stock_socket_io_client_works_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/socket.io-client/package.json")
            .is_file(),
        "node_modules/socket.io-client is missing: run `npm ci` in {} (Node 20+), then the \
         tests again",
        root.display()
    );

    let app = spawn_app().await;
    let llm = Arc::new(SlowLlm::start(&["Hel"], &["lo", " world"]).await);
    let slow = llm.spawn_app(|_| {}).await;
    let control = release_endpoint(llm.clone()).await;

    // The files themselves: Node 20 expands a directory argument, Node 22 reads globs instead.
    let mut files: Vec<String> = std::fs::read_dir(root.join("tests/e2e"))
        .expect("read tests/e2e/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("tests/e2e/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no tests/e2e/*.test.mjs files");

    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .args(&files)
        .current_dir(root)
        .env("PIXIE_URL", format!("http://{}", app.addr))
        .env("PIXIE_SLOW_URL", format!("http://{}", slow.addr))
        .env("PIXIE_SLOW_CONTROL", &control)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills node's test subprocesses too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node 20+ must be on PATH): {e}"));
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("piped stdout")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("piped stderr")));

    let status = match tokio::time::timeout(NODE_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.expect("wait for node")),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: sends a signal to the process group this test started.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait().await;
            None
        }
    };
    let stdout = stdout.await.expect("read node's stdout");
    let stderr = stderr.await.expect("read node's stderr");
    let report = format!("--- node stdout ---\n{stdout}\n--- node stderr ---\n{stderr}");
    match status {
        None => panic!(
            "`node --test {}` did not finish within {NODE_TIMEOUT:?}; killed\n{report}",
            files.join(" ")
        ),
        Some(status) => assert!(
            status.success(),
            "`node --test {}` failed ({status})\n{report}",
            files.join(" ")
        ),
    }
    println!("{report}");
}

/// A tiny HTTP endpoint: any request to it releases the slow model and gets 200.
async fn release_endpoint(llm: Arc<SlowLlm>) -> String {
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
                if read_head(&mut stream).await {
                    llm.release();
                    answer_ok(stream).await;
                }
            });
        }
    });
    url
}

/// Reads a request's head (the body, if any, is not needed); false if the peer left first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

async fn answer_ok(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut out = Vec::new();
    let _ = pipe.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}
