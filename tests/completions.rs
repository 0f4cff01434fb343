//! Shell completion: the committed bash script loads in a real bash and registers `virtctl`,
//! and pressing TAB (simulated in bash) completes subcommands, and VM, VMI and namespace names
//! from a running localkube, and nothing (quickly, silently) when the cluster is unreachable.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::json;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/virtctl.bash");

#[test]
fn bash_completion_loads_and_registers_virtctl() {
    let out = Command::new("bash")
        .args([
            "--norc",
            "-c",
            &format!("source '{SCRIPT}' && complete -p virtctl"),
        ])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = String::from_utf8_lossy(&out.stdout);
    assert!(spec.contains("virtctl"), "{spec}");
}

/// What bash offers for `words` (the last one is the word under the cursor), through the
/// committed script and the built binary, and how long it took.
fn bash_complete(words: &[&str]) -> (Vec<String>, Duration) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_virtctl")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let cword = words.len() - 1;
    let script = format!(
        "source '{SCRIPT}'\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_TYPE=9\n\
         _clap_complete_virtctl virtctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" ")
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .env("PATH", path)
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("bash runs");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{words:?}");
    let offered = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (offered, took)
}

#[test]
fn subcommands_and_flags_complete_without_a_cluster() {
    let (offered, _) = bash_complete(&["virtctl", "res"]);
    assert_eq!(offered, ["restart", "reset"]);
    let (offered, _) = bash_complete(&["virtctl", "stop", "--grace"]);
    assert_eq!(offered, ["--grace-period"]);
}

