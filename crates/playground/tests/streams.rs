//! The stream subresources of the real `virt-playground` (`--guests simulated`), through
//! localkube's TLS listener as virtctl reaches them: console, vnc and portforward of a VMI and
//! portforward of a VM, v1 and v1alpha3. The node's virt-handler is a fake started here (a
//! websocket echo server on a random port, announced on the Node as virt-handler announces
//! itself), so every byte a client sends must come back through virt-api's splice unchanged.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use test_support::Playground;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::Role;
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

const NS: &str = "default";
const PROTOCOL: &str = "plain.kubevirt.io";
/// Generous, only so that a broken stream fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(60);
/// The VMI whose handshake the fake handler refuses, and how.
const REFUSED_VMI: &str = "vmi-refused";
const HANDLER_REFUSAL: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\
     \"status\":\"Failure\",\"message\":\"VMI is not running\",\"reason\":\"Conflict\",\"code\":409}";

// ---------------------------------------------------------------------------------------------
// The fake virt-handler

/// A websocket echo server standing in for the node's virt-handler; it records the path of
/// every handshake it gets.
struct FakeHandler {
    address: String,
    paths: Arc<Mutex<Vec<String>>>,
}

impl FakeHandler {
    async fn start() -> FakeHandler {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(echo(socket, seen.clone()));
            }
        });
        FakeHandler { address, paths }
    }

    fn saw(&self, path: &str) -> bool {
        self.paths.lock().unwrap().iter().any(|p| p == path)
    }
}

