//! The websocket streams of `subresources.kubevirt.io` (console, vnc, portforward), opened over
//! the same kube client as every other request (kubeconfig TLS, auth, proxy), with KubeVirt's
//! subprotocol `plain.kubevirt.io`: binary frames carry raw bytes both ways.
//!
//! kube's own `Client::connect` asks for the `v4/v5.channel.k8s.io` subprotocols, which
//! virt-api does not speak, so the upgrade request is built here and the upgraded connection
//! handed to tungstenite.

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::header;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Connection, error_chain};
use crate::lifecycle::SUBRESOURCE_GROUP;
use crate::names::path_segment;

/// KubeVirt's subprotocol: each binary message is raw bytes of the stream.
pub use virt_reconciler::handler_client::PLAIN_STREAM_PROTOCOL as PLAIN_PROTOCOL;

/// An open stream.
pub type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
pub type WsSink = SplitSink<WsStream, Message>;
pub type WsSource = SplitStream<WsStream>;

/// How much is read from a local socket or stdin before it is sent as one frame.
const CHUNK: usize = 32 * 1024;

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    /// The server answered the upgrade with this HTTP status: the `metav1.Status` message, or
    /// what else it said.
    Refused { code: u16, message: String },
    /// No answer: connection, TLS or protocol failure.
    Failed(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused { message, .. } => f.write_str(message),
            DialError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DialError {}

/// The kinds whose streams exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Vm,
    Vmi,
}

impl Owner {
    pub fn plural(self) -> &'static str {
        match self {
            Owner::Vm => "virtualmachines",
            Owner::Vmi => "virtualmachineinstances",
        }
    }

    /// The short type word, as in `vmi/NAME`.
    pub fn short(self) -> &'static str {
        match self {
            Owner::Vm => "vm",
            Owner::Vmi => "vmi",
        }
    }
}

/// `/apis/subresources.kubevirt.io/v1/namespaces/{ns}/{plural}/{name}/{segments...}[?query]`,
/// every segment percent-encoded.
pub fn path(owner: Owner, ns: &str, name: &str, segments: &[&str], query: &str) -> String {
    let mut p = format!(
        "/apis/{SUBRESOURCE_GROUP}/v1/namespaces/{}/{}/{}",
        path_segment(ns),
        owner.plural(),
        path_segment(name)
    );
    for s in segments {
        p.push('/');
        p.push_str(&path_segment(s));
    }
    if !query.is_empty() {
        p.push('?');
        p.push_str(query);
    }
    p
}

/// The message of a refusal body: a `metav1.Status`'s message, else the body's text, else the
/// HTTP status, in the words of KubeVirt's client (`Can't connect to websocket (CODE): ...`).
pub fn refusal_message(code: u16, body: &[u8]) -> String {
    if let Ok(status) = serde_json::from_slice::<serde_json::Value>(body)
        && status.get("kind").and_then(|k| k.as_str()) == Some("Status")
        && let Some(message) = status.get("message").and_then(|m| m.as_str())
        && !message.is_empty()
    {
        return message.to_string();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("unexpected status");
    if text.is_empty() {
        format!("Can't connect to websocket ({code}): {reason}")
    } else {
        format!("Can't connect to websocket ({code}): {reason}: {text}")
    }
}

/// Opens the stream at `path` (from [`path`]).
pub async fn dial(conn: &Connection, path: &str) -> Result<WsStream, DialError> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let request = http::Request::get(path)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(header::SEC_WEBSOCKET_PROTOCOL, PLAIN_PROTOCOL)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| DialError::Failed(format!("invalid request: {e}")))?;
    let url = format!("{}{path}", conn.server.trim_end_matches('/'));
    let response = conn
        .client
        .send(request)
        .await
        .map_err(|e| DialError::Failed(format!("Get \"{url}\": {}", error_chain(&e))))?;
    let code = response.status().as_u16();
    if code != 101 {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(DialError::Refused {
            code,
            message: refusal_message(code, &body),
        });
    }
    let accept = response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(DialError::Failed(format!(
            "Get \"{url}\": the server's websocket handshake is not valid (Sec-WebSocket-Accept)"
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| DialError::Failed(format!("Get \"{url}\": {}", error_chain(&e))))?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

/// How a copy from the stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The server closed it (close frame or end of connection).
    Closed,
    /// A read or write failed.
    Failed(String),
}

/// Copies every data frame of `source` into `out` (flushed after each frame, so nothing waits
/// in a buffer), answering pings, until the stream ends.
pub async fn copy_to_writer<W: AsyncWrite + Unpin>(
    source: &mut WsSource,
    out: &mut W,
) -> StreamEnd {
    while let Some(message) = source.next().await {
        let data = match message {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => Bytes::from(t),
            // A close with an error code carries why (e.g. nothing listens on the guest port).
            Ok(Message::Close(Some(frame)))
                if frame.code != CloseCode::Normal && !frame.reason.is_empty() =>
            {
                return StreamEnd::Failed(frame.reason.to_string());
            }
            Ok(Message::Close(_)) => return StreamEnd::Closed,
            // tungstenite answers pings by itself on the next write or flush.
            Ok(_) => continue,
            Err(e) => return StreamEnd::Failed(e.to_string()),
        };
        if let Err(e) = out.write_all(&data).await {
            return StreamEnd::Failed(e.to_string());
        }
        if let Err(e) = out.flush().await {
            return StreamEnd::Failed(e.to_string());
        }
    }
    StreamEnd::Closed
}

/// Sends what `input` gives as binary frames until it ends; then a close frame.
pub async fn copy_from_reader<R: AsyncRead + Unpin>(
    input: &mut R,
    sink: &mut WsSink,
) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            let _ = sink.send(Message::Close(None)).await;
            return Ok(());
        }
        sink.send(Message::binary(buf[..n].to_vec()))
            .await
            .map_err(|e| e.to_string())?;
    }
}

