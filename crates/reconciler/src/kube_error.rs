//! How a kube client error reads to a user, in one place: the API server's own message for a
//! refusal, and the error with its causes otherwise. Never kube's `Display` of an API error,
//! which appends the Debug rendering of the whole Status.

/// The message of `e` for users, conditions, Status bodies and logs.
pub fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => status_message(s),
        other => chain(other),
    }
}

/// A Status's message, else its reason, else its code.
fn status_message(s: &kube::core::Status) -> String {
    if !s.message.is_empty() {
        s.message.clone()
    } else if !s.reason.is_empty() {
        s.reason.clone()
    } else {
        format!("the API server answered {}", s.code)
    }
}

/// The message of a watch's error, in the same words as [`message`].
pub fn watch_message(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) => format!("listing failed: {}", message(e)),
        W::WatchStartFailed(e) => format!("watching failed to start: {}", message(e)),
        W::WatchFailed(e) => format!("watching failed: {}", message(e)),
        W::WatchError(s) => format!("the watch ended: {}", status_message(s)),
        other => other.to_string(),
    }
}

/// `e` and each of its sources, joined with `: `, leaving out a source whose text is already
/// there (many errors repeat their cause in their own message).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn api_errors_read_as_the_servers_message() {
        let e = kube::Error::Api(
            Status::failure("configmaps \"a\" not found", "NotFound")
                .with_code(404)
                .boxed(),
        );
        assert!(
            e.to_string().contains("Status {"),
            "kube's own Display: {e}"
        );
        assert_eq!(message(&e), "configmaps \"a\" not found");
        let bare = kube::Error::Api(Status::failure("", "").with_code(503).boxed());
        assert_eq!(message(&bare), "the API server answered 503");
        let reason_only =
            kube::Error::Api(Status::failure("", "Unauthorized").with_code(401).boxed());
        assert_eq!(message(&reason_only), "Unauthorized");
        let watch = kube::runtime::watcher::Error::InitialListFailed(e);
        assert_eq!(
            watch_message(&watch),
            "listing failed: configmaps \"a\" not found"
        );
    }

    #[test]
    fn other_errors_read_with_their_causes_once() {
        let io = std::io::Error::other("connection refused");
        let e = kube::Error::ReadEvents(io);
        assert_eq!(
            message(&e),
            "Error reading events stream: connection refused"
        );
    }
}
