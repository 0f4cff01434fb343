//! virtctl and the controllers against an API server that fails: localkube's injected faults
//! (500s, 409s, 429s with Retry-After, 504s after a hang, some after the request ran, and
//! dropped watches). Everything runs in this process but virtctl: localkube with the
//! subresource API (virt-api, aggregated), the simulated node and both controllers.
//!
//! With 10% of requests failing, the controllers still bring every VM to what it asks for.
//! virtctl sends a request again only when that is safe (a 429 with Retry-After, a read), and
//! otherwise reports the server's message on one line.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, Out};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use localkube::{Fault, FaultPlan};
use serde_json::json;
use virt_reconciler::VirtualMachine;

const NS: &str = "default";

/// The path virtctl PUTs `verb` of VM `vm` to. The faults of the virtctl tests target it
/// alone: after a failure virtctl also asks the subresource API for its version.
fn subresource(vm: &str, verb: &str) -> String {
    format!("/apis/subresources.kubevirt.io/v1/namespaces/{NS}/virtualmachines/{vm}/{verb}")
}

/// localkube with the KubeVirt CRDs and the subresource API (and its webhooks), as the
/// playground has them; with `controllers`, also both controllers and the simulated node.
/// Each has the client it has in the playground (`virt_reconciler::client_retry::client`).
async fn cluster(controllers: bool) -> (Cluster, virt_api::Running) {
    let cluster = Cluster::plain().await;
    let config = cluster.server().kube_config().await.unwrap();
    let client = virt_reconciler::client_retry::client(config).unwrap();
    let virt_api = virt_api::loopback::serve(
        &client,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
        true,
    )
    .await
    .unwrap();
    if controllers {
        let node = localkube::node::NodeConfig {
            start_delay: Duration::ZERO,
            shutdown_time: Duration::ZERO,
            ..Default::default()
        };
        let node_client = client.clone();
        tokio::spawn(async move {
            let _ = localkube::node::run(node_client, node).await;
        });
        let metrics = std::sync::Arc::new(virt_reconciler::controller::Metrics::default());
        tokio::spawn(virt_reconciler::controller::run(
            client,
            metrics,
            4,
            std::future::pending::<()>(),
        ));
    }
    (cluster, virt_api)
}

fn vm(name: &str, strategy: &str) -> VirtualMachine {
    serde_json::from_value(common::vm_json(name, strategy)).unwrap()
}

async fn run_strategy(c: &Cluster, name: &str) -> String {
    c.vms(NS)
        .get(name)
        .await
        .unwrap()
        .spec
        .run_strategy
        .unwrap_or_default()
}

/// Runs virtctl until it succeeds or says that an earlier attempt already did the job (one
/// that failed to the client may have run: `done_already` are the refusals that then follow).
/// Every failure must be one line, without a panic. Returns the failures seen.
async fn virtctl_until_done(c: &Cluster, args: &[&str], done_already: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    for _ in 0..30 {
        let out: Out = c.virtctl(args).await;
        if out.code == 0 {
            return failures;
        }
        assert_eq!(out.code, 1, "{out:#?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:#?}");
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
        if done_already.iter().any(|m| out.stderr.contains(m)) {
            return failures;
        }
        failures.push(out.stderr.trim_end().to_string());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("virtctl {args:?} never succeeded: {failures:#?}");
}

/// What each VM should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Running,
    Stopped,
}