/// After the local side ends (and a close frame is sent), how long the server's last bytes
/// and its close frame are awaited.
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Splices a local byte stream (a TCP connection) and the websocket both ways. The server's
/// end ends it; the local end sends a close frame and still delivers what the server sends
/// until it closes too (at most [`CLOSE_GRACE`]), as a half-closed TCP connection would.
pub async fn splice<S: AsyncRead + AsyncWrite + Unpin>(ws: WsStream, local: S) -> StreamEnd {
    let (mut sink, mut source) = ws.split();
    let (mut read_half, mut write_half) = tokio::io::split(local);
    let receiving = copy_to_writer(&mut source, &mut write_half);
    tokio::pin!(receiving);
    tokio::select! {
        end = &mut receiving => return end,
        sent = copy_from_reader(&mut read_half, &mut sink) => {
            if let Err(e) = sent {
                return StreamEnd::Failed(e);
            }
        }
    }
    tokio::time::timeout(CLOSE_GRACE, receiving)
        .await
        .unwrap_or(StreamEnd::Closed)
}

/// Stdin as chunks, read by a thread of its own: a read blocked on a terminal or pipe must
/// not keep the process from exiting (tokio's stdin would hold the runtime's shutdown).
/// An empty chunk is never sent; the channel closes at end of input or on an error.
pub fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    });
    rx
}

/// stdout written at once and flushed, without tokio's blocking thread: the console's output
/// must reach the terminal immediately.
pub struct Stdout;

impl tokio::io::AsyncWrite for Stdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut std::io::stdout().lock(), buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(&mut std::io::stdout().lock()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(
            path(Owner::Vmi, "default", "vmi1", &["console"], ""),
            "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/vmi1/console"
        );
        assert_eq!(
            path(Owner::Vm, "ns", "vm1", &["portforward", "22", "tcp"], ""),
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/vm1/portforward/22/tcp"
        );
        assert_eq!(
            path(Owner::Vmi, "a/b", "x?y", &["vnc"], "preserveSession=false"),
            "/apis/subresources.kubevirt.io/v1/namespaces/a%2Fb/virtualmachineinstances/x%3Fy/vnc?preserveSession=false"
        );
    }

    #[test]
    fn refusal_messages() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"VMI is not running","reason":"BadRequest","code":400}"#;
        let cases: [(u16, &[u8], &str); 4] = [
            (400, status, "VMI is not running"),
            (
                502,
                b"dialing VM: connection refused\n",
                "Can't connect to websocket (502): Bad Gateway: dialing VM: connection refused",
            ),
            (403, b"", "Can't connect to websocket (403): Forbidden"),
            (
                500,
                br#"{"kind":"Status","message":""}"#,
                "Can't connect to websocket (500): Internal Server Error: {\"kind\":\"Status\",\"message\":\"\"}",
            ),
        ];
        for (code, body, want) in cases {
            assert_eq!(refusal_message(code, body), want);
        }
    }
}
