//! No input makes virtctl panic: bad servers, flags, durations, numbers, ports, addresses,
//! names, targets and files (kubeconfigs, keys) each give exit 1 and one line of error, never
//! a Rust panic (exit 101); a property test throws arbitrary arguments at it. The server
//! refuses connections, so each run is quick.

mod common;

use common::{Out, virtctl_raw};
use proptest::prelude::*;

/// A server address that refuses connections.
const REFUSED: &str = "http://127.0.0.1:1";

/// A PATH without ssh, scp or VNC viewers: the guest-access commands fail instead of
/// running them.
const NO_TOOLS: (&str, &str) = ("PATH", "/nonexistent-path-for-virtctl-tests");

#[track_caller]
fn assert_clean_failure(args: &[&str], out: &Out) {
    assert_eq!(out.code, 1, "{args:?}: {out:#?}");
    assert!(!out.stderr.contains("panicked"), "{args:?}: {out:#?}");
    assert!(!out.stderr.trim().is_empty(), "{args:?}: {out:#?}");
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line of error: {out:#?}"
    );
}

#[test]
fn servers_without_a_scheme_default_to_https_and_non_urls_are_refused() {
    // host:port, as kubectl takes it.
    let out = virtctl_raw(&["-s", "127.0.0.1:1", "start", "vm1"], &[]);
    out.fails_containing(
        "Put \"https://127.0.0.1:1/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start\": ",
    );
    let why = "it must be a URL such as https://host:6443, or host:port";
    for server in [
        "not-a-url",
        "http://[::1",
        "https://",
        "::::",
        "",
        "127.0.0.1",
    ] {
        virtctl_raw(&["-s", server, "start", "vm1"], &[])
            .fails_with(&format!("invalid --server {server:?}: {why}"));
    }
    virtctl_raw(&["-s", "ftp://host:21", "stop", "vm1"], &[])
        .fails_with("invalid --server \"ftp://host:21\": the scheme must be http or https");

    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, kubeconfig("server: not-a-url")).unwrap();
    virtctl_raw(&["--kubeconfig", kc.to_str().unwrap(), "start", "vm1"], &[]).fails_with(&format!(
        "invalid configuration: the server \"not-a-url\" of cluster \"c\" in the kubeconfig \
             is not valid: {why}"
    ));
}

/// A kubeconfig with one cluster `c` whose entry is `cluster`, user `u` and context `x`.
fn kubeconfig(cluster: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster:\n    {cluster}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n"
    )
}

