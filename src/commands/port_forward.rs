//! `virtctl port-forward TYPE/NAME[/NAMESPACE] [PROTOCOL/]LOCAL[:REMOTE]...`: local ports to
//! the guest's, each through its own `portforward/{port}/{protocol}` stream of virt-api. TCP:
//! one stream per accepted connection. UDP: one stream per local peer, a datagram per binary
//! frame. `--stdio`: stdin and stdout are the one connection (ssh's ProxyCommand).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use kube::api::Api;
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use virt_reconciler::kube_error;
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use crate::client::{Connection, LazyConnection};
use crate::guest_access::{ForwardedPort, Protocol, Target};
use crate::settings::PortForwardSettings;
use crate::stream::{self, Owner, StreamEnd};

/// The largest datagram read from a local UDP peer.
const DATAGRAM_MAX: usize = 65_536;

/// Where each stream of this run goes.
#[derive(Clone)]
struct Remote {
    conn: Connection,
    target: Target,
    namespace: String,
}

impl Remote {
    fn path(&self, port: &ForwardedPort) -> String {
        let remote = port.remote.to_string();
        stream::path(
            self.target.owner,
            &self.namespace,
            &self.target.name,
            &["portforward", &remote, port.protocol.as_str()],
            "",
        )
    }

    /// `vmi/name.namespace`, as KubeVirt's messages name it.
    fn describe(&self) -> String {
        format!(
            "{}/{}.{}",
            self.target.owner.short(),
            self.target.name,
            self.namespace
        )
    }

    async fn dial(&self, port: &ForwardedPort) -> Result<stream::WsStream, String> {
        stream::dial(&self.conn, &self.path(port))
            .await
            .map_err(|e| format!("can't access {}: {e}", self.describe()))
    }
}

pub async fn run(connection: &LazyConnection, opts: &PortForwardSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    // A ProxyCommand's stream opens at once; a listener checks its target first, so a typo
    // fails before any port is open.
    let check = !opts.stdio || opts.target.legacy_reading().is_some();
    let remote = if check {
        resolve(conn, &opts.target).await?
    } else {
        Remote {
            conn: conn.clone(),
            target: opts.target.clone(),
            namespace: namespace_of(conn, &opts.target),
        }
    };
    if opts.stdio {
        return stdio(&remote, &opts.ports[0]).await;
    }
    for port in &opts.ports {
        let wanted = SocketAddr::new(opts.address, port.local);
        match port.protocol {
            Protocol::Tcp => {
                let listener = TcpListener::bind(wanted)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on tcp {wanted}: {e}"))?;
                announce(&listener.local_addr()?, port);
                tokio::spawn(serve_tcp(listener, remote.clone(), *port));
            }
            Protocol::Udp => {
                let socket = UdpSocket::bind(wanted)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on udp {wanted}: {e}"))?;
                announce(&socket.local_addr()?, port);
                tokio::spawn(serve_udp(Arc::new(socket), remote.clone(), *port));
            }
        }
    }
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// kubectl's line, with the protocol when it is not TCP.
fn announce(local: &SocketAddr, port: &ForwardedPort) {
    match port.protocol {
        Protocol::Tcp => println!("Forwarding from {local} -> {}", port.remote),
        Protocol::Udp => println!("Forwarding from {local} -> {} (udp)", port.remote),
    }
}

fn namespace_of(conn: &Connection, target: &Target) -> String {
    target
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone())
}

/// The target as found in the cluster: as typed, or else by the older `type/name.namespace`
/// reading of a dotted name (with a warning), as KubeVirt's virtctl still documents it.
async fn resolve(conn: &Connection, target: &Target) -> anyhow::Result<Remote> {
    let typed = Remote {
        conn: conn.clone(),
        target: target.clone(),
        namespace: namespace_of(conn, target),
    };
    let missing = match exists(&typed).await {
        Ok(()) => return Ok(typed),
        Err(e) => e,
    };
    let Some(legacy) = target.legacy_reading() else {
        return Err(missing);
    };
    let older = Remote {
        conn: conn.clone(),
        namespace: namespace_of(conn, &legacy),
        target: legacy,
    };
    if exists(&older).await.is_err() {
        return Err(missing);
    }
    eprintln!(
        "Warning: {kind}/{dotted} means {kind}/{name}/{ns} (the older type/name.namespace \
         form); write {kind}/{name}/{ns}",
        kind = target.owner.short(),
        dotted = target.name,
        name = older.target.name,
        ns = older.namespace,
    );
    Ok(older)
}

