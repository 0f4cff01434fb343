//! Resource names are checked before any request, so that no name reaches another object's
//! URL: against a fake API server that records what arrives, and against plain localkube
//! (client-side transport) with a VM that a crafted name used to stop.

mod common;

use common::Cluster;
use common::fake::FakeServer;
use common::virtctl_raw;
use serde_json::json;

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

#[test]
fn bad_names_are_refused_before_any_request() {
    let server = FakeServer::start(|_| (200, "{}".to_string()));
    let s = server.url.as_str();
    let vm_rule = |name: &str| format!("invalid VirtualMachine name \"{name}\": {SUBDOMAIN_RULE}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["start", "vm-cirros/start?"],
            vm_rule("vm-cirros/start?"),
        ),
        (vec!["stop", "vm-cirros?x"], vm_rule("vm-cirros?x")),
        (vec!["restart", "vm-cirros#x"], vm_rule("vm-cirros#x")),
        (vec!["start", "a/b"], vm_rule("a/b")),
        (vec!["start", "vm", "a/b"], vm_rule("a/b")),
        (vec!["start", "VM1"], vm_rule("VM1")),
        (vec!["start", "vm/../x"], vm_rule("vm/../x")),
        (vec!["start", ""], "resource name may not be empty".into()),
        (vec!["stop", "vm/"], "resource name may not be empty".into()),
        (vec!["pause", "vm", "a/b"], vm_rule("a/b")),
        (
            vec!["unpause", "vmi", "x?y"],
            format!("invalid VirtualMachineInstance name \"x?y\": {SUBDOMAIN_RULE}"),
        ),
        (vec!["status", "ok", "a/b"], vm_rule("a/b")),
        (vec!["expose", "vm", "a?b", "--name", "svc"], vm_rule("a?b")),
        (
            vec!["expose", "vm", "vm1", "--name", "svc/x"],
            "invalid Service name \"svc/x\": a DNS-1035 label must consist of lower case \
             alphanumeric characters or '-', start with an alphabetic character, and end with \
             an alphanumeric character"
                .into(),
        ),
        (
            vec![
                "-n",
                "default/virtualmachines/vm-cirros/start?",
                "start",
                "x",
            ],
            "invalid namespace \"default/virtualmachines/vm-cirros/start?\": a lowercase RFC \
             1123 label must consist of lower case alphanumeric characters or '-', and must \
             start and end with an alphanumeric character"
                .into(),
        ),
    ];
    for (args, message) in &cases {
        let all: Vec<&str> = ["-s", s].iter().chain(args).copied().collect();
        virtctl_raw(&all, &[]).fails_with(message);
    }
    assert_eq!(server.requests().len(), 0, "{:#?}", server.requests());
}

#[test]
fn type_prefixed_names_still_work() {
    let server = FakeServer::start(|_| (200, "{}".to_string()));
    let s = server.url.as_str();
    for args in [
        &["start", "vm/vm-cirros"][..],
        &["start", "vm", "vm-cirros"],
        &["start", "VirtualMachine/vm-cirros"],
    ] {
        let all: Vec<&str> = ["-s", s].iter().chain(args).copied().collect();
        virtctl_raw(&all, &[]).ok("VM vm-cirros was scheduled to start\n");
    }
    virtctl_raw(&["-s", s, "unpause", "vmi", "vmi/vmi-1"], &[])
        .ok("VMI vmi-1 was scheduled to unpause\n");
    let lines: Vec<String> = server.requests().into_iter().map(|r| r.line).collect();
    let start =
        "PUT /apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/start";
    let unpause = "PUT /apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/vmi-1/unpause";
    assert_eq!(lines, vec![start, start, start, unpause]);
}

/// The probe: over the client-side transport, `stop 'vm-cirros?x'` stopped vm-cirros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_name_does_not_reach_another_vm() {
    let c = Cluster::plain().await;
    c.create_vm("default", "vm-cirros", "Always", json!({}))
        .await;
    c.create_vmi("default", "vm-cirros", "Running", json!({}))
        .await;
    c.virtctl(&["stop", "vm-cirros?x"])
        .await
        .fails_with(&format!(
            "invalid VirtualMachine name \"vm-cirros?x\": {SUBDOMAIN_RULE}"
        ));
    c.virtctl(&["start", "vm-cirros/start?"])
        .await
        .fails_containing("invalid VirtualMachine name");
    let vm = c.vms("default").get("vm-cirros").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));
    assert_eq!(c.requests("default", "vm-cirros").await, json!(null));
    // The same VM by its proper name, with the type prefix, is stopped.
    c.virtctl(&["stop", "vm/vm-cirros"])
        .await
        .ok("VM vm-cirros was scheduled to stop\n");
    let vm = c.vms("default").get("vm-cirros").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Halted"));
}
