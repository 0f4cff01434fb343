//! When the toolkit's API clients send a request again. kube-rs's own retry resends any
//! request on a 429, 503 or 504: a write that ran but timed out too, which then fails for its
//! own success (a JSON patch's `test`, AlreadyExists) or runs twice. client-go, which
//! KubeVirt's components use, resends only when the server asks for it with `Retry-After`
//! (kube-apiserver's max-in-flight and priority-and-fairness filters refuse that way, before
//! serving). [`components`] is that rule, for virt-api, the controllers and virt-handler;
//! virtctl adds its own cases (`src/retry.rs`).
//!
//! The policies are pure; [`with_policy`] applies one to a client, in place of kube's retry.

use std::time::Duration;

use http::Method;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The server answered `code`, with a `Retry-After` of so many seconds, if any.
    Answered { code: u16, retry_after: Option<u64> },
    /// The connection was refused: the request was not sent.
    Refused,
    /// The connection or the answer took too long (connecting, TLS, a read timeout).
    TimedOut,
    /// Any other transport failure (reset, end of stream, TLS): it may have been sent.
    Lost,
}

/// Whether and when to send again a `method` request whose try number `tries` (1 for the
/// first) came to an [`Attempt`]; `None`: give its outcome to the caller.
pub type Policy = fn(&Method, Attempt, u32) -> Option<Duration>;

/// The most tries of a request the server asked to retry (client-go's limit).
pub const MAX_TRIES_ASKED: u32 = 10;
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The server asked for the request again (`Retry-After` on a 429 or a 5xx): after the time
/// it names, whatever the method, at most [`MAX_TRIES_ASKED`] tries.
pub fn asked(attempt: Attempt, tries: u32) -> Option<Duration> {
    match attempt {
        Attempt::Answered {
            code,
            retry_after: Some(seconds),
        } if (code == 429 || code >= 500) && tries < MAX_TRIES_ASKED => {
            Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
        }
        _ => None,
    }
}

/// The components' policy: only what the server asked for. Their own loops (a controller's
/// requeue, a caller's next request) deal with the rest, knowing what the request was.
pub fn components(_method: &Method, attempt: Attempt, tries: u32) -> Option<Duration> {
    asked(attempt, tries)
}

/// A client for `config` that resends requests as [`components`] says, kube's retry off.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    Ok(with_policy(kube::Client::try_from(config)?, components))
}

/// `client` sending each request again when `policy` says so. `client` must not retry by
/// itself (`Config::default_retry` false), or its retries come first.
pub fn with_policy(client: kube::Client, policy: Policy) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    let service = tower::service_fn(move |request| {
        let client = client.clone();
        async move { send(&client, policy, request).await }
    });
    kube::Client::new(service, namespace)
}

async fn send(
    client: &kube::Client,
    policy: Policy,
    mut request: http::Request<kube::client::Body>,
) -> Result<http::Response<kube::client::Body>, kube::Error> {
    let method = request.method().clone();
    let mut tries = 1;
    loop {
        // A body that is not in memory cannot be sent twice: such a request gets one try.
        let again = copy_of(&request);
        let result = client.send(request).await;
        let attempt = match &result {
            Ok(response) => Attempt::Answered {
                code: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            },
            Err(e) => transport_failure(e),
        };
        let (Some(next), Some(wait)) = (again, policy(&method, attempt, tries)) else {
            return result;
        };
        drop(result);
        tokio::time::sleep(wait).await;
        request = next;
        tries += 1;
    }
}

/// A copy of `request` to send again, if its body is in memory.
fn copy_of(
    request: &http::Request<kube::client::Body>,
) -> Option<http::Request<kube::client::Body>> {
    let mut copy = http::Request::new(request.body().try_clone()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// What a request that got no answer came to: refused (nothing listened, so it was never
/// sent), timed out, or lost on the way.
pub fn transport_failure(e: &kube::Error) -> Attempt {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if err.is::<tokio::time::error::Elapsed>() {
            return Attempt::TimedOut;
        }
        match err
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
        {
            Some(std::io::ErrorKind::ConnectionRefused) => return Attempt::Refused,
            Some(std::io::ErrorKind::TimedOut) => return Attempt::TimedOut,
            _ => {}
        }
        cause = err.source();
    }
    Attempt::Lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Answered { code, retry_after }
    }

    #[test]
    fn the_components_send_again_only_what_the_server_asked_for() {
        let s = |n| Some(Duration::from_secs(n));
        let (get, put, post) = (Method::GET, Method::PUT, Method::POST);
        let cases: Vec<(&str, &Method, Attempt, u32, Option<Duration>)> = vec![
            (
                "429 Retry-After, a POST",
                &post,
                answered(429, Some(1)),
                1,
                s(1),
            ),
            (
                "503 Retry-After, a PUT",
                &put,
                answered(503, Some(2)),
                1,
                s(2),
            ),
            (
                "504 Retry-After, a GET",
                &get,
                answered(504, Some(1)),
                1,
                s(1),
            ),
            (
                "capped",
                &put,
                answered(429, Some(600)),
                1,
                Some(MAX_RETRY_AFTER),
            ),
            (
                "the 9th try goes again",
                &put,
                answered(429, Some(1)),
                9,
                s(1),
            ),
            ("not the 10th", &put, answered(429, Some(1)), 10, None),
            (
                "a bare 504 may have run",
                &post,
                answered(504, None),
                1,
                None,
            ),
            ("a bare 503", &get, answered(503, None), 1, None),
            ("a bare 429", &get, answered(429, None), 1, None),
            (
                "a 409 with Retry-After is an answer",
                &put,
                answered(409, Some(1)),
                1,
                None,
            ),
            ("a 200", &get, answered(200, None), 1, None),
            ("refused", &post, Attempt::Refused, 1, None),
            ("lost", &get, Attempt::Lost, 1, None),
            ("timed out", &get, Attempt::TimedOut, 1, None),
        ];
        for (what, method, attempt, tries, want) in cases {
            assert_eq!(components(method, attempt, tries), want, "{what}");
        }
    }

    /// The error of a GET /version through a client of `url`, with a read timeout.
    async fn send_error(url: String, read_timeout: Option<Duration>) -> kube::Error {
        let mut config = kube::Config::new(url.parse().unwrap());
        config.read_timeout = read_timeout;
        let client = client(config).unwrap();
        let request = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .unwrap();
        client.send(request).await.unwrap_err()
    }

    #[tokio::test]
    async fn refused_timed_out_and_lost_connections_are_told_apart() {
        let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = nothing.local_addr().unwrap().port();
        drop(nothing);
        let e = send_error(format!("http://127.0.0.1:{port}"), None).await;
        assert_eq!(transport_failure(&e), Attempt::Refused, "{e}");
        // A server that accepts and hangs up: the request may have been read.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let e = send_error(format!("http://{addr}"), None).await;
        assert_eq!(transport_failure(&e), Attempt::Lost, "{e}");
        // A server that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let short = Some(Duration::from_millis(200));
        let e = send_error(format!("http://{addr}"), short).await;
        assert_eq!(transport_failure(&e), Attempt::TimedOut, "{e}");
        drop(silent);
    }
}
