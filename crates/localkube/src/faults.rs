//! Injected API faults, for tests. Off unless a test asks for them ([`crate::Builder::faults`],
//! [`crate::Server::faults`], or the hidden `--inject-faults RATE` flag): then a fraction of
//! requests get what a struggling kube-apiserver gives instead of an answer.
//!
//! - [`Fault::InternalError`]: 500 `InternalError`, the request not served.
//! - [`Fault::Conflict`]: 409 `Conflict` on an update (PUT), the message kube-apiserver gives
//!   for a stale `resourceVersion`; not served.
//! - [`Fault::TooManyRequests`]: 429 with `Retry-After: 1` and the plain-text body that
//!   kube-apiserver's max-in-flight and priority-and-fairness filters send (not a `Status`);
//!   not served.
//! - [`Fault::Timeout`]: the request hangs, then 504 `Timeout`; not served.
//! - [`Fault::TimeoutAfterExecuting`]: served, then the same hang and 504. kube-apiserver's
//!   timeout filter answers 504 while the handler goes on, so a write may well have happened:
//!   a client cannot tell this from [`Fault::Timeout`], which is why it must not resend a
//!   non-idempotent request on a 504.
//! - [`Fault::DropWatch`]: a watch ends abruptly (the stream is reset, no closing chunk) after a
//!   random short time.
//!
//! Never faulted: the health probes (`/healthz`, `/livez`, `/readyz`), which say whether the
//! process is up, not whether requests succeed. Discovery and OpenAPI are faulted, as real
//! servers fail them too. Long-running requests (watches, upgrades, `log`, `exec`, `attach`,
//! `portforward`, `proxy`) never time out, as kube-apiserver's timeout filter skips them.
//!
//! [`decide`] is the pure decision, from a seeded generator; [`inject`] is the middleware in
//! front of every request that carries it out.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::status::ApiError;

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    InternalError,
    Conflict,
    TooManyRequests,
    Timeout,
    TimeoutAfterExecuting,
    DropWatch,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::InternalError,
        Fault::Conflict,
        Fault::TooManyRequests,
        Fault::Timeout,
        Fault::TimeoutAfterExecuting,
        Fault::DropWatch,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether this fault can happen to `request`.
    fn applies_to(self, request: &RequestShape) -> bool {
        match self {
            Fault::InternalError | Fault::TooManyRequests => true,
            // A stale update is a PUT's: kube-apiserver retries patches and applies
            // internally, and a create that exists is AlreadyExists.
            Fault::Conflict => request.update,
            Fault::Timeout | Fault::TimeoutAfterExecuting => !request.long_running,
            Fault::DropWatch => request.watch,
        }
    }
}

/// Which faults, how often, and how long they last.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// The fraction of requests that get a fault, from 0 to 1.
    rate: f64,
    kinds: Vec<Fault>,
    /// Only requests whose path starts with this.
    path_prefix: Option<String>,
    /// Only requests with this method.
    method: Option<Method>,
    /// At most this many faults, then none.
    limit: Option<u64>,
    seed: Option<u64>,
    /// How long a timed-out request hangs before its 504.
    hang: Duration,
    /// How long a dropped watch lives.
    watch_lifetime: Range<Duration>,
}

impl FaultPlan {
    /// Every kind of fault, for `rate` of the requests (clamped to 0..=1; NaN is 0).
    pub fn mixed(rate: f64) -> FaultPlan {
        FaultPlan::only(&Fault::ALL, rate)
    }

    /// Only `kinds`, for `rate` of the requests they can happen to.
    pub fn only(kinds: &[Fault], rate: f64) -> FaultPlan {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        FaultPlan {
            rate,
            kinds: kinds.to_vec(),
            path_prefix: None,
            method: None,
            limit: None,
            seed: None,
            hang: Duration::from_secs(1),
            watch_lifetime: Duration::from_millis(200)..Duration::from_secs(3),
        }
    }

    /// No faults.
    pub fn none() -> FaultPlan {
        FaultPlan::only(&[], 0.0)
    }

