//! The version-skew warning (Part B §5): when a command fails against a cluster whose KubeVirt
//! has another major or minor version, a warning with both versions comes before the error.
//! A fake server plays that cluster. virtctl's own version is KubeVirt's v1.9.0 with our build
//! in the metadata (`v1.9.0+virt-toolkit.<ours>`), so KubeVirt 1.9 shows no skew.

mod common;

use std::time::{Duration, Instant};

use common::fake::{FakeServer, status_body};
use common::virtctl_raw;
use serde_json::json;

const ALREADY_RUNNING: &str =
    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running";

/// A cluster whose KubeVirt reports `version` (none: the group is not served), `delay`
/// before answering the version request, and refuses every start.
fn kubevirt(version: Option<&'static str>, delay: Duration) -> FakeServer {
    FakeServer::start(move |r| {
        match (r.line.as_str(), version) {
        ("GET /apis/subresources.kubevirt.io", Some(_)) => (
            200,
            json!({
                "kind": "APIGroup", "apiVersion": "v1", "name": "subresources.kubevirt.io",
                "versions": [{"groupVersion": "subresources.kubevirt.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "subresources.kubevirt.io/v1", "version": "v1"},
            })
            .to_string(),
        ),
        ("GET /apis/subresources.kubevirt.io/v1/version", Some(v)) => {
            std::thread::sleep(delay);
            (200, json!({"gitVersion": v, "gitCommit": "abc"}).to_string())
        }
        (line, _) if line.starts_with("PUT ") => {
            (409, status_body(409, "Conflict", ALREADY_RUNNING))
        }
        _ => (404, status_body(404, "NotFound", "the server could not find the requested resource")),
    }
    })
}

const ERROR: &str = "Error starting VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running";

#[test]
fn another_minor_version_warns_before_the_error() {
    let server = kubevirt(Some("v1.8.0"), Duration::ZERO);
    let out = virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]);
    out.fails_with(&format!(
        "Warning: virtctl v1.9.0+virt-toolkit.{} is not the version of KubeVirt in the cluster (v1.8.0); commands may not work as expected.\n{ERROR}",
        env!("CARGO_PKG_VERSION")
    ));
    assert_eq!(out.stdout, "");
}

#[test]
fn the_same_minor_version_or_no_kubevirt_gives_the_error_alone() {
    for same in ["v1.9.0", "v1.9.7", "v1.9.0+virt-toolkit.0.1.0"] {
        let server = kubevirt(Some(same), Duration::ZERO);
        virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]).fails_with(ERROR);
    }
    // No subresource group: the client-side path reads the VM, which is not there.
    let server = kubevirt(None, Duration::ZERO);
    let out = virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(!out.stderr.contains("Warning"), "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    // A server that does not answer at all: the error alone.
    virtctl_raw(&["-s", "http://127.0.0.1:1", "stop", "vm1"], &[])
        .fails_containing("error stopping VirtualMachine Put ");
}

#[test]
fn a_slow_version_answer_is_not_waited_for() {
    let server = kubevirt(Some("v1.8.0"), Duration::from_secs(20));
    let started = Instant::now();
    virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]).fails_with(ERROR);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_command_and_the_check_share_one_connection() {
    let server = kubevirt(Some("v1.8.0"), Duration::ZERO);
    let out = virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]);
    out.fails_containing("Warning: virtctl ");
    out.fails_containing(ERROR);
    let lines: Vec<String> = server.requests().into_iter().map(|r| r.line).collect();
    assert_eq!(
        lines,
        [
            "PUT /apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start",
            "GET /apis/subresources.kubevirt.io",
            "GET /apis/subresources.kubevirt.io/v1/version",
        ],
    );
    assert_eq!(server.connections(), 1);
}
