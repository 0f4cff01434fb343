//! The seed's kubectl block, run verbatim against the playground: `virt-playground` with
//! kubectl as the only client, on the seed's own `vm.yaml`
//! (`examples/vm-cirros.yaml`).
//!
//! Without kubectl the tests print `SKIPPED <test>: kubectl is not installed` and pass, except
//! under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::have_kubectl;

const VM: &str = "vm-cirros";

/// The playground, with the kubectl helpers of this file.
struct Playground(test_support::Playground);

impl Playground {
    fn start() -> Playground {
        Playground(test_support::Playground::start(
            Path::new(env!("CARGO_BIN_EXE_virt-playground")),
            Stdio::inherit(),
        ))
    }

    /// Runs kubectl with this playground's kubeconfig and a private cache and home.
    fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        test_support::run_kubectl(&self.0.kubeconfig, self.0.dir(), args, stdin)
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl; fails the test unless it succeeds. Returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        test_support::kubectl_stdout(args, self.kubectl_stdin(args, stdin))
    }

    /// `kubectl get <what> -o json`, or `None` when it is not found.
    fn get_json(&self, what: &[&str]) -> Option<Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&args);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "kubectl {args:?}: {err}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Polls `f` every 50 ms, for at most 20 s.
    fn eventually<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn printable_status(&self) -> Option<String> {
        let vm = self.get_json(&["virtualmachine", VM])?;
        vm["status"]["printableStatus"].as_str().map(str::to_string)
    }

    fn wait_printable(&self, want: &str) {
        self.eventually(&format!("{VM} {want}"), || {
            (self.printable_status().as_deref() == Some(want)).then_some(())
        });
    }

    /// Waits for a Running VMI whose UID is not `not_uid`; returns its UID.
    fn wait_running_vmi(&self, not_uid: Option<&str>) -> String {
        self.eventually("a running VMI", || {
            let vmi = self.get_json(&["virtualmachineinstance", VM])?;
            let uid = vmi["metadata"]["uid"].as_str()?;
            (vmi["status"]["phase"] == "Running" && Some(uid) != not_uid).then(|| uid.to_string())
        })
    }

    /// The names of the launcher pods of the VMI with this UID.
    fn launcher_pods(&self, vmi_uid: &str) -> Vec<String> {
        let selector = format!("kubevirt.io=virt-launcher,kubevirt.io/created-by={vmi_uid}");
        let list = self.get_json(&["pods", "-l", &selector]).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// `kubectl get <what>` finds nothing: "No resources found" on stderr, nothing on stdout.
    fn assert_none(&self, what: &str) {
        let out = self.kubectl(&["get", what]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No resources found"), "{err}");
    }
}

/// The seed's `vm.yaml`, unchanged.
fn vm_yaml_path() -> PathBuf {
    test_support::example_path("vm-cirros.yaml")
}

/// The rows of a kubectl table, split on whitespace (header first).
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `kubectl get virtualmachines` shows the seed's columns and `vm-cirros` with `status`/`ready`.
fn assert_vm_row(p: &Playground, status: &str, ready: &str) {
    let rows = table(&p.ok(&["get", "virtualmachines"]));
    assert_eq!(rows[0], ["NAME", "AGE", "STATUS", "READY"], "{rows:?}");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], VM);
    assert_eq!(rows[1][2..], [status, ready], "{rows:?}");
}

/// The values of `key:` on the lines of `kubectl describe` output, in order.
fn described_all<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
        .collect()
}

/// The value of `key:` on the first line of `kubectl describe` output that has it.
fn described<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    described_all(out, key).first().copied()
}

