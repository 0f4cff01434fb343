//! End to end, with a real guest: the `virt-launcher` binary boots the guest image under QEMU in
//! a launcher Pod's layout on a temporary node root, virt-handler (in-process, against an
//! in-process localkube) follows it, and websocket clients use the handler's console, VNC and
//! portforward endpoints; a Service makes the handler publish the guest's sshd on POD_IP:22,
//! and the VMI's accessCredentials reach the guest's cloud-config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use virt_handler::HandlerConfig;
use virt_reconciler::VirtualMachineInstance;

const NODE: &str = "stream-node";
/// Only a guard against hangs: a TCG boot of the guest takes some seconds.
const DEADLINE: Duration = Duration::from_secs(180);
const IMAGE_FILE: &str = "kubevirt_cirros-container-disk-demo.img";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk4v7Zl2lP5cZbS0nXq2h2yq1n3s5x7z9b1d3f5h7j9 tester@streams";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The launcher process, killed with the test.
struct LauncherProcess(Child);

impl Drop for LauncherProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// A loopback Pod IP of its own (127.0.0.0/8 is all local on Linux), so that port 22 on it is
/// free whatever the host runs.
fn pod_ip() -> String {
    let n = std::process::id();
    format!(
        "127.{}.{}.{}",
        100 + (n % 100),
        (n >> 8) % 250 + 1,
        n % 250 + 1
    )
}

/// The launcher Pod's directories as a kubelet lays them out, and the launcher started in its
/// container root.
fn start_launcher(
    host_root: &Path,
    pod_uid: &str,
    vmi_uid: &str,
    image: &Path,
    pod_ip: &str,
) -> (LauncherProcess, PathBuf) {
    let pod_dir = host_root.join("var/lib/kubelet/pods").join(pod_uid);
    let private = pod_dir.join("volumes/kubernetes.io~empty-dir/private");
    std::fs::create_dir_all(&private).unwrap();
    let sockets = host_root.join("var/run/kubevirt/sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    let images = host_root.join("var/lib/virt-toolkit/images");
    symlink(image, &images.join(IMAGE_FILE));
    let meta = PathBuf::from(format!("{}.meta.json", image.display()));
    if meta.is_file() {
        symlink(&meta, &images.join(format!("{IMAGE_FILE}.meta.json")));
    }
    let root = pod_dir.join("rootfs/compute");
    symlink(&private, &root.join("var/run/kubevirt-private"));
    symlink(&sockets, &root.join("var/run/kubevirt/sockets"));
    symlink(&images, &root.join("var/lib/virt-toolkit/images"));
    let stderr = std::fs::File::create(host_root.join("launcher.stderr")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_virt-launcher"))
        .args(["--namespace", "default", "--name", "vm1", "--uid", vmi_uid])
        .env("VIRT_LAUNCHER_ACCEL", "tcg")
        .env("POD_IP", pod_ip)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (LauncherProcess(child), private)
}

async fn websocket(address: &str, path: &str) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("ws://{address}{path}").into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("plain.kubevirt.io"),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "plain.kubevirt.io"
    );
    Ok(ws)
}

/// The refusal of a request that is not upgraded: its status code and message.
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

/// What comes in until `needle` shows up (binary and text frames alike).
async fn read_until(ws: &mut Ws, needle: &str) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(message) = ws.next().await {
            match message.expect("a websocket message") {
                Message::Binary(bytes) => seen.extend_from_slice(&bytes),
                Message::Text(text) => seen.extend_from_slice(text.as_bytes()),
                Message::Close(frame) => panic!("closed ({frame:?}) before {needle:?}"),
                _ => {}
            }
            if String::from_utf8_lossy(&seen).contains(needle) {
                return;
            }
        }
        panic!("the stream ended before {needle:?}");
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(found.is_ok(), "no {needle:?} in {text:?}");
    text
}

