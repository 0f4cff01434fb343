//! The kubeconfig that points kubectl and kube-rs at the server.

use std::io::Write;
use std::path::Path;

use base64::Engine;

pub fn render(server_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: localkube
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: localkube-admin
  user:
    token: {token}
contexts:
- name: localkube
  context:
    cluster: localkube
    user: localkube-admin
    namespace: default
current-context: localkube
preferences: {{}}
"
    )
}

/// Writes the file with mode 0600 (it holds the admin token), replacing it atomically.
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(contents.as_bytes())?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = format!(".kubeconfig.{}.tmp", uuid::Uuid::new_v4().simple());
    let p = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)?;
    Ok((p, f))
}
