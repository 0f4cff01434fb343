//! When virtctl sends a request again: only when the first one cannot have done anything, or
//! when doing it twice is harmless. The one policy of every API request virtctl makes (the
//! client of `client::connect` applies it, in place of kube's); pure, so that its table says
//! it all.
//!
//! - The server asked for a retry (`Retry-After` on a 429 or a 5xx): kube-apiserver's
//!   max-in-flight and priority-and-fairness filters refuse with a 429 before serving, so any
//!   request may go again, after the time it names (client-go's rule, which virt-api and the
//!   controllers follow too: `virt_reconciler::client_retry::asked`).
//! - Nothing was listening (connection refused): the request never left.
//! - A read (GET, HEAD) that failed with a 500, 502, 503 or 504, or whose connection was lost
//!   (reset, closed): reading again changes nothing.
//!
//! Everything else is reported as it is. A timeout is never tried again: the server does not
//! answer, and the bounds virtctl promises (10 s to connect, `--request-timeout`) must hold.
//! Above all a write (PUT to `start`, `stop`, `restart`, …) that timed out or lost its
//! connection may have been carried out: sent again, it could restart a VM twice, or fail with
//! "already running" about its own first attempt.

use std::time::Duration;

use http::Method;
use virt_reconciler::client_retry::{Attempt, asked};

/// The most tries of a request retried on virtctl's own judgement (refused, failed reads).
pub const MAX_TRIES_OWN: u32 = 4;
/// The first wait of those, doubling.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// How long to wait before sending again a `method` request whose try number `tries` (1 for
/// the first) came to `attempt`; `None`: report it as it is.
pub fn next_try(method: &Method, attempt: Attempt, tries: u32) -> Option<Duration> {
    if let Some(wait) = asked(attempt, tries) {
        return Some(wait);
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    let backoff = || {
        (tries < MAX_TRIES_OWN)
            .then(|| FIRST_BACKOFF * 2u32.saturating_pow(tries.saturating_sub(1)))
    };
    match attempt {
        Attempt::Answered { code, .. } if read && matches!(code, 500 | 502 | 503 | 504) => {
            backoff()
        }
        Attempt::Answered { .. } => None,
        Attempt::Refused => backoff(),
        Attempt::Lost if read => backoff(),
        Attempt::Lost | Attempt::TimedOut => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virt_reconciler::client_retry::MAX_RETRY_AFTER;

    fn answered(code: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Answered { code, retry_after }
    }

    #[test]
    fn only_requests_that_did_nothing_or_can_do_no_harm_go_again() {
        let ms = |n| Some(Duration::from_millis(n));
        let s = |n| Some(Duration::from_secs(n));
        let (get, put, post, patch, delete) = (
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        );
        let cases: Vec<(&str, &Method, Attempt, u32, Option<Duration>)> = vec![
            // The server asked: `asked` decides (its own table is in virt-reconciler's
            // client_retry); virtctl defers to it whatever the method.
            (
                "429 Retry-After, a PUT",
                &put,
                answered(429, Some(1)),
                1,
                s(1),
            ),
            (
                "Retry-After capped",
                &put,
                answered(429, Some(3600)),
                1,
                Some(MAX_RETRY_AFTER),
            ),
            (
                "429 without Retry-After",
                &put,
                answered(429, None),
                1,
                None,
            ),
            (
                "409 with Retry-After is no request to retry",
                &put,
                answered(409, Some(1)),
                1,
                None,
            ),
            // Writes that may have happened: never again.
            ("500, a PUT", &put, answered(500, None), 1, None),
            (
                "504, a PUT (it may have run)",
                &put,
                answered(504, None),
                1,
                None,
            ),
            ("503, a POST", &post, answered(503, None), 1, None),
            ("504, a PATCH", &patch, answered(504, None), 1, None),
            ("lost, a PUT", &put, Attempt::Lost, 1, None),
            ("lost, a DELETE", &delete, Attempt::Lost, 1, None),
            // Reads: again, backing off, a few times.
            ("500, a GET", &get, answered(500, None), 1, ms(250)),
            ("502, a GET", &get, answered(502, None), 1, ms(250)),
            ("503, a GET", &get, answered(503, None), 2, ms(500)),
            (
                "504, a HEAD",
                &Method::HEAD,
                answered(504, None),
                3,
                ms(1000),
            ),
            (
                "504, a GET, the last try",
                &get,
                answered(504, None),
                4,
                None,
            ),
            ("lost, a GET", &get, Attempt::Lost, 1, ms(250)),
            // No answer in time: the bound holds, whatever the method.
            ("timed out, a GET", &get, Attempt::TimedOut, 1, None),
            ("timed out, a PUT", &put, Attempt::TimedOut, 1, None),
            (
                "501 is no failure of the moment",
                &get,
                answered(501, None),
                1,
                None,
            ),
            // Refusals that say the request is wrong: reported.
            ("404, a GET", &get, answered(404, None), 1, None),
            ("409, a PUT", &put, answered(409, None), 1, None),
            ("401, a GET", &get, answered(401, None), 1, None),
            // Nothing listened: the request never left.
            ("refused, a PUT", &put, Attempt::Refused, 1, ms(250)),
            ("refused, a GET", &get, Attempt::Refused, 3, ms(1000)),
            ("refused, the last try", &put, Attempt::Refused, 4, None),
        ];
        for (what, method, attempt, tries, want) in cases {
            assert_eq!(next_try(method, attempt, tries), want, "{what}");
        }
    }

    #[test]
    fn virtctl_s_own_retries_add_up_to_under_two_seconds() {
        let total: Duration = (1..)
            .map_while(|tries| next_try(&Method::GET, Attempt::Lost, tries))
            .sum();
        assert_eq!(total, Duration::from_millis(250 + 500 + 1000));
    }
}
