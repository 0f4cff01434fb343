//! The command line without a cluster: help, version, completion, the plugin name, and bad
//! input that must give one clear line on stderr and exit 1, never a panic.

mod common;

use common::virtctl_raw;

#[test]
fn help_and_version_exit_zero() {
    let root = virtctl_raw(&[], &[]);
    assert_eq!(root.code, 0, "{root:#?}");
    assert!(root.stdout.contains("Usage: virtctl"), "{root:#?}");
    for args in [&["--help"][..], &["help"], &["help", "start"]] {
        let out = virtctl_raw(args, &[]);
        assert_eq!(out.code, 0, "{out:#?}");
    }
    let start = virtctl_raw(&["start", "--help"], &[]);
    assert_eq!(start.code, 0);
    assert!(
        start
            .stdout
            .contains("# Start a virtual machine called 'myvm':\n  virtctl start myvm")
    );
    assert!(start.stdout.contains("Usage: virtctl start (VM) [flags]"));
    let version = virtctl_raw(&["--version"], &[]);
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout,
        format!("virtctl {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn plugin_help_says_kubectl_virt() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-virt");
    // A symlink, not a copy: a copy is open for writing a moment, and a process another test
    // forks then would keep it so, and running it fails with "Text file busy".
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_virtctl"), &plugin).unwrap();
    let out = std::process::Command::new(&plugin)
        .args(["start", "--help"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("kubectl virt start myvm"), "{stdout}");
    assert!(
        stdout.contains("Usage: kubectl virt start (VM) [flags]"),
        "{stdout}"
    );
    assert!(!stdout.contains("virtctl"), "{stdout}");
}

#[test]
fn completion_scripts() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = virtctl_raw(&["completion", shell], &[]);
        assert_eq!(out.code, 0, "{shell}: {out:#?}");
        assert!(out.stdout.contains("virtctl"), "{shell}");
        // The script calls virtctl back for the completions.
        assert!(out.stdout.contains("VIRTCTL_COMPLETE"), "{shell}");
    }
    virtctl_raw(&["completion", "tcsh"], &[]).fails_containing("invalid argument \"tcsh\"");
}

#[test]
fn bad_input_is_one_line_and_exit_one() {
    let offline = ["-s", "http://127.0.0.1:1"];
    let cases: &[(&[&str], &str)] = &[
        (&["start"], "accepts 1 arg(s), received 0"),
        (&["stop", "a", "b"], "accepts 1 arg(s), received 2"),
        (&["restart", "a", "b", "c"], "accepts 1 arg(s), received 3"),
        (&["start", "vm", "a", "b"], "accepts 1 arg(s), received 3"),
        (&["start", "vmi", "a"], "accepts 1 arg(s), received 2"),
        (&["start", "vm1", "--bogus"], "unknown flag: --bogus"),
        (&["stop", "vm1", "-x"], "unknown shorthand flag: 'x' in -x"),
        (
            &["frobnicate"],
            "unknown command \"frobnicate\" for \"virtctl\"",
        ),
        (
            &["stop", "vm1", "--grace-period", "soon"],
            "invalid argument \"soon\" for \"--grace-period\" flag: invalid digit found in string",
        ),
    ];
    for (args, msg) in cases {
        virtctl_raw(args, &[]).fails_with(msg);
    }
    // The force/grace rule fails before any request (the server is unreachable).
    for args in [
        &["stop", "vm1", "--force"][..],
        &["stop", "vm1", "--grace-period=0"],
        &["restart", "vm1", "--force"],
        &["restart", "vm1", "--grace-period", "0"],
    ] {
        let all: Vec<&str> = offline.iter().chain(args).copied().collect();
        virtctl_raw(&all, &[]).fails_with("Must both use --force=true and set --grace-period.");
    }
    // A negative grace period is refused before any request, in the server's words.
    let negative: &[(&[&str], &str)] = &[
        (
            &["stop", "vm1", "--force", "--grace-period=-5"],
            "error force stopping VirtualMachine: gracePeriod has to be greater or equal to 0",
        ),
        (
            &[
                "stop",
                "vm1",
                "--force",
                "--grace-period",
                "-1",
                "--dry-run",
            ],
            "error force stopping VirtualMachine: gracePeriod has to be greater or equal to 0",
        ),
        (
            &["restart", "vm1", "--force", "--grace-period=-5"],
            "error force restarting VirtualMachine: gracePeriod has to be greater or equal to 0",
        ),
    ];
    for (args, msg) in negative {
        let all: Vec<&str> = offline.iter().chain(*args).copied().collect();
        let out = virtctl_raw(&all, &[]);
        assert_eq!(out.code, 1, "{out:#?}");
        assert_eq!(out.stderr.trim_end(), *msg, "{out:#?}");
    }
}

