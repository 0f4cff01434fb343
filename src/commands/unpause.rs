//! `virtctl unpause vm|vmi NAME`: resume a paused guest (Part B §2.7). The same request and
//! rules as `pause`, with its own words.

use super::pause::{PauseAction, PauseOptions, Target};
use crate::client::ConnectOptions;

pub async fn run(
    connect_opts: &ConnectOptions,
    target: Target,
    name: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    let opts = PauseOptions {
        action: PauseAction::Unpause,
        target,
        name: name.to_string(),
        dry_run,
    };
    super::pause::run(connect_opts, &opts).await
}
