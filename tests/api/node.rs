//! Runs `node --test` on the `*.test.mjs` files of a folder, with the environment given, and
//! fails with node's output when a test fails or the run outlives its time. Needs Node 20+ and
//! `npm ci` at the repository root.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Fails unless `npm ci` installed `package` (its message says what to run).
pub fn require_package(package: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules")
            .join(package)
            .join("package.json")
            .is_file(),
        "node_modules/{package} is missing: run `npm ci` in {} (Node 20+), then the tests again",
        root.display()
    );
}

pub async fn run_node_tests(folder: &str, env: &[(&str, String)], timeout: Duration) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The files themselves: Node 20 expands a directory argument, Node 22 reads globs instead.
    let mut files: Vec<String> = std::fs::read_dir(root.join(folder))
        .unwrap_or_else(|e| panic!("read {folder}/: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("{folder}/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {folder}/*.test.mjs files");

    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=spec"])
        .args(&files)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills node's test subprocesses (and the
        // browsers they start) too.
        .process_group(0)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node 20+ must be on PATH): {e}"));
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("piped stdout")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("piped stderr")));

    let status = match tokio::time::timeout(timeout, child.wait()).await {
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
            "`node --test {}` did not finish within {timeout:?}; killed\n{report}",
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

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut out = Vec::new();
    let _ = pipe.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}
