//! virt-handler end to end: the handler in-process against a real localkube API server, and a
//! fake launcher (a task in this test that listens on the command socket under a temporary
//! host root and speaks the protocol), checking what the handler writes onto the VMI and its
//! Pod, what it asks of the launcher, and the subresource API's forwarding to it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{cluster, eventually};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{Mutex, mpsc, watch};
use virt_handler::HandlerConfig;
use virt_reconciler::VirtualMachineInstance;
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Request, Response};
use virt_reconciler::request::{PauseOptions, UnpauseOptions, VmiRequest};

const NODE: &str = "handler-node";

/// A launcher stand-in: answers every request from `state`, streams it to watchers, applies
/// pause and unpause to it, and reports every request it gets.
struct FakeLauncher {
    state: watch::Sender<DomainStatus>,
    requests: Mutex<mpsc::UnboundedReceiver<Request>>,
}

impl FakeLauncher {
    fn start(socket: &Path) -> Arc<FakeLauncher> {
        let listener = UnixListener::bind(socket).expect("bind the fake launcher's socket");
        let (state, _) = watch::channel(DomainStatus::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = Arc::new(FakeLauncher {
            state,
            requests: Mutex::new(rx),
        });
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(serving.clone(), stream, tx.clone()));
            }
        });
        fake
    }

    fn set(&self, state: DomainState) {
        self.state.send_modify(|s| s.state = state);
    }

    /// The next request that is not a `watch` or `status`.
    async fn next_command(&self) -> Request {
        let mut rx = self.requests.lock().await;
        loop {
            let r = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("a request to the launcher within 30 s")
                .expect("the fake launcher runs");
            if !matches!(r, Request::Watch | Request::Status) {
                return r;
            }
        }
    }
}

async fn serve(
    fake: Arc<FakeLauncher>,
    stream: tokio::net::UnixStream,
    requests: mpsc::UnboundedSender<Request>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let answer = |status: DomainStatus| {
        let mut line = serde_json::to_string(&Response::ok(status)).unwrap();
        line.push('\n');
        line
    };
    while let Ok(Some(line)) = lines.next_line().await {
        let request: Request = serde_json::from_str(&line).expect("a request line");
        let _ = requests.send(request.clone());
        match request {
            Request::Watch => {
                let mut changes = fake.state.subscribe();
                loop {
                    let now = changes.borrow_and_update().clone();
                    if writer.write_all(answer(now).as_bytes()).await.is_err() {
                        return;
                    }
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
            }
            Request::Pause => fake.set(DomainState::Paused),
            Request::Unpause => fake.set(DomainState::Running),
            _ => {}
        }
        let now = fake.state.borrow().clone();
        if writer.write_all(answer(now).as_bytes()).await.is_err() {
            return;
        }
    }
}

fn condition<'a>(
    vmi: &'a VirtualMachineInstance,
    type_: &str,
) -> Option<&'a virt_reconciler::Condition> {
    vmi.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn pod_gate(pod: &Pod) -> Option<(String, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "kubevirt.io/virtual-machine-unpaused")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// A VMI already Scheduled on [`NODE`] (status sent on create is kept: no status
/// subresource), held by a finalizer so its deletion is observable, and its launcher Pod.
async fn scheduled_vmi(client: &kube::Client) -> (VirtualMachineInstance, Pod) {
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let vmi: VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "default", "finalizers": ["test.dev/hold"]},
        "spec": {"domain": {"devices": {}}, "terminationGracePeriodSeconds": 7},
        "status": {"phase": "Scheduled", "nodeName": NODE, "conditions": [
            {"type": "Ready", "status": "False", "reason": "GuestNotRunning"}]},
    }))
    .unwrap();
    let vmi = vmis.create(&PostParams::default(), &vmi).await.unwrap();
    assert_eq!(
        vmi.phase(),
        "Scheduled",
        "localkube kept the status sent on create"
    );
    let mut pod = virt_reconciler::vmi::build_launcher_pod(&vmi);
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let name = pod.metadata.name.clone().unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": "10.244.0.9",
        "conditions": [{"type": "PodScheduled", "status": "True"}]}});
    let pod = pods
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    (vmi, pod)
}

