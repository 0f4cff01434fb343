//! `virtctl unpause vm|vmi NAME`: resume a paused guest (Part B §2.7). The same request and
//! rules as `pause`, with its own words.

use crate::client::LazyConnection;
use crate::settings::PauseSettings;

pub async fn run(connection: &LazyConnection, opts: &PauseSettings) -> anyhow::Result<()> {
    super::pause::run(connection, opts).await
}
