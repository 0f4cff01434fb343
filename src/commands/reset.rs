//! `virtctl reset VMI`: restart the instance's machine at once (QMP `system_reset` on the
//! node), through the subresource API only, as KubeVirt's virtctl; same QEMU, no guest shutdown.

use virt_reconciler::request::VmiRequest;

use crate::client::LazyConnection;
use crate::settings::VmiSettings;

pub async fn run(connection: &LazyConnection, opts: &VmiSettings) -> anyhow::Result<()> {
    // "reseting" is KubeVirt's spelling; scripts may match on it.
    crate::lifecycle::run_plain_vmi_command(
        connection,
        &opts.name,
        &VmiRequest::Reset,
        "reset",
        "reseting",
    )
    .await
}
