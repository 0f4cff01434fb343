//! The node's kubelet endpoint, plain HTTP on loopback: `GET /containerLogs/{ns}/{pod}/{c}`
//! serves a container's log file, with `tailLines`, `follow` (until the container's run ends)
//! and `previous` (the run before the last restart). The API server's `pods/log` proxies here.
//! Pods the runtime does not run (simulated ones) have an empty log.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::runtime::{PodRun, Runtime};

/// Serves the endpoint on `127.0.0.1:0`; returns its port and the serving task.
pub async fn serve(runtime: Arc<Runtime>) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = Router::new()
        .route("/containerLogs/{namespace}/{pod}/{container}", get(logs))
        .with_state(runtime);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the kubelet endpoint stopped: {e}");
        }
    });
    Ok((port, task))
}

fn text(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

async fn logs(
    State(runtime): State<Arc<Runtime>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(run) = runtime.find(&namespace, &pod) else {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response();
    };
    if !run.has_container(&container) {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container} is not valid for pod {pod}"),
        );
    }
    if flag(&q, "timestamps") {
        return text(
            StatusCode::BAD_REQUEST,
            "timestamps are not supported by localkube's process runtime".into(),
        );
    }
    let tail = match q.get("tailLines").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return text(StatusCode::BAD_REQUEST, format!("invalid tailLines {v:?}"));
            }
        },
        None => None,
    };
    let previous = flag(&q, "previous");
    let path = if previous {
        run.previous_log_file(&container)
    } else {
        run.log_file(&container)
    };
    let content = match tokio::fs::read(&path).await {
        Ok(c) => c,
        Err(_) if previous => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            );
        }
        // Not started yet: nothing logged.
        Err(_) => Vec::new(),
    };
    let start = tail.map_or(0, |n| tail_start(&content, n));
    let first = Bytes::copy_from_slice(&content[start..]);
    let body = if flag(&q, "follow") && !previous {
        Body::from_stream(follow(run, container, path, content.len() as u64, first))
    } else {
        Body::from(first)
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Where the last `n` lines of `content` start (a last line without newline counts).
pub fn tail_start(content: &[u8], n: usize) -> usize {
    if n == 0 {
        return content.len();
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// The bytes written to the log after `offset`, as they come, until the container's current
/// run ends and its last bytes are sent.
fn follow(
    run: Arc<PodRun>,
    container: String,
    path: PathBuf,
    offset: u64,
    first: Bytes,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let the_run = run.running_run(&container);
    let state = (Some(first), offset, false);
    futures::stream::unfold(state, move |(first, mut offset, done)| {
        let run = run.clone();
        let container = container.clone();
        let path = path.clone();
        async move {
            if let Some(first) = first {
                return Some((Ok(first), (None, offset, false)));
            }
            if done {
                return None;
            }
            loop {
                // Checked before reading, so that the bytes of a run that just ended are read.
                let ended = the_run.is_none() || run.running_run(&container) != the_run;
                let chunk = read_from(&path, offset).await;
                if !chunk.is_empty() {
                    offset += chunk.len() as u64;
                    return Some((Ok(Bytes::from(chunk)), (None, offset, ended)));
                }
                if ended {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
}

/// What the file holds from `offset` on (at most 64 KiB at a time).
async fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = vec![0; 64 * 1024];
    match f.read(&mut buf).await {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let cases: [(&[u8], usize, &[u8]); 6] = [
            (b"a\nb\nc\n", 2, b"b\nc\n"),
            (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
            (b"a\nb\nc", 1, b"c"),
            (b"a\nb\nc\n", 1, b"c\n"),
            (b"a\nb\n", 0, b""),
            (b"", 3, b""),
        ];
        for (content, n, want) in cases {
            assert_eq!(&content[tail_start(content, n)..], want, "{n}");
        }
    }
}