    /// Only requests whose path starts with `prefix` (e.g. one API group's) get faults.
    pub fn targeting(mut self, prefix: impl Into<String>) -> FaultPlan {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only requests with `method` (e.g. the PATCHes, not the GETs, of one path) get faults.
    pub fn method(mut self, method: Method) -> FaultPlan {
        self.method = Some(method);
        self
    }

    /// At most `n` faults under this plan, then none: with a rate of 1, exactly the first `n`
    /// requests fail.
    pub fn at_most(mut self, n: u64) -> FaultPlan {
        self.limit = Some(n);
        self
    }

    /// Seeds the generator, so that the sequence of decisions repeats (the requests' order,
    /// which concurrency decides, may not).
    pub fn seed(mut self, seed: u64) -> FaultPlan {
        self.seed = Some(seed);
        self
    }

    /// How long a timed-out request hangs before its 504 (default 1 s).
    pub fn hang(mut self, hang: Duration) -> FaultPlan {
        self.hang = hang;
        self
    }

    /// How long a dropped watch lives, at random in `lifetime` (default 200 ms to 3 s).
    pub fn watch_lifetime(mut self, lifetime: Range<Duration>) -> FaultPlan {
        self.watch_lifetime = lifetime;
        self
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The `--inject-faults` value: a rate from 0 to 1.
    pub fn parse_rate(s: &str) -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
            _ => Err(format!("expected a fraction from 0 to 1, got {s:?}")),
        }
    }
}

/// What the decision needs to know of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RequestShape {
    /// A health probe: never faulted.
    pub exempt: bool,
    pub update: bool,
    pub watch: bool,
    pub long_running: bool,
}

/// Subresources kube-apiserver counts as long-running (no request timeout).
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "log", "portforward", "proxy"];

