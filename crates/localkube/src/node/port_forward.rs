//! Port-forward sessions of the kubelet endpoint: the server side of Kubernetes'
//! `portforward.k8s.io` protocol over SPDY/3.1 ([`super::spdy`]). Per forwarded connection the
//! client opens two streams with the same `requestID` and `port`: `streamType: error` and
//! `streamType: data`. Once both are in, the node connects to the pod's IP on that port and
//! copies bytes both ways on the data stream; a failure is written on the error stream as one
//! message (kubectl prints it). A session carries any number of such pairs at once; one pair
//! ending does not end the session.
//!
//! The pure part (stream headers, pairing, messages) comes first; [`serve_session`] is the IO.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::spdy::{self, Decoder, Encoder, Frame, Headers, SpdyError};

/// The protocol name negotiated with `X-Stream-Protocol-Version`.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The websocket subprotocol of SPDY tunnelled in websocket binary messages (kubectl >= 1.31).
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Which half of a forwarded connection a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Error,
    Data,
}

/// What a new stream's headers ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub kind: StreamKind,
    /// As sent; checked once the pair is complete, so that the error stream can say why.
    pub port: String,
    pub request_id: String,
}

/// Reads a new stream's headers. Without `requestID` (clients before Kubernetes 1.6), the
/// error stream's id names the pair and the data stream follows it (its id is 2 more).
pub fn stream_request(stream_id: u32, headers: &Headers) -> Result<StreamRequest, String> {
    let kind = match spdy::header(headers, "streamtype") {
        Some("error") => StreamKind::Error,
        Some("data") => StreamKind::Data,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("the stream has no streamType header".into()),
    };
    let port = spdy::header(headers, "port").unwrap_or("").to_string();
    let request_id = match spdy::header(headers, "requestid") {
        Some(id) => id.to_string(),
        None => match kind {
            StreamKind::Error => stream_id.to_string(),
            StreamKind::Data => stream_id.saturating_sub(2).to_string(),
        },
    };
    Ok(StreamRequest {
        kind,
        port,
        request_id,
    })
}

/// The port a pair forwards to, or why not (the words go on the error stream).
pub fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(format!("invalid port {port}: must be between 1 and 65535")),
        Err(_) => Err(format!("unable to parse {port:?} as a port")),
    }
}

/// Both streams of one forwarded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub error_stream: u32,
    pub data_stream: u32,
    pub port: String,
}

#[derive(Debug, Default)]
struct Half {
    error_stream: Option<u32>,
    data_stream: Option<u32>,
    port: String,
}

/// Streams waiting for the other half of their pair, by request id.
#[derive(Debug, Default)]
pub struct Pairing {
    waiting: HashMap<String, Half>,
}

