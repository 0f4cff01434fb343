//! Real guests in the playground: waiting for VMIs, reading the guest's serial console through
//! `kubectl logs`, and finding each VM's QEMU process. Shared by the real-guest test files.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Cluster;

pub const NS: &str = "default";
/// The seed's firmware UUID (`0d2a2043-…`): the VM controller derives it from the VM's name.
pub const SEED_UUID: &str = "0d2a2043-41c0-59c3-9b17-025022203668";
pub const USERDATA_LINE: &str = "printed from cloud-init userdata";
/// What the guest prints when it powers off cleanly (docs/guest-image.md).
pub const CLEAN_SHUTDOWN: &str = "guest: clean shutdown";
/// Guests boot under TCG on two cores, several at once: deadlines are generous.
pub const BOOT: Duration = Duration::from_secs(180);

/// Polls `f` every 200 ms until it gives a value, for at most `limit`.
pub async fn within<T>(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The seed's VM (examples/vm-cirros.yaml) as JSON, renamed, with `runStrategy`, a user-data
/// script and a grace period of its own.
pub fn seed_vm(name: &str, strategy: &str, user_data: &str, grace: i64) -> Value {
    let mut vm: Value = serde_saphyr::from_str(&test_support::example("vm-cirros.yaml")).unwrap();
    vm["metadata"]["name"] = json!(name);
    vm["metadata"]["labels"]["kubevirt.io/vm"] = json!(name);
    let spec = vm["spec"].as_object_mut().unwrap();
    spec.remove("running");
    spec.insert("runStrategy".into(), json!(strategy));
    let template = &mut vm["spec"]["template"]["spec"];
    template["terminationGracePeriodSeconds"] = json!(grace);
    for volume in template["volumes"].as_array_mut().unwrap() {
        if volume.get("cloudInitNoCloud").is_some() {
            volume["cloudInitNoCloud"] = json!({ "userData": user_data });
        }
    }
    vm
}

impl Cluster {
    pub async fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let home = kubeconfig.parent().unwrap().join("kubectl-home");
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            test_support::run_kubectl(&kubeconfig, &home, &refs, None)
        })
        .await
        .unwrap()
    }

    pub async fn vmi_json(&self, name: &str) -> Option<Value> {
        let vmi = self.vmis(NS).get_opt(name).await.ok().flatten()?;
        Some(serde_json::to_value(vmi).unwrap())
    }

    pub async fn vmi_phase(&self, name: &str) -> String {
        self.vmi_json(name)
            .await
            .and_then(|v| v["status"]["phase"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn vmi_uid(&self, name: &str) -> String {
        self.vmi_json(name)
            .await
            .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The launcher Pod of the VMI with this uid.
    pub async fn launcher_pod(&self, vmi_uid: &str) -> Option<String> {
        let selector = format!("kubevirt.io/created-by={vmi_uid}");
        let out = self
            .kubectl(&[
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                &selector,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])
            .await;
        let names = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!names.is_empty()).then_some(names)
    }

    /// The guest's serial console so far.
    pub async fn console(&self, vmi_uid: &str) -> String {
        let Some(pod) = self.launcher_pod(vmi_uid).await else {
            return String::new();
        };
        let out = self
            .kubectl(&["logs", "-n", NS, &pod, "-c", "guest-console-log"])
            .await;
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn wait_console(&self, vmi_uid: &str, line: &str) -> String {
        within(BOOT, &format!("{line:?} on the console"), async || {
            let console = self.console(vmi_uid).await;
            console.contains(line).then_some(console)
        })
        .await
    }

    /// `kubectl logs -f` of the guest's console, from now until the container ends.
    pub async fn follow_console(&self, vmi_uid: &str) -> Child {
        let pod = self.launcher_pod(vmi_uid).await.expect("a launcher Pod");
        Command::new(test_support::kubectl_path())
            .args(["logs", "-f", "-n", NS, &pod, "-c", "guest-console-log"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl runs")
    }

    /// The seed's steps: `kubectl create -f examples/vm-cirros.yaml`, `virtctl start vm
    /// vm-cirros`, with their outputs checked.
    pub async fn create_and_start_the_seed_vm(&self) {
        let out = self
            .kubectl(&[
                "create",
                "-f",
                &test_support::example_path("vm-cirros.yaml")
                    .display()
                    .to_string(),
            ])
            .await;
        assert!(out.status.success(), "{out:?}");
        self.virtctl(&["start", "vm", "vm-cirros"])
            .await
            .ok("VM vm-cirros was scheduled to start\n");
    }

    pub async fn create_vm_json(&self, vm: Value) {
        self.create(NS, vm).await;
    }

    pub async fn wait_vmi_phase(&self, name: &str, phase: &str) {
        within(BOOT, &format!("VMI {name} to be {phase}"), async || {
            (self.vmi_phase(name).await == phase).then_some(())
        })
        .await
    }

    /// A VMI of this name with another uid than `old`, and its uid.
    pub async fn wait_new_vmi(&self, name: &str, old: &str) -> String {
        within(BOOT, &format!("a new VMI {name}"), async || {
            let uid = self.vmi_uid(name).await;
            (!uid.is_empty() && uid != old).then_some(uid)
        })
        .await
    }

    pub async fn condition(&self, name: &str, kind: &str) -> Option<(String, String)> {
        let vmi = self.vmi_json(name).await?;
        vmi["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_string(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                )
            })
    }
}

/// Process ids of the QEMU processes whose `-name` is this VM's domain (`<namespace>_<name>`).
pub fn qemu_pids(name: &str) -> Vec<u32> {
    let domain = format!("guest={NS}_{name},");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.contains("qemu-system"))
            && args.iter().any(|a| a.starts_with(&domain))
        {
            pids.push(pid);
        }
    }
    pids
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z')
    })
}

pub async fn one_qemu(name: &str) -> u32 {
    within(
        BOOT,
        &format!("one QEMU process for {name}"),
        async || match qemu_pids(name).as_slice() {
            [pid] => Some(*pid),
            _ => None,
        },
    )
    .await
}

/// Reads what a `kubectl logs -f` printed until it ended.
pub async fn followed(child: Child) -> String {
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().expect("kubectl logs -f ends");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}
