//! ServiceAccount tokens (`authentication.k8s.io/v1` TokenRequest, the `serviceaccounts/token`
//! subresource): issued opaque and random, and resolved to the ServiceAccount's identity until
//! they expire or the ServiceAccount (by uid) is gone. They are looked up by their SHA-256, which
//! is all that a data directory keeps of them (`Store::persist_token`), so they survive a
//! restart while the files never hold a usable token.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::durable::TokenRow;
use crate::rbac::UserInfo;
use crate::status::{ApiError, ApiResult, Cause};

/// kube-apiserver's default lifetime of a requested token.
pub const DEFAULT_SECONDS: i64 = 3600;
/// The shortest lifetime kube-apiserver accepts.
const MIN_SECONDS: i64 = 600;
/// The audience kube-apiserver gives tokens that ask for none.
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

type Hash = [u8; 32];

struct Issued {
    namespace: String,
    name: String,
    uid: String,
    expires: DateTime<Utc>,
}

/// The SHA-256 of a token.
fn hash(token: &str) -> Hash {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest
        .as_ref()
        .try_into()
        .expect("a SHA-256 digest has 32 bytes")
}

/// The tokens issued so far, by hash.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<Hash, Issued>>,
}

impl Tokens {
    /// The tokens a data directory kept.
    pub fn restore(rows: Vec<TokenRow>) -> Tokens {
        let issued = rows
            .into_iter()
            .filter_map(|r| {
                let expires = DateTime::from_timestamp(r.expires, 0)?;
                let issued = Issued {
                    namespace: r.namespace,
                    name: r.name,
                    uid: r.uid,
                    expires,
                };
                Some((r.hash, issued))
            })
            .collect();
        Tokens {
            issued: Mutex::new(issued),
        }
    }

    /// A new token for the ServiceAccount `namespace/name` with `uid`, valid until `expires`,
    /// and what a data directory keeps of it.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        expires: DateTime<Utc>,
    ) -> (String, TokenRow) {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let row = TokenRow {
            hash: hash(&token),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            // Whole seconds, as kept on disk: a token lives as long before a restart as after.
            expires: expires.timestamp(),
        };
        let mut issued = self.issued.lock();
        let now = Utc::now();
        issued.retain(|_, t| t.expires > now);
        issued.insert(
            row.hash,
            Issued {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                expires: DateTime::from_timestamp(row.expires, 0).unwrap_or(expires),
            },
        );
        (token, row)
    }

    /// The identity of `token` at `now`; `current_uid` tells the uid of a ServiceAccount that
    /// exists now (a token dies with its ServiceAccount, even when one of that name returns).
    pub fn resolve(
        &self,
        token: &str,
        now: DateTime<Utc>,
        current_uid: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<UserInfo> {
        let issued = self.issued.lock();
        let t = issued.get(&hash(token))?;
        if t.expires <= now || current_uid(&t.namespace, &t.name).as_deref() != Some(&t.uid) {
            return None;
        }
        Some(UserInfo::service_account(&t.namespace, &t.name))
    }
}

