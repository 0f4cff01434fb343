//! virt-handler's stream endpoints without QEMU: the handler in-process against localkube, a
//! fake launcher on the command socket (it answers `forward` with addresses this test
//! listens on) and fake QEMU sockets in the launcher Pod's private directory.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{cluster, eventually};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use virt_handler::HandlerConfig;
use virt_reconciler::VirtualMachineInstance;
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Protocol, Request, Response};

const NODE: &str = "stream-node";
const DEADLINE: Duration = Duration::from_secs(30);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Answers `watch`/`status` from `state`, `forward` from `forwards` (or refuses).
struct Fake {
    state: watch::Sender<DomainStatus>,
    forwards: std::sync::Mutex<Vec<((Protocol, u16), String)>>,
}

fn start_fake(socket: &Path) -> Arc<Fake> {
    let listener = UnixListener::bind(socket).unwrap();
    let fake = Arc::new(Fake {
        state: watch::channel(DomainStatus::default()).0,
        forwards: Default::default(),
    });
    let serving = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = serving.clone();
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let request: Request = serde_json::from_str(&line).unwrap();
                    let mut changes = fake.state.subscribe();
                    let answer = match request {
                        Request::Watch => loop {
                            let now = changes.borrow_and_update().clone();
                            let line = serde_json::to_string(&Response::ok(now)).unwrap() + "\n";
                            if writer.write_all(line.as_bytes()).await.is_err()
                                || changes.changed().await.is_err()
                            {
                                return;
                            }
                        },
                        Request::Forward { port, protocol } => {
                            let forwards = fake.forwards.lock().unwrap();
                            match forwards.iter().find(|(k, _)| *k == (protocol, port)) {
                                Some((_, address)) => Response::address(address.clone()),
                                None => Response::error(format!("no forward for {port}")),
                            }
                        }
                        _ => Response::ok(fake.state.borrow().clone()),
                    };
                    let line = serde_json::to_string(&answer).unwrap() + "\n";
                    if writer.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    fake
}