#[test]
fn connection_problems_are_reported_once() {
    // Unreachable server: the command's prefix and the transport error.
    let out = virtctl_raw(&["-s", "http://127.0.0.1:1", "start", "vm1"], &[]);
    out.fails_containing("Error starting VirtualMachine Put \"http://127.0.0.1:1/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start\": ");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    let out = virtctl_raw(&["-s", "http://127.0.0.1:1", "restart", "vm1"], &[]);
    out.fails_containing("error restarting VirtualMachine: Put ");

    // No configuration at all.
    virtctl_raw(&["stop", "vm1"], &[]).fails_containing("no configuration has been provided");

    // A kubeconfig that does not exist, or is not YAML.
    virtctl_raw(
        &["--kubeconfig", "/nonexistent/kubeconfig", "start", "vm1"],
        &[],
    )
    .fails_containing("cannot load kubeconfig /nonexistent/kubeconfig");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "clusters: [this is: not: valid").unwrap();
    virtctl_raw(
        &["--kubeconfig", bad.to_str().unwrap(), "start", "vm1"],
        &[],
    )
    .fails_containing("cannot load kubeconfig");
    // An unknown context.
    let kc = dir.path().join("kc");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n",
    )
    .unwrap();
    virtctl_raw(
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "nope",
            "start",
            "vm1",
        ],
        &[],
    )
    .fails_containing("invalid configuration");
    // KUBECONFIG with several files, the first missing: the second is used.
    let good = dir.path().join("good");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: c\n  context: {cluster: c, user: u, namespace: team}\n",
    )
    .unwrap();
    let list = format!(
        "{}:{}",
        dir.path().join("missing").display(),
        good.display()
    );
    let out = virtctl_raw(&["start", "vm1"], &[("KUBECONFIG", &list)]);
    out.fails_containing("/namespaces/team/virtualmachines/vm1/start");
}

/// `virtctl version`'s first line: KubeVirt's `version.Info` in Go syntax, with the KubeVirt
/// release we follow and our build in the metadata.
fn client_version_line() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "Client Version: version.Info{{GitVersion:\"v1.9.0+virt-toolkit.{}\", GitCommit:\"\", \
         GitTreeState:\"\", BuildDate:\"1970-01-01T00:00:00Z\", GoVersion:\"none (Rust)\", \
         Compiler:\"rustc\", Platform:\"{}/{arch}\"}}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

// Changed on purpose (issue 10): an unreachable server made `version` exit 0 with
// "Server Version: unavailable"; as KubeVirt's virtctl, it now fails.
#[test]
fn version_without_a_server_prints_the_client_and_fails() {
    let out = virtctl_raw(&["-s", "http://127.0.0.1:1", "version"], &[]);
    out.fails_containing("");
    assert_eq!(out.stdout, client_version_line(), "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    assert!(
        out.stderr.starts_with(
            "cannot get the server's KubeVirt version: Get \"http://127.0.0.1:1/apis/subresources.kubevirt.io\": "
        ),
        "{out:#?}"
    );
    // No kubeconfig at all: the same first words, then why.
    let out = virtctl_raw(&["version"], &[]);
    out.fails_containing("cannot get the server's KubeVirt version: invalid configuration: ");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
}

