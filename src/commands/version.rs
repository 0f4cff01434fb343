//! `virtctl version`: the client's version, and the server's when it answers.

use crate::client::{LazyConnection, error_chain};

/// The version of this build, as `v<semver>`.
pub const CLIENT_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub async fn run(connection: &LazyConnection) -> anyhow::Result<()> {
    println!("Client Version: {CLIENT_VERSION}");
    let server = match connection.get().await {
        Ok(conn) => conn
            .client
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|e| error_chain(&e)),
        Err(e) => Err(format!("{e:#}")),
    };
    match server {
        Ok(v) => println!("Server Version: {v}"),
        Err(e) => eprintln!("Server Version: unavailable ({e})"),
    }
    Ok(())
}