async fn websocket(address: &str, path: &str) -> Result<Ws, tungstenite::Error> {
    let request = format!("ws://{address}{path}").into_client_request()?;
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn refusal(address: &str, path: &str) -> (u16, String) {
    match websocket(address, path).await {
        Err(tungstenite::Error::Http(response)) => {
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .unwrap_or_default();
            (
                response.status().as_u16(),
                body["message"].as_str().unwrap_or_default().to_string(),
            )
        }
        Err(e) => panic!("{path}: {e}"),
        Ok(_) => panic!("{path}: upgraded, expected a refusal"),
    }
}

async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    loop {
        let message = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame in time")
            .expect("the stream goes on")
            .expect("a frame");
        match message {
            Message::Binary(bytes) => return bytes.to_vec(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_reach_the_sockets_and_forwards_or_say_why_not() {
    let cluster = cluster(NODE).await;
    let client = cluster.client.clone();
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    let vmi: VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "default"},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Scheduled", "nodeName": NODE},
    }))
    .unwrap();
    let vmi = vmis.create(&PostParams::default(), &vmi).await.unwrap();
    let uid = vmi.metadata.uid.clone().unwrap();
    let mut pod = virt_reconciler::vmi::build_launcher_pod(&vmi);
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Running", "podIP": "10.244.0.9"}})),
    )
    .await
    .unwrap();

    let host_root = tempfile::tempdir().unwrap();
    let sockets = host_root.path().join("var/run/kubevirt/sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    let private = host_root
        .path()
        .join("var/lib/kubelet/pods")
        .join(pod.metadata.uid.as_deref().unwrap())
        .join("volumes/kubernetes.io~empty-dir/private");
    std::fs::create_dir_all(&private).unwrap();
    let fake = start_fake(&sockets.join(format!("{uid}.sock")));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handler = tokio::spawn(virt_handler::run_until(
        client.clone(),
        HandlerConfig {
            node_name: NODE.into(),
            host_root: host_root.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let address = eventually("the handler's address", async || {
        nodes
            .get(NODE)
            .await
            .ok()?
            .metadata
            .annotations?
            .get("virt-toolkit.dev/handler-address")
            .cloned()
    })
    .await;
    let base = "/v1/namespaces/default/virtualmachineinstances/vm1";

    // Not running yet: refused, as is a plain GET.
    eventually("the handler following the VMI", async || {
        let (code, _) = refusal(&address, &format!("{base}/console")).await;
        (code == 409).then_some(())
    })
    .await;
    assert_eq!(
        refusal(&address, &format!("{base}/vnc")).await,
        (409, "VMI is not running".into())
    );
    fake.state.send_modify(|s| s.state = DomainState::Running);
    eventually("the domain running", async || {
        let (code, _) = refusal(&address, &format!("{base}/console")).await;
        (code == 502).then_some(())
    })
    .await;
    let (code, message) = refusal(&address, &format!("{base}/console")).await;
    assert_eq!(code, 502);
    assert!(message.starts_with("dialing VM: "), "{message}");
    let plain = plain_get(&address, &format!("{base}/console")).await;
    assert!(plain.starts_with("HTTP/1.1 4"), "{plain}");

    // VNC: bytes both ways with a fake QEMU socket.
    let vnc = bind_in(&private, "virt-vnc");
    let qemu = tokio::spawn(async move {
        let (mut stream, _) = vnc.accept().await.unwrap();
        stream.write_all(b"RFB 003.008\n").await.unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        answer
    });
    let mut ws = websocket(&address, &format!("{base}/vnc")).await.unwrap();
    assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n");
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(&qemu.await.unwrap(), b"RFB 003.008\n");

    // TCP: a forward to a closed port is 502; an open one carries bytes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_address = echo.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = echo.accept().await.unwrap();
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let udp_echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_address = udp_echo.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((n, from)) = udp_echo.recv_from(&mut buffer).await {
            let _ = udp_echo.send_to(&buffer[..n], from).await;
        }
    });
    fake.forwards.lock().unwrap().extend([
        ((Protocol::Tcp, 23), closed_address),
        ((Protocol::Tcp, 7), echo_address),
        ((Protocol::Udp, 7), udp_address),
    ]);
    let (code, message) = refusal(&address, &format!("{base}/portforward/23/tcp")).await;
    assert_eq!(code, 502);
    assert!(
        message.contains("dialing VM: ") && message.contains("refused"),
        "{message}"
    );
    let (code, message) = refusal(&address, &format!("{base}/portforward/24/tcp")).await;
    assert_eq!(
        (code, message.as_str()),
        (502, "dialing VM: no forward for 24")
    );

    let mut tcp = websocket(&address, &format!("{base}/portforward/7/tcp"))
        .await
        .unwrap();
    tcp.send(Message::Binary(b"ping".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut tcp).await, b"ping");
    // Text frames are bytes too.
    tcp.send(Message::Text("pong".into())).await.unwrap();
    assert_eq!(next_binary(&mut tcp).await, b"pong");

    let mut udp = websocket(&address, &format!("{base}/portforward/7/udp"))
        .await
        .unwrap();
    for datagram in [&b"one"[..], &b"two two"[..]] {
        udp.send(Message::Binary(datagram.to_vec().into()))
            .await
            .unwrap();
        assert_eq!(next_binary(&mut udp).await, datagram);
    }

    let _ = stop_tx.send(());
    drop((tcp, udp, ws));
    tokio::time::timeout(DEADLINE, handler)
        .await
        .expect("the handler stops")
        .unwrap()
        .unwrap();
}

/// Listens on `dir/name` however long `dir` is (as QEMU binds it, from a short relative path).
fn bind_in(dir: &Path, name: &str) -> UnixListener {
    use std::os::fd::AsRawFd;
    let opened = std::fs::File::open(dir).unwrap();
    UnixListener::bind(format!("/proc/self/fd/{}/{name}", opened.as_raw_fd())).unwrap()
}

/// A plain HTTP/1.1 GET (no upgrade); the raw answer.
async fn plain_get(address: &str, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}
