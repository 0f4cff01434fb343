//! The stream endpoints: `GET .../virtualmachineinstances/{name}/console`, `/vnc` and
//! `/portforward/{port}[/{protocol}]`, each a websocket (subprotocol `plain.kubevirt.io`)
//! whose binary frames carry the raw bytes of QEMU's serial or VNC socket or of a forwarded
//! guest port (`docs/data-plane.md`). Checks come first ([`crate::stream_checks`]); the target is
//! connected before the upgrade is answered, so a failure is a plain HTTP answer.
//!
//! One console connection per VMI at a time, as in KubeVirt: a new one takes over, and the
//! one it replaces gets a websocket close (QEMU's serial socket takes one client anyway).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::sync::{OwnedMutexGuard, oneshot};
use virt_reconciler::launcher_api::{Protocol, Request};

use crate::api::status;
use crate::stream_checks::{self, Endpoint, Refusal};
use crate::{Shared, Tracked, launcher, paths, vmis};

/// The websocket subprotocol of KubeVirt's console, VNC and portforward streams.
pub use virt_reconciler::handler_client::PLAIN_STREAM_PROTOCOL as SUBPROTOCOL;
/// QEMU's sockets in the launcher Pod's private directory.
pub const SERIAL_SOCKET: &str = "virt-serial0";
pub const VNC_SOCKET: &str = "virt-vnc";
/// One read's worth: what arrives is sent at once, never held back to fill it.
const COPY_BUFFER: usize = 32 * 1024;
/// The close reason a replaced console connection gets.
pub const TAKEN_OVER: &str = "another console connection took over";

/// Who holds each VMI's console.
#[derive(Default)]
pub struct Consoles {
    slots: Mutex<HashMap<String, Slot>>,
    next_id: AtomicU64,
}

struct Slot {
    /// Held by the connection that has the console.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// The newest connection, and how to tell it to let go.
    current: Option<(u64, oneshot::Sender<()>)>,
}

/// The console of one VMI, held until dropped.
struct ConsoleTurn {
    shared: Arc<Shared>,
    vmi_uid: String,
    id: u64,
    _held: OwnedMutexGuard<()>,
}

impl Drop for ConsoleTurn {
    fn drop(&mut self) {
        let mut slots = self
            .shared
            .consoles
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(&self.vmi_uid)
            && slot.current.as_ref().is_some_and(|(id, _)| *id == self.id)
        {
            slots.remove(&self.vmi_uid);
        }
    }
}

/// Takes the VMI's console over: the connection that has it is told to close, and this waits
/// until it has let go. `None` when a newer connection took over meanwhile.
async fn take_console(
    shared: &Arc<Shared>,
    vmi_uid: &str,
) -> Option<(ConsoleTurn, oneshot::Receiver<()>)> {
    let id = shared.consoles.next_id.fetch_add(1, Ordering::Relaxed);
    let (stop_tx, mut stop) = oneshot::channel();
    let lock = {
        let mut slots = shared
            .consoles
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(vmi_uid.to_string()).or_insert_with(|| Slot {
            lock: Arc::default(),
            current: None,
        });
        if let Some((_, previous)) = slot.current.replace((id, stop_tx)) {
            let _ = previous.send(());
        }
        slot.lock.clone()
    };
    tokio::select! {
        held = lock.lock_owned() => Some((
            ConsoleTurn {
                shared: shared.clone(),
                vmi_uid: vmi_uid.to_string(),
                id,
                _held: held,
            },
            stop,
        )),
        _ = &mut stop => None,
    }
}

fn refused(refusal: Refusal) -> Response {
    status(refusal.code, &refusal.message)
}

/// A target that cannot be reached: 502, as virt-api words a failed dial.
fn dial_failed(why: impl std::fmt::Display) -> Response {
    status(StatusCode::BAD_GATEWAY, &format!("dialing VM: {why}"))
}

