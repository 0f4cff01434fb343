//! The `virt-api` binary: run with deploy/21-virt-api.yaml's arguments (certificate paths and
//! the address moved to a temporary directory and loopback) against localkube, it serves
//! `/healthz` over TLS with the given certificate; `--register-loopback` makes the group
//! reachable through the API server; bad input is a clear error and a non-zero exit.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn deployment_args() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/21-virt-api.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let deployment = docs
        .into_iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "virt-api")
        .expect("a Deployment virt-api");
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `virt-api ARGS` and returns it with the port of its `virt-api serving on` line.
fn start(args: &[String]) -> (Running, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_virt-api"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let running = Running(child);
    let port = line
        .trim()
        .strip_prefix("virt-api serving on https://")
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (running, port)
}

async fn localkube_with_crds() -> (localkube::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = common::localkube_with_crds(Some(&dir.path().join("kubeconfig"))).await;
    (server, dir)
}

/// GET `path` over TLS from 127.0.0.1:`port`, trusting `ca_pem`: the raw HTTP/1.1 answer.
async fn https_get(port: u16, ca_pem: &str, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("virt-api.kubevirt.svc").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: virt-api\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_deployments_arguments_it_serves_health_with_the_given_certificate() {
    let (server, dir) = localkube_with_crds().await;
    let (ca, cert, key) = virt_api::self_signed(&["virt-api.kubevirt.svc"]).unwrap();
    let certs = dir.path().join("certificates");
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join("tls.crt"), cert).unwrap();
    std::fs::write(certs.join("tls.key"), key).unwrap();
    let mut args: Vec<String> = deployment_args()
        .into_iter()
        .map(|a| a.replace("/etc/virt-api/certificates", certs.to_str().unwrap()))
        .map(|a| match a.split_once('=') {
            Some(("--bind-address", _)) => "--bind-address=127.0.0.1".into(),
            Some(("--port", _)) => "--port=0".into(),
            _ => a,
        })
        .collect();
    args.push(format!(
        "--kubeconfig={}",
        server.kubeconfig_path().unwrap().display()
    ));
    let (_virt_api, port) = start(&args);
    let answer = https_get(port, &ca, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_loopback_makes_the_group_reachable_through_the_api_server() {
    let (server, _dir) = localkube_with_crds().await;
    let kubeconfig = server.kubeconfig_path().unwrap().display().to_string();
    let (_virt_api, _port) = start(&[
        "--register-loopback".into(),
        "--bind-address=127.0.0.1".into(),
        "--port=0".into(),
        format!("--kubeconfig={kubeconfig}"),
    ]);
    let client = server.client().await.unwrap();
    let request = http::Request::put(
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/nope/start",
    )
    .body(b"{}".to_vec())
    .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    // virt-api's own answer for a VM that does not exist, through localkube.
    assert_eq!(response.status(), 404);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        status["message"],
        "virtualmachine.kubevirt.io \"nope\" not found"
    );
}

fn run_to_end(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_virt-api"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("virt-api {args:?} did not exit");
}

#[test]
fn bad_input_is_a_clear_error_and_a_non_zero_exit() {
    let (code, err) = run_to_end(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-cert-file"), "{err}");
    let (code, err) = run_to_end(&[
        "--register-loopback",
        "--tls-cert-file=x",
        "--tls-private-key-file=y",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "not: [a kubeconfig").unwrap();
    let (code, err) = run_to_end(&[
        "--tls-cert-file=/nonexistent/tls.crt",
        "--tls-private-key-file=/nonexistent/tls.key",
        &format!("--kubeconfig={}", kubeconfig.display()),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("virt-api: "), "{err}");
}
