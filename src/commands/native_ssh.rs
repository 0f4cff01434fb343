//! `ssh` and `scp` with `--local-ssh=false`: virtctl's own SSH client over a port-forward
//! stream, for machines without OpenSSH's client.

use crate::client::LazyConnection;
use crate::guest_access::LocalSsh;
use crate::settings::ScpSettings;

pub async fn ssh(
    _connection: &LazyConnection,
    _target: &LocalSsh,
    _command: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::bail!("--local-ssh=false is not supported yet: run with the system's ssh")
}

pub async fn scp(
    _connection: &LazyConnection,
    _target: &LocalSsh,
    _opts: &ScpSettings,
) -> anyhow::Result<()> {
    anyhow::bail!("--local-ssh=false is not supported yet: run with the system's scp")
}