/// `GET .../{name}/console` and `.../{name}/vnc`.
pub async fn named(
    State(shared): State<Arc<Shared>>,
    Path((ns, name, stream)): Path<(String, String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    serve(
        shared,
        ns,
        name,
        stream_checks::named_endpoint(&stream),
        upgrade,
    )
    .await
}

/// `GET .../{name}/portforward/{port}/{protocol}`.
pub async fn port_forward(
    State(shared): State<Arc<Shared>>,
    Path((ns, name, port, protocol)): Path<(String, String, String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let endpoint = stream_checks::port_forward(&port, Some(&protocol));
    serve(shared, ns, name, endpoint, upgrade).await
}

/// `GET .../{name}/portforward/{port}` (TCP).
pub async fn port_forward_tcp(
    State(shared): State<Arc<Shared>>,
    Path((ns, name, port)): Path<(String, String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let endpoint = stream_checks::port_forward(&port, None);
    serve(shared, ns, name, endpoint, upgrade).await
}

async fn serve(
    shared: Arc<Shared>,
    ns: String,
    name: String,
    endpoint: Result<Endpoint, Refusal>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(refusal) => return refused(refusal),
    };
    let tracked = shared.tracked(&ns, &name);
    let domain = tracked.as_ref().and_then(|t| t.domain.as_ref());
    if let Err(refusal) = stream_checks::check_domain(tracked.is_some(), domain) {
        return refused(refusal);
    }
    let Some(tracked) = tracked else {
        return refused(stream_checks::check_domain(false, None).unwrap_err());
    };
    // Not a websocket request: axum's answer (400, 405 or 426), before touching anything.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade.protocols([SUBPROTOCOL]),
        Err(rejection) => return rejection.into_response(),
    };
    match endpoint {
        Endpoint::Console => {
            let Some((turn, stop)) = take_console(&shared, &tracked.uid).await else {
                return status(StatusCode::CONFLICT, TAKEN_OVER);
            };
            let serial = match connect_private(&shared, &ns, &tracked, SERIAL_SOCKET).await {
                Ok(serial) => serial,
                Err(e) => return dial_failed(e),
            };
            tracing::info!("VMI {ns}/{name}: console connected");
            upgrade.on_upgrade(move |socket| async move {
                let (from, to) = serial.into_split();
                splice(
                    socket,
                    from,
                    to,
                    async move {
                        let _ = stop.await;
                    },
                    None,
                )
                .await;
                drop(turn);
                tracing::info!("VMI {ns}/{name}: console disconnected");
            })
        }
        Endpoint::Vnc => {
            let vnc = match connect_private(&shared, &ns, &tracked, VNC_SOCKET).await {
                Ok(vnc) => vnc,
                Err(e) => return dial_failed(e),
            };
            upgrade.on_upgrade(move |socket| async move {
                let (from, to) = vnc.into_split();
                splice(socket, from, to, std::future::pending(), None).await;
            })
        }
        Endpoint::PortForward { port, protocol } => {
            let address = match forwarded_address(&shared, &tracked, port, protocol).await {
                Ok(address) => address,
                Err(e) => return dial_failed(e),
            };
            match protocol {
                Protocol::Tcp => {
                    let tcp = match TcpStream::connect(address).await {
                        Ok(tcp) => tcp,
                        Err(e) => return dial_failed(e),
                    };
                    let _ = tcp.set_nodelay(true);
                    // slirp accepts every forwarded connection and closes it at once when the
                    // guest refuses: that quick, silent end is the guest's "connection refused".
                    let refused = Refused {
                        since: Instant::now(),
                        reason: format!(
                            "dialing VM: connection refused: nothing listens on guest port {port}/tcp"
                        ),
                    };
                    upgrade.on_upgrade(move |socket| async move {
                        let (from, to) = tcp.into_split();
                        splice(socket, from, to, std::future::pending(), Some(refused)).await;
                    })
                }
                Protocol::Udp => {
                    let udp = match udp_to(address).await {
                        Ok(udp) => udp,
                        Err(e) => return dial_failed(e),
                    };
                    upgrade.on_upgrade(move |socket| splice_udp(socket, udp))
                }
            }
        }
    }
}

/// Connects to one of QEMU's sockets in the launcher Pod's private directory.
async fn connect_private(
    shared: &Shared,
    ns: &str,
    tracked: &Tracked,
    socket: &str,
) -> Result<UnixStream, String> {
    let pod = match &tracked.pod {
        Some(pod) => Some(pod.clone()),
        None => vmis::launcher_pod(shared, ns, &tracked.uid)
            .await
            .map_err(|e| format!("{e:#}"))?,
    };
    let pod_uid = pod
        .and_then(|p| p.metadata.uid)
        .ok_or("the VMI's launcher Pod is not found")?;
    let dir = paths::private_dir(&shared.config.host_root, &pod_uid);
    paths::connect_in(&dir, socket)
        .await
        .map_err(|e| format!("{}: {e}", dir.join(socket).display()))
}

/// Asks the launcher where guest `port` is reachable on the host.
async fn forwarded_address(
    shared: &Shared,
    tracked: &Tracked,
    port: u16,
    protocol: Protocol,
) -> Result<SocketAddr, String> {
    let socket = paths::launcher_socket(&shared.config.host_root, &tracked.uid);
    let address = launcher::call_for_address(&socket, &Request::Forward { port, protocol })
        .await
        .map_err(|e| e.to_string())?;
    address
        .parse()
        .map_err(|_| format!("the launcher answered {address:?}, which is not IP:PORT"))
}

async fn udp_to(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if address.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let udp = UdpSocket::bind(local).await?;
    udp.connect(address).await?;
    Ok(udp)
}

/// The bytes of a websocket message (binary, or text taken as bytes); `None` for a close.
fn payload(message: Message) -> Option<Option<Bytes>> {
    match message {
        Message::Binary(bytes) => Some(Some(bytes)),
        Message::Text(text) => Some(Some(Bytes::copy_from_slice(text.as_str().as_bytes()))),
        Message::Close(_) => None,
        // Answered by the websocket layer.
        Message::Ping(_) | Message::Pong(_) => Some(None),
    }
}

/// A target that ends within [`REFUSED_WITHIN`] of the connect without sending a byte was
/// refused by the guest: the client's close frame then carries `reason` as an error (1011).
struct Refused {
    since: Instant,
    reason: String,
}

const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// Copies both ways until either side ends or `stop` fires; what the target sends goes out
/// as one binary frame per read, at once. The client gets a close frame saying why.
async fn splice<R, W>(
    socket: WebSocket,
    mut from_target: R,
    mut to_target: W,
    stop: impl Future<Output = ()>,
    refused: Option<Refused>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut sink, mut source) = socket.split();
    let outbound = async {
        tokio::pin!(stop);
        let mut buffer = vec![0u8; COPY_BUFFER];
        let mut sent_any = false;
        let (code, reason) = loop {
            tokio::select! {
                read = from_target.read(&mut buffer) => match read {
                    Ok(0) => match &refused {
                        Some(r) if !sent_any && r.since.elapsed() < REFUSED_WITHIN => {
                            break (close_code::ERROR, r.reason.clone());
                        }
                        _ => break (close_code::NORMAL, "the VM closed the stream".to_string()),
                    },
                    Err(e) => break (close_code::ERROR, format!("reading from the VM: {e}")),
                    Ok(n) => {
                        sent_any = true;
                        let frame = Message::Binary(Bytes::copy_from_slice(&buffer[..n]));
                        if sink.send(frame).await.is_err() {
                            return;
                        }
                    }
                },
                () = &mut stop => break (close_code::NORMAL, TAKEN_OVER.to_string()),
            }
        };
        let close = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    let inbound = async {
        while let Some(Ok(message)) = source.next().await {
            match payload(message) {
                None => break,
                Some(None) => {}
                Some(Some(bytes)) => {
                    if to_target.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_target.shutdown().await;
    };
    tokio::select! {
        () = outbound => {}
        () = inbound => {}
    }
    // Completes the closing handshake (the reply to the client's close is queued but unsent).
    let _ = sink.close().await;
}

/// UDP: each binary frame is one datagram to the guest port, each datagram back one frame.
async fn splice_udp(socket: WebSocket, udp: UdpSocket) {
    let (mut sink, mut source) = socket.split();
    let outbound = async {
        let mut buffer = vec![0u8; 65536];
        loop {
            match udp.recv(&mut buffer).await {
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buffer[..n]));
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
                // An ICMP "port unreachable" for an earlier datagram: datagrams may be lost.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(_) => return,
            }
        }
    };
    let inbound = async {
        while let Some(Ok(message)) = source.next().await {
            match payload(message) {
                None => break,
                Some(None) => {}
                Some(Some(bytes)) => {
                    let _ = udp.send(&bytes).await;
                }
            }
        }
    };
    tokio::select! {
        () = outbound => {}
        () = inbound => {}
    }
    // Completes the closing handshake (the reply to the client's close is queued but unsent).
    let _ = sink.close().await;
}
