//! `virtctl status` end to end: localkube with the controllers and the simulated node in this
//! process, so VMs really run and their instances get a node and an IP.

mod common;

use common::Cluster;
use serde_json::{Value, json};

const NS: &str = "default";

/// The cells of each table line, split on runs of spaces (no cell here contains a space
/// except the header "VMI PHASE", which is joined back).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| {
            line.replace("VMI PHASE", "VMI_PHASE")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_table_yaml_json_and_errors() {
    let c = Cluster::plain().await;
    c.spawn_controllers();
    c.create_namespace("team").await;
    c.create_vm(NS, "vm-running", "Always", json!({})).await;
    c.create_vm(NS, "vm-stopped", "Halted", json!({})).await;
    c.create_vm("team", "vm-team", "Halted", json!({})).await;
    c.wait_printable(NS, "vm-running", "Running").await;
    c.wait_printable(NS, "vm-stopped", "Stopped").await;
    c.wait_printable("team", "vm-team", "Stopped").await;
    let vmi = c.vmis(NS).get("vm-running").await.unwrap();
    let vmi_status = vmi.status.unwrap();
    let node = vmi_status.node_name.clone().expect("a node");
    let ip = vmi_status.interfaces[0].ip_address.clone().expect("an IP");

    // All VMs of the namespace, sorted by name as the server lists them.
    let out = c.virtctl(&["status"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");
    let table = cells(&out.stdout);
    assert_eq!(
        table[0],
        ["NAME", "AGE", "STATUS", "READY", "VMI_PHASE", "NODE", "IP"]
    );
    assert_eq!(table.len(), 3, "{}", out.stdout);
    let running = &table[1];
    assert_eq!(running[0], "vm-running");
    assert!(running[1].ends_with('s'), "age {running:?}");
    assert_eq!(
        &running[2..],
        ["Running", "True", "Running", node.as_str(), ip.as_str()]
    );
    assert_eq!(
        &table[2][2..],
        ["Stopped", "False", "<none>", "<none>", "<none>"]
    );
    // kubectl's layout: the header's columns start where the cells do.
    let header = out.stdout.lines().next().unwrap();
    let first_row = out.stdout.lines().nth(1).unwrap();
    assert_eq!(
        header.find("AGE"),
        Some("vm-running".len() + 3),
        "{}",
        out.stdout
    );
    assert!(!first_row.ends_with(' '));

    // Named VMs, in another namespace.
    let out = c.virtctl(&["status", "vm-team", "-n", "team"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(cells(&out.stdout)[1][0], "vm-team");

    // -A adds the namespace column.
    let out = c.virtctl(&["status", "--all-namespaces"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let table = cells(&out.stdout);
    assert_eq!(table[0][0], "NAMESPACE");
    let names: Vec<(&str, &str)> = table[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert!(names.contains(&("team", "vm-team")), "{names:?}");
    assert!(names.contains(&("default", "vm-running")), "{names:?}");

    // A missing VM: kubectl's message, exit 1; the found ones are still shown.
    c.virtctl(&["status", "nope"])
        .await
        .fails_with("Error from server (NotFound): virtualmachines.kubevirt.io \"nope\" not found");
    let out = c.virtctl(&["status", "vm-stopped", "nope"]).await;
    out.fails_with("Error from server (NotFound): virtualmachines.kubevirt.io \"nope\" not found");
    assert_eq!(cells(&out.stdout)[1][0], "vm-stopped", "{out:#?}");
    c.virtctl(&["status", "-A", "vm-team"])
        .await
        .fails_with("a resource cannot be retrieved by name across all namespaces");
    c.virtctl(&["status", "-o", "wide"])
        .await
        .fails_containing("invalid argument \"wide\" for \"--output\" flag");

    // -o json: one name prints the object, several (or none) a List.
    let out = c.virtctl(&["status", "vm-running", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let obj: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(obj["kind"], "VirtualMachine");
    assert_eq!(obj["apiVersion"], "kubevirt.io/v1");
    assert_eq!(obj["metadata"]["name"], "vm-running");
    assert_eq!(obj["status"]["printableStatus"], "Running");
    let out = c.virtctl(&["status", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["kind"], "VirtualMachine");

    // -o yaml.
    let out = c.virtctl(&["status", "vm-stopped", "-o", "yaml"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .starts_with("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n")
    );
    assert!(
        out.stdout.contains("printableStatus: Stopped"),
        "{}",
        out.stdout
    );

    // An empty namespace: kubectl's note on stderr, exit 0.
    c.create_namespace("empty").await;
    let out = c.virtctl(&["status", "-n", "empty"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in empty namespace.\n");
}