#[test]
fn hostile_arguments_and_kubeconfigs_fail_cleanly() {
    let s = ["-s", REFUSED, "--request-timeout", "2s"];
    let argument_cases: &[&[&str]] = &[
        &[
            "-s",
            "127.0.0.1:1",
            "start",
            "vm1",
            "--request-timeout",
            "1s",
        ],
        &["-s", "not-a-url", "stop", "vm1"],
        &["-s", "http://[::1", "status"],
        &["-s", "https://", "pause", "vm", "vm1"],
        &["-s", "::::", "expose", "vm", "vm1", "--name", "svc"],
        &["-s", "https://ü.example:6443", "start", "vm1"],
        &["-s", "http://127.0.0.1:99999", "start", "vm1"],
        &["-s", "http://user@127.0.0.1:1", "start", "vm1"],
        &["--request-timeout", "soon", "start", "vm1"],
        &["--request-timeout", "-1s", "start", "vm1"],
        &["--request-timeout", "99999999999999999999", "start", "vm1"],
        &["--bogus"],
        &["-"],
        &["start", "--timeout", "-5"],
        &["start", "vm1", "--timeout", "1e9"],
        &["stop", "vm1", "--grace-period", "99999999999999999999"],
        &[
            "expose",
            "vm",
            "vm1",
            "--name",
            "svc",
            "--port",
            "99999999999",
        ],
        &["-v", "abc", "start", "vm1"],
        &["--insecure-skip-tls-verify=maybe", "start", "vm1"],
        &["start", "vm1", "--wait=yes"],
        &["completion", ""],
        &["status", "-o", "xml"],
        &["", ""],
        &["start", "vm-\u{e9}"],
        &["start", "\u{1F600}"],
        &["start", "vm\u{7}"],
        &["-n", "a\tb", "start", "vm1"],
        &["-n", "\u{1b}[31m", "status"],
        &["--context", "", "start", "vm1"],
        &["--kubeconfig", "", "start", "vm1"],
        &["--kubeconfig", "/", "start", "vm1"],
        &["--as", "x\u{1}y", "-s", REFUSED, "start", "vm1"],
        &["--token", "a\nb", "-s", REFUSED, "start", "vm1"],
        &["--as-group", "\u{7f}", "-s", REFUSED, "stop", "vm1"],
        &[
            "--username",
            "u\r\n",
            "--password",
            "p",
            "-s",
            REFUSED,
            "status",
        ],
        &["--proxy-url", "::::", "-s", REFUSED, "start", "vm1"],
        &["--proxy-url", "ftp://x:1", "-s", REFUSED, "start", "vm1"],
        &[
            "--tls-server-name",
            "bad name!",
            "-s",
            REFUSED,
            "start",
            "vm1",
        ],
        &[
            "--certificate-authority",
            "/nonexistent",
            "-s",
            "https://127.0.0.1:1",
            "start",
            "vm1",
        ],
        &[
            "--client-certificate",
            "/nonexistent",
            "--client-key",
            "/etc/hostname",
            "-s",
            "https://127.0.0.1:1",
            "start",
            "vm1",
        ],
    ];
    for args in argument_cases {
        let out = virtctl_raw(args, &[]);
        assert_clean_failure(args, &out);
    }
    // The same with a refusing server where none was given.
    for args in [
        &[
            "start",
            "vm1",
            "--wait",
            "--timeout",
            "18446744073709551615",
        ][..],
        &["restart", "vm1", "--timeout", "1000000000000000h"],
        &[
            "stop",
            "vm1",
            "--force",
            "--grace-period=-9223372036854775808",
        ],
        &[
            "restart",
            "vm1",
            "--force",
            "--grace-period=9223372036854775807",
        ],
    ] {
        let all: Vec<&str> = s.iter().chain(args).copied().collect();
        assert_clean_failure(&all, &virtctl_raw(&all, &[]));
    }

    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, String)> = vec![
        ("not YAML", "clusters: [this is: not: valid\n\t- ]]".into()),
        ("binary", "\u{1}\u{2}\u{3}\u{fffd}".into()),
        ("empty", String::new()),
        ("a YAML list", "- a\n- b\n".into()),
        ("a number", "42\n".into()),
        ("clusters of the wrong shape", "apiVersion: v1\nkind: Config\nclusters: 5\n".into()),
        ("entries of the wrong shape", "clusters:\n- name: [1, 2]\n  cluster: true\n".into()),
        (
            "a missing context",
            "apiVersion: v1\nkind: Config\ncurrent-context: nope\nclusters: []\nusers: []\ncontexts: []\n".into(),
        ),
        (
            "a missing cluster",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: []\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: gone, user: u}\n".into(),
        ),
        ("a cluster without server", kubeconfig("insecure-skip-tls-verify: true")),
        ("a server that is not a URL", kubeconfig("server: not-a-url")),
        ("a server of colons", kubeconfig("server: '::::'")),
        (
            "bad certificate data",
            kubeconfig("server: https://127.0.0.1:1\n    certificate-authority-data: bm90IGEgY2VydGlmaWNhdGU="),
        ),
        (
            "bad base64",
            kubeconfig("server: https://127.0.0.1:1\n    certificate-authority-data: '%%%not base64'"),
        ),
        (
            "a missing CA file",
            kubeconfig("server: https://127.0.0.1:1\n    certificate-authority: /nonexistent/ca.crt"),
        ),
        ("a bad proxy", kubeconfig("server: https://127.0.0.1:1\n    proxy-url: '::::'")),
        (
            "bad client certificate data",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {client-certificate-data: '%%%', client-key-data: 'bm9wZQ=='}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n".into(),
        ),
        (
            "a missing token file",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n  user: {tokenFile: /nonexistent/token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n".into(),
        ),
        (
            "an exec plugin that does not exist",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n  user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /nonexistent/plugin}}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n".into(),
        ),
    ];
    let mut files = files;
    files.extend(hostile_yaml());
    for (what, text) in &files {
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        let kc = path.to_str().unwrap();
        for command in [&["start", "vm1"][..], &["status"]] {
            let mut args = vec!["--kubeconfig", kc, "--request-timeout", "2s"];
            args.extend_from_slice(command);
            let out = virtctl_raw(&args, &[]);
            assert_eq!(out.code, 1, "{what}: {out:#?}");
            assert!(!out.stderr.contains("panicked"), "{what}: {out:#?}");
            assert_eq!(
                out.stderr.trim_end().lines().count(),
                1,
                "{what}: one line of error: {out:#?}"
            );
        }
    }
}