/// One handshake (refused for [`REFUSED_VMI`]), then every data frame back as a binary frame.
async fn echo(socket: TcpStream, paths: Arc<Mutex<Vec<String>>>) {
    // The callback's type is tungstenite's, error response and all.
    #[allow(clippy::result_large_err)]
    let answer = move |request: &Request, mut response: Response| {
        let path = request.uri().path().to_string();
        paths.lock().unwrap().push(path.clone());
        if path.contains(&format!("/{REFUSED_VMI}/")) {
            let refusal: ErrorResponse = http::Response::builder()
                .status(409)
                .header("content-type", "application/json")
                .header("content-length", HANDLER_REFUSAL.len().to_string())
                .body(Some(HANDLER_REFUSAL.to_string()))
                .unwrap();
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == PROTOCOL);
        if offered {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", PROTOCOL.parse().unwrap());
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(socket, answer).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let reply = match message {
            Message::Binary(b) => Message::Binary(b),
            Message::Text(t) => Message::Binary(Bytes::from(t.as_str().to_owned())),
            Message::Close(_) => return,
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side: a websocket through localkube's TLS, with the kubeconfig's credentials

struct Env {
    _playground: Playground,
    client: Client,
    /// `127.0.0.1:PORT` of the API server.
    server: String,
    ca_pem: Vec<u8>,
    token: String,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Env {
    async fn start() -> Env {
        let playground = Playground::start(
            Path::new(env!("CARGO_BIN_EXE_virt-playground")),
            Stdio::inherit(),
        );
        let yaml = std::fs::read_to_string(&playground.kubeconfig).unwrap();
        let doc: Value = serde_saphyr::from_str(&yaml).unwrap();
        let text = |v: &Value| v.as_str().unwrap().to_string();
        let server = text(&doc["clusters"][0]["cluster"]["server"])
            .trim_start_matches("https://")
            .to_string();
        let ca_pem = base64::engine::general_purpose::STANDARD
            .decode(text(
                &doc["clusters"][0]["cluster"]["certificate-authority-data"],
            ))
            .unwrap();
        let token = text(&doc["users"][0]["user"]["token"]);
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        Env {
            client: Client::try_from(cfg).unwrap(),
            _playground: playground,
            server,
            ca_pem,
            token,
        }
    }

    /// GET `path` as a websocket handshake offering `plain.kubevirt.io`: the answer's headers
    /// and the websocket after a 101, else the refusal's code, content type and body.
    async fn open(
        &self,
        path: &str,
    ) -> Result<(http::HeaderMap, Ws), (u16, Option<String>, String)> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&self.ca_pem).unwrap())
            .unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(&self.server).await.unwrap();
        let ip: std::net::IpAddr = self.server.rsplit_once(':').unwrap().0.parse().unwrap();
        let stream = TlsConnector::from(Arc::new(tls))
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let key = base64::engine::general_purpose::STANDARD.encode(*b"0123456789abcdef");
        let request = http::Request::get(path)
            .header("host", &self.server)
            .header("authorization", format!("Bearer {}", self.token))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", &key)
            .header("sec-websocket-protocol", PROTOCOL)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
            .await
            .expect("an answer before the deadline")
            .unwrap();
        let code = response.status().as_u16();
        if code != 101 {
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            return Err((code, content_type, String::from_utf8_lossy(&body).into()));
        }
        let headers = response.headers().clone();
        let upgraded = hyper::upgrade::on(response).await.unwrap();
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        Ok((headers, ws))
    }

    /// The refusal of `path`'s handshake: its code and its Status message.
    async fn refusal(&self, path: &str) -> (u16, String) {
        match self.open(path).await {
            Ok(_) => panic!("{path}: expected a refusal, got an upgrade"),
            Err((code, content_type, body)) => {
                assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
                let status: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(status["kind"], "Status", "{body}");
                assert_eq!(status["code"], code, "{body}");
                (code, status["message"].as_str().unwrap().to_string())
            }
        }
    }

    async fn create(&self, object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        match object["kind"].as_str() {
            Some("VirtualMachine") => {
                let vm: VirtualMachine = serde_json::from_value(object).unwrap();
                Api::<VirtualMachine>::namespaced(self.client.clone(), NS)
                    .create(&PostParams::default(), &vm)
                    .await
                    .unwrap_or_else(|e| panic!("create VM {name}: {e}"));
            }
            _ => {
                let vmi: VirtualMachineInstance = serde_json::from_value(object).unwrap();
                Api::<VirtualMachineInstance>::namespaced(self.client.clone(), NS)
                    .create(&PostParams::default(), &vmi)
                    .await
                    .unwrap_or_else(|e| panic!("create VMI {name}: {e}"));
            }
        }
    }

    /// Waits until the VMI `name` is in `phase`; returns it.
    async fn vmi_in_phase(&self, name: &str, phase: &str) -> VirtualMachineInstance {
        let api = Api::<VirtualMachineInstance>::namespaced(self.client.clone(), NS);
        let start = Instant::now();
        loop {
            if let Ok(Some(vmi)) = api.get_opt(name).await
                && vmi.phase() == phase
            {
                return vmi;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "VMI {name} never became {phase}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the VM `name` says it created its VMI.
    async fn vm_created(&self, name: &str) {
        let api = Api::<VirtualMachine>::namespaced(self.client.clone(), NS);
        let start = Instant::now();
        loop {
            let vm = api.get(name).await.unwrap();
            if vm.status.as_ref().is_some_and(|s| s.created) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "VM {name} never created its VMI"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Announces a virt-handler at `address` on `node`, as virt-handler does.
    async fn announce_handler(&self, node: &str, address: &str) {
        let patch = json!({"metadata": {
            "labels": {"kubevirt.io/schedulable": "true"},
            "annotations": {"virt-toolkit.dev/handler-address": address},
        }});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

/// Sends `bytes` in one binary frame and reads frames until as many bytes came back.
async fn round_trip(ws: &mut Ws, bytes: &[u8]) -> Vec<u8> {
    ws.send(Message::Binary(bytes.to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < bytes.len() {
        let message = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame before the deadline")
            .expect("the stream is open")
            .expect("the frame decodes");
        match message {
            Message::Binary(b) => got.extend_from_slice(&b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
    got
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// The seed's VMI spec (`examples/vm-cirros.yaml`'s template), with `devices` fields added.
fn vmi_spec(devices: Value) -> Value {
    let vm: Value = serde_saphyr::from_str(&test_support::example("vm-cirros.yaml")).unwrap();
    let mut spec = vm["spec"]["template"]["spec"].clone();
    for (k, v) in devices.as_object().unwrap() {
        spec["domain"]["devices"][k] = v.clone();
    }
    spec
}

fn vmi(name: &str, annotations: Value, devices: Value) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "annotations": annotations},
        "spec": vmi_spec(devices),
    })
}

fn vm(name: &str, strategy: &str) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"runStrategy": strategy, "template": {"spec": vmi_spec(json!({}))}},
    })
}

fn vmi_path(version: &str, name: &str, tail: &str) -> String {
    format!(
        "/apis/subresources.kubevirt.io/{version}/namespaces/{NS}/virtualmachineinstances/{name}/{tail}"
    )
}

fn vm_path(version: &str, name: &str, tail: &str) -> String {
    format!(
        "/apis/subresources.kubevirt.io/{version}/namespaces/{NS}/virtualmachines/{name}/{tail}"
    )
}

fn handler_path(name: &str, tail: &str) -> String {
    format!("/v1/namespaces/{NS}/virtualmachineinstances/{name}/{tail}")
}

const VMI_CONFLICT: &str = "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io";

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn streams_reach_the_nodes_handler_and_refusals_come_before_the_upgrade() {
    let env = Env::start().await;
    let handler = FakeHandler::start().await;
    for object in [
        vm("vm-a", "Always"),
        vm("vm-halted", "Halted"),
        vmi("vmi-b", json!({}), json!({})),
        vmi(
            "vmi-noserial",
            json!({}),
            json!({"autoattachSerialConsole": false}),
        ),
        vmi(
            "vmi-nographics",
            json!({}),
            json!({"autoattachGraphicsDevice": false}),
        ),
        vmi("vmi-paused", json!({}), json!({})),
        vmi(REFUSED_VMI, json!({}), json!({})),
        vmi(
            "vmi-failed",
            json!({"localkube.dev/fail-before-running": "true"}),
            json!({}),
        ),
    ] {
        env.create(object).await;
    }
    let running = env.vmi_in_phase("vmi-b", "Running").await;
    let node = running.status.unwrap().node_name.expect("a node");
    for name in [
        "vm-a",
        "vmi-noserial",
        "vmi-nographics",
        "vmi-paused",
        REFUSED_VMI,
    ] {
        env.vmi_in_phase(name, "Running").await;
    }
    env.vmi_in_phase("vmi-failed", "Failed").await;
    env.vm_created("vm-a").await;

    // No virt-handler on the node yet (a simulated guest): nothing to connect to.
    assert_eq!(
        env.refusal(&vmi_path("v1", "vmi-b", "console")).await,
        (400, format!("No virt-handler on node {node} found"))
    );

    env.announce_handler(&node, &handler.address).await;
    // Created after the handler came: the VMI stays Scheduled until the handler says Running.
    env.create(vmi("vmi-late", json!({}), json!({}))).await;
    env.vmi_in_phase("vmi-late", "Scheduled").await;
    let paused = json!({"status": {"conditions": [{"type": "Paused", "status": "True"}]}});
    Api::<VirtualMachineInstance>::namespaced(env.client.clone(), NS)
        .patch(
            "vmi-paused",
            &PatchParams::default(),
            &Patch::Merge(&paused),
        )
        .await
        .unwrap();

    // Bytes echo through every stream, v1 and v1alpha3, and reach the right handler endpoint.
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    for version in ["v1", "v1alpha3"] {
        let cases = [
            (
                vmi_path(version, "vmi-b", "console"),
                handler_path("vmi-b", "console"),
            ),
            (
                vmi_path(version, "vmi-b", "vnc"),
                handler_path("vmi-b", "vnc"),
            ),
            (
                vmi_path(version, "vmi-b", "portforward/22"),
                handler_path("vmi-b", "portforward/22/tcp"),
            ),
            (
                vmi_path(version, "vmi-b", "portforward/53/udp"),
                handler_path("vmi-b", "portforward/53/udp"),
            ),
            (
                vm_path(version, "vm-a", "portforward/2222"),
                handler_path("vm-a", "portforward/2222/tcp"),
            ),
            (
                vm_path(version, "vm-a", "portforward/8080/tcp"),
                handler_path("vm-a", "portforward/8080/tcp"),
            ),
            // A Scheduled VMI can be port-forwarded (its handler decides), and a VMI without
            // a serial console still has VNC.
            (
                vmi_path(version, "vmi-late", "portforward/22"),
                handler_path("vmi-late", "portforward/22/tcp"),
            ),
            (
                vmi_path(version, "vmi-noserial", "vnc"),
                handler_path("vmi-noserial", "vnc"),
            ),
        ];
        for (path, at_handler) in cases {
            let (headers, mut ws) = env
                .open(&path)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(
                headers
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap()),
                Some(PROTOCOL),
                "{path}"
            );
            let hello = format!("hello through {path}");
            assert_eq!(
                round_trip(&mut ws, hello.as_bytes()).await,
                hello.as_bytes()
            );
            assert!(handler.saw(&at_handler), "{path} reached {at_handler}");
            ws.close(None).await.unwrap();
        }
        // Large writes and many small ones come through whole and in order.
        let (_, mut ws) = env
            .open(&vmi_path(version, "vmi-b", "console"))
            .await
            .unwrap();
        assert!(round_trip(&mut ws, &big).await == big, "256 KiB unchanged");
        for i in 0..200u32 {
            assert_eq!(round_trip(&mut ws, &i.to_be_bytes()).await, i.to_be_bytes());
        }
    }

    // The refusals, with KubeVirt's codes and messages.
    let cases = [
        (
            vmi_path("v1", "nope", "console"),
            404,
            "virtualmachineinstance.kubevirt.io \"nope\" not found".to_string(),
        ),
        (
            vmi_path("v1alpha3", "nope", "portforward/22"),
            404,
            "virtualmachineinstance.kubevirt.io \"nope\" not found".into(),
        ),
        (
            vmi_path("v1", "vmi-late", "console"),
            400,
            "VMI is not running".into(),
        ),
        (
            vmi_path("v1", "vmi-late", "vnc"),
            400,
            "VMI is not running".into(),
        ),
        (
            vmi_path("v1", "vmi-failed", "console"),
            409,
            format!("{VMI_CONFLICT} \"vmi-failed\": VMI is in failed status"),
        ),
        (
            vmi_path("v1", "vmi-failed", "vnc"),
            400,
            "VMI is not running".into(),
        ),
        (
            vmi_path("v1", "vmi-failed", "portforward/22"),
            400,
            "Unable to connect to VirtualMachineInstance because phase is Failed instead of \
             Running or Scheduled"
                .into(),
        ),
        (
            vmi_path("v1", "vmi-noserial", "console"),
            400,
            "No serial consoles are present.".into(),
        ),
        (
            vmi_path("v1", "vmi-nographics", "vnc"),
            400,
            "No graphics devices are present.".into(),
        ),
        (
            vmi_path("v1", "vmi-paused", "portforward/22"),
            409,
            format!("{VMI_CONFLICT} \"vmi-paused\": VMI is paused"),
        ),
        (
            vm_path("v1", "nope", "portforward/22"),
            404,
            "virtualmachine.kubevirt.io \"nope\" not found".into(),
        ),
        (
            vm_path("v1", "vm-halted", "portforward/22"),
            409,
            "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm-halted\": VMI is \
             not started"
                .into(),
        ),
        (
            vmi_path("v1", "vmi-b", "portforward/0"),
            400,
            "port must be 1-65535".into(),
        ),
        (
            vmi_path("v1", "vmi-b", "portforward/70000"),
            400,
            "port must be 1-65535".into(),
        ),
        (
            vmi_path("v1", "vmi-b", "portforward/22/sctp"),
            400,
            "protocol must be tcp or udp".into(),
        ),
    ];
    for (path, code, message) in cases {
        assert_eq!(env.refusal(&path).await, (code, message), "{path}");
    }

    // The handler's refusal reaches the client as it came.
    for path in [
        vmi_path("v1", REFUSED_VMI, "console"),
        vmi_path("v1alpha3", REFUSED_VMI, "portforward/22"),
    ] {
        match env.open(&path).await {
            Err((code, content_type, body)) => {
                assert_eq!(code, 409, "{path}");
                assert_eq!(content_type.as_deref(), Some("application/json"));
                assert_eq!(body, HANDLER_REFUSAL);
            }
            Ok(_) => panic!("{path}: the handler refused, yet it upgraded"),
        }
    }

    // A request without an upgrade is refused as virt-api's websocket upgrader refuses it.
    let plain = http::Request::get(vmi_path("v1", "vmi-b", "console"))
        .body(vec![])
        .unwrap();
    match env.client.request_text(plain).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400);
            assert_eq!(
                status.message,
                "websocket: the client is not using the websocket protocol: 'upgrade' token \
                 not found in 'Connection' header"
            );
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    // A handler that went away: virt-api's 500 names it.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_address = gone.local_addr().unwrap().to_string();
    drop(gone);
    env.announce_handler(&node, &gone_address).await;
    let (code, message) = env.refusal(&vmi_path("v1", "vmi-b", "console")).await;
    assert_eq!(code, 500);
    assert!(
        message.starts_with(&format!(
            "Internal error occurred: cannot reach virt-handler at {gone_address}"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn discovery_lists_the_streams() {
    let env = Env::start().await;
    for version in ["v1", "v1alpha3"] {
        let request = http::Request::get(format!("/apis/subresources.kubevirt.io/{version}"))
            .body(vec![])
            .unwrap();
        let list: Value =
            serde_json::from_str(&env.client.request_text(request).await.unwrap()).unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for want in [
            "virtualmachineinstances/console",
            "virtualmachineinstances/vnc",
            "virtualmachineinstances/portforward",
        ] {
            assert!(names.contains(&want), "{version}: {want} in {names:?}");
        }
    }
}