/// What virtctl answers when a shell asks it, as fish does: one `value[\tdescription]` a line.
fn fish_complete(var: &str, words: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_virtctl"))
        .arg("--")
        .args(words)
        .env(var, "fish")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_descriptions() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let with = common::virtctl_raw(&["completion", shell], &[]);
        let without = common::virtctl_raw(&["completion", shell, "--no-descriptions"], &[]);
        assert_eq!(without.code, 0, "{without:#?}");
        assert!(with.stdout.contains("VIRTCTL_COMPLETE"), "{shell}");
        assert!(!with.stdout.contains("VIRTCTL_COMPLETE_NO_DESC"), "{shell}");
        assert!(
            without.stdout.contains("VIRTCTL_COMPLETE_NO_DESC"),
            "{shell}"
        );
    }
    // The fish script, run as fish would: descriptions after a tab, or none.
    let script = common::virtctl_raw(&["completion", "fish", "--no-descriptions"], &[]).stdout;
    assert!(
        script.contains("VIRTCTL_COMPLETE_NO_DESC=fish virtctl -- "),
        "{script}"
    );
    let words = ["virtctl", "re"];
    assert_eq!(
        fish_complete("VIRTCTL_COMPLETE", &words),
        "restart\tRestart a virtual machine\nreset\tReset a virtual machine instance\n"
    );
    assert_eq!(
        fish_complete("VIRTCTL_COMPLETE_NO_DESC", &words),
        "restart\nreset\n"
    );
    let words = ["virtctl", "start", "--h"];
    assert_eq!(
        fish_complete("VIRTCTL_COMPLETE", &words),
        "--help\tPrint help\n"
    );
    assert_eq!(
        fish_complete("VIRTCTL_COMPLETE_NO_DESC", &words),
        "--help\n"
    );
    assert_eq!(
        fish_complete("VIRTCTL_COMPLETE_NO_DESC", &["virtctl", "he"]),
        "help\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_come_from_the_cluster() {
    let c = Cluster::plain().await;
    c.create_namespace("team").await;
    c.create_vm("default", "vm-alpha", "Halted", json!({}))
        .await;
    c.create_vm("default", "vm-beta", "Halted", json!({})).await;
    c.create_vm("default", "other", "Halted", json!({})).await;
    c.create_vm("team", "vm-team", "Halted", json!({})).await;
    c.create_vmi("default", "vmi-one", "Running", json!({}))
        .await;
    let kc = c.kubeconfig.display().to_string();
    let complete = |words: Vec<&str>| {
        let mut all = vec!["virtctl", "--kubeconfig", kc.as_str()];
        all.extend(words);
        tokio::task::spawn_blocking({
            let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            move || {
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                bash_complete(&refs).0
            }
        })
    };
    for sub in ["start", "stop", "restart", "status"] {
        assert_eq!(
            complete(vec![sub, "vm-"]).await.unwrap(),
            ["vm-alpha", "vm-beta"],
            "{sub}"
        );
    }
    // The namespace typed before the cursor is used. With nothing typed, the engine also
    // offers the flags, after the names.
    let offered = complete(vec!["-n", "team", "start", ""]).await.unwrap();
    assert_eq!(offered[0], "vm-team", "{offered:?}");
    assert!(
        offered[1..].iter().all(|o| o.starts_with('-')),
        "{offered:?}"
    );
    assert_eq!(
        complete(vec!["start", "--namespace=team", "vm"])
            .await
            .unwrap(),
        ["vm-team"]
    );
    // expose: the type, then names of that type.
    assert_eq!(
        complete(vec!["expose", "vm"]).await.unwrap(),
        ["vm", "vmi", "vmirs"]
    );
    assert_eq!(
        complete(vec!["expose", "vm", "vm-a"]).await.unwrap(),
        ["vm-alpha"]
    );
    assert_eq!(
        complete(vec!["expose", "vmi", "v"]).await.unwrap(),
        ["vmi-one"]
    );
    // pause and unpause: vm or vmi, then names of that type.
    assert_eq!(
        complete(vec!["pause", ""]).await.unwrap()[..2],
        ["vm", "vmi"]
    );
    assert_eq!(
        complete(vec!["unpause", "vm", "vm-b"]).await.unwrap(),
        ["vm-beta"]
    );
    assert_eq!(
        complete(vec!["pause", "vmi", "vmi"]).await.unwrap(),
        ["vmi-one"]
    );
    // reset and soft-reboot: instance names.
    assert_eq!(complete(vec!["reset", "vmi"]).await.unwrap(), ["vmi-one"]);
    assert_eq!(
        complete(vec!["soft-reboot", "v"]).await.unwrap(),
        ["vmi-one"]
    );
    // Namespaces for -n.
    assert_eq!(
        complete(vec!["-n", "kube-p"]).await.unwrap(),
        ["kube-public"]
    );
    assert_eq!(
        complete(vec!["status", "-n", "te"]).await.unwrap(),
        ["team"]
    );

    // Descriptions: the VM's status, unless --no-descriptions.
    let vms: kube::Api<virt_reconciler::VirtualMachine> = c.vms("default");
    vms.patch_status(
        "vm-alpha",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": {"printableStatus": "Stopped"}})),
    )
    .await
    .unwrap();
    let words = ["virtctl", "--kubeconfig", kc.as_str(), "start", "vm-"];
    let (with, without) = tokio::task::spawn_blocking({
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        move || {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            (
                fish_complete("VIRTCTL_COMPLETE", &words),
                fish_complete("VIRTCTL_COMPLETE_NO_DESC", &words),
            )
        }
    })
    .await
    .unwrap();
    assert!(with.starts_with("vm-alpha\tStopped\nvm-beta\n"), "{with}");
    assert!(without.starts_with("vm-alpha\nvm-beta\n"), "{without}");
}

#[test]
fn an_unreachable_cluster_completes_nothing_quickly() {
    // Connection refused.
    let (offered, took) = bash_complete(&["virtctl", "-s", "http://127.0.0.1:1", "start", "v"]);
    assert!(offered.is_empty(), "{offered:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A server that accepts connections and never answers: the lookup times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let (offered, took) = bash_complete(&["virtctl", "-s", &server, "stop", "v"]);
    assert!(offered.is_empty(), "{offered:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(listener);

    // Asked directly, as a shell does: exit 0, nothing on stdout or stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_virtctl"))
        .args(["--", "virtctl", "-s", "http://127.0.0.1:1", "restart", "v"])
        .env("VIRTCTL_COMPLETE", "fish")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn port_forward_and_ssh_targets_complete_their_types_first() {
    let (got, _) = bash_complete(&["virtctl", "port-forward", "vm"]);
    assert_eq!(got, ["vm/", "vmi/"]);
    let (got, _) = bash_complete(&["virtctl", "ssh", "jdoe@vmi"]);
    assert_eq!(got, ["jdoe@vmi/"]);
}