/// Kubeconfigs that push the YAML parser: deep nesting, alias expansion, size.
fn hostile_yaml() -> Vec<(&'static str, String)> {
    let block: String = (0..3000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    let mut laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    laughs.push_str("clusters: *a9\n");
    vec![
        (
            "10,000 flow levels",
            format!("clusters: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        ("3,000 block levels", block),
        ("a billion laughs", laughs),
        ("8 MiB of one scalar", "a".repeat(8 << 20)),
        (
            "a UTF-16 byte order mark and garbage",
            "\u{feff}\u{fffe}\0\0".into(),
        ),
    ]
}

#[test]
fn broken_kubeconfigs_are_one_line_about_the_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    let kc = path.to_str().unwrap();
    let run = |text: &str| {
        std::fs::write(&path, text).unwrap();
        virtctl_raw(&["--kubeconfig", kc, "start", "vm1"], &[])
    };
    let cannot = format!("cannot load kubeconfig {kc}: failed to parse kubeconfig YAML");
    run("clusters: [this is: not: valid\n\t- ]]").fails_with(&format!(
        "{cannot}: while parsing a flow mapping, did not find expected ',' or '}}' at line 1, column 24"
    ));
    run("clusters: 5\n").fails_with(&format!(
        "{cannot}: expected sequence start at line 1, column 11"
    ));
    let yaml = hostile_yaml();
    run(&yaml[1].1).fails_with(&format!(
        "{cannot}: it nests too deeply at line 65, column 65"
    ));
    run(&yaml[2].1).fails_with(&format!(
        "{cannot}: it is too large once its aliases are expanded"
    ));
    // A directory is no file.
    let dir_path = dir.path().to_str().unwrap();
    let out = virtctl_raw(&["--kubeconfig", dir_path, "start", "vm1"], &[]);
    assert_clean_failure(&["--kubeconfig", dir_path], &out);
}

#[test]
fn guest_access_and_expose_arguments_fail_cleanly() {
    let s = ["-s", REFUSED, "--request-timeout", "2s"];
    let exact: &[(&[&str], &str)] = &[
        (
            &["port-forward", "vm/x", "99999"],
            "invalid local port \"99999\" in \"99999\": it must be a number from 0 to 65535",
        ),
        (
            &["port-forward", "vm/x", "80:0"],
            "invalid remote port \"0\" in \"80:0\": it must be a number from 1 to 65535",
        ),
        (
            &["port-forward", "vm/x", "80:"],
            "invalid port \"80:\", missing local and/or remote port",
        ),
        (
            &["port-forward", "x", "80"],
            "target must contain type and name separated by '/'",
        ),
        (&["port-forward", "vm/", "80"], "name cannot be empty"),
        (
            &["port-forward", "vm/x", "80", "--address", "999.1.1.1"],
            "invalid --address \"999.1.1.1\": it must be an IP address or localhost",
        ),
        (
            &["port-forward", "vm/x", "80", "81", "--stdio"],
            "only one port supported when forwarding to stdout",
        ),
        (
            &["ssh", "vm/x", "-p", "99999"],
            "invalid argument \"99999\" for \"--port\" flag: 99999 is not in 0..=65535",
        ),
        (
            &["ssh", "@vm/x", "--local-ssh=false"],
            "expected username before '@'",
        ),
        (
            &["ssh", "user@", "--local-ssh=false"],
            "expected target after '@'",
        ),
        (
            &["scp", "vm/x:/a", "vm/y:/b", "--local-ssh=false"],
            "copying from a remote location to another remote location is not supported: \"vm/x:/a\" to \"vm/y:/b\"",
        ),
        (
            &["scp", "a", "b"],
            "none of the two provided locations seems to be a remote location: \"a\" to \"b\"",
        ),
        (
            &["ssh", "u@vm/x"],
            "cannot run ssh: it is not on the PATH (install OpenSSH's client, or use --local-ssh=false)",
        ),
        (
            &["console", "x", "--timeout", "soon"],
            "invalid argument \"soon\" for \"--timeout\" flag: invalid digit found in string",
        ),
        (
            &["vnc", "x", "--port", "70000"],
            "invalid argument \"70000\" for \"--port\" flag: 70000 is not in 0..=65535",
        ),
        (
            &["vnc", "x", "--vnc-type", "bogus"],
            "unsupported vnc-type: bogus",
        ),
        (
            &["vnc", "x", "--proxy-only", "--address", "nope"],
            "invalid --address \"nope\": it must be an IP address or localhost",
        ),
        (
            &["expose", "vm", "x", "--name", "s", "--type", "Bogus"],
            "unknown service type: Bogus",
        ),
        (
            &[
                "expose",
                "vm",
                "x",
                "--name",
                "s",
                "--port",
                "80",
                "--protocol",
                "SCTPX",
            ],
            "unknown protocol: SCTPX",
        ),
        (
            &["expose", "vm", "x", "--name", "s", "--ip-family", "bogus"],
            "unknown IPFamily/s: bogus",
        ),
        (
            &["expose", "vm", "x", "--name", "Bad_Name"],
            "invalid Service name \"Bad_Name\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ),
        (
            &["expose", "bogus", "x", "--name", "s"],
            "unsupported resource type: bogus",
        ),
        (&["pause", "bogus", "x"], "unsupported resource type: bogus"),
        (&["soft-reboot"], "accepts 1 arg(s), received 0"),
    ];
    for (args, line) in exact {
        let all: Vec<&str> = s.iter().chain(args.iter()).copied().collect();
        virtctl_raw(&all, &[NO_TOOLS]).fails_with(line);
    }
    // Files that are missing, directories, or not keys; targets and values of every shape.
    let loose: &[&[&str]] = &[
        &["ssh", "u@vm/x", "-i", "/nonexistent", "--local-ssh=false"],
        &["ssh", "u@vm/x", "-i", "/", "--local-ssh=false"],
        &["ssh", "u@vm/x", "-i", "/etc/hostname", "--local-ssh=false"],
        &[
            "ssh",
            "u@vm/x",
            "-i",
            "/dev/null",
            "--known-hosts",
            "/",
            "--local-ssh=false",
        ],
        &["ssh", "u@vm/x/y/z", "--local-ssh=false"],
        &["ssh", "u@vm/x", "-l", "", "--local-ssh=false"],
        &["ssh", "u@vm/x", "-t", "-o ProxyCommand=false"],
        &[
            "scp",
            "/nonexistent",
            "u@vm/x:/tmp",
            "--local-ssh=false",
            "-i",
            "/etc/hostname",
        ],
        &[
            "scp",
            "u@vm/x:/a",
            "/nonexistent/dir/b",
            "--local-ssh=false",
        ],
        &["scp", "u@vm/x:", "", "--local-ssh=false"],
        &["scp", "::", "::", "-r"],
        &["port-forward", "vm/x", ":80"],
        &["port-forward", "vmi/x.ns", "1:2:3"],
        &["port-forward", "vm/x", "-1"],
        &["port-forward", "vm/x", "80", "--address", ""],
        &["port-forward", "--stdio", "vm/x", "22"],
        &["console", "x", "--timeout", "-1"],
        &["console", "x", "--timeout", "99999999999999999999"],
        &["console", "vm/x"],
        &["vnc", "x"],
        &[
            "vnc",
            "x",
            "--vnc-type",
            "tiger",
            "--vnc-path",
            "/nonexistent",
        ],
        &["expose", "vm", "x", "--name", "s", "--cluster-ip", "1.2.3"],
        &["expose", "vm", "x", "--name", "s", "--external-ip", "nope"],
        &[
            "expose",
            "vm",
            "x",
            "--name",
            "s",
            "--port",
            "80",
            "--target-port",
            "bad name!",
        ],
        &[
            "expose",
            "vmirs",
            "x",
            "--name",
            "s",
            "--port-name",
            "\u{1}",
        ],
        &["reset", "x\u{7f}"],
        &["soft-reboot", "a/b"],
    ];
    for args in loose {
        let all: Vec<&str> = s.iter().chain(args.iter()).copied().collect();
        assert_clean_failure(&all, &virtctl_raw(&all, &[NO_TOOLS]));
    }
}

/// One argument: a word virtctl knows, a flag with a value, or anything at all (no NUL,
/// which no argument can hold).
fn argument() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "start",
        "stop",
        "restart",
        "pause",
        "unpause",
        "expose",
        "status",
        "reset",
        "soft-reboot",
        "console",
        "vnc",
        "port-forward",
        "ssh",
        "scp",
        "u@vm/vm1",
        "vm/vm1:/tmp",
        "80:8080",
        "vm",
        "vmi",
        "vmirs",
        "vm1",
        "--force",
        "--wait",
        "--dry-run",
        "--paused",
        "-A",
        "-y",
        "--",
        "-",
        "-n",
        "-s",
        "--name",
        "--port",
        "--timeout",
        "--grace-period",
        "--kubeconfig",
        "--context",
        "--stdio",
        "--proxy-only",
        "--local-ssh=false",
        "-i",
        "-l",
        "-p",
    ]);
    let flags = prop::sample::select(vec![
        "--timeout",
        "--grace-period",
        "--port",
        "--target-port",
        "--protocol",
        "--type",
        "--ip-family",
        "--namespace",
        "--server",
        "--as",
        "--token",
        "--insecure-skip-tls-verify",
        "--context",
        "--wait",
        "-o",
        "--address",
        "--identity-file",
        "--known-hosts",
        "--vnc-type",
        "--local-ssh-opts",
    ]);
    let values = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}s")),
        "[a-z0-9/?#%.:-]{0,12}",
        "[a-z0-9.]{1,8}:[0-9]{1,5}",
        "[\\x01-\\x1f\\x7f]{1,3}",
        "\\PC{0,10}",
    ];
    prop_oneof![
        words.prop_map(str::to_string),
        (flags, values.clone()).prop_map(|(f, v)| format!("{f}={v}")),
        values,
    ]
}

proptest! {
    // PROPTEST_CASES runs more.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    #[test]
    fn arbitrary_arguments_never_panic(args in prop::collection::vec(argument(), 0..5)) {
        let mut all = vec!["-s", REFUSED, "--request-timeout", "1s"];
        all.extend(args.iter().map(String::as_str));
        let out = virtctl_raw(&all, &[NO_TOOLS]);
        prop_assert!(out.code == 0 || out.code == 1, "{all:?}: {out:#?}");
        prop_assert!(!out.stderr.contains("panicked"), "{all:?}: {out:#?}");
    }
}