#[test]
fn version_client_only_makes_no_request() {
    let server = common::fake::FakeServer::start(|_| (500, String::new()));
    for flag in ["-c", "--client", "--client=true"] {
        let out = virtctl_raw(
            &[
                "-s",
                &server.url,
                "--kubeconfig",
                "/nonexistent",
                "version",
                flag,
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{out:#?}");
        assert_eq!(out.stdout, client_version_line(), "{out:#?}");
        assert_eq!(out.stderr, "", "{out:#?}");
    }
    assert_eq!(server.connections(), 0);
}

#[test]
fn version_prints_the_servers_kubevirt_version_info() {
    let server = common::fake::FakeServer::start(|r| {
        match r.line.as_str() {
        "GET /apis/subresources.kubevirt.io" => (
            200,
            serde_json::json!({
                "kind": "APIGroup", "apiVersion": "v1", "name": "subresources.kubevirt.io",
                "versions": [{"groupVersion": "subresources.kubevirt.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "subresources.kubevirt.io/v1", "version": "v1"},
            })
            .to_string(),
        ),
        "GET /apis/subresources.kubevirt.io/v1/version" => (
            200,
            serde_json::json!({
                "gitVersion": "v1.8.2", "gitCommit": "0123abc", "gitTreeState": "clean",
                "buildDate": "2026-05-01T10:00:00Z", "goVersion": "go1.24.4",
                "compiler": "gc", "platform": "linux/arm64",
            })
            .to_string(),
        ),
        _ => (404, String::new()),
    }
    });
    let out = virtctl_raw(&["-s", &server.url, "version"], &[]);
    out.ok(&format!(
        "{}Server Version: version.Info{{GitVersion:\"v1.8.2\", GitCommit:\"0123abc\", \
         GitTreeState:\"clean\", BuildDate:\"2026-05-01T10:00:00Z\", GoVersion:\"go1.24.4\", \
         Compiler:\"gc\", Platform:\"linux/arm64\"}}\n",
        client_version_line()
    ));
    // Another minor version: `version` shows both and warns about nothing.
    assert_eq!(out.stderr, "", "{out:#?}");
}

#[test]
fn version_against_a_cluster_without_kubevirt_says_so_in_one_line() {
    // kube-apiserver answers a group it does not serve with Go's plain-text 404.
    let server = common::fake::FakeServer::start(|_| (404, "404 page not found\n".to_string()));
    let out = virtctl_raw(&["-s", &server.url, "version"], &[]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stdout, client_version_line(), "{out:#?}");
    assert!(
        out.stderr
            .ends_with("(is KubeVirt installed?): 404 page not found\n"),
        "{out:#?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
}

#[test]
fn bad_combinations_fail_before_any_connection() {
    // A server that accepts TCP connections (the kernel's backlog) but never answers: a
    // command that reached it would hang. The kubeconfig does not exist: reading it would fail.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (
            &["restart", "vm1", "--force"],
            "Must both use --force=true and set --grace-period.",
        ),
        (
            &["restart", "vm1", "--grace-period=0", "--dry-run"],
            "Must both use --force=true and set --grace-period.",
        ),
        (
            &["stop", "vm1", "--force", "--grace-period=-5"],
            "error force stopping VirtualMachine: gracePeriod has to be greater or equal to 0",
        ),
        (
            &["status", "vm1", "-A"],
            "a resource cannot be retrieved by name across all namespaces",
        ),
        (
            &["expose", "vm", "vm1", "--name", "svc", "--protocol", "sctp"],
            "unknown protocol: sctp",
        ),
        (&["pause", "vms", "vm1"], "unsupported resource type: vms"),
    ];
    for (args, message) in cases {
        let started = std::time::Instant::now();
        let all: Vec<&str> = ["-s", &server, "--kubeconfig", "/nonexistent/kubeconfig"]
            .iter()
            .chain(*args)
            .copied()
            .collect();
        let out = virtctl_raw(&all, &[]);
        out.fails_with(message);
        assert_eq!(out.stdout, "", "{out:#?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{args:?}"
        );
    }
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener saw a connection: {accepted:?}"
    );
}
