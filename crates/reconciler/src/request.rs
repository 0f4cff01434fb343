//! The bodies of KubeVirt's subresource requests (`kubevirt.io/v1` `StartOptions`,
//! `StopOptions`, `RestartOptions`, `PauseOptions`, `UnpauseOptions`) as serde types, and the
//! one request type that both transports carry: virtctl serializes it into the PUT body, or
//! hands it to the executor itself; the subresource API decodes the body into it.
//!
//! Empty and unset fields are left out when encoding, so the bodies are byte for byte the ones
//! KubeVirt's virtctl sends. Decoding follows Go's: unknown fields are ignored, `null` is unset.

use serde::{Deserialize, Deserializer, Serialize};

use crate::intent::IntentError;

/// The only `dryRun` value the API server knows.
pub const DRY_RUN_ALL: &str = "All";

/// Go's decoding: `null` leaves a field at its zero value.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The body of `start`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StartOptions {
    /// Start the guest paused: the Start request carries `{"paused":"true"}`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub paused: bool,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dry_run: Vec<String>,
}

/// The body of `stop`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StopOptions {
    /// virtctl's `--force --grace-period N`: the new `terminationGracePeriodSeconds` of the VMI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dry_run: Vec<String>,
}

/// The body of `restart`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestartOptions {
    /// `Some(0)` is a force restart. Any other value is refused with 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dry_run: Vec<String>,
}

/// The body of `pause`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PauseOptions {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dry_run: Vec<String>,
}

/// The body of `unpause`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnpauseOptions {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dry_run: Vec<String>,
}

/// `dryRun` as a flag: unset means a real write, `["All"]` a dry run, and anything else is
/// refused with 400 before anything is written (a misspelt `["all"]` must never write).
pub fn dry_run(values: &[String]) -> Result<bool, IntentError> {
    match values.iter().find(|v| *v != DRY_RUN_ALL) {
        Some(bad) => Err(IntentError::bad_request(format!(
            "dryRun: Unsupported value: {bad:?}: supported values: \"{DRY_RUN_ALL}\""
        ))),
        None => Ok(!values.is_empty()),
    }
}

/// `["All"]` for a dry run, nothing otherwise.
pub fn dry_run_values(dry_run: bool) -> Vec<String> {
    if dry_run {
        vec![DRY_RUN_ALL.to_string()]
    } else {
        Vec::new()
    }
}

/// A lifecycle request on a VirtualMachine: `PUT .../virtualmachines/{name}/{verb}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleRequest {
    Start(StartOptions),
    Stop(StopOptions),
    Restart(RestartOptions),
}

/// A request on a VirtualMachineInstance: `PUT .../virtualmachineinstances/{name}/{verb}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmiRequest {
    Pause(PauseOptions),
    Unpause(UnpauseOptions),
    /// No body: KubeVirt's `reset` reads none.
    Reset,
    /// No body, as `reset`.
    SoftReboot,
}

/// A body that is not JSON or YAML of the expected shape: virt-api's 400.
fn undecodable(e: impl std::fmt::Display) -> IntentError {
    IntentError::bad_request(format!(
        "Can not unmarshal Request body to struct, error: {e}"
    ))
}

/// Decodes an optional JSON or YAML body (empty means all defaults).
fn decode<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, IntentError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<T>(body).or_else(|json_err| {
        let text = std::str::from_utf8(body).map_err(|_| undecodable(&json_err))?;
        serde_saphyr::from_str::<T>(text).map_err(|_| undecodable(&json_err))
    })
}

fn encode<T: Serialize>(options: &T) -> Vec<u8> {
    serde_json::to_vec(options).expect("plain structs serialize")
}

impl LifecycleRequest {
    /// The subresource, which is also the verb of virtctl's success line.
    pub fn verb(&self) -> &'static str {
        match self {
            LifecycleRequest::Start(_) => "start",
            LifecycleRequest::Stop(_) => "stop",
            LifecycleRequest::Restart(_) => "restart",
        }
    }

    /// The PUT body.
    pub fn body(&self) -> Vec<u8> {
        match self {
            LifecycleRequest::Start(o) => encode(o),
            LifecycleRequest::Stop(o) => encode(o),
            LifecycleRequest::Restart(o) => encode(o),
        }
    }

    /// The request for `verb` with this body; `None` for a verb this API does not have.
    pub fn decode(verb: &str, body: &[u8]) -> Option<Result<Self, IntentError>> {
        Some(match verb {
            "start" => decode(body).map(LifecycleRequest::Start),
            "stop" => decode(body).map(LifecycleRequest::Stop),
            "restart" => decode(body).map(LifecycleRequest::Restart),
            _ => return None,
        })
    }

    pub fn dry_run(&self) -> &[String] {
        match self {
            LifecycleRequest::Start(o) => &o.dry_run,
            LifecycleRequest::Stop(o) => &o.dry_run,
            LifecycleRequest::Restart(o) => &o.dry_run,
        }
    }
}

