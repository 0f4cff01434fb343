//! `virtctl reset VMI`: restart the instance's machine at once (QMP `system_reset` on the
//! node), through the subresource API only, as KubeVirt's virtctl; same QEMU, no guest shutdown.

use anyhow::bail;
use virt_reconciler::request::VmiRequest;

use crate::client::LazyConnection;
use crate::lifecycle::{self, SUBRESOURCE_GROUP, VmiRequestError};
use crate::settings::VmiSettings;

pub async fn run(connection: &LazyConnection, opts: &VmiSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("Cannot obtain KubeVirt client: {e:#}"))?;
    let name = opts.name.as_str();
    // "reseting" is KubeVirt's spelling; scripts may match on it.
    let prefix = format!("Error reseting VirtualMachineInstance {name}");
    match lifecycle::send_vmi(conn, name, &VmiRequest::Reset).await {
        Ok(()) => {
            println!("VMI {name} was scheduled to reset");
            Ok(())
        }
        Err(VmiRequestError::GroupNotServed) => bail!(
            "{prefix}: reset needs the KubeVirt subresource API ({SUBRESOURCE_GROUP}), which \
             this cluster does not serve"
        ),
        Err(VmiRequestError::NotFound(msg) | VmiRequestError::Other(msg)) => {
            bail!("{prefix}: {msg}")
        }
    }
}