/// The event rows under `Events:` of `kubectl describe` output.
fn event_rows(out: &str) -> Vec<Vec<String>> {
    let Some(at) = out.find("\nEvents:") else {
        panic!("no Events section in:\n{out}");
    };
    out[at + 1..]
        .lines()
        .skip(1)
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with("Type") && !t.starts_with("----")
        })
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The seed's block from `kubectl create -f vm.yaml` to the implicit cascade delete:
/// create, start by patch, describe, restart by deleting the VMI, stop by patch, delete.
#[test]
fn seed_kubectl_block_create_start_describe_restart_stop_delete() {
    if !have_kubectl("seed_kubectl_block_create_start_describe_restart_stop_delete") {
        return;
    }
    let p = Playground::start();

    // Define a virtual machine.
    let created = p.ok(&["create", "-f", vm_yaml_path().to_str().unwrap()]);
    assert_eq!(
        created.trim(),
        "virtualmachine.kubevirt.io/vm-cirros created"
    );
    // Since spec.running is false, no vmi is created.
    p.wait_printable("Stopped");
    p.assert_none("vmis");
    assert_vm_row(&p, "Stopped", "False");

    // Start the virtual machine.
    let patched = p.ok(&[
        "patch",
        "virtualmachine",
        VM,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"running":true}}"#,
    ]);
    assert_eq!(
        patched.trim(),
        "virtualmachine.kubevirt.io/vm-cirros patched"
    );
    let first_uid = p.wait_running_vmi(None);
    p.wait_printable("Running");
    assert_vm_row(&p, "Running", "True");
    let vmis = table(&p.ok(&["get", "vmis"]));
    assert_eq!(
        vmis[0],
        ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"],
        "{vmis:?}"
    );
    assert_eq!(vmis.len(), 2, "{vmis:?}");
    assert_eq!(vmis[1][0], VM);
    assert_eq!(vmis[1][2], "Running");

    // Look at virtual machine status and associated events.
    let describe = p.eventually("the SuccessfulCreate event", || {
        let out = p.ok(&["describe", "virtualmachine", VM]);
        event_rows(&out)
            .iter()
            .any(|r| r.get(1).map(String::as_str) == Some("SuccessfulCreate"))
            .then_some(out)
    });
    assert_eq!(described(&describe, "Name"), Some(VM));
    assert_eq!(described(&describe, "Namespace"), Some("default"));
    assert_eq!(
        described(&describe, "Labels"),
        Some("kubevirt.io/vm=vm-cirros")
    );
    assert_eq!(described(&describe, "Kind"), Some("VirtualMachine"));
    assert_eq!(described(&describe, "Running"), Some("true"));
    assert_eq!(described(&describe, "Created"), Some("true"));
    assert_eq!(described(&describe, "Ready"), Some("true"));
    assert_eq!(described(&describe, "Printable Status"), Some("Running"));
    let events = event_rows(&describe);
    let create = events
        .iter()
        .find(|r| r.get(1).map(String::as_str) == Some("SuccessfulCreate"))
        .unwrap()
        .join(" ");
    assert!(
        create.starts_with("Normal SuccessfulCreate ")
            && create.contains(" virtualmachine-controller ")
            && create.ends_with(
                "Started the virtual machine by creating the new virtual machine instance vm-cirros"
            ),
        "{create}"
    );

    // Look at the now created virtual machine instance status and associated events.
    let describe = p.ok(&["describe", "virtualmachineinstance", VM]);
    assert_eq!(described(&describe, "Name"), Some(VM));
    assert_eq!(described(&describe, "Kind"), Some("VirtualMachineInstance"));
    // The owner reference's UID (the VM's) comes first, then the VMI's own.
    let vm_uid = p.get_json(&["virtualmachine", VM]).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        described_all(&describe, "UID"),
        [vm_uid.as_str(), first_uid.as_str()]
    );
    assert_eq!(described(&describe, "Controller"), Some("true"));
    assert_eq!(described(&describe, "Phase"), Some("Running"));
    assert_eq!(described(&describe, "Node Name"), Some("localkube-node"));
    assert_eq!(
        described(&describe, "Uuid"),
        Some("0d2a2043-41c0-59c3-9b17-025022203668"),
        "the VM's firmware UUID"
    );
    // The VMI controller records its launcher pod's creation; nothing is a warning.
    let describe = p.eventually("the VMI's SuccessfulCreate event", || {
        let out = p.ok(&["describe", "virtualmachineinstance", VM]);
        out.contains("Created virtual machine pod virt-launcher-vm-cirros-")
            .then_some(out)
    });
    assert!(
        event_rows(&describe)
            .iter()
            .all(|r| r.first().map(String::as_str) != Some("Warning")),
        "{describe}"
    );
    assert!(
        describe.contains("virtualmachineinstance-controller"),
        "{describe}"
    );

    // Restart the virtual machine (you delete the instance!).
    let deleted = p.ok(&["delete", "virtualmachineinstance", VM]);
    assert_eq!(
        deleted.trim(),
        "virtualmachineinstance.kubevirt.io \"vm-cirros\" deleted"
    );
    let second_uid = p.wait_running_vmi(Some(&first_uid));
    assert_ne!(second_uid, first_uid);
    p.wait_printable("Running");

    // Stop the virtual machine instance.
    p.ok(&[
        "patch",
        "virtualmachine",
        VM,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"running":false}}"#,
    ]);
    p.wait_printable("Stopped");
    p.assert_none("vmis");
    assert_vm_row(&p, "Stopped", "False");
    assert!(p.launcher_pods(&second_uid).is_empty());

    // Implicit cascade delete: first the virtual machine instance, then the virtual machine.
    p.ok(&[
        "patch",
        "virtualmachine",
        VM,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"running":true}}"#,
    ]);
    let third_uid = p.wait_running_vmi(Some(&second_uid));
    assert_eq!(p.launcher_pods(&third_uid).len(), 1);
    let deleted = p.ok(&["delete", "virtualmachine", VM]);
    assert_eq!(
        deleted.trim(),
        "virtualmachine.kubevirt.io \"vm-cirros\" deleted"
    );
    p.eventually("VM, VMI and launcher pod gone", || {
        (p.get_json(&["virtualmachine", VM]).is_none()
            && p.get_json(&["virtualmachineinstance", VM]).is_none()
            && p.launcher_pods(&third_uid).is_empty())
        .then_some(())
    });
    p.assert_none("virtualmachines");
    p.assert_none("vmis");
}