/// `Ok` when every VM is as `want` says: Running with one Running VMI that it owns and one
/// launcher Pod that is not being deleted, or Stopped with neither; else the first that is not.
async fn converged(c: &Cluster, want: &BTreeMap<String, Want>) -> Result<(), String> {
    let err = |e: kube::Error| format!("reading: {e}");
    let vms = c.vms(NS).list(&Default::default()).await.map_err(err)?;
    let vmis = c.vmis(NS).list(&Default::default()).await.map_err(err)?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let pods = pods.list(&Default::default()).await.map_err(err)?;
    for (name, want) in want {
        let vm = vms
            .items
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .ok_or(format!("VM {name} is missing"))?;
        let printable = vm
            .status
            .as_ref()
            .and_then(|s| s.printable_status.clone())
            .unwrap_or_default();
        let vmi = vmis
            .items
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name));
        let live_pods: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "VirtualMachineInstance" && &o.name == name)
            })
            .collect();
        match want {
            Want::Running => {
                if printable != "Running" {
                    return Err(format!("VM {name} is {printable:?}, not Running"));
                }
                let vmi = vmi.ok_or(format!("VM {name} has no VMI"))?;
                if vmi.phase() != "Running" {
                    return Err(format!("the VMI of {name} is {:?}", vmi.phase()));
                }
                let owned = vmi
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == vm.metadata.uid.as_ref());
                if !owned {
                    return Err(format!("the VMI of {name} is not the VM's"));
                }
                if live_pods.len() != 1 {
                    return Err(format!(
                        "VM {name} has {} launcher Pods: {:?}",
                        live_pods.len(),
                        live_pods
                            .iter()
                            .map(|p| &p.metadata.name)
                            .collect::<Vec<_>>()
                    ));
                }
            }
            Want::Stopped => {
                if printable != "Stopped" {
                    return Err(format!("VM {name} is {printable:?}, not Stopped"));
                }
                if vmi.is_some() {
                    return Err(format!("VM {name} still has a VMI"));
                }
                if !live_pods.is_empty() {
                    return Err(format!("VM {name} still has {} Pods", live_pods.len()));
                }
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controllers_converge_with_ten_percent_of_requests_failing() {
    // The controllers' warnings (each failed reconcile) show when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "virt_reconciler=info,warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (c, _virt_api) = cluster(true).await;
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand_seed);
    eprintln!("fault seed {seed} (FAULT_SEED={seed} repeats the decisions)");
    let faults = c.server().faults();
    faults.set(
        FaultPlan::mixed(0.1)
            .seed(seed)
            .hang(Duration::from_millis(500)),
    );
    let started = Instant::now();

    // Six VMs that run, four that wait to be started.
    let mut want = BTreeMap::new();
    for i in 0..10 {
        let (name, strategy) = (format!("vm-{i}"), if i < 6 { "Always" } else { "Halted" });
        // Created as a client would: sent again until it exists (a timed-out create may
        // have created it).
        let vms = c.vms(NS);
        for tries in 1.. {
            match vms
                .create(&PostParams::default(), &vm(&name, strategy))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => break,
                Err(e) => assert!(tries < 30, "creating {name}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        want.insert(name, Want::Running);
    }
    // virtctl starts the halted ones and stops two that run.
    let mut virtctl_failures = Vec::new();
    for i in 6..10 {
        virtctl_failures.extend(
            virtctl_until_done(
                &c,
                &["start", &format!("vm-{i}")],
                &[
                    "VM is already running",
                    "Always does not support manual start requests",
                ],
            )
            .await,
        );
    }
    for i in 0..2 {
        virtctl_failures.extend(
            virtctl_until_done(&c, &["stop", &format!("vm-{i}")], &["VM is not running"]).await,
        );
        want.insert(format!("vm-{i}"), Want::Stopped);
    }

    // Converged while the faults go on.
    let deadline = started + Duration::from_secs(60);
    loop {
        let Err(why) = converged(&c, &want).await else {
            break;
        };
        if Instant::now() >= deadline {
            faults.off();
            let why = converged(&c, &want).await.err().unwrap_or(why);
            eprintln!("{}", dump(&c).await);
            panic!("not converged after 60 s: {why}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed();
    let injected: Vec<(Fault, u64)> = Fault::ALL
        .iter()
        .map(|k| (*k, faults.injected(*k)))
        .collect();
    eprintln!(
        "converged in {took:?}; {} of {} requests faulted: {injected:?}; virtctl failed {} times: {virtctl_failures:#?}",
        faults.injected_total(),
        faults.eligible(),
        virtctl_failures.len()
    );
    assert!(
        faults.injected_total() >= 10,
        "too few faults to say anything: {injected:?}"
    );

    // Without faults, the answers are the truth: still converged.
    faults.off();
    converged(&c, &want).await.unwrap();
    for (name, want) in &want {
        let strategy = run_strategy(&c, name).await;
        let expected = if *want == Want::Running {
            "Always"
        } else {
            "Halted"
        };
        assert_eq!(strategy, expected, "{name}");
    }
}

/// The VMs, VMIs and Pods, for a failure's message.
async fn dump(c: &Cluster) -> String {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let brief = |meta: &kube::core::ObjectMeta, status: serde_json::Value| {
        json!({
            "name": meta.name, "uid": meta.uid, "rv": meta.resource_version,
            "deleting": meta.deletion_timestamp.is_some(), "finalizers": meta.finalizers,
            "owners": meta.owner_references.iter().flatten().map(|o| format!("{}/{}", o.kind, o.name)).collect::<Vec<_>>(),
            "status": status,
        })
    };
    let mut out = Vec::new();
    for vm in c.vms(NS).list(&Default::default()).await.unwrap() {
        let spec = json!({"runStrategy": vm.spec.run_strategy});
        out.push(json!({"vm": brief(&vm.metadata, serde_json::to_value(&vm.status).unwrap()), "spec": spec}));
    }
    for vmi in c.vmis(NS).list(&Default::default()).await.unwrap() {
        out.push(json!({"vmi": brief(&vmi.metadata, serde_json::to_value(&vmi.status).unwrap())}));
    }
    for pod in pods.list(&Default::default()).await.unwrap() {
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        out.push(json!({"pod": brief(&pod.metadata, json!(phase))}));
    }
    serde_json::to_string_pretty(&out).unwrap()
}

/// Creates VMs that run and waits until they converge, with the faults the caller set.
async fn run_vms_to_convergence(c: &Cluster, names: &[&str], secs: u64) {
    for name in names {
        c.vms(NS)
            .create(&PostParams::default(), &vm(name, "Always"))
            .await
            .unwrap();
    }
    let want: BTreeMap<String, Want> = names
        .iter()
        .map(|n| (n.to_string(), Want::Running))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while let Err(why) = converged(c, &want).await {
        if Instant::now() >= deadline {
            c.server().faults().off();
            eprintln!("{}", dump(c).await);
            panic!("not converged after {secs} s: {why}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_pod_create_that_timed_out_after_it_ran_makes_no_second_pod() {
    let (c, _virt_api) = cluster(false).await;
    // The controllers and the node with kube's own client, which resends a POST on a 504, as
    // an embedder's may.
    c.spawn_controllers();
    let faults = c.server().faults();
    // Every create of a Pod runs, then times out (so do the node's status writes, which it
    // sends again). kube's client resends a POST on a 504 at once: with a generated name that
    // made a second launcher Pod.
    faults.set(
        FaultPlan::only(&[Fault::TimeoutAfterExecuting], 1.0)
            .targeting(format!("/api/v1/namespaces/{NS}/pods"))
            .hang(Duration::from_millis(200))
            .at_most(4),
    );
    run_vms_to_convergence(&c, &["vm-a", "vm-b"], 30).await;
    assert!(faults.injected(Fault::TimeoutAfterExecuting) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_converge_while_every_watch_is_dropped() {
    let (c, _virt_api) = cluster(true).await;
    let faults = c.server().faults();
    faults.set(
        FaultPlan::only(&[Fault::DropWatch], 1.0)
            .watch_lifetime(Duration::from_millis(200)..Duration::from_millis(800)),
    );
    // Every watch of the controllers and the node is cut at least once before anything
    // happens, then again and again while it does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    run_vms_to_convergence(&c, &["vm-a", "vm-b", "vm-c"], 30).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let halted = json!({"spec": {"runStrategy": "Halted"}});
    c.vms(NS)
        .patch(
            "vm-b",
            &Default::default(),
            &kube::api::Patch::Merge(&halted),
        )
        .await
        .unwrap();
    let want = BTreeMap::from([
        ("vm-a".to_string(), Want::Running),
        ("vm-b".to_string(), Want::Stopped),
        ("vm-c".to_string(), Want::Running),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(why) = converged(&c, &want).await {
        assert!(
            Instant::now() < deadline,
            "vm-b not stopped after 30 s: {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dropped = faults.injected(Fault::DropWatch);
    eprintln!("{dropped} watches dropped");
    // The controllers watch VMs, VMIs, Pods and Nodes, the node its Pods: each was cut at
    // least twice.
    assert!(dropped >= 10, "{dropped} watches dropped");
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtctl_waits_out_429s_and_then_succeeds() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    let faults = c.server().faults();
    faults.set(
        FaultPlan::only(&[Fault::TooManyRequests], 1.0)
            .targeting(subresource("vm1", "start"))
            .at_most(3),
    );
    let started = Instant::now();
    c.virtctl(&["start", "vm1"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    let took = started.elapsed();
    assert_eq!(faults.injected(Fault::TooManyRequests), 3);
    assert!(
        took >= Duration::from_secs(3),
        "three Retry-After: 1 waited out in {took:?}"
    );
    assert_eq!(run_strategy(&c, "vm1").await, "Always");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtctl_reports_what_the_server_said_when_429s_do_not_end() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    let faults = c.server().faults();
    faults.set(
        FaultPlan::only(&[Fault::TooManyRequests], 1.0).targeting(subresource("vm1", "start")),
    );
    c.virtctl(&["start", "vm1"])
        .await
        .fails_with("Error starting VirtualMachine Too many requests, please try again later.");
    assert_eq!(
        faults.injected(Fault::TooManyRequests),
        10,
        "client-go's ten tries"
    );
    assert_eq!(run_strategy(&c, "vm1").await, "Halted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_failed_is_reported_and_not_sent_again() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    let faults = c.server().faults();
    let once = |kind, verb| {
        FaultPlan::only(&[kind], 1.0)
            .targeting(subresource("vm1", verb))
            .hang(Duration::from_millis(300))
    };

    // A 500: the start was not carried out, and virtctl says why, once.
    faults.set(once(Fault::InternalError, "start"));
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Internal error occurred: injected by localkube (a test fault)",
    );
    assert_eq!(faults.injected(Fault::InternalError), 1, "sent once");
    assert_eq!(run_strategy(&c, "vm1").await, "Halted");

    // A timeout before the request ran.
    faults.set(once(Fault::Timeout, "start"));
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Timeout: request did not complete within the allotted timeout",
    );
    assert_eq!(faults.injected(Fault::Timeout), 1, "sent once");
    assert_eq!(run_strategy(&c, "vm1").await, "Halted");

    // The same answer after it ran: the client cannot tell, so it must not send it again.
    faults.set(once(Fault::TimeoutAfterExecuting, "start"));
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Timeout: request did not complete within the allotted timeout",
    );
    assert_eq!(
        faults.injected(Fault::TimeoutAfterExecuting),
        1,
        "sent once"
    );
    assert_eq!(run_strategy(&c, "vm1").await, "Always", "the start ran");
    // Sent again, it would have been refused for its own success.
    faults.off();
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": Always does not support manual start requests",
    );

    // A 409 Conflict (a stale update) is the server's last word too.
    faults.set(once(Fault::Conflict, "stop"));
    c.virtctl(&["stop", "vm1"]).await.fails_with(
        "error stopping VirtualMachine Operation cannot be fulfilled on virtualmachines.subresources.kubevirt.io \"vm1\": the object has been modified; please apply your changes to the latest version and try again",
    );
    assert_eq!(faults.injected(Fault::Conflict), 1, "sent once");
    assert_eq!(run_strategy(&c, "vm1").await, "Always");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_sent_again_after_server_errors() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    let faults = c.server().faults();
    // Every read of virtctl status fails twice before it is answered.
    faults.set(
        FaultPlan::only(&[Fault::InternalError, Fault::Timeout], 1.0)
            .targeting("/apis/kubevirt.io/")
            .hang(Duration::from_millis(100))
            .at_most(3),
    );
    let out = c.virtctl(&["status", "vm1"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.contains("vm1"), "{out:#?}");
    assert_eq!(faults.injected_total(), 3);
}

/// A TCP relay from `port` to `target`, opened only when asked.
async fn relay(port: u16, target: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_tried_again() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    // A port nothing listens on yet: the API server comes up there a second after virtctl
    // starts, as after a restart. virtctl tries at 0, 0.25, 0.75 and 1.75 s.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = c.kubeconfig.with_file_name("relay.kubeconfig");
    let server = c.server();
    std::fs::write(
        &kubeconfig,
        server
            .kubeconfig()
            .replace(&server.url, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let args = [
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "start".into(),
        "vm1".into(),
    ];
    let virtctl = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::virtctl_raw(&args, &[])
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let relay = relay(port, server.addr).await;
    virtctl.await.unwrap().ok("VM vm1 was scheduled to start\n");
    assert_eq!(run_strategy(&c, "vm1").await, "Always");
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_write_timed_out_after_it_ran_is_not_refused_for_its_own_success() {
    let (c, _virt_api) = cluster(false).await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    let faults = c.server().faults();
    // virt-api's patch of the VM runs, then times out. Resent (kube's retry did), its test
    // of the run strategy failed, and virt-api answered that an Always VM cannot be started.
    faults.set(
        FaultPlan::only(&[Fault::TimeoutAfterExecuting], 1.0)
            .targeting(format!(
                "/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/vm1"
            ))
            .method(http::Method::PATCH)
            .hang(Duration::from_millis(100))
            .at_most(1),
    );
    let out = c.virtctl(&["start", "vm1"]).await;
    assert_eq!(faults.injected(Fault::TimeoutAfterExecuting), 1);
    eprintln!("virtctl said: {}", out.stderr.trim_end());
    out.fails_containing("Timeout: request did not complete within the allotted timeout");
    assert!(
        !out.stderr.contains("does not support manual start"),
        "{out:#?}"
    );
    assert_eq!(run_strategy(&c, "vm1").await, "Always", "the start ran");
}
