//! What `/readyz` and `/healthz` answer, and which API failures mean that the credentials or
//! the server's certificate changed (so the kubeconfig must be read again).
//!
//! The rule: a replica is ready while it leads and no watch has been failing for longer than
//! `--unready-after`; it is live until a watch has been failing for longer than
//! `--unhealthy-after`, so that the kubelet restarts a replica that cannot recover by itself.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use virt_reconciler::controller::WatchFailure;

/// Default of `--unready-after`: a few watch retries (kube-runtime backs off 0.8 s, 1.6 s, 3.2 s,
/// ...), so a blip does not flap readiness, yet well under a minute of silent failure.
pub const DEFAULT_UNREADY_AFTER: &str = "30s";
/// Default of `--unhealthy-after`: long enough that an API server restart or an upgrade does not
/// restart every controller, short enough that broken credentials cost two minutes, not hours.
pub const DEFAULT_UNHEALTHY_AFTER: &str = "2m";

/// How long the watches may fail before the replica reports not-ready, and not-live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub unready_after: Duration,
    pub unhealthy_after: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            unready_after: parse_bound(DEFAULT_UNREADY_AFTER).expect("a valid default"),
            unhealthy_after: parse_bound(DEFAULT_UNHEALTHY_AFTER).expect("a valid default"),
        }
    }
}

/// The answers of `/readyz` and `/healthz`: `Ok` or the reason for a 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub ready: Result<(), String>,
    pub live: Result<(), String>,
}

/// The probes' answers at `now`, for a replica that `leading` or not, whose longest-failing watch
/// is `failure`.
pub fn health(
    now: Instant,
    leading: bool,
    failure: Option<&WatchFailure>,
    bounds: Bounds,
) -> Health {
    let failing = failure.map(|f| {
        let took = now.saturating_duration_since(f.since);
        let took = Duration::from_secs(took.as_secs());
        let reason = format!(
            "{} failing for {}: {}",
            f.watch,
            humantime::format_duration(took),
            f.error
        );
        (now.saturating_duration_since(f.since), reason)
    });
    let past = |bound: Duration| match &failing {
        Some((took, reason)) if *took >= bound => Err(reason.clone()),
        _ => Ok(()),
    };
    let ready = if leading {
        past(bounds.unready_after)
    } else {
        Err("standby".to_string())
    };
    Health {
        ready,
        live: past(bounds.unhealthy_after),
    }
}

/// A bound given as a duration such as 30s, 2m, 1m30s or 500ms; zero is refused.
pub fn parse_bound(s: &str) -> Result<Duration, String> {
    let d = cli_duration::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0".to_string());
    }
    Ok(d)
}

/// Whether `err` shows that the API server rejected the credentials (401) or that its
/// certificate does not verify against the CA (a TLS error): both are what a rotated
/// kubeconfig or token looks like to a client that still holds the old one.
pub fn is_credential_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>()
            && status.code == 401
        {
            return true;
        }
        // `io::Error::source` skips the error it wraps; TLS errors come wrapped in io errors.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_credential_failure(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `client`, firing `rejected` whenever an answer or error is a credential failure.
pub fn check_credentials(client: kube::Client, rejected: Arc<Notify>) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let client = client.clone();
        let rejected = rejected.clone();
        async move {
            let answer = client.send(request).await;
            let failed = match &answer {
                Ok(response) => response.status() == http::StatusCode::UNAUTHORIZED,
                Err(e) => is_credential_failure(e),
            };
            if failed {
                rejected.notify_one();
            }
            answer
        }
    });
    kube::Client::new(service, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            unready_after: Duration::from_secs(30),
            unhealthy_after: Duration::from_secs(120),
        }
    }

    #[test]
    fn readiness_and_liveness_follow_how_long_the_watches_have_failed() {
        let t0 = Instant::now();
        let failure = WatchFailure {
            watch: "VM watch",
            since: t0,
            error: "connection refused".into(),
        };
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // (leading, failing watch, seconds since it started failing, ready, live)
        let cases: &[(bool, bool, u64, bool, bool)] = &[
            (true, false, 0, true, true),
            (true, false, 1000, true, true),
            (true, true, 0, true, true),
            (true, true, 29, true, true),
            (true, true, 30, false, true),
            (true, true, 119, false, true),
            (true, true, 120, false, false),
            (false, false, 0, false, true),
            (false, true, 30, false, true),
            (false, true, 120, false, false),
        ];
        for &(leading, failing, secs, ready, live) in cases {
            let h = health(at(secs), leading, failing.then_some(&failure), bounds());
            assert_eq!(
                (h.ready.is_ok(), h.live.is_ok()),
                (ready, live),
                "leading={leading} failing={failing} after {secs} s: {h:?}"
            );
        }
    }

    #[test]
    fn the_reasons_say_which_watch_fails_since_when_and_why() {
        let t0 = Instant::now();
        let failure = WatchFailure {
            watch: "VMI watch",
            since: t0,
            error: "connection refused".into(),
        };
        let h = health(
            t0 + Duration::from_millis(125_400),
            true,
            Some(&failure),
            bounds(),
        );
        let reason = "VMI watch failing for 2m 5s: connection refused";
        assert_eq!(h.ready, Err(reason.to_string()));
        assert_eq!(h.live, Err(reason.to_string()));
        let standby = health(t0, false, None, bounds());
        assert_eq!(standby.ready, Err("standby".to_string()));
        // A failure that started after `now` (a clock read race) counts as just begun.
        let later = health(
            t0,
            true,
            Some(&WatchFailure {
                since: t0 + Duration::from_secs(5),
                ..failure
            }),
            bounds(),
        );
        assert_eq!(later.ready, Ok(()));
    }

    #[test]
    fn bounds_parse_as_durations_and_refuse_zero() {
        let cases: &[(&str, Result<Duration, ()>)] = &[
            ("30s", Ok(Duration::from_secs(30))),
            ("2m", Ok(Duration::from_secs(120))),
            ("1m30s", Ok(Duration::from_secs(90))),
            ("500ms", Ok(Duration::from_millis(500))),
            ("0", Err(())),
            ("0s", Err(())),
            ("soon", Err(())),
            ("-1s", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bound(text).map_err(|_| ()), *want, "{text}");
        }
        assert_eq!(
            Bounds::default(),
            Bounds {
                unready_after: Duration::from_secs(30),
                unhealthy_after: Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn credential_failures_are_401s_and_tls_errors_however_wrapped() {
        use std::io;
        let tls = || rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-rustls reports a handshake that fails: an io error around tokio-rustls's.
        let wrapped_tls = || io::Error::other(io::Error::new(io::ErrorKind::InvalidData, tls()));
        let api = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        let cases: Vec<(&str, Box<dyn StdError + Send + Sync>, bool)> = vec![
            ("bare TLS error", Box::new(tls()), true),
            ("TLS in io errors", Box::new(wrapped_tls()), true),
            (
                "TLS in a service error",
                Box::new(kube::Error::Service(Box::new(wrapped_tls()))),
                true,
            ),
            ("401", Box::new(api(401)), true),
            ("403", Box::new(api(403)), false),
            ("500", Box::new(api(500)), false),
            (
                "connection refused",
                Box::new(kube::Error::Service(Box::new(io::Error::from(
                    io::ErrorKind::ConnectionRefused,
                )))),
                false,
            ),
        ];
        for (what, err, want) in cases {
            assert_eq!(is_credential_failure(err.as_ref()), want, "{what}");
        }
    }
}