/// The lifetime a TokenRequest asks for, checked as kube-apiserver does.
pub fn requested_seconds(body: &Value) -> ApiResult<i64> {
    let Some(v) = body
        .pointer("/spec/expirationSeconds")
        .filter(|v| !v.is_null())
    else {
        return Ok(DEFAULT_SECONDS);
    };
    let seconds = v.as_i64().unwrap_or(0);
    if seconds < MIN_SECONDS {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    if seconds > 1 << 32 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            vec![Cause {
                reason: "FieldValueTooLong".into(),
                message: format!(
                    "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    Ok(seconds)
}

/// The expiry of a token issued `now` for `seconds`, in whole seconds (the response shows no
/// more, and the data directory keeps no more).
pub fn expiry(now: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let at = now + Duration::seconds(seconds);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The TokenRequest answered: the request's spec (with its defaults) and the token.
pub fn response(
    body: &Value,
    namespace: &str,
    name: &str,
    seconds: i64,
    token: &str,
    expires: DateTime<Utc>,
) -> Value {
    let mut spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    if !spec.is_object() {
        spec = json!({});
    }
    if spec
        .get("audiences")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        spec["audiences"] = json!([DEFAULT_AUDIENCE]);
    }
    spec["expirationSeconds"] = json!(seconds);
    if spec.get("boundObjectRef").is_none() {
        spec["boundObjectRef"] = Value::Null;
    }
    json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": Value::Null},
        "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_until_expiry_or_their_service_account_is_gone() {
        let tokens = Tokens::default();
        let now = Utc::now();
        let (t, _) = tokens.issue("default", "editor", "u1", expiry(now, 600));
        let exists =
            |ns: &str, n: &str| (ns == "default" && n == "editor").then(|| "u1".to_string());
        let user = tokens.resolve(&t, now, exists).unwrap();
        assert_eq!(user.name, "system:serviceaccount:default:editor");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated"
            ]
        );
        assert!(
            tokens.resolve(&t, expiry(now, 600), exists).is_none(),
            "expired"
        );
        assert!(tokens.resolve(&t, now, |_, _| None).is_none(), "deleted");
        assert!(
            tokens.resolve(&t, now, |_, _| Some("u2".into())).is_none(),
            "recreated under the same name"
        );
        assert!(tokens.resolve("nope", now, exists).is_none());
        let (t2, _) = tokens.issue("default", "editor", "u1", expiry(now, 600));
        assert_ne!(t, t2);
    }

    #[test]
    fn what_is_kept_of_a_token_is_its_hash_and_restores_it() {
        let tokens = Tokens::default();
        let now = Utc::now();
        let expires = expiry(now, 600);
        let (t, row) = tokens.issue("ns", "sa", "u1", expires);
        assert_eq!(row.hash, hash(&t));
        assert_ne!(&row.hash[..], t.as_bytes());
        assert_eq!(
            (row.namespace.as_str(), row.name.as_str(), row.uid.as_str()),
            ("ns", "sa", "u1")
        );
        assert_eq!(row.expires, expires.timestamp());
        let exists = |_: &str, _: &str| Some("u1".to_string());
        let restored = Tokens::restore(vec![row.clone()]);
        let user = restored.resolve(&t, now, exists).unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:sa");
        assert!(restored.resolve(&t, expires, exists).is_none(), "expired");
        // A row whose expiry is out of range is left out, not a panic.
        let odd = Tokens::restore(vec![TokenRow {
            expires: i64::MAX,
            ..row
        }]);
        assert!(odd.resolve(&t, now, exists).is_none());
    }

    #[test]
    fn expiries_are_whole_seconds() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00.750Z")
            .unwrap()
            .with_timezone(&Utc);
        let table = [
            (600, "2030-01-01T00:10:00Z"),
            (3600, "2030-01-01T01:00:00Z"),
        ];
        for (seconds, want) in table {
            let got = expiry(now, seconds);
            assert_eq!(got.to_rfc3339_opts(SecondsFormat::AutoSi, true), want);
        }
    }

    #[test]
    fn requested_lifetimes() {
        let table = [
            (json!({}), Ok(3600)),
            (json!({"spec": {}}), Ok(3600)),
            (json!({"spec": {"expirationSeconds": null}}), Ok(3600)),
            (json!({"spec": {"expirationSeconds": 600}}), Ok(600)),
            (json!({"spec": {"expirationSeconds": 86400}}), Ok(86400)),
            (json!({"spec": {"expirationSeconds": 599}}), Err(422)),
            (json!({"spec": {"expirationSeconds": 1u64 << 40}}), Err(422)),
        ];
        for (body, want) in table {
            assert_eq!(requested_seconds(&body).map_err(|e| e.code), want, "{body}");
        }
    }

    #[test]
    fn the_response_carries_the_token_and_its_expiry() {
        let exp = DateTime::parse_from_rfc3339("2030-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = response(&json!({"spec": {}}), "ns", "sa", 3600, "tok", exp);
        assert_eq!(r["status"]["token"], "tok");
        assert_eq!(r["status"]["expirationTimestamp"], "2030-01-01T01:00:00Z");
        assert_eq!(r["spec"]["expirationSeconds"], 3600);
        assert_eq!(r["spec"]["audiences"][0], DEFAULT_AUDIENCE);
        assert_eq!(r["metadata"]["name"], "sa");
        assert_eq!(r["kind"], "TokenRequest");
    }
}
