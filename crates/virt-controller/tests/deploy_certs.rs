//! deploy/certs.sh against an API server with virt-api's objects applied: the Secret it writes
//! holds a certificate for virt-api's Service names that verifies against its ca.crt, and that
//! same CA bundle is the caBundle of both APIServices and of every webhook; each run rotates,
//! keeping the previous CA in the bundle; bad input and a cluster without deploy/ are refused
//! before anything is written. Needs kubectl and openssl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use test_support::have_kubectl;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether openssl can run here; as [`have_kubectl`]: required under CI, else skipped.
fn have_openssl(test: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: openssl is required under CI but was not found");
        }
        eprintln!("SKIPPED {test}: openssl is not installed");
    }
    found
}

struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// kubectl, off the async runtime (the API server runs on it).
    async fn kubectl(&self, args: &[&str]) -> Output {
        let (kubeconfig, home) = (self.kubeconfig(), self.dir.path().to_path_buf());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            test_support::run_kubectl(&kubeconfig, &home, &args, None)
        })
        .await
        .unwrap()
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        test_support::kubectl_stdout(args, self.kubectl(args).await)
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all).await).unwrap()
    }

    /// deploy/certs.sh with `args` and this cluster's kubeconfig.
    async fn certs(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("deploy/certs.sh"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("KUBECTL", test_support::kubectl_path())
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Whether the server serves `resource` of admissionregistration.k8s.io.
    async fn serves_admission(&self, resource: &str) -> bool {
        let listed = self
            .kubectl_ok(&[
                "api-resources",
                "--api-group=admissionregistration.k8s.io",
                "-o",
                "name",
            ])
            .await;
        listed
            .lines()
            .any(|l| l == format!("{resource}.admissionregistration.k8s.io"))
    }
}

async fn cluster() -> (localkube::Server, Cluster) {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig()).unwrap();
    (server, Cluster { dir })
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Base64 decoded (k8s-openapi's ByteString reads it).
fn b64(data: &str) -> Vec<u8> {
    serde_json::from_value::<k8s_openapi::ByteString>(Value::from(data))
        .unwrap()
        .0
}

/// openssl `args` in `dir`: its status, stdout and stderr.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}{stderr}"))
}

/// The Secret's files, written into `dir`.
struct Certs {
    tls_crt: Vec<u8>,
    ca_crt: String,
}

fn write_secret(secret: &Value, dir: &Path) -> Certs {
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let data = secret["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    for key in keys {
        std::fs::write(dir.join(key), b64(data[key].as_str().unwrap())).unwrap();
    }
    Certs {
        tls_crt: b64(data["tls.crt"].as_str().unwrap()),
        ca_crt: data["ca.crt"].as_str().unwrap().to_string(),
    }
}

/// Every caBundle certs.sh writes: the two APIServices', and each webhook's where the server
/// has webhook configurations.
async fn ca_bundles(c: &Cluster, webhooks: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in [
        "v1.subresources.kubevirt.io",
        "v1alpha3.subresources.kubevirt.io",
    ] {
        let a = c.json(&["get", "apiservice", name]).await;
        out.push((
            name.to_string(),
            a["spec"]["caBundle"].as_str().unwrap_or("").to_string(),
        ));
    }
    if webhooks {
        for config in [
            "mutatingwebhookconfiguration/virt-api-mutator",
            "validatingwebhookconfiguration/virt-api-validator",
        ] {
            let w = c.json(&["get", config]).await;
            for hook in w["webhooks"].as_array().unwrap() {
                out.push((
                    format!("{config} {}", hook["name"]),
                    hook["clientConfig"]["caBundle"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn certs_sh_issues_rotates_and_hands_the_ca_to_the_api_server() {
    let test = "certs_sh_issues_rotates_and_hands_the_ca_to_the_api_server";
    if !have_kubectl(test) || !have_openssl(test) {
        return;
    }
    let (_server, c) = cluster().await;
    let deploy = repo().join("deploy");
    // virt-api's objects (the rest of deploy/ is not needed here; an_api_server_accepts_
    // everything_in_deploy applies it all). The webhook configurations where the server has them.
    let webhooks = c.serves_admission("mutatingwebhookconfigurations").await
        && c.serves_admission("validatingwebhookconfigurations").await;
    if !webhooks {
        eprintln!(
            "{test}: this localkube has no webhook configurations; their caBundle is not checked"
        );
    }
    let mut files = vec!["00-namespace.yaml", "21-virt-api.yaml"];
    if webhooks {
        files.push("22-virt-api-webhooks.yaml");
    }
    for f in files {
        let path = deploy.join(f);
        c.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]).await;
    }
    let restarted_at = || async {
        let d = c
            .json(&["get", "-n", "kubevirt", "deployment", "virt-api"])
            .await;
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(restarted_at().await, None);

    let mut issued: Vec<(tempfile::TempDir, Certs)> = Vec::new();
    for run in 1..=3 {
        let out = c.certs(&["--days", "30"]).await;
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "run {run}: {stdout}{stderr}");
        assert!(
            stdout.contains("secret kubevirt/kubevirt-virt-api-certs: a certificate for DNS:virt-api.kubevirt.svc,DNS:virt-api.kubevirt.svc.cluster.local,DNS:virt-api"),
            "{stdout}"
        );
        assert!(
            stdout.contains("restarted deployment kubevirt/virt-api"),
            "{stdout}"
        );

        let secret = c
            .json(&["get", "-n", "kubevirt", "secret", "kubevirt-virt-api-certs"])
            .await;
        let dir = tempfile::tempdir().unwrap();
        let certs = write_secret(&secret, dir.path());

        // The certificate: for the Service's names, signed by the CA in ca.crt.
        let (ok, said) = openssl(dir.path(), &["verify", "-CAfile", "ca.crt", "tls.crt"]);
        assert!(ok, "run {run}: {said}");
        let (ok, san) = openssl(
            dir.path(),
            &["x509", "-in", "tls.crt", "-noout", "-ext", "subjectAltName"],
        );
        assert!(ok, "{san}");
        for name in [
            "DNS:virt-api.kubevirt.svc",
            "DNS:virt-api.kubevirt.svc.cluster.local",
            "DNS:virt-api",
        ] {
            assert!(san.contains(name), "{name} missing: {san}");
        }
        // The key is the certificate's.
        let (_, cert_key) = openssl(dir.path(), &["x509", "-in", "tls.crt", "-noout", "-pubkey"]);
        let (_, key_key) = openssl(dir.path(), &["pkey", "-in", "tls.key", "-pubout"]);
        assert_eq!(cert_key, key_key, "tls.key is not tls.crt's key");

        // kube-apiserver trusts exactly ca.crt, everywhere it calls virt-api.
        for (what, bundle) in ca_bundles(&c, webhooks).await {
            assert_eq!(bundle, certs.ca_crt, "run {run}: caBundle of {what}");
        }
        // The bundle: this run's CA, then the previous run's (none on the first).
        let bundle = String::from_utf8(b64(&certs.ca_crt)).unwrap();
        assert_eq!(
            bundle.matches("BEGIN CERTIFICATE").count(),
            if run == 1 { 1 } else { 2 },
            "run {run}: {bundle}"
        );
        // A new certificate every run, and the deployment restarted to serve it.
        for (_, earlier) in &issued {
            assert_ne!(
                earlier.tls_crt, certs.tls_crt,
                "run {run} reissued a certificate"
            );
        }
        assert!(restarted_at().await.is_some(), "run {run}: no restart");
        // During the rollout old pods still serve the previous certificate: still trusted. The
        // one before it is not.
        if let Some((previous_dir, _)) = issued.last() {
            let previous = previous_dir.path().join("tls.crt");
            let (ok, said) = openssl(
                dir.path(),
                &["verify", "-CAfile", "ca.crt", previous.to_str().unwrap()],
            );
            assert!(
                ok,
                "run {run}: the previous certificate is no longer trusted: {said}"
            );
        }
        if issued.len() >= 2 {
            let older = issued[issued.len() - 2].0.path().join("tls.crt");
            let (ok, _) = openssl(
                dir.path(),
                &["verify", "-CAfile", "ca.crt", older.to_str().unwrap()],
            );
            assert!(
                !ok,
                "run {run}: a certificate two rotations old is still trusted"
            );
        }
        issued.push((dir, certs));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certs_sh_refuses_bad_input_and_a_cluster_without_deploy() {
    let test = "certs_sh_refuses_bad_input_and_a_cluster_without_deploy";
    if !have_kubectl(test) || !have_openssl(test) {
        return;
    }
    let (_server, c) = cluster().await;
    for (args, code, message) in [
        (
            &["--days", "0"][..],
            2,
            "--days: '0' is not a number of days",
        ),
        (
            &["--days", "many"][..],
            2,
            "--days: 'many' is not a number of days",
        ),
        (
            &["--namespace", "Kube_Virt"][..],
            2,
            "--namespace: 'Kube_Virt' is not a namespace name",
        ),
        (&["--namespace"][..], 2, "--namespace needs a value"),
        (
            &["--rotate-everything"][..],
            2,
            "unknown argument: --rotate-everything",
        ),
        // kubectl's complaint, passed on.
        (
            &["--context", "nowhere"][..],
            1,
            "cannot reach the cluster: ",
        ),
        // Nothing applied yet: refused before anything is generated or written.
        (
            &[][..],
            1,
            "namespace kubevirt not found: apply deploy/ first",
        ),
    ] {
        let out = c.certs(args).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("line "),
            "{args:?}: a shell error: {stderr}"
        );
    }
    // With the namespace but without the APIServices: refused, and no Secret written.
    let ns = repo().join("deploy/00-namespace.yaml");
    c.kubectl_ok(&["apply", "-f", ns.to_str().unwrap()]).await;
    let out = c.certs(&[]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("apiservice v1.subresources.kubevirt.io not found: apply deploy/ first"),
        "{stderr}"
    );
    let secret = c
        .kubectl(&["get", "-n", "kubevirt", "secret", "kubevirt-virt-api-certs"])
        .await;
    assert!(!secret.status.success(), "a refused run wrote the Secret");

    let help = c.certs(&["--help"]).await;
    let (stdout, _) = text(&help);
    assert!(help.status.success());
    assert!(stdout.starts_with("Usage: deploy/certs.sh"), "{stdout}");
}
