//! `virtctl soft-reboot VMI`: ask the guest to reboot itself (through its guest agent), via the
//! subresource API only, as KubeVirt's virtctl. Without an agent the API refuses it.

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
    let prefix = format!("Error soft rebooting VirtualMachineInstance {name}");
    match lifecycle::send_vmi(conn, name, &VmiRequest::SoftReboot).await {
        Ok(()) => {
            println!("VMI {name} was scheduled to soft-reboot");
            Ok(())
        }
        Err(VmiRequestError::GroupNotServed) => bail!(
            "{prefix}: soft-reboot needs the KubeVirt subresource API ({SUBRESOURCE_GROUP}), \
             which this cluster does not serve"
        ),
        Err(VmiRequestError::NotFound(msg) | VmiRequestError::Other(msg)) => {
            bail!("{prefix}: {msg}")
        }
    }
}