/// Reads until the stream ends; returns the close frame's reason, if any.
async fn read_to_end(ws: &mut Ws) -> Option<String> {
    tokio::time::timeout(DEADLINE, async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| f.reason.to_string()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stream ends")
}

#[tokio::test(flavor = "multi_thread")]
async fn console_vnc_and_ports_of_a_real_guest_through_the_handler() {
    let Some(image) = test_support::guest_image("console, vnc and portforward through the handler")
    else {
        return;
    };
    let server = localkube::LocalKube::builder()
        .start()
        .await
        .expect("localkube starts");
    let client = server.client().await.expect("a client of localkube");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NODE}})).unwrap(),
        )
        .await
        .unwrap();
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    eventually("the VMI CRD served", async || {
        vmis.list(&Default::default()).await.ok()
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "my-keys"},
                "stringData": {"key1": format!("{SSH_KEY}\n")}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let vmi: VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "default"},
        "spec": {
            "domain": {
                "devices": {"disks": [
                    {"name": "containerdisk", "disk": {"bus": "virtio"}},
                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}
                ]},
                "resources": {"requests": {"memory": "128Mi"}}
            },
            "volumes": [
                {"name": "containerdisk", "containerDisk": {"image": "quay.io/kubevirt/cirros-container-disk-demo"}},
                {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\nhostname: vm1\n"}}
            ],
            "accessCredentials": [{"sshPublicKey": {
                "source": {"secret": {"secretName": "my-keys"}},
                "propagationMethod": {"noCloud": {}}
            }}]
        },
        "status": {"phase": "Scheduled", "nodeName": NODE},
    }))
    .unwrap();
    let vmi = vmis.create(&PostParams::default(), &vmi).await.unwrap();
    let vmi_uid = vmi.metadata.uid.clone().unwrap();
    let mut pod = virt_reconciler::vmi::build_launcher_pod(&vmi);
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod_ip = pod_ip();
    pods.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Running", "podIP": pod_ip}})),
    )
    .await
    .unwrap();

    let host_root = tempfile::tempdir().unwrap();
    let (_launcher, private) = start_launcher(
        host_root.path(),
        pod.metadata.uid.as_deref().unwrap(),
        &vmi_uid,
        &image,
        &pod_ip,
    );
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
    let address = eventually("the handler's address on the Node", async || {
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
    let base = "/v1/namespaces/default/virtualmachineinstances";
    let serial_log = private.join("virt-serial0-log");
    let launcher_log = host_root.path().join("launcher.stderr");
    eventually("the guest ready on its console", async || {
        let log = std::fs::read_to_string(&serial_log).unwrap_or_default();
        if log.contains("guest: ready") {
            return Some(());
        }
        let launcher = std::fs::read_to_string(&launcher_log).unwrap_or_default();
        assert!(
            !launcher.contains("exiting with status"),
            "the launcher ended: {launcher}"
        );
        None
    })
    .await;
    let log = std::fs::read_to_string(&serial_log).unwrap();
    assert!(
        log.contains("guest: 1 ssh authorized keys from cloud-config"),
        "the accessCredentials key reached the guest: {log}"
    );

    // Refusals come before the upgrade, as metav1.Status.
    assert_eq!(
        refusal(&address, &format!("{base}/vm1/portforward/0/tcp")).await,
        (400, "port must be 1-65535".into())
    );
    assert_eq!(
        refusal(&address, &format!("{base}/vm1/portforward/22/sctp")).await,
        (400, "protocol must be tcp or udp".into())
    );
    assert_eq!(
        refusal(&address, &format!("{base}/other/console")).await,
        (404, "the VMI does not run on this node".into())
    );

    // The console: a keystroke reaches the guest's serial port, its login prompt comes back.
    let mut console = websocket(&address, &format!("{base}/vm1/console"))
        .await
        .expect("the console upgrades");
    console
        .send(Message::Binary(b"\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut console, "login:").await;
    // A second console connection takes over; the first one is closed, saying why.
    let mut second = websocket(&address, &format!("{base}/vm1/console"))
        .await
        .expect("a second console upgrades");
    assert_eq!(
        read_to_end(&mut console).await.as_deref(),
        Some("another console connection took over")
    );
    second.send(Message::Text("\r".into())).await.unwrap();
    read_until(&mut second, "login:").await;

    // VNC: QEMU's server greets with its protocol version.
    let mut vnc = websocket(&address, &format!("{base}/vm1/vnc"))
        .await
        .expect("vnc upgrades");
    let greeting = read_until(&mut vnc, "\n").await;
    assert_eq!(greeting, "RFB 003.008\n");

    // A forwarded guest port: the guest's dropbear greets.
    let mut ssh = websocket(&address, &format!("{base}/vm1/portforward/22/tcp"))
        .await
        .expect("portforward upgrades");
    let banner = read_until(&mut ssh, "\r\n").await;
    assert!(banner.starts_with("SSH-2.0-dropbear"), "{banner:?}");
    drop(ssh);
    // A guest port nothing listens on: the stream ends instead of hanging.
    let mut closed = websocket(&address, &format!("{base}/vm1/portforward/2345"))
        .await
        .expect("portforward upgrades");
    read_to_end(&mut closed).await;

    // A Service selecting the VM publishes its target port on POD_IP, as a declared port.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "vm1-ssh"},
                "spec": {"selector": {"vm.kubevirt.io/name": "vm1"},
                    "ports": [{"port": 27017, "targetPort": 22, "protocol": "TCP"}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let banner = eventually("sshd on POD_IP:22", async || {
        let mut tcp = TcpStream::connect((pod_ip.as_str(), 22)).await.ok()?;
        let mut buffer = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    })
    .await;
    assert!(banner.starts_with("SSH-2.0-dropbear"), "{banner:?}");

    let _ = stop_tx.send(());
    handler.await.unwrap().unwrap();
}
