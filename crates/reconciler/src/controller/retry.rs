//! What a controller does after a failed reconcile: transient errors (conflicts, timeouts,
//! throttling, server errors, lost connections) are retried with a per-key exponential
//! backoff, as KubeVirt's workqueue does (conflicts no sooner than their newer version
//! arrives); permanent ones (a request the server rejects as invalid, a VM that cannot run as
//! it is) wait for the object to change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Error;

/// Whether trying again, with nothing changed, may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    /// A conflict (409): the object changed since the cache read it. Transient, but the watch
    /// event of the newer version triggers the next reconcile by itself; a retry before it
    /// only sends the stale object again (each attempt a write).
    Stale,
    Permanent,
}

/// HTTP codes that say the request itself is wrong: the same request fails again.
/// Anything else may pass later: 401/403 once RBAC is fixed, 404 once a cache catches up,
/// 409 with a fresh object, 408/429/5xx once the server copes. A JSON patch whose `test`
/// failed is a 422 too (kube-apiserver and localkube alike): the cached object was stale, and
/// waiting for the change is what it needs, as the newer version's event brings the next
/// reconcile.
const PERMANENT_CODES: [u16; 5] = [400, 405, 413, 415, 422];

/// The class of an API call's error.
pub fn classify_kube(err: &kube::Error) -> ErrorClass {
    match err {
        kube::Error::Api(status) if PERMANENT_CODES.contains(&status.code) => ErrorClass::Permanent,
        kube::Error::Api(status) if status.code == 409 => ErrorClass::Stale,
        _ => ErrorClass::Transient,
    }
}

/// The class of a reconcile's error.
pub fn classify(err: &Error) -> ErrorClass {
    match err {
        Error::Kube(e) => classify_kube(e),
        Error::Serde(_) => ErrorClass::Permanent,
        Error::Sync { class, .. } => *class,
    }
}

/// The first retry's delay (KubeVirt's workqueue: 5 ms, doubling).
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest delay. KubeVirt's workqueue caps at minutes; 30 s bounds how long a key waits
/// after the API server recovers (the end-to-end tests poll with deadlines of about that),
/// and one retry per 30 s per key is still no load.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// The earliest retry after a conflict: by then the newer version has normally arrived, and
/// its own reconcile has run (the controllers' retry delay before this backoff existed).
pub const STALE_RETRY_FLOOR: Duration = Duration::from_millis(500);
/// A key that has not failed for this long starts again from [`BASE_DELAY`], and is dropped.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Consecutive failures per key (`namespace/name`), for the delay before the next retry.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, Failures>>,
}

impl Backoff {
    /// Counts a failure of `key` at `now`; returns how long to wait before the retry:
    /// [`BASE_DELAY`] doubled for each failure since its last success, at most [`MAX_DELAY`].
    pub fn failed(&self, key: &str, now: Instant) -> Duration {
        let mut failures = self.failures.lock();
        failures.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        let f = failures.entry(key.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        let doublings = f.count - 1;
        if doublings >= 32 {
            return MAX_DELAY;
        }
        BASE_DELAY
            .checked_mul(1u32 << doublings)
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
    }

    /// `key` reconciled: its next failure starts again from [`BASE_DELAY`].
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }

    /// Keys with failures counted.
    pub fn failing(&self) -> usize {
        self.failures.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_error;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            message: format!("message {code}"),
            reason: "Reason".into(),
            ..Default::default()
        }))
    }

    fn sync(class: ErrorClass) -> Error {
        Error::Sync {
            message: "m".into(),
            class,
        }
    }

    #[test]
    fn errors_are_transient_unless_the_request_itself_is_wrong() {
        use ErrorClass::{Permanent, Stale, Transient};
        let table: Vec<(&str, Error, ErrorClass)> = vec![
            ("400 bad request", Error::Kube(api(400)), Permanent),
            ("422 invalid", Error::Kube(api(422)), Permanent),
            ("405 not allowed", Error::Kube(api(405)), Permanent),
            ("413 too large", Error::Kube(api(413)), Permanent),
            ("415 media type", Error::Kube(api(415)), Permanent),
            ("401 unauthorized", Error::Kube(api(401)), Transient),
            ("403 forbidden", Error::Kube(api(403)), Transient),
            ("404 not found", Error::Kube(api(404)), Transient),
            ("408 timeout", Error::Kube(api(408)), Transient),
            ("409 conflict", Error::Kube(api(409)), Stale),
            ("410 gone", Error::Kube(api(410)), Transient),
            ("429 throttled", Error::Kube(api(429)), Transient),
            ("500 internal", Error::Kube(api(500)), Transient),
            ("503 unavailable", Error::Kube(api(503)), Transient),
            ("504 gateway timeout", Error::Kube(api(504)), Transient),
            (
                "connection refused",
                Error::Kube(kube::Error::Service("connection refused".into())),
                Transient,
            ),
            (
                "encoding",
                Error::Serde(serde_json::from_str::<u8>("x").expect_err("not JSON")),
                Permanent,
            ),
            ("failed create, server busy", sync(Transient), Transient),
            ("failed restart, queue changed", sync(Stale), Stale),
            ("a VM that cannot run", sync(Permanent), Permanent),
        ];
        for (case, err, want) in table {
            assert_eq!(classify(&err), want, "{case}");
        }
    }

    #[test]
    fn the_server_message_is_shown_never_the_status_dump() {
        assert_eq!(kube_error::message(&api(422)), "message 422");
        let mut bare = Status {
            code: 500,
            reason: "InternalError".into(),
            ..Default::default()
        };
        assert_eq!(
            kube_error::message(&kube::Error::Api(Box::new(bare.clone()))),
            "InternalError"
        );
        bare.reason.clear();
        assert_eq!(
            kube_error::message(&kube::Error::Api(Box::new(bare))),
            "the API server answered 500"
        );
        let shown = Error::Kube(api(409)).to_string();
        assert_eq!(shown, "message 409");
    }

    #[test]
    fn the_delay_doubles_from_5ms_per_key_up_to_the_cap_and_resets_on_success() {
        let backoff = Backoff::default();
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..5).map(|_| backoff.failed("ns/a", t0)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(
            backoff.failed("ns/b", t0),
            ms(5),
            "each key has its own count"
        );
        for _ in 0..40 {
            backoff.failed("ns/a", t0);
        }
        assert_eq!(backoff.failed("ns/a", t0), MAX_DELAY);
        backoff.succeeded("ns/a");
        assert_eq!(backoff.failed("ns/a", t0), ms(5));
    }

    #[test]
    fn a_key_that_stopped_failing_long_ago_is_forgotten() {
        let backoff = Backoff::default();
        let t0 = Instant::now();
        backoff.failed("ns/a", t0);
        backoff.failed("ns/a", t0);
        backoff.failed("ns/gone", t0);
        let later = t0 + FORGET_AFTER;
        assert_eq!(backoff.failed("ns/a", later), Duration::from_millis(5));
        assert_eq!(backoff.failing(), 1, "the deleted object's key is dropped");
    }
}
