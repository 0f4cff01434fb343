//! The one parser of duration flags for every binary of the workspace (virtctl, localkube,
//! virt-controller, the playground), so that `--timeout 90`, `--node-start-delay 500ms` and
//! `--unready-after 1m30s` read the same way everywhere.
//!
//! It is its own crate because nothing else is shared by all of them: virtctl and the daemons
//! must not link localkube, and localkube knows nothing about KubeVirt.

use std::time::Duration;

/// A duration such as `500ms`, `90s`, `5m` or `1h30m`; a bare number is seconds, as kubectl
/// reads `--request-timeout=30`. For clap's `value_parser`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|e| format!("{e} (examples: 0, 30, 500ms, 90s, 1m30s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_bare_seconds() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 500ms "), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn refuses_what_is_not_a_duration_with_examples() {
        for bad in ["soon", "-5s", "", "1.5"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("examples: 0, 30, 500ms"), "{bad:?}: {err}");
        }
    }
}
