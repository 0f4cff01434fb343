//! The node sends an API call again while the server fails it for reasons of its own (a 5xx,
//! a 429, a lost connection), as a kubelet keeps syncing a pod until it succeeds. Tried once,
//! a failed bind or status write would leave a pod Pending, or Terminating, for good: nothing
//! else changes the pod to bring its turn again.
//!
//! A refusal that is about the request (404: the pod is gone; 409: it changed or is already
//! bound; 422) ends the tries: the next watch event says what to do instead.

use std::time::Duration;

/// Whether `e` may pass when the same call is sent again.
pub(crate) fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 408 || status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The wait before try `tries + 1`: 100 ms, doubling, at most 5 s.
pub(crate) fn backoff(tries: u32) -> Duration {
    let doublings = tries.saturating_sub(1).min(10);
    (Duration::from_millis(100) * 2u32.pow(doublings)).min(Duration::from_secs(5))
}

/// The most tries of one call: with [`backoff`], about eight minutes.
pub(crate) const MAX_TRIES: u32 = 100;

/// `call`, sent again while it fails transiently, at most [`MAX_TRIES`] times.
pub(crate) async fn settled<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut tries = 1;
    loop {
        match call().await {
            Err(e) if transient(&e) && tries < MAX_TRIES => {
                tracing::debug!("the node's call failed (trying again): {e}");
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn the_server_s_failures_are_tried_again_and_refusals_of_the_request_are_not() {
        let cases = [
            (api(500), true),
            (api(503), true),
            (api(504), true),
            (api(429), true),
            (api(408), true),
            (api(404), false),
            (api(409), false),
            (api(422), false),
            (api(403), false),
            (kube::Error::Service("connection reset".into()), true),
            (
                kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err()),
                false,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(transient(&e), want, "{e}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_100_ms_to_5_s() {
        let waits: Vec<u128> = (1..=8).map(|t| backoff(t).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_call_is_sent_until_it_succeeds_or_is_refused() {
        let mut answers = vec![Ok(7), Err(api(500)), Err(api(429))];
        let mut tries = 0;
        let got = settled(|| {
            tries += 1;
            let answer = answers.pop().expect("no more tries than answers");
            async move { answer }
        })
        .await;
        assert_eq!((got.ok(), tries), (Some(7), 3));

        let mut answers = vec![Err(api(500)), Err(api(404)), Err(api(503))];
        let got: Result<u8, _> = settled(|| {
            let answer = answers.pop().unwrap();
            async move { answer }
        })
        .await;
        assert!(matches!(got, Err(kube::Error::Api(s)) if s.code == 404));
        assert_eq!(answers.len(), 1, "the 404 ended the tries");
    }
}
