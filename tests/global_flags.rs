//! The global connection flags that only show on the wire (Part B §5): impersonation by UID,
//! basic authentication, compression and the proxy, seen by a fake API server.

mod common;

use common::fake::{FakeServer, Recorded};
use common::virtctl_raw;

/// A server that accepts every start request.
fn accepting_server() -> FakeServer {
    FakeServer::start(|_| (200, "{}".to_string()))
}

/// The start request that virtctl sent.
fn start_request(server: &FakeServer) -> Recorded {
    server
        .requests()
        .into_iter()
        .find(|r| r.line.ends_with("/virtualmachines/vm1/start"))
        .expect("a start request")
}

#[test]
fn as_uid_is_sent_as_impersonate_uid() {
    let server = accepting_server();
    virtctl_raw(
        &[
            "-s",
            &server.url,
            "--as",
            "alice",
            "--as-uid",
            "1234",
            "start",
            "vm1",
        ],
        &[],
    )
    .ok("VM vm1 was scheduled to start\n");
    let request = start_request(&server);
    assert_eq!(request.header("impersonate-user"), Some("alice"));
    assert_eq!(request.header("impersonate-uid"), Some("1234"));
}

#[test]
fn username_and_password_are_basic_auth_and_win_over_the_kubeconfig_token() {
    let server = accepting_server();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{token: from-kubeconfig}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n",
            server.url
        ),
    )
    .unwrap();
    let kc = kubeconfig.to_str().unwrap();
    virtctl_raw(&["--kubeconfig", kc, "start", "vm1"], &[]).ok("VM vm1 was scheduled to start\n");
    assert_eq!(
        start_request(&server).header("authorization"),
        Some("Bearer from-kubeconfig")
    );

    let server = accepting_server();
    virtctl_raw(
        &[
            "-s",
            &server.url,
            "--username",
            "admin",
            "--password",
            "s3cret",
            "start",
            "vm1",
        ],
        &[],
    )
    .ok("VM vm1 was scheduled to start\n");
    // base64("admin:s3cret")
    assert_eq!(
        start_request(&server).header("authorization"),
        Some("Basic YWRtaW46czNjcmV0")
    );
}

#[test]
fn disable_compression_stops_asking_for_gzip() {
    let server = accepting_server();
    virtctl_raw(&["-s", &server.url, "start", "vm1"], &[]).ok("VM vm1 was scheduled to start\n");
    let encoding = start_request(&server)
        .header("accept-encoding")
        .map(str::to_string);
    assert!(
        encoding.as_ref().is_some_and(|e| e.contains("gzip")),
        "{encoding:?}"
    );

    let server = accepting_server();
    virtctl_raw(
        &["-s", &server.url, "--disable-compression", "start", "vm1"],
        &[],
    )
    .ok("VM vm1 was scheduled to start\n");
    let encoding = start_request(&server)
        .header("accept-encoding")
        .map(str::to_string);
    assert!(
        !encoding.as_ref().is_some_and(|e| e.contains("gzip")),
        "{encoding:?}"
    );
}

#[test]
fn proxy_url_carries_the_requests() {
    // The proxy is asked to tunnel to the API server, and refuses.
    let proxy = FakeServer::start(|_| (403, String::new()));
    let server = "http://api.example.invalid:6443";
    virtctl_raw(&["-s", server, "--proxy-url", &proxy.url, "start", "vm1"], &[]).fails_with(
        &format!(
            "Error starting VirtualMachine Put \"{server}/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start\": \
             ServiceError: client error (Connect): tunnel error: the proxy refused to connect to the API server (through the proxy {})",
            proxy.url
        ),
    );
    // One tunnel for the request, and one more for the version check after the error.
    let lines: Vec<String> = proxy.requests().into_iter().map(|r| r.line).collect();
    assert!(!lines.is_empty(), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l == "CONNECT api.example.invalid:6443"),
        "{lines:?}"
    );

    // A proxy that is not there.
    let out = virtctl_raw(
        &[
            "-s",
            server,
            "--proxy-url",
            "http://127.0.0.1:1",
            "start",
            "vm1",
        ],
        &[],
    );
    out.fails_containing("Connection refused");
    out.fails_containing("(through the proxy http://127.0.0.1:1)");

    // Proxies virtctl cannot use.
    virtctl_raw(
        &["-s", server, "--proxy-url", "ftp://127.0.0.1:1", "start", "vm1"],
        &[],
    )
    .fails_with(
        "cannot create the API client: configured proxy ftp://127.0.0.1:1/ uses an unsupported protocol",
    );
    virtctl_raw(
        &["-s", server, "--proxy-url", "not a url", "start", "vm1"],
        &[],
    )
    .fails_with("invalid configuration: failed to parse proxy url: invalid uri character");
}
