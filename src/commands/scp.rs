//! `virtctl scp SOURCE DESTINATION`: the system's scp through the same ProxyCommand as
//! `virtctl ssh`, with scp's exit status; or, with `--local-ssh=false`, virtctl's own SFTP
//! client (`native_scp.rs`).

use crate::client::LazyConnection;
use crate::commands::native_scp;
use crate::commands::ssh::{local_ssh, run_local};
use crate::settings::ScpSettings;

pub async fn run(connection: &LazyConnection, opts: &ScpSettings) -> anyhow::Result<()> {
    let local = local_ssh(connection, &opts.common).await?;
    if !opts.common.local {
        return native_scp::run(connection, &local, opts).await;
    }
    run_local(
        "scp",
        &local.scp_args(&opts.locations, opts.recursive, opts.preserve),
    )
    .await
}