impl RequestShape {
    pub fn of(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Self {
        let exempt = ["/healthz", "/livez", "/readyz"]
            .iter()
            .any(|probe| path == *probe || path.starts_with(&format!("{probe}/")));
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // `/api/v1/watch/...` and `/apis/G/V/watch/...`, the old watch paths, or `?watch=`.
        let watch_path = matches!(
            segments.as_slice(),
            ["api", _, "watch", ..] | ["apis", _, _, "watch", ..]
        );
        let watch_query = serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
            .unwrap_or_default()
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        let watch = *method == Method::GET && (watch_path || watch_query);
        let upgrade = headers.contains_key(header::UPGRADE) || *method == Method::CONNECT;
        // A subresource is the segment after namespaces/NS/PLURAL/NAME or PLURAL/NAME.
        let subresource = resource_segments(&segments).and_then(|r| r.get(2).copied());
        let long_running =
            watch || upgrade || subresource.is_some_and(|s| LONG_RUNNING_SUBRESOURCES.contains(&s));
        RequestShape {
            exempt,
            update: *method == Method::PUT,
            watch,
            long_running,
        }
    }
}

/// The segments after the group/version (and `namespaces/NS` for a namespaced resource):
/// `[plural, name, subresource…]`.
fn resource_segments<'a>(segments: &'a [&'a str]) -> Option<&'a [&'a str]> {
    let rest = match segments {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return None,
    };
    Some(match rest {
        // A Namespace's own subresources.
        ["namespaces", _, "status" | "finalize"] => rest,
        ["namespaces", _, _, ..] => &rest[2..],
        _ => rest,
    })
}

/// The group, plural and name a request's path points at, for a Conflict's message.
fn target_of(path: &str) -> (String, String, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group = match segments.as_slice() {
        ["apis", group, ..] => group.to_string(),
        _ => String::new(),
    };
    let resource = resource_segments(&segments).unwrap_or_default();
    let plural = resource.first().copied().unwrap_or_default().to_string();
    let name = resource.get(1).copied().unwrap_or_default().to_string();
    (group, plural, name)
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Injected {
    pub kind: Fault,
    /// The hang before a 504, or a dropped watch's lifetime.
    pub delay: Duration,
}

/// Whether the `method` request to `path` shaped `request` gets a fault under `plan`, and
/// which: the fraction `rate` of the requests that the plan targets and at least one planned
/// kind applies to get one, chosen evenly among those kinds.
pub(crate) fn decide(
    plan: &FaultPlan,
    rng: &mut impl Rng,
    method: &Method,
    path: &str,
    request: &RequestShape,
) -> Option<Injected> {
    let targeted = plan
        .path_prefix
        .as_deref()
        .is_none_or(|p| path.starts_with(p))
        && plan.method.as_ref().is_none_or(|m| m == method);
    if request.exempt || plan.rate <= 0.0 || !targeted {
        return None;
    }
    let eligible: Vec<Fault> = plan
        .kinds
        .iter()
        .copied()
        .filter(|k| k.applies_to(request))
        .collect();
    if eligible.is_empty() || !rng.random_bool(plan.rate) {
        return None;
    }
    let kind = eligible[rng.random_range(0..eligible.len())];
    let delay = match kind {
        Fault::Timeout | Fault::TimeoutAfterExecuting => plan.hang,
        Fault::DropWatch if plan.watch_lifetime.is_empty() => plan.watch_lifetime.start,
        Fault::DropWatch => rng.random_range(plan.watch_lifetime.clone()),
        _ => Duration::ZERO,
    };
    Some(Injected { kind, delay })
}

/// The answer to a request refused by `kind` (InternalError, Conflict, TooManyRequests,
/// Timeout: the ones that are an answer).
pub(crate) fn refusal(kind: Fault, path: &str) -> Response {
    match kind {
        Fault::Conflict => {
            let (group, plural, name) = target_of(path);
            ApiError::stale(&group, &plural, &name).into_response()
        }
        Fault::TooManyRequests => {
            // Go's http.Error: plain text with a newline, and no sniffing.
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests, please try again later.\n",
            )
                .into_response();
            let h = r.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Fault::Timeout | Fault::TimeoutAfterExecuting => ApiError {
            code: 504,
            reason: "Timeout".into(),
            message: "Timeout: request did not complete within the allotted timeout".into(),
            // NewTimeoutError's details with retryAfterSeconds 0, which Go omits.
            details: Some(Box::new(json!({}))),
        }
        .into_response(),
        Fault::InternalError | Fault::DropWatch => {
            ApiError::internal_error("injected by localkube (a test fault)").into_response()
        }
    }
}

/// The plan in force, its generator, and how many faults it injected.
struct Planned {
    plan: FaultPlan,
    rng: StdRng,
    injected: u64,
}

/// The faults of a running server: what is planned, and what was injected.
pub struct FaultInjector {
    on: AtomicBool,
    planned: parking_lot::Mutex<Planned>,
    injected: [AtomicU64; Fault::ALL.len()],
    /// Requests seen while on that a fault could have happened to.
    eligible: AtomicU64,
}

impl FaultInjector {
    pub(crate) fn new(plan: Option<FaultPlan>) -> FaultInjector {
        let injector = FaultInjector {
            on: AtomicBool::new(false),
            planned: parking_lot::Mutex::new(Planned {
                plan: FaultPlan::none(),
                rng: StdRng::seed_from_u64(0),
                injected: 0,
            }),
            injected: Default::default(),
            eligible: AtomicU64::new(0),
        };
        if let Some(plan) = plan {
            injector.set(plan);
        }
        injector
    }

    /// Replaces the plan (and reseeds the generator) from the next request on.
    pub fn set(&self, plan: FaultPlan) {
        let rng = match plan.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let on = plan.rate > 0.0 && !plan.kinds.is_empty();
        *self.planned.lock() = Planned {
            plan,
            rng,
            injected: 0,
        };
        self.on.store(on, Ordering::SeqCst);
    }

    /// No more faults. Requests already hanging or watches already doomed carry on.
    pub fn off(&self) {
        self.set(FaultPlan::none());
    }

    /// How many faults of `kind` were injected.
    pub fn injected(&self, kind: Fault) -> u64 {
        self.injected[kind.index()].load(Ordering::Relaxed)
    }

    pub fn injected_total(&self) -> u64 {
        Fault::ALL.iter().map(|k| self.injected(*k)).sum()
    }

    /// Requests seen while faults were on, other than health probes.
    pub fn eligible(&self) -> u64 {
        self.eligible.load(Ordering::Relaxed)
    }

    fn pick(&self, request: &Request) -> Option<Injected> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let shape = RequestShape::of(
            request.method(),
            request.uri().path(),
            request.uri().query(),
            request.headers(),
        );
        if shape.exempt {
            return None;
        }
        self.eligible.fetch_add(1, Ordering::Relaxed);
        let injected = {
            let mut guard = self.planned.lock();
            let planned = &mut *guard;
            if planned.plan.limit.is_some_and(|n| planned.injected >= n) {
                return None;
            }
            let injected = decide(
                &planned.plan,
                &mut planned.rng,
                request.method(),
                request.uri().path(),
                &shape,
            )?;
            planned.injected += 1;
            injected
        };
        self.injected[injected.kind.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            "injecting {:?} into {} {}",
            injected.kind,
            request.method(),
            request.uri()
        );
        Some(injected)
    }
}

/// The middleware: serves the request, or instead (or around it) injects a fault.
pub(crate) async fn inject(
    State(injector): State<Arc<FaultInjector>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(fault) = injector.pick(&request) else {
        return next.run(request).await;
    };
    match fault.kind {
        Fault::InternalError | Fault::Conflict | Fault::TooManyRequests => {
            refusal(fault.kind, request.uri().path())
        }
        Fault::Timeout => {
            tokio::time::sleep(fault.delay).await;
            refusal(fault.kind, request.uri().path())
        }
        Fault::TimeoutAfterExecuting => {
            let path = request.uri().path().to_string();
            drop(next.run(request).await);
            tokio::time::sleep(fault.delay).await;
            refusal(fault.kind, &path)
        }
        Fault::DropWatch => {
            let response = next.run(request).await;
            if response.status().is_success() {
                cut_after(response, fault.delay)
            } else {
                response
            }
        }
    }
}

/// `response` with its body cut off after `lifetime`: the stream fails, so the connection
/// (HTTP/1.1) or the stream (HTTP/2) is reset, with no clean end.
fn cut_after(response: Response, lifetime: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let deadline = Box::pin(tokio::time::sleep(lifetime));
    let data = body.into_data_stream();
    let cut = futures::stream::unfold(Some((data, deadline)), |state| async move {
        let (mut data, mut deadline) = state?;
        tokio::select! {
            _ = &mut deadline => Some((
                Err(std::io::Error::other("watch dropped (an injected fault)")),
                None,
            )),
            next = data.next() => {
                let item = next?.map_err(std::io::Error::other);
                Some((item, Some((data, deadline))))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(method: Method, uri: &str) -> RequestShape {
        shape_with(method, uri, &[])
    }

    fn shape_with(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestShape {
        let uri: http::Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RequestShape::of(&method, uri.path(), uri.query(), &map)
    }

    #[test]
    fn requests_are_classified_as_kube_apiserver_does() {
        let plain = RequestShape::default();
        let cases = [
            (
                Method::GET,
                "/healthz",
                RequestShape {
                    exempt: true,
                    ..plain
                },
            ),
            (
                Method::GET,
                "/readyz/ping",
                RequestShape {
                    exempt: true,
                    ..plain
                },
            ),
            (
                Method::GET,
                "/livez",
                RequestShape {
                    exempt: true,
                    ..plain
                },
            ),
            (Method::GET, "/healthzz", plain),
            (Method::GET, "/api/v1/namespaces/default/pods", plain),
            (Method::GET, "/version", plain),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5",
                RequestShape {
                    watch: true,
                    long_running: true,
                    ..plain
                },
            ),
            (
                Method::GET,
                "/apis/kubevirt.io/v1/virtualmachines?watch=1",
                RequestShape {
                    watch: true,
                    long_running: true,
                    ..plain
                },
            ),
            (Method::GET, "/api/v1/pods?watch=false", plain),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods",
                RequestShape {
                    watch: true,
                    long_running: true,
                    ..plain
                },
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p1/log?follow=true",
                RequestShape {
                    long_running: true,
                    ..plain
                },
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/p1/portforward",
                RequestShape {
                    long_running: true,
                    ..plain
                },
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/services/s1/proxy/metrics",
                RequestShape {
                    long_running: true,
                    ..plain
                },
            ),
            (
                Method::PUT,
                "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1",
                RequestShape {
                    update: true,
                    ..plain
                },
            ),
            (
                Method::PUT,
                "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start",
                RequestShape {
                    update: true,
                    ..plain
                },
            ),
            (Method::POST, "/api/v1/namespaces/default/pods", plain),
            (Method::PATCH, "/api/v1/namespaces/default/pods/p1", plain),
            (Method::DELETE, "/api/v1/namespaces/default/pods/p1", plain),
            // A watch is a GET; a POST with ?watch is none.
            (
                Method::POST,
                "/api/v1/namespaces/default/pods?watch=true",
                plain,
            ),
        ];
        for (method, uri, want) in cases {
            assert_eq!(shape(method.clone(), uri), want, "{method} {uri}");
        }
        assert_eq!(
            shape_with(
                Method::GET,
                "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/v/console",
                &[("upgrade", "websocket"), ("connection", "Upgrade")],
            ),
            RequestShape {
                long_running: true,
                ..plain
            },
            "an upgrade"
        );
    }

    #[test]
    fn each_kind_applies_only_where_kube_apiserver_could_give_it() {
        let read = RequestShape::default();
        let update = RequestShape {
            update: true,
            ..read
        };
        let watch = RequestShape {
            watch: true,
            long_running: true,
            ..read
        };
        let stream = RequestShape {
            long_running: true,
            ..read
        };
        use Fault::*;
        let table: [(Fault, [bool; 4]); 6] = [
            //                     read   update watch  stream
            (InternalError, [true, true, true, true]),
            (TooManyRequests, [true, true, true, true]),
            (Conflict, [false, true, false, false]),
            (Timeout, [true, true, false, false]),
            (TimeoutAfterExecuting, [true, true, false, false]),
            (DropWatch, [false, false, true, false]),
        ];
        for (kind, applies) in table {
            for (request, want) in [read, update, watch, stream].iter().zip(applies) {
                assert_eq!(kind.applies_to(request), want, "{kind:?} to {request:?}");
            }
        }
    }

    /// Decisions for `n` requests of one shape, counted by kind (`None` last).
    fn tally(plan: &FaultPlan, request: RequestShape, n: usize) -> [usize; 7] {
        let mut rng = StdRng::seed_from_u64(plan.seed.unwrap_or(7));
        let mut counts = [0; 7];
        for _ in 0..n {
            match decide(plan, &mut rng, &Method::GET, "/api/v1/pods", &request) {
                Some(i) => counts[i.kind.index()] += 1,
                None => counts[6] += 1,
            }
        }
        counts
    }

    #[test]
    fn the_rate_is_the_fraction_of_requests_faulted_among_the_kinds_that_apply() {
        let read = RequestShape::default();
        let update = RequestShape {
            update: true,
            ..read
        };
        let watch = RequestShape {
            watch: true,
            long_running: true,
            ..read
        };
        let n = 20_000;
        // [InternalError, Conflict, TooManyRequests, Timeout, TimeoutAfterExecuting, DropWatch, none]
        let cases: [(&str, FaultPlan, RequestShape, [f64; 7]); 7] = [
            (
                "off",
                FaultPlan::none(),
                update,
                [0., 0., 0., 0., 0., 0., 1.],
            ),
            (
                "zero rate",
                FaultPlan::mixed(0.0),
                update,
                [0., 0., 0., 0., 0., 0., 1.],
            ),
            (
                "mixed, an update",
                FaultPlan::mixed(0.1),
                update,
                [0.02, 0.02, 0.02, 0.02, 0.02, 0., 0.9],
            ),
            (
                "mixed, a read",
                FaultPlan::mixed(0.1),
                read,
                [0.025, 0., 0.025, 0.025, 0.025, 0., 0.9],
            ),
            (
                "mixed, a watch",
                FaultPlan::mixed(0.3),
                watch,
                [0.1, 0., 0.1, 0., 0., 0.1, 0.7],
            ),
            (
                "all 429",
                FaultPlan::only(&[Fault::TooManyRequests], 1.0),
                read,
                [0., 0., 1., 0., 0., 0., 0.],
            ),
            (
                "conflicts, a read: none apply",
                FaultPlan::only(&[Fault::Conflict], 1.0),
                read,
                [0., 0., 0., 0., 0., 0., 1.],
            ),
        ];
        for (what, plan, request, want) in cases {
            let got = tally(&plan, request, n);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let share = *g as f64 / n as f64;
                assert!(
                    (share - w).abs() < 0.01,
                    "{what}: slot {i}: {share} not about {w} ({got:?})"
                );
            }
        }
    }

    #[test]
    fn a_targeted_plan_faults_only_the_paths_and_method_it_names() {
        let plan = FaultPlan::mixed(1.0).targeting("/apis/subresources.kubevirt.io/");
        let update = RequestShape {
            update: true,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let start = "/apis/subresources.kubevirt.io/v1/namespaces/d/virtualmachines/v/start";
        let plan_put = plan.clone().method(Method::PUT);
        let cases = [
            (&plan, Method::PUT, start, true),
            (
                &plan,
                Method::PUT,
                "/apis/kubevirt.io/v1/namespaces/d/virtualmachines/v",
                false,
            ),
            (&plan, Method::PUT, "/api/v1/namespaces/d/pods/p", false),
            (&plan_put, Method::PUT, start, true),
            (&plan_put, Method::GET, start, false),
        ];
        for (plan, method, path, faulted) in cases {
            assert_eq!(
                decide(plan, &mut rng, &method, path, &update).is_some(),
                faulted,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn health_probes_are_never_faulted() {
        let probe = RequestShape {
            exempt: true,
            ..Default::default()
        };
        assert_eq!(tally(&FaultPlan::mixed(1.0), probe, 100)[6], 100);
    }

    #[test]
    fn a_seed_repeats_the_decisions_and_delays_come_from_the_plan() {
        let plan = FaultPlan::mixed(0.5)
            .seed(42)
            .hang(Duration::from_millis(300))
            .watch_lifetime(Duration::from_millis(100)..Duration::from_millis(200));
        let watch = RequestShape {
            watch: true,
            long_running: true,
            ..Default::default()
        };
        let update = RequestShape {
            update: true,
            ..Default::default()
        };
        let run = || {
            let mut rng = StdRng::seed_from_u64(42);
            (0..200)
                .map(|i| {
                    let request = if i % 2 == 0 { &watch } else { &update };
                    decide(&plan, &mut rng, &Method::PUT, "/api/v1/pods", request)
                })
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        for injected in first.into_iter().flatten() {
            match injected.kind {
                Fault::Timeout | Fault::TimeoutAfterExecuting => {
                    assert_eq!(injected.delay, Duration::from_millis(300))
                }
                Fault::DropWatch => assert!(
                    (Duration::from_millis(100)..Duration::from_millis(200))
                        .contains(&injected.delay),
                    "{injected:?}"
                ),
                _ => assert_eq!(injected.delay, Duration::ZERO),
            }
        }
    }

    #[test]
    fn rates_are_clamped_and_the_flag_refuses_what_is_not_a_fraction() {
        assert_eq!(FaultPlan::mixed(2.0).rate(), 1.0);
        assert_eq!(FaultPlan::mixed(-1.0).rate(), 0.0);
        assert_eq!(FaultPlan::mixed(f64::NAN).rate(), 0.0);
        assert_eq!(FaultPlan::parse_rate("0.1"), Ok(0.1));
        assert_eq!(FaultPlan::parse_rate("1"), Ok(1.0));
        for bad in ["", "1.5", "-0.1", "ten", "NaN"] {
            assert!(FaultPlan::parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_injector_counts_what_it_injects_and_stops_at_its_limit() {
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let injector = FaultInjector::new(None);
        assert_eq!(injector.pick(&get("/api/v1/pods")), None, "off by default");
        assert_eq!(injector.eligible(), 0);
        injector.set(FaultPlan::only(&[Fault::InternalError], 1.0).at_most(2));
        let picks: Vec<_> = (0..3)
            .map(|_| injector.pick(&get("/api/v1/pods")).map(|i| i.kind))
            .collect();
        assert_eq!(
            picks,
            [Some(Fault::InternalError), Some(Fault::InternalError), None]
        );
        assert_eq!(injector.pick(&get("/healthz")), None);
        assert_eq!(injector.injected(Fault::InternalError), 2);
        assert_eq!(injector.injected_total(), 2);
        assert_eq!(injector.eligible(), 3, "health probes do not count");
        // A new plan starts its own count; the totals go on.
        injector.set(FaultPlan::only(&[Fault::InternalError], 1.0).at_most(1));
        assert!(injector.pick(&get("/api/v1/pods")).is_some());
        injector.off();
        assert_eq!(injector.pick(&get("/api/v1/pods")), None);
        assert_eq!(injector.injected(Fault::InternalError), 3);
    }

    async fn body_of(r: Response) -> (StatusCode, HeaderMap, String) {
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn refusals_read_as_kube_apiserver_s() {
        let (code, headers, body) = body_of(refusal(
            Fault::Conflict,
            "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1",
        ))
        .await;
        assert_eq!(code, 409);
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            status["message"],
            "Operation cannot be fulfilled on virtualmachines.kubevirt.io \"vm1\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            status["details"],
            json!({"name": "vm1", "group": "kubevirt.io", "kind": "virtualmachines"})
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");

        let (code, _, body) = body_of(refusal(
            Fault::Conflict,
            "/api/v1/namespaces/default/pods/p1/status",
        ))
        .await;
        assert_eq!(code, 409);
        assert!(body.contains(r#"on pods \"p1\""#), "{body}");
        let (_, _, body) =
            body_of(refusal(Fault::Conflict, "/api/v1/namespaces/ns1/finalize")).await;
        assert!(body.contains(r#"on namespaces \"ns1\""#), "{body}");

        let (code, headers, body) = body_of(refusal(Fault::TooManyRequests, "/api/v1/pods")).await;
        assert_eq!(code, 429);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(body, "Too many requests, please try again later.\n");

        let (code, _, body) = body_of(refusal(Fault::Timeout, "/api/v1/pods")).await;
        assert_eq!(code, 504);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Timeout: request did not complete within the allotted timeout",
                "reason": "Timeout", "details": {}, "code": 504,
            })
        );

        let (code, _, body) = body_of(refusal(Fault::InternalError, "/api/v1/pods")).await;
        assert_eq!(code, 500);
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["reason"], "InternalError");
        assert_eq!(
            status["message"],
            "Internal error occurred: injected by localkube (a test fault)"
        );
    }

    #[tokio::test]
    async fn a_dropped_watch_fails_its_stream_after_its_lifetime() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
        tx.send(Ok("first\n".into())).await.unwrap();
        let watch = Response::new(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let cut = cut_after(watch, Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        let mut data = cut.into_body().into_data_stream();
        assert_eq!(data.next().await.unwrap().unwrap(), "first\n");
        assert!(data.next().await.unwrap().is_err(), "the stream fails");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(data.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn a_watch_that_ends_before_its_lifetime_ends_cleanly() {
        let watch = Response::new(Body::from("done\n"));
        let mut data = cut_after(watch, Duration::from_secs(60))
            .into_body()
            .into_data_stream();
        assert_eq!(data.next().await.unwrap().unwrap(), "done\n");
        assert!(data.next().await.is_none());
    }
}
