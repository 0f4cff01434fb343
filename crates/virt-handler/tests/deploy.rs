//! deploy/23-virt-handler.yaml runs this binary with arguments it accepts: the DaemonSet's args,
//! with `$(VAR)` expanded from its env as the kubelet does, parse (clap stops at `--help` only
//! once all of them parsed), and the env it gives the binary names flags the binary reads.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn daemon_set() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/23-virt-handler.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter()
        .find(|d| d["kind"] == "DaemonSet" && d["metadata"]["name"] == "virt-handler")
        .expect("a DaemonSet virt-handler")
}

/// `$(NAME)` replaced by `values[NAME]`, as the kubelet expands container args.
fn expand(arg: &str, values: &[(&str, &str)]) -> String {
    let mut out = arg.to_string();
    for (name, value) in values {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(
        !out.contains("$("),
        "{arg}: a variable the container has no value for"
    );
    out
}

#[test]
fn the_daemon_sets_arguments_parse() {
    let ds = daemon_set();
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    // The values a node would give them.
    let values = [("NODE_NAME", "node-1"), ("POD_IP", "10.244.1.7")];
    for name in &env {
        assert!(values.iter().any(|(n, _)| n == name), "env {name}");
    }
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| expand(a.as_str().unwrap(), &values))
        .collect();
    assert!(
        args.contains(&"--listen=10.244.1.7:8186".to_string()),
        "{args:?}"
    );
    let run = |envs: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_virt-handler"))
            .args(&args)
            .arg("--help")
            .env_clear()
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&values);
    assert!(
        out.status.success(),
        "virt-handler rejects the DaemonSet's args {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --node-name comes from NODE_NAME: the help shows that env.
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: NODE_NAME="), "{help}");
}
