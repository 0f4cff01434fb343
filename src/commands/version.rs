//! `virtctl version [-c]`: the client's version and the server's KubeVirt version (virt-api's
//! `version` endpoint, not Kubernetes' `/version`), as KubeVirt's virtctl prints them.

use crate::client::LazyConnection;
use crate::kubevirt_version::{self, VersionInfo};
use crate::settings::VersionSettings;

pub async fn run(connection: &LazyConnection, settings: &VersionSettings) -> anyhow::Result<()> {
    println!("Client Version: {}", VersionInfo::client().go_syntax());
    if settings.client_only {
        return Ok(());
    }
    let failed = |e| anyhow::anyhow!("cannot get the server's KubeVirt version: {e}");
    let conn = connection
        .get()
        .await
        .map_err(|e| failed(format!("{e:#}")))?;
    let server = kubevirt_version::server(conn).await.map_err(failed)?;
    println!("Server Version: {}", server.go_syntax());
    Ok(())
}