/// [`resolve`] for ssh and scp: the target with its namespace filled in.
pub async fn resolve_target(conn: &Connection, target: &Target) -> anyhow::Result<Target> {
    let remote = resolve(conn, target).await?;
    Ok(Target {
        namespace: Some(remote.namespace),
        ..remote.target
    })
}

/// The VM or VMI must exist before ports are opened for it: a typo fails at once.
async fn exists(remote: &Remote) -> anyhow::Result<()> {
    let (client, ns, name) = (
        remote.conn.client.clone(),
        remote.namespace.as_str(),
        remote.target.name.as_str(),
    );
    let found = match remote.target.owner {
        Owner::Vm => Api::<VirtualMachine>::namespaced(client, ns)
            .get(name)
            .await
            .map(|_| ()),
        Owner::Vmi => Api::<VirtualMachineInstance>::namespaced(client, ns)
            .get(name)
            .await
            .map(|_| ()),
    };
    found.map_err(|e| anyhow::anyhow!("{}", kube_error::message(&e)))
}

/// stdin to the stream, the stream to stdout. The server's end ends it; the end of stdin
/// sends a close frame, and what the server still sends is written until it closes too.
async fn stdio(remote: &Remote, port: &ForwardedPort) -> anyhow::Result<()> {
    let ws = remote.dial(port).await.map_err(|e| anyhow::anyhow!(e))?;
    let (mut sink, mut source) = ws.split();
    let mut input = stream::stdin_chunks();
    let sending = async {
        while let Some(chunk) = input.recv().await {
            if sink.send(Message::binary(chunk)).await.is_err() {
                return std::future::pending().await;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    let mut stdout = stream::Stdout;
    let receiving = stream::copy_to_writer(&mut source, &mut stdout);
    tokio::pin!(receiving);
    let end = tokio::select! {
        end = &mut receiving => end,
        () = sending => tokio::time::timeout(stream::CLOSE_GRACE, receiving)
            .await
            .unwrap_or(StreamEnd::Closed),
    };
    match end {
        StreamEnd::Closed => Ok(()),
        StreamEnd::Failed(e) => anyhow::bail!("port-forward stream failed: {e}"),
    }
}

async fn serve_tcp(listener: TcpListener, remote: Remote, port: ForwardedPort) {
    loop {
        let Ok((local, _)) = listener.accept().await else {
            continue;
        };
        let _ = local.set_nodelay(true);
        let remote = remote.clone();
        tokio::spawn(async move {
            match remote.dial(&port).await {
                Ok(ws) => {
                    if let StreamEnd::Failed(e) = stream::splice(ws, local).await {
                        eprintln!("error handling connection for {}: {e}", port.local);
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            }
        });
    }
}

/// One task per local peer, fed with that peer's datagrams.
type Peers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

async fn serve_udp(socket: Arc<UdpSocket>, remote: Remote, port: ForwardedPort) {
    let peers: Peers = Arc::default();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = buf[..n].to_vec();
        let known = peers.lock().expect("not poisoned").get(&peer).cloned();
        let sender = match known {
            Some(sender) => sender,
            None => {
                let (tx, rx) = mpsc::channel(64);
                peers.lock().expect("not poisoned").insert(peer, tx.clone());
                tokio::spawn(udp_peer(
                    socket.clone(),
                    peer,
                    rx,
                    remote.clone(),
                    port,
                    peers.clone(),
                ));
                tx
            }
        };
        // A full queue drops the datagram, as a congested network would.
        let _ = sender.try_send(datagram);
    }
}

async fn udp_peer(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    remote: Remote,
    port: ForwardedPort,
    peers: Peers,
) {
    match remote.dial(&port).await {
        Ok(ws) => {
            let (mut sink, mut source) = ws.split();
            let sending = async {
                while let Some(d) = datagrams.recv().await {
                    if sink.send(Message::binary(d)).await.is_err() {
                        return;
                    }
                }
            };
            let receiving = async {
                while let Some(Ok(message)) = source.next().await {
                    let data = match message {
                        Message::Binary(b) => b,
                        Message::Text(t) => t.into(),
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    if socket.send_to(&data, peer).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                () = sending => {}
                () = receiving => {}
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
    peers.lock().expect("not poisoned").remove(&peer);
}
