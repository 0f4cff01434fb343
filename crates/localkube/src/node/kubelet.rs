//! The node's kubelet endpoint, plain HTTP on loopback: `GET /containerLogs/{ns}/{pod}/{c}`
//! serves a container's log file, with `tailLines`, `follow` (until the container's run ends)
//! and `previous` (the run before the last restart). The API server's `pods/log` proxies here.
//! Pods the runtime does not run (simulated ones) have an empty log.
//!
//! `GET|POST /portForward/{ns}/{pod}` upgrades to a port-forward session ([`port_forward`]):
//! an HTTP/1.1 `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`, or a
//! websocket with subprotocol `SPDY/3.1+portforward.k8s.io` whose binary messages carry the
//! same SPDY bytes (what kubectl >= 1.31 tries first). The API server's `pods/portforward`
//! passes its upgrade through to here.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::port_forward::{self, PROTOCOL, TUNNEL_PROTOCOL, Target};
use super::runtime::{PodRun, Runtime};
use super::spdy::Encoder;

/// What the endpoint serves from: the node's runtime and name.
pub struct Kubelet {
    pub runtime: Arc<Runtime>,
    pub node_name: String,
}

/// Serves the endpoint on `127.0.0.1:0`; returns its port and the serving task.
pub async fn serve(kubelet: Kubelet) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    // Port-forward carries interactive bytes: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new()
        .route("/containerLogs/{namespace}/{pod}/{container}", get(logs))
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward_session).post(port_forward_session),
        )
        .with_state(Arc::new(kubelet));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the kubelet endpoint stopped: {e}");
        }
    });
    Ok((port, task))
}

/// The pod a port-forward reaches: a process pod by its IP; a simulated pod bound to this
/// node and Running, without one. None: kubelet's `pod does not exist`.
async fn forward_target(kubelet: &Kubelet, namespace: &str, name: &str) -> Option<Target> {
    let pod = format!("{namespace}/{name}");
    if let Some(run) = kubelet.runtime.find(namespace, name) {
        return Some(Target {
            pod,
            uid: run.uid().to_string(),
            ip: run.pod_ip().parse().ok(),
        });
    }
    let api: kube::Api<Pod> = kube::Api::namespaced(kubelet.runtime.client().clone(), namespace);
    let found = api.get_opt(name).await.ok().flatten()?;
    let bound_here = found.spec.as_ref().and_then(|s| s.node_name.as_deref())
        == Some(kubelet.node_name.as_str());
    let running = found.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    (bound_here && running).then(|| Target {
        pod,
        uid: found.metadata.uid.unwrap_or_default(),
        ip: None,
    })
}

/// The values of a comma-separated request header, trimmed.
fn header_tokens(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

async fn port_forward_session(
    State(kubelet): State<Arc<Kubelet>>,
    Path((namespace, pod)): Path<(String, String)>,
    req: Request,
) -> Response {
    let upgrade = header_tokens(req.headers(), header::UPGRADE);
    let websocket = upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket"));
    let spdy = upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1"));
    if !websocket && !spdy {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required".into());
    }
    let Some(target) = forward_target(&kubelet, &namespace, &pod).await else {
        return text(StatusCode::NOT_FOUND, "pod does not exist".into());
    };
    let target = Arc::new(target);
    if websocket {
        let offered = header_tokens(req.headers(), header::SEC_WEBSOCKET_PROTOCOL);
        if !offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{TUNNEL_PROTOCOL}\"]"
                ),
            );
        }
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        return ws
            .protocols([TUNNEL_PROTOCOL])
            .on_upgrade(move |socket| serve_websocket(socket, target));
    }
    // As apimachinery's httpstream handshake: no version offered is the legacy protocol.
    let versions = header_tokens(
        req.headers(),
        header::HeaderName::from_static("x-stream-protocol-version"),
    );
    if !versions.is_empty() && !versions.iter().any(|v| v == PROTOCOL) {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server supports [\"{PROTOCOL}\"]"
            ),
        );
    }
    let mut req = req;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve_spdy(TokioIo::new(upgraded), target).await,
            Err(e) => tracing::debug!("port-forward upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL),
    );
    resp
}

/// A session on a raw upgraded connection (SPDY frames straight on the bytes).
async fn serve_spdy<IO>(io: IO, target: Arc<Target>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(io);
    let start = (read, bytes::BytesMut::with_capacity(64 * 1024));
    let incoming = Box::pin(futures::stream::unfold(
        start,
        |(mut read, mut buf)| async move {
            buf.reserve(64 * 1024);
            match read.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => {
                    let chunk = buf.split().freeze();
                    Some((Ok(chunk), (read, buf)))
                }
                Err(e) => Some((Err(e), (read, buf))),
            }
        },
    ));
    let (out, mut frames) = mpsc::channel(port_forward::OUT_QUEUE);
    let writer = async move {
        let mut encoder = Encoder::default();
        while let Some(bytes) = port_forward::next_batch(&mut frames, &mut encoder).await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    run_session(incoming, out, target, writer).await;
}

/// A session tunnelled in a websocket: each binary message carries SPDY bytes, in any chunking.
async fn serve_websocket(socket: WebSocket, target: Arc<Target>) {
    let (mut sink, stream) = socket.split();
    let incoming = Box::pin(stream.filter_map(|msg| async move {
        match msg {
            Ok(Message::Binary(b)) => Some(Ok(b)),
            // Not what client-go sends, but bytes all the same.
            Ok(Message::Text(t)) => Some(Ok(Bytes::copy_from_slice(t.as_str().as_bytes()))),
            Ok(Message::Close(_)) => Some(Err(std::io::ErrorKind::ConnectionAborted.into())),
            Ok(_) => None,
            Err(e) => Some(Err(std::io::Error::other(e))),
        }
    }));
    let (out, mut frames) = mpsc::channel(port_forward::OUT_QUEUE);
    let writer = async move {
        let mut encoder = Encoder::default();
        while let Some(bytes) = port_forward::next_batch(&mut frames, &mut encoder).await {
            if sink.send(Message::Binary(bytes)).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    run_session(incoming, out, target, writer).await;
}

/// Runs a session beside its writer; a writer that fails (the client is gone) ends both.
async fn run_session<S>(
    incoming: S,
    out: mpsc::Sender<super::spdy::Frame>,
    target: Arc<Target>,
    writer: impl std::future::Future<Output = ()>,
) where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let session = port_forward::serve_session(incoming, out, target);
    tokio::pin!(session);
    tokio::pin!(writer);
    tokio::select! {
        result = &mut session => {
            if let Err(e) = result {
                tracing::debug!("port-forward session: {e}");
            }
            // The session's connections are gone: the writer sends what is queued and ends.
            writer.await;
        }
        _ = &mut writer => {}
    }
}

fn text(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

async fn logs(
    State(kubelet): State<Arc<Kubelet>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(run) = kubelet.runtime.find(&namespace, &pod) else {
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
