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
    std::fs::copy(env!("CARGO_BIN_EXE_virtctl"), &plugin).unwrap();
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

#[test]
fn version_without_a_server_still_prints_the_client() {
    let out = virtctl_raw(&["-s", "http://127.0.0.1:1", "version"], &[]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(
        out.stdout,
        format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        out.stderr.contains("Server Version: unavailable"),
        "{out:#?}"
    );
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