fn sockets_dir(host_root: &Path) -> PathBuf {
    host_root.join("var/run/kubevirt/sockets")
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_drives_the_launcher_and_reports_the_domain() {
    let cluster = cluster(NODE).await;
    let client = cluster.client.clone();
    let host_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sockets_dir(host_root.path())).unwrap();
    let (vmi, pod) = scheduled_vmi(&client).await;
    let uid = vmi.metadata.uid.clone().unwrap();
    let pod_name = pod.metadata.name.clone().unwrap();

    // The handler starts before the launcher's socket exists, as on a node.
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
    let nodes: Api<Node> = Api::all(client.clone());
    let address = eventually("the Node marked served", async || {
        let node = nodes.get(NODE).await.ok()?;
        let labels = node.metadata.labels.unwrap_or_default();
        (labels.get("kubevirt.io/schedulable").map(String::as_str) == Some("true")).then_some(())?;
        node.metadata
            .annotations
            .unwrap_or_default()
            .get("virt-toolkit.dev/handler-address")
            .cloned()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fake = FakeLauncher::start(&sockets_dir(host_root.path()).join(format!("{uid}.sock")));
    match fake.next_command().await {
        Request::Sync { vmi, .. } => {
            assert_eq!(vmi["metadata"]["name"], "vm1");
            assert_eq!(vmi["metadata"]["uid"], uid.as_str());
        }
        other => panic!("expected sync first, got {other:?}"),
    }

    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // The domain runs: the VMI is Running, with the guest's address.
    fake.state.send_modify(|s| {
        s.state = DomainState::Running;
        s.guest_ip = Some("10.0.2.15".into());
        s.mac = Some("52:54:00:12:34:56".into());
    });
    let running = eventually("the VMI Running", async || {
        let v = vmis.get("vm1").await.ok()?;
        (v.phase() == "Running").then_some(v)
    })
    .await;
    let interfaces = serde_json::to_value(&running.status.as_ref().unwrap().interfaces).unwrap();
    assert_eq!(
        interfaces,
        json!([{"name": "default", "mac": "52:54:00:12:34:56", "ipAddress": "10.0.2.15",
                "ipAddresses": ["10.0.2.15"], "infoSource": "domain"}])
    );
    assert_eq!(condition(&running, "Ready").unwrap().status, "True");
    assert!(condition(&running, "Paused").is_none());
    eventually("the Pod's gate True", async || {
        let p = pods.get(&pod_name).await.ok()?;
        (pod_gate(&p)? == ("True".to_string(), None)).then_some(())
    })
    .await;

    // Paused by the launcher: Paused condition, not Ready, the Pod's gate False.
    fake.set(DomainState::Paused);
    let paused = eventually("the VMI Paused", async || {
        let v = vmis.get("vm1").await.ok()?;
        condition(&v, "Paused").is_some().then_some(v)
    })
    .await;
    let p = condition(&paused, "Paused").unwrap();
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("True", Some("PausedByUser"))
    );
    assert_eq!(p.message.as_deref(), Some("VMI was paused by user"));
    let ready = condition(&paused, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ReadinessGatesNotReady"))
    );
    let p = eventually("the Pod's gate False", async || {
        let p = pods.get(&pod_name).await.ok()?;
        (pod_gate(&p)? == ("False".to_string(), Some("Paused".to_string()))).then_some(p)
    })
    .await;
    // The Pod's other conditions are untouched.
    let types: Vec<String> = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert!(types.contains(&"PodScheduled".to_string()), "{types:?}");

    // Running again.
    fake.set(DomainState::Running);
    eventually("the VMI unpaused", async || {
        let v = vmis.get("vm1").await.ok()?;
        (condition(&v, "Paused").is_none() && condition(&v, "Ready")?.status == "True")
            .then_some(())
    })
    .await;

    // Pause through the handler's HTTP API: forwarded to the launcher, answered once done.
    let path = |verb: &str| format!("/v1/namespaces/default/virtualmachineinstances/vm1/{verb}");
    let answer = virt_reconciler::handler_client::put(&address, &path("pause"))
        .await
        .unwrap();
    assert_eq!(answer.code, 200, "{}", answer.message);
    assert_eq!(fake.next_command().await, Request::Pause);
    let v = vmis.get("vm1").await.unwrap();
    assert!(
        condition(&v, "Paused").is_some(),
        "written before the answer"
    );
    let again = virt_reconciler::handler_client::put(&address, &path("pause"))
        .await
        .unwrap();
    assert_eq!(again.code, 409);
    assert!(
        again.message.contains("VMI is already paused"),
        "{}",
        again.message
    );
    let answer = virt_reconciler::handler_client::put(&address, &path("unpause"))
        .await
        .unwrap();
    assert_eq!(answer.code, 200, "{}", answer.message);
    assert_eq!(fake.next_command().await, Request::Unpause);
    let other = "/v1/namespaces/default/virtualmachineinstances/nope/pause";
    let missing = virt_reconciler::handler_client::put(&address, other)
        .await
        .unwrap();
    assert_eq!(missing.code, 404, "{}", missing.message);

    // The subresource API's executor forwards to the node's handler rather than writing.
    eventually("the VMI unpaused again", async || {
        let v = vmis.get("vm1").await.ok()?;
        condition(&v, "Paused").is_none().then_some(())
    })
    .await;
    let now = virt_reconciler::controller::now();
    let pause = VmiRequest::Pause(PauseOptions { dry_run: vec![] });
    virt_reconciler::execute::vmi_request(&client, "default", "vm1", &pause, &now)
        .await
        .unwrap();
    assert_eq!(fake.next_command().await, Request::Pause);
    let unpause = VmiRequest::Unpause(UnpauseOptions { dry_run: vec![] });
    eventually("the VMI paused through the subresource API", async || {
        let v = vmis.get("vm1").await.ok()?;
        condition(&v, "Paused").is_some().then_some(())
    })
    .await;
    virt_reconciler::execute::vmi_request(&client, "default", "vm1", &unpause, &now)
        .await
        .unwrap();
    assert_eq!(fake.next_command().await, Request::Unpause);

    // reset goes to the launcher; softreboot is refused with KubeVirt's words (no agent).
    let answer = virt_reconciler::handler_client::put(&address, &path("reset"))
        .await
        .unwrap();
    assert_eq!(answer.code, 200, "{}", answer.message);
    assert_eq!(fake.next_command().await, Request::Reset);
    let soft = virt_reconciler::handler_client::put(&address, &path("softreboot"))
        .await
        .unwrap();
    assert_eq!(soft.code, 409, "{}", soft.message);
    assert!(
        soft.message
            .contains("VMI neither have the agent connected nor the ACPI feature enabled"),
        "{}",
        soft.message
    );
    // Through the subresource API's executor: forwarded to this node's handler.
    virt_reconciler::execute::vmi_request(&client, "default", "vm1", &VmiRequest::Reset, &now)
        .await
        .unwrap();
    assert_eq!(fake.next_command().await, Request::Reset);
    let refused = virt_reconciler::execute::vmi_request(
        &client,
        "default",
        "vm1",
        &VmiRequest::SoftReboot,
        &now,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, 409, "{}", refused.message);

    // Deletion: one ACPI shutdown with the VMI's grace period.
    vmis.delete("vm1", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        fake.next_command().await,
        Request::Shutdown { grace_seconds: 7 }
    );
    let release = json!({"metadata": {"finalizers": null}});
    vmis.patch("vm1", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();

    // A clean exit takes the label off the Node.
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), handler)
        .await
        .expect("the handler stops")
        .unwrap()
        .unwrap();
    let node = nodes.get(NODE).await.unwrap();
    let labels: BTreeMap<String, String> = node.metadata.labels.unwrap_or_default();
    assert!(
        !labels.contains_key("kubevirt.io/schedulable"),
        "{labels:?}"
    );
}