impl VmiRequest {
    pub fn verb(&self) -> &'static str {
        match self {
            VmiRequest::Pause(_) => "pause",
            VmiRequest::Unpause(_) => "unpause",
            VmiRequest::Reset => "reset",
            VmiRequest::SoftReboot => "softreboot",
        }
    }

    pub fn body(&self) -> Vec<u8> {
        match self {
            VmiRequest::Pause(o) => encode(o),
            VmiRequest::Unpause(o) => encode(o),
            VmiRequest::Reset | VmiRequest::SoftReboot => Vec::new(),
        }
    }

    /// The request for `verb` with this body; `None` for a verb this API does not have.
    pub fn decode(verb: &str, body: &[u8]) -> Option<Result<Self, IntentError>> {
        Some(match verb {
            "pause" => decode(body).map(VmiRequest::Pause),
            "unpause" => decode(body).map(VmiRequest::Unpause),
            // virt-api ignores any body of these.
            "reset" => Ok(VmiRequest::Reset),
            "softreboot" => Ok(VmiRequest::SoftReboot),
            _ => return None,
        })
    }

    pub fn dry_run(&self) -> &[String] {
        match self {
            VmiRequest::Pause(o) => &o.dry_run,
            VmiRequest::Unpause(o) => &o.dry_run,
            VmiRequest::Reset | VmiRequest::SoftReboot => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: Vec<u8>) -> String {
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn bodies_are_the_ones_kubevirts_virtctl_sends() {
        let all = || dry_run_values(true);
        let cases = [
            (LifecycleRequest::Start(StartOptions::default()), "{}"),
            (
                LifecycleRequest::Start(StartOptions {
                    paused: true,
                    dry_run: all(),
                }),
                r#"{"paused":true,"dryRun":["All"]}"#,
            ),
            (LifecycleRequest::Stop(StopOptions::default()), "{}"),
            (
                LifecycleRequest::Stop(StopOptions {
                    grace_period: Some(0),
                    dry_run: vec![],
                }),
                r#"{"gracePeriod":0}"#,
            ),
            (
                LifecycleRequest::Restart(RestartOptions {
                    grace_period_seconds: Some(0),
                    dry_run: all(),
                }),
                r#"{"gracePeriodSeconds":0,"dryRun":["All"]}"#,
            ),
        ];
        for (request, want) in cases {
            assert_eq!(text(request.body()), want, "{request:?}");
            let back = LifecycleRequest::decode(request.verb(), want.as_bytes());
            assert_eq!(back, Some(Ok(request)));
        }
        let pause = VmiRequest::Pause(PauseOptions { dry_run: all() });
        assert_eq!(text(pause.body()), r#"{"dryRun":["All"]}"#);
        assert_eq!(
            text(VmiRequest::Unpause(UnpauseOptions::default()).body()),
            "{}"
        );
    }

    #[test]
    fn decoding_takes_json_yaml_nulls_unknown_fields_and_nothing() {
        let stop = |body: &str| LifecycleRequest::decode("stop", body.as_bytes());
        let want = |g: Option<i64>| {
            Some(Ok(LifecycleRequest::Stop(StopOptions {
                grace_period: g,
                dry_run: vec![],
            })))
        };
        assert_eq!(stop(""), want(None));
        assert_eq!(stop("  \n"), want(None));
        assert_eq!(stop(r#"{"gracePeriod":5,"other":1}"#), want(Some(5)));
        assert_eq!(stop("gracePeriod: 5\n"), want(Some(5)));
        assert_eq!(stop(r#"{"gracePeriod":null,"dryRun":null}"#), want(None));
        let start = LifecycleRequest::decode("start", br#"{"paused":null}"#);
        assert_eq!(
            start,
            Some(Ok(LifecycleRequest::Start(StartOptions::default())))
        );
    }

    #[test]
    fn malformed_bodies_and_unknown_verbs() {
        for body in ["{not json", "[1,2]", r#"{"gracePeriod":"soon"}"#, "\u{0}"] {
            let got = LifecycleRequest::decode("stop", body.as_bytes()).unwrap();
            let err = got.unwrap_err();
            assert_eq!((err.code, err.reason), (400, "BadRequest"), "{body:?}");
            assert!(
                err.message
                    .starts_with("Can not unmarshal Request body to struct, error: "),
                "{err:?}"
            );
        }
        assert_eq!(LifecycleRequest::decode("migrate", b"{}"), None);
        assert_eq!(VmiRequest::decode("start", b"{}"), None);
    }

    #[test]
    fn dry_run_is_all_or_nothing() {
        assert_eq!(dry_run(&[]), Ok(false));
        assert_eq!(dry_run(&dry_run_values(true)), Ok(true));
        for bad in [vec!["all"], vec!["All", "x"], vec![""], vec!["ALL"]] {
            let values: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let err = dry_run(&values).unwrap_err();
            assert_eq!(err.code, 400, "{bad:?}");
            assert!(
                err.message.starts_with("dryRun: Unsupported value: "),
                "{err:?}"
            );
            assert!(
                err.message.ends_with(r#"supported values: "All""#),
                "{err:?}"
            );
        }
    }
}