impl Pairing {
    /// Takes a new stream; returns the pair once both of its streams are in.
    pub fn add(&mut self, stream_id: u32, req: StreamRequest) -> Result<Option<Pair>, String> {
        let half = self.waiting.entry(req.request_id.clone()).or_default();
        let slot = match req.kind {
            StreamKind::Error => &mut half.error_stream,
            StreamKind::Data => &mut half.data_stream,
        };
        if slot.is_some() {
            let kind = match req.kind {
                StreamKind::Error => "error",
                StreamKind::Data => "data",
            };
            return Err(format!(
                "received a second {kind} stream for request {}",
                req.request_id
            ));
        }
        *slot = Some(stream_id);
        if half.port.is_empty() {
            half.port = req.port;
        }
        match (half.error_stream, half.data_stream) {
            (Some(error_stream), Some(data_stream)) => {
                let half = self.waiting.remove(&req.request_id).unwrap_or_default();
                Ok(Some(Pair {
                    error_stream,
                    data_stream,
                    port: half.port,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Forgets a stream still waiting for its other half (it was reset).
    pub fn forget(&mut self, stream_id: u32) {
        self.waiting
            .retain(|_, h| h.error_stream != Some(stream_id) && h.data_stream != Some(stream_id));
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// The pod a session forwards to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    /// The pod's IP when the node runs it as processes; None for a simulated pod.
    pub ip: Option<IpAddr>,
}

/// The error-stream message for a pod without processes.
pub fn simulated_message(target: &Target) -> String {
    format!(
        "pod {} has no processes on this node (simulated): port-forward needs a process pod (an image mapped with --image)",
        target.pod
    )
}

/// The error-stream message for a failed connect, worded after kubelet's
/// (`error forwarding port P to pod ..., uid ...: failed to connect to ...`).
pub fn connect_failed_message(target: &Target, port: u16, ip: IpAddr, why: &str) -> String {
    format!(
        "error forwarding port {port} to pod {}, uid {}: failed to connect to {ip}:{port} inside the pod's network: dial tcp {ip}:{port}: connect: {why}",
        target.pod, target.uid
    )
}

/// An OS error as Go words it: `connection refused`, not `Connection refused (os error 111)`.
pub fn go_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the session passes to a pair's connection from the client's data stream.
#[derive(Debug)]
enum Inbound {
    Data(Bytes),
    /// The client closed its side of the data stream.
    Fin,
    /// The client reset the data stream: the connection ends.
    Reset,
}

/// How many client data frames may wait for a slow pod connection before the session waits.
const INBOUND_QUEUE: usize = 32;
/// How many bytes one read from a pod connection takes at most.
const READ_CHUNK: usize = 64 * 1024;
/// How many bytes of queued frames one write to the client carries at most.
const BATCH_BYTES: usize = 256 * 1024;

/// Serves one port-forward session: reads the client's frames from `incoming` (bytes in any
/// chunking), and queues this side's frames on `out` (in order; see [`next_batch`]). Ends when
/// `incoming` ends, fails or says GOAWAY; the pairs' connections end with it.
pub async fn serve_session<S>(
    mut incoming: S,
    out: mpsc::Sender<Frame>,
    target: Arc<Target>,
) -> Result<(), SpdyError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut pairing = Pairing::default();
    // The client's data streams, to their pair's connection.
    let mut to_pod: HashMap<u32, mpsc::Sender<Inbound>> = HashMap::new();
    // Data streams whose pair is not complete yet keep their receiving end here.
    let mut unpaired: HashMap<u32, mpsc::Receiver<Inbound>> = HashMap::new();
    let mut connections = JoinSet::new();
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    // As kubelet: every stream is accepted at once; the pair decides later.
                    let reply = Frame::SynReply {
                        stream_id,
                        fin: false,
                        headers: Headers::new(),
                    };
                    if out.send(reply).await.is_err() {
                        return Ok(());
                    }
                    let paired = stream_request(stream_id, &headers).and_then(|req| {
                        if req.kind == StreamKind::Data {
                            let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
                            to_pod.insert(stream_id, tx);
                            unpaired.insert(stream_id, rx);
                        }
                        pairing.add(stream_id, req)
                    });
                    match paired {
                        Ok(Some(pair)) => {
                            let Some(rx) = unpaired.remove(&pair.data_stream) else {
                                continue;
                            };
                            connections.spawn(connect_pair(pair, target.clone(), rx, out.clone()));
                        }
                        Ok(None) => {}
                        Err(why) => {
                            tracing::debug!("port-forward stream {stream_id} refused: {why}");
                            to_pod.remove(&stream_id);
                            unpaired.remove(&stream_id);
                            let rst = Frame::RstStream {
                                stream_id,
                                status: spdy::RST_PROTOCOL_ERROR,
                            };
                            if out.send(rst).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    // Data on error streams (the client only closes them) is dropped.
                    let Some(tx) = to_pod.get(&stream_id) else {
                        continue;
                    };
                    let mut gone = !data.is_empty() && tx.send(Inbound::Data(data)).await.is_err();
                    if fin && !gone {
                        gone = tx.send(Inbound::Fin).await.is_err();
                    }
                    // Kept after a FIN: the client still resets the stream at the end.
                    if gone {
                        to_pod.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    pairing.forget(stream_id);
                    unpaired.remove(&stream_id);
                    if let Some(tx) = to_pod.remove(&stream_id) {
                        let _ = tx.try_send(Inbound::Reset);
                    }
                }
                // The client's pings have odd ids and are echoed; this side sends none.
                Frame::Ping { id } => {
                    let session_on = id % 2 == 0 || out.send(Frame::Ping { id }).await.is_ok();
                    if !session_on {
                        return Ok(());
                    }
                }
                Frame::GoAway { .. } => return Ok(()),
                _ => {}
            }
        }
        while connections.try_join_next().is_some() {}
        match incoming.next().await {
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
            Some(Err(e)) => {
                tracing::debug!("port-forward session read: {e}");
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}

/// Sends `frame`, saying whether the session still takes frames.
async fn send(out: &mpsc::Sender<Frame>, frame: Frame) -> bool {
    out.send(frame).await.is_ok()
}

fn data(stream_id: u32, fin: bool, data: Bytes) -> Frame {
    Frame::Data {
        stream_id,
        fin,
        data,
    }
}

/// One forwarded connection: connects to the pod and copies bytes until the pod closes its
/// side or the client resets the data stream; then closes the error stream, as kubelet does.
async fn connect_pair(
    pair: Pair,
    target: Arc<Target>,
    mut from_client: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<Frame>,
) {
    let connected = match (target.ip, parse_port(&pair.port)) {
        (None, _) => Err(simulated_message(&target)),
        (Some(_), Err(why)) => Err(why),
        (Some(ip), Ok(port)) => tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| connect_failed_message(&target, port, ip, &go_error_text(&e))),
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(message) => {
            tracing::debug!("port-forward: {message}");
            let _ = send(&out, data(pair.error_stream, true, Bytes::from(message))).await;
            let _ = send(&out, data(pair.data_stream, true, Bytes::new())).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut from_pod, mut to_pod) = tcp.into_split();
    let data_stream = pair.data_stream;
    let pod_to_client = {
        let out = out.clone();
        async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            loop {
                buf.reserve(READ_CHUNK);
                match from_pod.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = send(&out, data(data_stream, true, Bytes::new())).await;
                        return;
                    }
                    Ok(_) => {
                        if !send(&out, data(data_stream, false, buf.split().freeze())).await {
                            return;
                        }
                    }
                }
            }
        }
    };
    let client_to_pod = async move {
        let mut writable = true;
        while let Some(msg) = from_client.recv().await {
            match msg {
                Inbound::Data(bytes) if writable => {
                    writable = to_pod.write_all(&bytes).await.is_ok();
                }
                Inbound::Data(_) => {}
                Inbound::Fin => {
                    let _ = to_pod.shutdown().await;
                    writable = false;
                }
                Inbound::Reset => return,
            }
        }
        // The session dropped the stream (it was refused or the session ended).
    };
    tokio::select! {
        _ = pod_to_client => {}
        _ = client_to_pod => {}
    }
    let _ = send(&out, data(pair.error_stream, true, Bytes::new())).await;
}

/// The next bytes to write to the client: the next queued frame and whatever else is queued
/// already (up to a limit), encoded in order. None once the session and its connections end.
pub async fn next_batch(rx: &mut mpsc::Receiver<Frame>, encoder: &mut Encoder) -> Option<Bytes> {
    let first = rx.recv().await?;
    let mut buf = BytesMut::new();
    encoder.encode(&first, &mut buf);
    while buf.len() < BATCH_BYTES {
        match rx.try_recv() {
            Ok(frame) => encoder.encode(&frame, &mut buf),
            Err(_) => break,
        }
    }
    Some(buf.freeze())
}

/// Frames queued for the client before the writer takes them.
pub const OUT_QUEUE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    #[test]
    fn stream_headers_say_kind_port_and_request() {
        type Want = Result<(StreamKind, &'static str, &'static str), &'static str>;
        let cases: Vec<(u32, Headers, Want)> = vec![
            (
                1,
                hs(&[("streamtype", "error"), ("port", "80"), ("requestid", "7")]),
                Ok((StreamKind::Error, "80", "7")),
            ),
            (
                3,
                hs(&[("streamtype", "data"), ("port", "80"), ("requestid", "7")]),
                Ok((StreamKind::Data, "80", "7")),
            ),
            // Old clients: the data stream follows its error stream.
            (
                5,
                hs(&[("streamtype", "error"), ("port", "22")]),
                Ok((StreamKind::Error, "22", "5")),
            ),
            (
                7,
                hs(&[("streamtype", "data"), ("port", "22")]),
                Ok((StreamKind::Data, "22", "5")),
            ),
            (
                9,
                hs(&[("streamtype", "resize")]),
                Err("invalid stream type \"resize\""),
            ),
            (
                9,
                hs(&[("port", "1")]),
                Err("the stream has no streamType header"),
            ),
        ];
        for (id, headers, want) in cases {
            let got = stream_request(id, &headers);
            let want = want
                .map(|(kind, port, request_id)| StreamRequest {
                    kind,
                    port: port.into(),
                    request_id: request_id.into(),
                })
                .map_err(str::to_string);
            assert_eq!(got, want, "{headers:?}");
        }
    }

    #[test]
    fn ports_are_1_to_65535() {
        let cases = [
            ("80", Ok(80)),
            ("65535", Ok(65535)),
            ("0", Err("invalid port 0: must be between 1 and 65535")),
            (
                "65536",
                Err("invalid port 65536: must be between 1 and 65535"),
            ),
            ("http", Err("unable to parse \"http\" as a port")),
            ("", Err("unable to parse \"\" as a port")),
        ];
        for (port, want) in cases {
            assert_eq!(parse_port(port), want.map_err(str::to_string), "{port}");
        }
    }

    fn req(kind: StreamKind, port: &str, id: &str) -> StreamRequest {
        StreamRequest {
            kind,
            port: port.into(),
            request_id: id.into(),
        }
    }

    #[test]
    fn streams_pair_by_request_id_in_any_order() {
        let mut p = Pairing::default();
        assert_eq!(p.add(1, req(StreamKind::Error, "80", "0")), Ok(None));
        assert_eq!(p.add(3, req(StreamKind::Error, "81", "1")), Ok(None));
        assert_eq!(
            p.add(5, req(StreamKind::Data, "81", "1")),
            Ok(Some(Pair {
                error_stream: 3,
                data_stream: 5,
                port: "81".into()
            }))
        );
        assert_eq!(
            p.add(1, req(StreamKind::Error, "80", "0")),
            Err("received a second error stream for request 0".into())
        );
        assert_eq!(p.add(9, req(StreamKind::Data, "82", "2")), Ok(None));
        assert_eq!(
            p.add(7, req(StreamKind::Error, "82", "2")),
            Ok(Some(Pair {
                error_stream: 7,
                data_stream: 9,
                port: "82".into()
            }))
        );
        assert_eq!(p.waiting(), 1);
        p.forget(1);
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn messages_read_like_kubelets() {
        let t = Target {
            pod: "default/web".into(),
            uid: "u-1".into(),
            ip: Some("127.9.0.2".parse().unwrap()),
        };
        assert_eq!(
            connect_failed_message(&t, 80, t.ip.unwrap(), "connection refused"),
            "error forwarding port 80 to pod default/web, uid u-1: failed to connect to 127.9.0.2:80 inside the pod's network: dial tcp 127.9.0.2:80: connect: connection refused"
        );
        assert_eq!(
            simulated_message(&t),
            "pod default/web has no processes on this node (simulated): port-forward needs a process pod (an image mapped with --image)"
        );
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(go_error_text(&refused), "connection refused");
    }
}
