//! `virtctl soft-reboot VMI`: ask the guest to reboot itself (through its guest agent), via the
//! subresource API only, as KubeVirt's virtctl. Without an agent the API refuses it.

use virt_reconciler::request::VmiRequest;

use crate::client::LazyConnection;
use crate::settings::VmiSettings;

pub async fn run(connection: &LazyConnection, opts: &VmiSettings) -> anyhow::Result<()> {
    crate::lifecycle::run_plain_vmi_command(
        connection,
        &opts.name,
        &VmiRequest::SoftReboot,
        "soft-reboot",
        "soft rebooting",
    )
    .await
}