/// The seed's orphan delete: the VMI is only detached; re-creating the VM adopts it. Then the
/// explicit cascade delete removes both.
#[test]
fn seed_kubectl_block_orphan_delete_and_adoption() {
    if !have_kubectl("seed_kubectl_block_orphan_delete_and_adoption") {
        return;
    }
    let p = Playground::start();
    // The seed's vm.yaml, as it is once started (`running: true`).
    let yaml = std::fs::read_to_string(vm_yaml_path()).unwrap();
    assert_eq!(yaml.matches("\n  running: false\n").count(), 1);
    let running = yaml.replace("\n  running: false\n", "\n  running: true\n");

    p.ok_stdin(&["create", "-f", "-"], Some(&running));
    let uid = p.wait_running_vmi(None);
    p.wait_printable("Running");
    let pods = p.launcher_pods(&uid);
    assert_eq!(pods.len(), 1);

    // Orphan delete, as the seed writes it (kubectl maps the deprecated `false` to orphan): the
    // running virtual machine instance is only detached, not deleted.
    let deleted = p.ok(&["delete", "virtualmachine", VM, "--cascade=false"]);
    assert_eq!(
        deleted.trim(),
        "virtualmachine.kubevirt.io \"vm-cirros\" deleted"
    );
    p.eventually("VM gone", || {
        p.get_json(&["virtualmachine", VM]).is_none().then_some(())
    });
    let vmi = p
        .get_json(&["virtualmachineinstance", VM])
        .expect("the VMI stays");
    assert_eq!(vmi["metadata"]["uid"], uid.as_str());
    assert_eq!(vmi["status"]["phase"], "Running");
    assert!(
        vmi["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{}",
        vmi["metadata"]
    );
    assert!(vmi["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        p.launcher_pods(&uid),
        pods,
        "the launcher pod keeps running"
    );

    // Recreating the virtual machine leads to the adoption of the virtual machine instance.
    p.ok_stdin(&["create", "-f", "-"], Some(&running));
    let vm_uid = p
        .get_json(&["virtualmachine", VM])
        .unwrap()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let owner = p.eventually("the VMI adopted", || {
        let vmi = p.get_json(&["virtualmachineinstance", VM])?;
        vmi["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|o| o.first().cloned())
    });
    assert_eq!(owner["kind"], "VirtualMachine");
    assert_eq!(owner["name"], VM);
    assert_eq!(owner["uid"], vm_uid.as_str());
    assert_eq!(owner["controller"], true);
    p.wait_printable("Running");
    assert_vm_row(&p, "Running", "True");
    let vmis = table(&p.ok(&["get", "vmis"]));
    assert_eq!(vmis.len(), 2, "one VMI: {vmis:?}");
    let vmi = p.get_json(&["virtualmachineinstance", VM]).unwrap();
    assert_eq!(vmi["metadata"]["uid"], uid.as_str(), "the same VMI");
    assert_eq!(p.launcher_pods(&uid), pods);

    // Explicit cascade delete: the virtual machine instance goes with it.
    p.ok(&["delete", "virtualmachine", VM, "--cascade=true"]);
    p.eventually("VM, VMI and launcher pod gone", || {
        (p.get_json(&["virtualmachine", VM]).is_none()
            && p.get_json(&["virtualmachineinstance", VM]).is_none()
            && p.launcher_pods(&uid).is_empty())
        .then_some(())
    });
}
