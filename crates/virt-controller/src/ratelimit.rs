//! A client-side rate limit on API requests, with client-go's meaning of `--qps` and `--burst`:
//! a token bucket that holds at most `burst` tokens and refills at `qps` tokens a second. Each
//! request takes a token; a request that finds none reserves the next one and waits for it, so
//! waiting requests go out in order, `1/qps` apart.
//!
//! It is a tower layer for `kube::client::ClientBuilder`. kube-rs wraps the stack in a
//! `tower::buffer::Buffer`, whose one worker calls `poll_ready` only once a request is queued,
//! so a token is reserved only for a request that is there to be sent.
//!
//! Why not a crate: tower's own `limit::RateLimit` is a fixed window (`num` requests per
//! `period`, then a pause until the window ends), which lets `2 × num` requests through around
//! a window's edge and has no separate burst; `governor` has the right algorithm (GCRA) but
//! brings its own clock and half a dozen dependencies and still needs a tower wrapper like this
//! one. The bucket below is a few lines, runs on tokio's clock (so tests can pause time), and
//! needs nothing that the workspace does not already have.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// client-go's defaults for virt-controller.
pub const DEFAULT_QPS: f64 = 200.0;
pub const DEFAULT_BURST: u32 = 400;

/// The token bucket. `tokens` goes below zero when requests have reserved tokens that have not
/// been refilled yet; each waits until its own token is due.
#[derive(Debug)]
struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(qps: f64, burst: u32, now: Instant) -> Self {
        Bucket {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token; returns the instant at which the request may go.
    fn reserve(&mut self, now: Instant) -> Instant {
        if now > self.last {
            let refill = now.duration_since(self.last).as_secs_f64() * self.qps;
            self.tokens = (self.tokens + refill).min(self.burst);
            self.last = now;
        }
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// Limits every service it wraps to one shared budget.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// `qps` tokens a second, at most `burst` at once. `qps` must be positive and finite, and
    /// `burst` at least 1.
    pub fn new(qps: f64, burst: u32) -> Self {
        assert!(
            qps.is_finite() && qps > 0.0,
            "qps must be positive, got {qps}"
        );
        assert!(burst >= 1, "burst must be at least 1");
        RateLimitLayer {
            bucket: Arc::new(Mutex::new(Bucket::new(qps, burst, Instant::now()))),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            state: State::Idle,
        }
    }
}

enum State {
    /// No token taken yet.
    Idle,
    /// A token is reserved and due at the sleep's deadline.
    Waiting(Pin<Box<Sleep>>),
    /// A token is held: the next `call` may go.
    Ready,
}

/// The service `RateLimitLayer` makes.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    state: State,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            bucket: self.bucket.clone(),
            state: State::Idle,
        }
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Idle => {
                    let now = Instant::now();
                    let due = self
                        .bucket
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .reserve(now);
                    self.state = if due <= now {
                        State::Ready
                    } else {
                        State::Waiting(Box::pin(tokio::time::sleep_until(due)))
                    };
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    self.state = State::Ready;
                }
                State::Ready => return self.inner.poll_ready(cx),
            }
        }
    }

    fn call(&mut self, req: R) -> Self::Future {
        debug_assert!(
            matches!(self.state, State::Ready),
            "call before poll_ready returned Ready"
        );
        self.state = State::Idle;
        self.inner.call(req)
    }
}

/// A kube client whose requests share one `qps`/`burst` budget; `qps <= 0` turns the limit off.
/// It resends a request only when the server asks (`virt_reconciler::client_retry`), each try
/// taking a token.
pub fn client(mut config: kube::Config, qps: f64, burst: u32) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    let client = if qps > 0.0 {
        builder
            .with_layer(&RateLimitLayer::new(qps, burst.max(1)))
            .build()
    } else {
        builder.build()
    };
    Ok(virt_reconciler::client_retry::with_policy(
        client,
        virt_reconciler::client_retry::components,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_a_burst_then_one_token_per_1_over_qps() {
        let t0 = Instant::now();
        let mut b = Bucket::new(200.0, 400, t0);
        for i in 0..400 {
            assert_eq!(b.reserve(t0), t0, "request {i} is within the burst");
        }
        assert_eq!(b.reserve(t0), t0 + Duration::from_millis(5));
        assert_eq!(b.reserve(t0), t0 + Duration::from_millis(10));
        // 10 ms later both reservations are paid for and the bucket is empty again.
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(b.reserve(t1), t1 + Duration::from_millis(5));
        // Refills stop at the burst: after a long idle time, 400 go at once and no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..400 {
            assert_eq!(b.reserve(t2), t2);
        }
        assert_eq!(b.reserve(t2), t2 + Duration::from_millis(5));
    }

    #[test]
    fn the_bucket_refills_at_qps() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 2, t0);
        assert_eq!(b.reserve(t0), t0);
        assert_eq!(b.reserve(t0), t0);
        // Half a second later five tokens have come, of which two fit.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.reserve(t1), t1);
        assert_eq!(b.reserve(t1), t1);
        assert_eq!(b.reserve(t1), t1 + Duration::from_millis(100));
    }

    /// Records when each request reached it.
    struct Clock(Arc<Mutex<Vec<Instant>>>);

    impl Service<()> for Clock {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: ()) -> Self::Future {
            self.0.lock().unwrap().push(Instant::now());
            std::future::ready(Ok(()))
        }
    }

    async fn send<S: Service<()>>(svc: &mut S) {
        std::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .unwrap_or_else(|_| panic!("not ready"));
        let _ = svc.call(()).await;
    }

    fn offsets(seen: &Mutex<Vec<Instant>>, start: Instant) -> Vec<u128> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|t| t.duration_since(start).as_millis())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_delays_requests_past_the_burst() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut svc = RateLimitLayer::new(10.0, 3).layer(Clock(seen.clone()));
        for _ in 0..7 {
            send(&mut svc).await;
        }
        assert_eq!(offsets(&seen, start), vec![0, 0, 0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn services_from_one_layer_share_the_budget() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let layer = RateLimitLayer::new(4.0, 2);
        let mut a = layer.layer(Clock(seen.clone()));
        let mut b = layer.layer(Clock(seen.clone()));
        send(&mut a).await;
        send(&mut b).await;
        send(&mut a).await;
        send(&mut b).await;
        assert_eq!(offsets(&seen, start), vec![0, 0, 250, 500]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_kube_client_with_the_limit_is_throttled() {
        let server = localkube::LocalKube::builder().start().await.unwrap();
        let config = server.kube_config().await.unwrap();
        // 5 at once, then 20 a second: 25 requests take at least a second.
        let limited = client(config.clone(), 20.0, 5).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..25 {
            limited.apiserver_version().await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(950), "took only {took:?}");
        // qps 0 turns the limit off, and the client still works.
        let unlimited = client(config, 0.0, 1).unwrap();
        unlimited.apiserver_version().await.unwrap();
    }
}
