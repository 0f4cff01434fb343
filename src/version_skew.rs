//! The version-skew warning (Part B §5): after a command fails, virtctl asks the cluster's
//! KubeVirt for its version and warns, before the error, when the major or minor version
//! differs from its own, since that may be why the command failed.

use std::time::Duration;

use crate::client::LazyConnection;
use crate::kubevirt_version::{self, CLIENT_VERSION};

/// The whole check (both requests) gives up after this long, silently.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The warning for a server version, or `None` when major and minor agree or either version
/// cannot be read.
pub fn warning(client: &str, server: &str) -> Option<String> {
    let (c, s) = (major_minor(client)?, major_minor(server)?);
    (c != s).then(|| {
        format!(
            "Warning: virtctl {client} is not the version of KubeVirt in the cluster \
             ({server}); commands may not work as expected."
        )
    })
}

/// `v1.9.0`, `1.9`, `v1.10.0-rc.1+abc` → (major, minor).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Asks the cluster through the command's connection; `None` when the command built none, on
/// any failure, or when the versions agree.
pub async fn check(connection: &LazyConnection) -> Option<String> {
    let conn = connection.built()?;
    let server = tokio::time::timeout(CHECK_TIMEOUT, kubevirt_version::server(conn))
        .await
        .ok()?
        .ok()?;
    warning(CLIENT_VERSION, &server.git_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(major_minor("v1.9.0"), Some((1, 9)));
        assert_eq!(major_minor("1.10"), Some((1, 10)));
        assert_eq!(major_minor("v1.10.0-rc.1+abc"), Some((1, 10)));
        assert_eq!(major_minor("v2-beta"), None);
        assert_eq!(major_minor("dev"), None);
    }

    #[test]
    fn warns_only_when_major_or_minor_differ() {
        assert_eq!(warning("v0.1.0", "v0.1.7"), None);
        assert_eq!(warning("v0.1.0", "garbage"), None);
        assert_eq!(
            warning("v0.1.0", "v1.9.0").as_deref(),
            Some(
                "Warning: virtctl v0.1.0 is not the version of KubeVirt in the cluster \
                 (v1.9.0); commands may not work as expected."
            )
        );
        assert!(warning("v1.9.3", "v1.8.0").is_some());
    }
}
