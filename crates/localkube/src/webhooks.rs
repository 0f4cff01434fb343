//! Admission webhooks (`admissionregistration.k8s.io/v1` ValidatingWebhookConfiguration and
//! MutatingWebhookConfiguration) as pure decisions: the checks and defaults of the
//! configurations, which webhooks a request calls (rules, namespace and object selectors, the
//! Equivalent match policy), the AdmissionReview sent, how an answer is read (allowed, patch,
//! warnings), and the errors a client gets, worded as kube-apiserver 1.33 words them.
//! The IO (reaching Services, TLS, timeouts, calling in order or in parallel) is in
//! `webhook_dispatch`.

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::api::Operation;
use crate::rbac::UserInfo;
use crate::registry::ResourceType;
use crate::selectors::label_selector_from_object;
use crate::state::Core;
use crate::status::{ApiError, ApiResult, Cause};
use crate::strategy::Strategy;
use crate::validation::{NameRule, check_name, go_quote};

pub const GROUP: &str = "admissionregistration.k8s.io";

/// Whether requests for this resource are exempt from webhooks: the configurations themselves,
/// so that a broken webhook can always be removed.
pub fn is_exempt(group: &str, plural: &str) -> bool {
    group == GROUP
        && matches!(
            plural,
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations"
        )
}

/// The configurations' rules on write: kube-apiserver's checks and defaults.
pub struct WebhookConfigurations;

impl Strategy for WebhookConfigurations {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let causes = check_configuration(obj, phase_of_kind(&rt.kind));
        if causes.is_empty() {
            return Ok(());
        }
        let name = str_at(obj, "/metadata/name");
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }

    fn prepare_for_create(&self, rt: &ResourceType, obj: &mut Value) {
        set_defaults(obj, phase_of_kind(&rt.kind));
    }

    fn prepare_for_update(
        &self,
        _old: &Value,
        obj: &mut Value,
        _status_only: bool,
    ) -> ApiResult<()> {
        let phase = phase_of_kind(str_at(obj, "/kind"));
        set_defaults(obj, phase);
        Ok(())
    }
}

/// Which admission phase a webhook takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mutating,
    Validating,
}

fn phase_of_kind(kind: &str) -> Phase {
    if kind == "MutatingWebhookConfiguration" {
        Phase::Mutating
    } else {
        Phase::Validating
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A list of strings (absent, null and non-strings read as nothing).
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A present, non-null field.
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

// ---------------------------------------------------------------------------
// Checks and defaults of the configurations
// ---------------------------------------------------------------------------

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field: field.into(),
    }
}

/// `value` as Go prints it in field errors (already quoted for strings).
fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {}: supported values: {}",
            go_quote(value),
            list.join(", ")
        ),
        field: field.into(),
    }
}

/// A string list as Go's `%#v` prints it in field errors.
fn go_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

const OPERATIONS: [&str; 5] = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: [&str; 3] = ["*", "Cluster", "Namespaced"];
const FAILURE_POLICIES: [&str; 2] = ["Fail", "Ignore"];
const MATCH_POLICIES: [&str; 2] = ["Equivalent", "Exact"];
/// v1 only allows side effects that can be skipped on a dry run.
const SIDE_EFFECTS: [&str; 2] = ["None", "NoneOnDryRun"];
const REINVOCATION_POLICIES: [&str; 2] = ["IfNeeded", "Never"];
/// The AdmissionReview versions a configuration may name (localkube sends only v1).
const REVIEW_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
const URL_FORM: &str = "; desired format: https://host[/path]";

/// kube-apiserver's checks of a Validating- or MutatingWebhookConfiguration beyond its schema,
/// in its order and words, plus one of localkube's: `matchConditions` (CEL) are refused, not
/// silently ignored.
pub fn check_configuration(obj: &Value, phase: Phase) -> Vec<Cause> {
    let mut causes = Vec::new();
    let hooks = obj
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut names = HashSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let path = format!("webhooks[{i}]");
        check_webhook(hook, phase, &path, &mut causes);
        check_review_versions(hook, &path, &mut causes);
        let name = str_at(hook, "/name");
        if !name.is_empty() && !names.insert(name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: {}", go_quote(name)),
                field: format!("{path}.name"),
            });
        }
    }
    causes
}

fn check_webhook(hook: &Value, phase: Phase, path: &str, causes: &mut Vec<Cause>) {
    let name = str_at(hook, "/name");
    let name_path = format!("{path}.name");
    if name.is_empty() {
        causes.push(required(&name_path, ""));
    } else {
        let problems = check_name(name, NameRule::Dns1123Subdomain);
        if !problems.is_empty() {
            causes.push(invalid(&name_path, &go_quote(name), &problems.join(",")));
        } else if name.split('.').count() < 3 {
            causes.push(invalid(
                &name_path,
                &go_quote(name),
                "should be a domain with at least three segments separated by dots",
            ));
        }
    }
    for (i, rule) in hook
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_rule(rule, &format!("{path}.rules[{i}]"), causes);
    }
    let enums: &[(&str, &[&str])] = &[
        ("failurePolicy", &FAILURE_POLICIES),
        ("matchPolicy", &MATCH_POLICIES),
    ];
    for (key, allowed) in enums {
        if let Some(v) = field(hook, key).and_then(Value::as_str)
            && !allowed.contains(&v)
        {
            causes.push(not_supported(&format!("{path}.{key}"), v, allowed));
        }
    }
    let side_effects_path = format!("{path}.sideEffects");
    match field(hook, "sideEffects").and_then(Value::as_str) {
        None => causes.push(required(
            &side_effects_path,
            &format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        )),
        Some(v) if !SIDE_EFFECTS.contains(&v) => {
            causes.push(not_supported(&side_effects_path, v, &SIDE_EFFECTS));
        }
        Some(_) => {}
    }
    if let Some(t) = field(hook, "timeoutSeconds").and_then(Value::as_i64)
        && !(1..=30).contains(&t)
    {
        causes.push(invalid(
            &format!("{path}.timeoutSeconds"),
            &t.to_string(),
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    for key in ["namespaceSelector", "objectSelector"] {
        if let Some(sel) = field(hook, key)
            && let Err(e) = label_selector_from_object(sel)
        {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: e.to_string(),
                field: format!("{path}.{key}"),
            });
        }
    }
    if phase == Phase::Mutating
        && let Some(v) = field(hook, "reinvocationPolicy").and_then(Value::as_str)
        && !REINVOCATION_POLICIES.contains(&v)
    {
        causes.push(not_supported(
            &format!("{path}.reinvocationPolicy"),
            v,
            &REINVOCATION_POLICIES,
        ));
    }
    let client_path = format!("{path}.clientConfig");
    let client = hook.get("clientConfig").unwrap_or(&Value::Null);
    match (
        field(client, "url").and_then(Value::as_str),
        field(client, "service"),
    ) {
        (Some(url), None) => causes.extend(check_url(url, &format!("{client_path}.url"))),
        (None, Some(svc)) => causes.extend(check_service(svc, &format!("{client_path}.service"))),
        _ => causes.push(required(
            &client_path,
            "exactly one of url or service is required",
        )),
    }
    if hook
        .get("matchConditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: localkube does not evaluate CEL match conditions; remove them and select requests with rules, namespaceSelector and objectSelector".into(),
            field: format!("{path}.matchConditions"),
        });
    }
}

fn check_rule(rule: &Value, path: &str, causes: &mut Vec<Cause>) {
    let ops = strings(rule.get("operations"));
    let ops_path = format!("{path}.operations");
    if ops.is_empty() {
        causes.push(required(&ops_path, ""));
    }
    if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        causes.push(invalid(
            &ops_path,
            &go_strings(&ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            causes.push(not_supported(&format!("{ops_path}[{i}]"), op, &OPERATIONS));
        }
    }
    for (key, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let items = strings(rule.get(key));
        let p = format!("{path}.{key}");
        if items.is_empty() {
            causes.push(required(&p, ""));
        }
        if items.len() > 1 && items.iter().any(|g| g == "*") {
            causes.push(invalid(
                &p,
                &go_strings(&items),
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
        if key == "apiVersions" {
            for (i, v) in items.iter().enumerate() {
                if v.is_empty() {
                    causes.push(required(&format!("{p}[{i}]"), ""));
                }
            }
        }
    }
    check_resources(
        &strings(rule.get("resources")),
        &format!("{path}.resources"),
        causes,
    );
    if let Some(scope) = field(rule, "scope").and_then(Value::as_str)
        && !SCOPES.contains(&scope)
    {
        causes.push(not_supported(&format!("{path}.scope"), scope, &SCOPES));
    }
}

/// Resources with subresources: `x`, `x/y`, `x/*`, `*/y`, `*` and `*/*`, without overlaps.
fn check_resources(resources: &[String], path: &str, causes: &mut Vec<Cause>) {
    if resources.is_empty() {
        causes.push(required(path, ""));
    }
    let mut with_any_sub: HashSet<&str> = HashSet::new();
    let mut sub_of_any: HashSet<&str> = HashSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, r) in resources.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if r.is_empty() {
            causes.push(required(&p, ""));
            continue;
        }
        double |= r == "*/*";
        single |= r == "*";
        let Some((res, sub)) = r.split_once('/') else {
            plain = r != "*";
            continue;
        };
        if with_any_sub.contains(res) {
            causes.push(invalid(
                &p,
                &go_quote(r),
                &format!("if '{res}/*' is present, must not specify {r}"),
            ));
        }
        if sub_of_any.contains(sub) {
            causes.push(invalid(
                &p,
                &go_quote(r),
                &format!("if '*/{sub}' is present, must not specify {r}"),
            ));
        }
        if sub == "*" {
            with_any_sub.insert(res);
        }
        if res == "*" {
            sub_of_any.insert(sub);
        }
    }
    if resources.len() > 1 && double {
        causes.push(invalid(
            path,
            &go_strings(resources),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        causes.push(invalid(
            path,
            &go_strings(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// The parts of a webhook URL, without its fragment: (scheme, userinfo, host, port, path,
/// query, fragment), or why it does not parse.
struct UrlParts {
    scheme: String,
    userinfo: String,
    host: String,
    port: Option<u16>,
    path: String,
    query: String,
    fragment: String,
}

fn parse_url(url: &str) -> Result<UrlParts, String> {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, f.to_string()),
        None => (url, String::new()),
    };
    let uri: http::Uri = rest
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| u.to_string())
        .unwrap_or_default();
    Ok(UrlParts {
        scheme: uri.scheme_str().unwrap_or("").to_string(),
        userinfo,
        host: uri.host().unwrap_or("").to_string(),
        port: uri.port_u16(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        fragment,
    })
}

fn check_url(url: &str, path: &str) -> Vec<Cause> {
    let parts = match parse_url(url) {
        Ok(p) => p,
        Err(e) => {
            return vec![required(
                path,
                &format!("url must be a valid URL: {e}{URL_FORM}"),
            )];
        }
    };
    let mut causes = Vec::new();
    if parts.scheme != "https" {
        causes.push(invalid(
            path,
            &go_quote(&parts.scheme),
            &format!("'https' is the only allowed URL scheme{URL_FORM}"),
        ));
    }
    if parts.host.is_empty() {
        causes.push(invalid(
            path,
            "\"\"",
            &format!("host must be provided{URL_FORM}"),
        ));
    }
    if !parts.userinfo.is_empty() {
        causes.push(invalid(
            path,
            &go_quote(&parts.userinfo),
            "user information is not permitted in the URL",
        ));
    }
    if !parts.fragment.is_empty() {
        causes.push(invalid(
            path,
            &go_quote(&parts.fragment),
            "fragments are not permitted in the URL",
        ));
    }
    if !parts.query.is_empty() {
        causes.push(invalid(
            path,
            &go_quote(&parts.query),
            "query parameters are not permitted in the URL",
        ));
    }
    causes
}

fn check_service(svc: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if str_at(svc, "/name").is_empty() {
        causes.push(required(
            &format!("{path}.name"),
            "service name is required",
        ));
    }
    if str_at(svc, "/namespace").is_empty() {
        causes.push(required(
            &format!("{path}.namespace"),
            "service namespace is required",
        ));
    }
    let port = field(svc, "port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        causes.push(invalid(
            &format!("{path}.port"),
            &port.to_string(),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(url_path) = field(svc, "path").and_then(Value::as_str) else {
        return causes;
    };
    let path_field = format!("{path}.path");
    if url_path.is_empty() || url_path == "/" {
        return causes;
    }
    if url_path == "//" {
        causes.push(invalid(
            &path_field,
            &go_quote(url_path),
            "segment[0] may not be empty",
        ));
        return causes;
    }
    if !url_path.starts_with('/') {
        causes.push(invalid(
            &path_field,
            &go_quote(url_path),
            "must start with a '/'",
        ));
    }
    let inner = url_path.get(1..).unwrap_or("");
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    for (i, step) in inner.split('/').enumerate() {
        if step.is_empty() {
            causes.push(invalid(
                &path_field,
                &go_quote(url_path),
                &format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for problem in check_name(step, NameRule::Dns1123Subdomain) {
            causes.push(invalid(
                &path_field,
                &go_quote(url_path),
                &format!("segment[{i}]: {problem}"),
            ));
        }
    }
    causes
}

fn check_review_versions(hook: &Value, path: &str, causes: &mut Vec<Cause>) {
    let versions = strings(hook.get("admissionReviewVersions"));
    let p = format!("{path}.admissionReviewVersions");
    if versions.is_empty() {
        causes.push(required(
            &p,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, v) in versions.iter().enumerate() {
        if !seen.insert(v.as_str()) {
            causes.push(invalid(
                &format!("{p}[{i}]"),
                &go_quote(v),
                "duplicate version",
            ));
            continue;
        }
        for problem in check_name(v, NameRule::Dns1035Label) {
            causes.push(invalid(&format!("{p}[{i}]"), &go_quote(v), &problem));
        }
        accepted |= REVIEW_VERSIONS.contains(&v.as_str());
    }
    if !accepted {
        causes.push(invalid(
            &p,
            &go_strings(&versions),
            &format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
}

/// kube-apiserver's defaults of a v1 configuration.
pub fn set_defaults(obj: &mut Value, phase: Phase) {
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
        if m.get(key).is_none_or(Value::is_null) {
            m.insert(key.to_string(), value);
        }
    }
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        default(hook, "failurePolicy", json!("Fail"));
        default(hook, "matchPolicy", json!("Equivalent"));
        default(hook, "namespaceSelector", json!({}));
        default(hook, "objectSelector", json!({}));
        default(hook, "timeoutSeconds", json!(10));
        if phase == Phase::Mutating {
            default(hook, "reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                default(rule, "scope", json!("*"));
            }
        }
        if let Some(svc) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            default(svc, "port", json!(443));
        }
    }
}

// ---------------------------------------------------------------------------
// Webhooks as stored, and which ones a request calls
// ---------------------------------------------------------------------------

/// One rule of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operations: Vec<String>,
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
}

/// Where a webhook is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientConfig {
    Url(String),
    Service {
        namespace: String,
        name: String,
        port: u16,
        path: String,
    },
}

/// One webhook of a stored (so valid and defaulted) configuration.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub configuration: String,
    pub name: String,
    pub phase: Phase,
    pub rules: Vec<Rule>,
    /// `failurePolicy: Ignore`: a failed call is skipped.
    pub ignore_failures: bool,
    pub namespace_selector: Value,
    pub object_selector: Value,
    pub side_effects: String,
    pub timeout_seconds: u64,
    pub review_versions: Vec<String>,
    pub client: ClientConfig,
    /// `clientConfig.caBundle`, decoded.
    pub ca_bundle: Vec<u8>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke_if_needed: bool,
}

/// The webhooks of a configuration, in their order.
pub fn webhooks_of(configuration: &Value, phase: Phase) -> Vec<Webhook> {
    let config_name = str_at(configuration, "/metadata/name");
    let hooks = configuration
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    hooks
        .iter()
        .map(|h| {
            let client = h.get("clientConfig").unwrap_or(&Value::Null);
            let client_config = match field(client, "service") {
                Some(svc) => ClientConfig::Service {
                    namespace: str_at(svc, "/namespace").to_string(),
                    name: str_at(svc, "/name").to_string(),
                    port: field(svc, "port")
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(443),
                    path: str_at(svc, "/path").to_string(),
                },
                None => ClientConfig::Url(str_at(client, "/url").to_string()),
            };
            Webhook {
                configuration: config_name.to_string(),
                name: str_at(h, "/name").to_string(),
                phase,
                rules: h
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| Rule {
                        operations: strings(r.get("operations")),
                        groups: strings(r.get("apiGroups")),
                        versions: strings(r.get("apiVersions")),
                        resources: strings(r.get("resources")),
                        scope: field(r, "scope")
                            .and_then(Value::as_str)
                            .unwrap_or("*")
                            .to_string(),
                    })
                    .collect(),
                ignore_failures: str_at(h, "/failurePolicy") == "Ignore",
                namespace_selector: h.get("namespaceSelector").cloned().unwrap_or(Value::Null),
                object_selector: h.get("objectSelector").cloned().unwrap_or(Value::Null),
                side_effects: str_at(h, "/sideEffects").to_string(),
                timeout_seconds: field(h, "timeoutSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(10),
                review_versions: strings(h.get("admissionReviewVersions")),
                client: client_config,
                ca_bundle: base64::engine::general_purpose::STANDARD
                    .decode(str_at(client, "/caBundle"))
                    .unwrap_or_default(),
                reinvoke_if_needed: phase == Phase::Mutating
                    && str_at(h, "/reinvocationPolicy") == "IfNeeded",
            }
        })
        .collect()
}

/// One call of the first round of mutating webhooks: which webhook (its index in call order),
/// and whether its answer changed the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Called {
    pub index: usize,
    pub reinvoke_if_needed: bool,
    pub changed: bool,
}

/// The webhooks called a second time, in call order: those with `reinvocationPolicy:
/// IfNeeded` that a later webhook's change followed. There is no third round.
pub fn to_reinvoke(first_round: &[Called]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for (i, call) in first_round.iter().enumerate() {
        if call.changed {
            for earlier in &first_round[..i] {
                if earlier.reinvoke_if_needed && !out.contains(&earlier.index) {
                    out.push(earlier.index);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// The order webhooks are called in: by configuration name, then as listed.
pub fn call_order(mut hooks: Vec<Webhook>) -> Vec<Webhook> {
    hooks.sort_by(|a, b| a.configuration.cmp(&b.configuration));
    hooks
}

/// A group, version and resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// A group, version and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvr {
    pub fn of(rt: &ResourceType) -> Self {
        Gvr {
            group: rt.group.clone(),
            version: rt.version.clone(),
            resource: rt.plural.clone(),
        }
    }
}

impl Gvk {
    /// The kind of a resource type's objects.
    pub fn of(rt: &ResourceType) -> Self {
        Gvk {
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
        }
    }

    /// A core `v1` kind (the objects of subresources: `Binding`, `PodPortForwardOptions`).
    pub fn core_v1(kind: &str) -> Self {
        Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
        }
    }
}

/// What admission knows of one write.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub operation: Operation,
    pub resource: &'a Gvr,
    pub subresource: &'a str,
    pub kind: &'a Gvk,
    /// For a Namespace, its own name (as kube-apiserver sets it).
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
    /// CreateOptions, UpdateOptions or DeleteOptions.
    pub options: &'a Value,
    /// Who asked for the write (`userInfo`).
    pub user: &'a UserInfo,
}

fn is_namespaces(r: &Gvr) -> bool {
    r.group.is_empty() && r.version == "v1" && r.resource == "namespaces"
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// Whether a rule names this operation on this resource and subresource, in this scope.
pub fn rule_matches(
    rule: &Rule,
    op: Operation,
    resource: &Gvr,
    subresource: &str,
    namespace: &str,
) -> bool {
    let scope = match rule.scope.as_str() {
        "*" => true,
        "Namespaced" => !is_namespaces(resource) && !namespace.is_empty(),
        "Cluster" => is_namespaces(resource) || namespace.is_empty(),
        _ => false,
    };
    let operation = rule.operations.iter().any(|o| o == "*" || o == op.as_str());
    let named = rule.resources.iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == resource.resource) && (sub == "*" || sub == subresource)
    });
    scope
        && operation
        && exact_or_wildcard(&rule.groups, &resource.group)
        && exact_or_wildcard(&rule.versions, &resource.version)
        && named
}

/// The resource a webhook is called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The request's own.
    Requested,
    /// The `i`th equivalent resource (the same objects in another version or group), which a
    /// rule names when none names the request's own (matchPolicy Equivalent).
    Equivalent(usize),
}

/// The resource a webhook's rules name, if any. Both match policies are read as Equivalent:
/// earlier rules first, each tried on every equivalent resource.
pub fn matching_resource(
    hook: &Webhook,
    attrs: &Attributes,
    equivalents: &[Gvr],
) -> Option<Target> {
    let matches = |r: &Gvr| {
        hook.rules
            .iter()
            .any(|rule| rule_matches(rule, attrs.operation, r, attrs.subresource, attrs.namespace))
    };
    if matches(attrs.resource) {
        return Some(Target::Requested);
    }
    for rule in &hook.rules {
        for (i, eq) in equivalents.iter().enumerate() {
            if rule_matches(
                rule,
                attrs.operation,
                eq,
                attrs.subresource,
                attrs.namespace,
            ) {
                return Some(Target::Equivalent(i));
            }
        }
    }
    None
}

fn labels_of(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether the namespace selector selects the request: always for cluster-scoped objects
/// (but Namespaces); a Namespace being written by its own labels, any other object by those
/// of its namespace (`namespace_labels`, None when it does not exist: a 404).
fn namespace_selected(
    hook: &Webhook,
    attrs: &Attributes,
    namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
) -> ApiResult<bool> {
    if attrs.namespace.is_empty() && attrs.resource.resource != "namespaces" {
        return Ok(true);
    }
    let selector =
        label_selector_from_object(&hook.namespace_selector).map_err(ApiError::internal_error)?;
    if selector.is_empty() {
        return Ok(true);
    }
    let own = attrs.resource.resource == "namespaces"
        && attrs.subresource.is_empty()
        && matches!(attrs.operation, Operation::Create | Operation::Update);
    let labels = match (own, attrs.object) {
        (true, Some(obj)) => {
            let mut labels = labels_of(obj);
            // kube-apiserver defaults this label before admission; localkube sets it later.
            labels
                .entry("kubernetes.io/metadata.name")
                .or_insert_with(|| json!(attrs.name));
            labels
        }
        _ => namespace_labels(attrs.namespace)
            .ok_or_else(|| ApiError::not_found("", "namespaces", attrs.namespace))?,
    };
    Ok(selector.matches(&labels))
}

/// Whether the object selector selects the object or, failing that, the old object.
fn object_selected(hook: &Webhook, attrs: &Attributes) -> ApiResult<bool> {
    let selector =
        label_selector_from_object(&hook.object_selector).map_err(ApiError::internal_error)?;
    if selector.is_empty() {
        return Ok(true);
    }
    Ok([attrs.object, attrs.old_object]
        .into_iter()
        .flatten()
        .any(|o| selector.matches(&labels_of(o))))
}

/// Whether a webhook is called for a request, and for which resource. Selector errors only
/// count for webhooks whose rules match, as in kube-apiserver.
pub fn should_call(
    hook: &Webhook,
    attrs: &Attributes,
    equivalents: &[Gvr],
    namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
) -> ApiResult<Option<Target>> {
    let namespace = namespace_selected(hook, attrs, namespace_labels);
    if matches!(namespace, Ok(false)) {
        return Ok(None);
    }
    let object = object_selected(hook, attrs);
    if matches!(object, Ok(false)) {
        return Ok(None);
    }
    let Some(target) = matching_resource(hook, attrs, equivalents) else {
        return Ok(None);
    };
    namespace?;
    object?;
    Ok(Some(target))
}

// ---------------------------------------------------------------------------
// The call: request, answer, and what the client gets
// ---------------------------------------------------------------------------

/// The refusal of a dry run by a webhook that may have side effects.
pub fn refuses_dry_run(hook: &Webhook, dry_run: bool) -> Option<ApiError> {
    let safe = matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun");
    (dry_run && !safe).then(|| {
        ApiError::bad_request(format!(
            "admission webhook {} does not support dry run",
            go_quote(&hook.name)
        ))
    })
}

/// Why the AdmissionReview cannot be sent: localkube speaks only `admission.k8s.io/v1`.
pub fn unsupported_review_versions(hook: &Webhook) -> Option<String> {
    (!hook.review_versions.iter().any(|v| v == "v1")).then(|| {
        "could not create admission objects: webhook does not accept known AdmissionReview versions (v1)".to_string()
    })
}

/// The `admission.k8s.io/v1` AdmissionReview for one call. `resource`/`kind` are those the
/// webhook is called for, `object`/`old` in that version.
pub fn review_request(
    uid: &str,
    attrs: &Attributes,
    resource: &Gvr,
    kind: &Gvk,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let gvk = |k: &Gvk| json!({"group": k.group, "version": k.version, "kind": k.kind});
    let gvr = |r: &Gvr| json!({"group": r.group, "version": r.version, "resource": r.resource});
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    request.insert("kind".into(), gvk(kind));
    request.insert("resource".into(), gvr(resource));
    if !attrs.subresource.is_empty() {
        request.insert("subResource".into(), json!(attrs.subresource));
    }
    request.insert("requestKind".into(), gvk(attrs.kind));
    request.insert("requestResource".into(), gvr(attrs.resource));
    if !attrs.subresource.is_empty() {
        request.insert("requestSubResource".into(), json!(attrs.subresource));
    }
    if !attrs.name.is_empty() {
        request.insert("name".into(), json!(attrs.name));
    }
    if !attrs.namespace.is_empty() {
        request.insert("namespace".into(), json!(attrs.namespace));
    }
    request.insert("operation".into(), json!(attrs.operation.as_str()));
    request.insert(
        "userInfo".into(),
        json!({"username": attrs.user.name, "groups": attrs.user.groups}),
    );
    request.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    request.insert("oldObject".into(), old.cloned().unwrap_or(Value::Null));
    request.insert("dryRun".into(), json!(attrs.dry_run));
    request.insert("options".into(), attrs.options.clone());
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": request,
    })
}

/// The options object of a create or an update, as the AdmissionRequest carries it.
pub fn write_options_object(
    op: Operation,
    dry_run: bool,
    field_manager: Option<&str>,
    field_validation: Option<&str>,
) -> Value {
    let kind = if op == Operation::Update {
        "UpdateOptions"
    } else {
        "CreateOptions"
    };
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        o["fieldManager"] = json!(m);
    }
    if let Some(v) = field_validation.filter(|v| !v.is_empty()) {
        o["fieldValidation"] = json!(v);
    }
    o
}

/// A webhook's answer, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub allowed: bool,
    /// `response.patch`, decoded from base64, with `response.patchType`.
    pub patch: Option<(Vec<u8>, String)>,
    /// `response.status`.
    pub status: Option<Value>,
    pub warnings: Vec<String>,
}

/// Reads a webhook's HTTP body. An error is a failed call, which `failurePolicy` may ignore.
pub fn read_answer(uid: &str, phase: Phase, body: &[u8]) -> Result<Answer, String> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| format!("failed to call webhook: {e}"))?;
    let invalid = |why: String| format!("received invalid webhook response: {why}");
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got_uid = str_at(response, "/uid");
    if got_uid != uid {
        return Err(invalid(format!(
            "expected response.uid={}, got {}",
            go_quote(uid),
            go_quote(got_uid)
        )));
    }
    let (av, kind) = (str_at(&review, "/apiVersion"), str_at(&review, "/kind"));
    if av != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={kind}"
        )));
    }
    let patch_b64 = field(response, "patch").and_then(Value::as_str);
    let patch_type = field(response, "patchType").and_then(Value::as_str);
    let patch = match patch_b64 {
        Some(p) if !p.is_empty() => Some(
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("failed to call webhook: illegal base64 data: {e}"))?,
        ),
        _ => None,
    };
    let patch = match phase {
        Phase::Mutating => match (patch, patch_type) {
            (Some(_), None) => {
                return Err(invalid(
                    "webhook returned response.patch but not response.patchType".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "webhook returned response.patchType but not response.patch".into(),
                ));
            }
            (Some(_), Some("")) => {
                return Err(invalid(
                    "webhook returned invalid response.patchType of \"\"".into(),
                ));
            }
            (Some(p), Some(t)) => Some((p, t.to_string())),
            (None, None) => None,
        },
        Phase::Validating => {
            if patch.is_some() {
                return Err(invalid(
                    "validating webhook may not return response.patch".into(),
                ));
            }
            if patch_type.is_some() {
                return Err(invalid(
                    "validating webhook may not return response.patchType".into(),
                ));
            }
            None
        }
    };
    Ok(Answer {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        patch,
        status: field(response, "status").cloned(),
        warnings: strings(response.get("warnings")),
    })
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Allowed (and any patch applied).
    Allowed,
    /// The call failed: the request fails with `call_failed` unless the failure policy is
    /// Ignore. The text is the reason, after `failed calling webhook "NAME": `.
    CallFailed(String),
    /// The request fails with this, whatever the failure policy.
    Refused(ApiError),
}

/// The request's failure for a failed call, or None when the webhook's failures are ignored.
pub fn call_failed(hook: &Webhook, reason: &str) -> Option<ApiError> {
    (!hook.ignore_failures).then(|| {
        ApiError::internal_error(format!(
            "failed calling webhook {}: {reason}",
            go_quote(&hook.name)
        ))
    })
}

/// kube-apiserver's error for a denial: the webhook's status with its code (400 when it
/// gives none below 400), reason and details, and the message prefixed with who denied it.
pub fn denied(hook_name: &str, status: Option<&Value>) -> ApiError {
    let status = status.filter(|s| s.is_object()).unwrap_or(&Value::Null);
    let denied_by = format!(
        "admission webhook {} denied the request",
        go_quote(hook_name)
    );
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let (message, reason) = (str_at(status, "/message"), str_at(status, "/reason"));
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError {
        code,
        reason: reason.to_string().into(),
        message,
        details: field(status, "details").cloned().map(Box::new),
    }
}

/// Applies a webhook's answer to the object under admission (None for DELETE): a denial, a
/// JSON patch (which may not change what the object is), or nothing.
pub fn admit_answer(hook: &Webhook, answer: &Answer, object: Option<&mut Value>) -> Outcome {
    if !answer.allowed {
        return Outcome::Refused(denied(&hook.name, answer.status.as_ref()));
    }
    let Some((patch, patch_type)) = &answer.patch else {
        return Outcome::Allowed;
    };
    if patch_type != "JSONPatch" {
        return Outcome::CallFailed(format!("unsupported patch type {}", go_quote(patch_type)));
    }
    let ops: json_patch::Patch = match serde_json::from_slice(patch) {
        Ok(ops) => ops,
        Err(e) => {
            return Outcome::CallFailed(format!(
                "received undecodable patch in webhook response: {e}"
            ));
        }
    };
    if ops.0.is_empty() {
        return Outcome::Allowed;
    }
    let Some(object) = object else {
        return Outcome::Refused(ApiError::internal_error(format!(
            "admission webhook {} attempted to modify the object, which is not supported for this operation",
            go_quote(&hook.name)
        )));
    };
    let mut patched = object.clone();
    if let Err(e) = crate::api::apply_json_patch_ops(&mut patched, ops) {
        return Outcome::Refused(ApiError::internal_error(e));
    }
    if let Some(e) = identity_changed(&hook.name, object, &patched) {
        return Outcome::Refused(e);
    }
    *object = patched;
    Outcome::Allowed
}

/// A patch may change anything but what the object is: an object with metadata, of the same
/// apiVersion and kind.
fn identity_changed(hook_name: &str, before: &Value, after: &Value) -> Option<ApiError> {
    if !after.is_object() || !after.get("metadata").is_some_and(Value::is_object) {
        return Some(ApiError::internal_error(format!(
            "admission webhook {} patched the object into one without metadata",
            go_quote(hook_name)
        )));
    }
    let type_of = |v: &Value| format!("{}, Kind={}", str_at(v, "/apiVersion"), str_at(v, "/kind"));
    let (was, now) = (type_of(before), type_of(after));
    (was != now).then(|| {
        ApiError::internal_error(format!(
            "admission webhook {} changed the object from {was} to {now}, which is not allowed",
            go_quote(hook_name)
        ))
    })
}

/// Where a webhook is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The name its certificate must carry.
    pub server_name: String,
    /// Path and query of the POST, `?timeout=` included.
    pub path: String,
    /// The URL as kube-apiserver's messages show it.
    pub url: String,
}

/// The `?timeout=` kube-apiserver adds: the webhook's timeout in whole seconds.
fn with_timeout(path: &str, timeout_seconds: u64) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("{path}?timeout={timeout_seconds}s")
}

/// The endpoint of a `url` clientConfig.
pub fn url_endpoint(url: &str, timeout_seconds: u64) -> Result<Endpoint, String> {
    let parts = parse_url(url)?;
    let path = with_timeout(&parts.path, timeout_seconds);
    let port = parts.port.unwrap_or(443);
    let authority = match parts.port {
        Some(p) => format!("{}:{p}", parts.host),
        None => parts.host.clone(),
    };
    Ok(Endpoint {
        url: format!("https://{authority}{path}"),
        server_name: parts
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        host: parts.host,
        port,
        path,
    })
}

/// The endpoint of a `service` clientConfig whose Service leads to `host`: its certificate
/// must be for `<name>.<namespace>.svc`.
pub fn service_endpoint(
    namespace: &str,
    name: &str,
    port: u16,
    path: &str,
    host: &str,
    timeout_seconds: u64,
) -> Endpoint {
    let server_name = format!("{name}.{namespace}.svc");
    let path = with_timeout(path, timeout_seconds);
    Endpoint {
        url: format!("https://{server_name}:{port}{path}"),
        host: host.to_string(),
        port,
        server_name,
        path,
    }
}

/// The URL in a message about a Service that cannot be reached (no host known).
pub fn service_url(namespace: &str, name: &str, port: u16, path: &str, timeout: u64) -> String {
    service_endpoint(namespace, name, port, path, "", timeout).url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ADMIN_USER;

    fn gvr(group: &str, version: &str, resource: &str) -> Gvr {
        Gvr {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
        }
    }

    fn rule(ops: &[&str], groups: &[&str], resources: &[&str], scope: &str) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            operations: v(ops),
            groups: v(groups),
            versions: vec!["*".into()],
            resources: v(resources),
            scope: scope.into(),
        }
    }

    fn valid_hook() -> Value {
        json!({
            "name": "check.example.com",
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    fn config_with(hook: Value) -> Value {
        json!({"metadata": {"name": "cfg"}, "webhooks": [hook]})
    }

    /// (change to a valid webhook, expected field, expected message start)
    #[test]
    fn bad_configurations_are_refused_with_kube_field_paths() {
        let table: Vec<(Value, &str, &str)> = vec![
            (json!({"name": ""}), "webhooks[0].name", "Required value"),
            (
                json!({"name": "short.name"}),
                "webhooks[0].name",
                "Invalid value: \"short.name\": should be a domain with at least three segments",
            ),
            (
                json!({"sideEffects": null}),
                "webhooks[0].sideEffects",
                "Required value: must specify one of None, NoneOnDryRun",
            ),
            (
                json!({"sideEffects": "Some"}),
                "webhooks[0].sideEffects",
                "Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            ),
            (
                json!({"failurePolicy": "Maybe"}),
                "webhooks[0].failurePolicy",
                "Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
            ),
            (
                json!({"timeoutSeconds": 31}),
                "webhooks[0].timeoutSeconds",
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            ),
            (
                json!({"timeoutSeconds": 0}),
                "webhooks[0].timeoutSeconds",
                "Invalid value: 0:",
            ),
            (
                json!({"admissionReviewVersions": []}),
                "webhooks[0].admissionReviewVersions",
                "Required value: must specify one of v1, v1beta1",
            ),
            (
                json!({"admissionReviewVersions": ["v2"]}),
                "webhooks[0].admissionReviewVersions",
                "Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1",
            ),
            (
                json!({"clientConfig": {}}),
                "webhooks[0].clientConfig",
                "Required value: exactly one of url or service is required",
            ),
            (
                json!({"clientConfig": {"url": "https://h/x", "service": {"namespace": "a", "name": "b"}}}),
                "webhooks[0].clientConfig",
                "Required value: exactly one of url or service is required",
            ),
            (
                json!({"clientConfig": {"url": "http://h/x"}}),
                "webhooks[0].clientConfig.url",
                "Invalid value: \"http\": 'https' is the only allowed URL scheme",
            ),
            (
                json!({"clientConfig": {"url": "https://h/x?a=b"}}),
                "webhooks[0].clientConfig.url",
                "Invalid value: \"a=b\": query parameters are not permitted in the URL",
            ),
            (
                json!({"clientConfig": {"url": "https://h/x#top"}}),
                "webhooks[0].clientConfig.url",
                "Invalid value: \"top\": fragments are not permitted in the URL",
            ),
            (
                json!({"clientConfig": {"url": "https://me@h/x"}}),
                "webhooks[0].clientConfig.url",
                "Invalid value: \"me\": user information is not permitted in the URL",
            ),
            (
                json!({"clientConfig": {"service": {"namespace": "ns"}}}),
                "webhooks[0].clientConfig.service.name",
                "Required value: service name is required",
            ),
            (
                json!({"clientConfig": {"service": {"namespace": "ns", "name": "s", "port": 0}}}),
                "webhooks[0].clientConfig.service.port",
                "Invalid value: 0: port is not valid",
            ),
            (
                json!({"clientConfig": {"service": {"namespace": "ns", "name": "s", "path": "x"}}}),
                "webhooks[0].clientConfig.service.path",
                "Invalid value: \"x\": must start with a '/'",
            ),
            (
                json!({"rules": [{"operations": [], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
                "webhooks[0].rules[0].operations",
                "Required value",
            ),
            (
                json!({"rules": [{"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
                "webhooks[0].rules[0].operations[0]",
                "Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
            ),
            (
                json!({"rules": [{"operations": ["*"], "apiGroups": ["*", "apps"], "apiVersions": ["v1"], "resources": ["pods"]}]}),
                "webhooks[0].rules[0].apiGroups",
                "Invalid value: []string{\"*\", \"apps\"}: if '*' is present, must not specify other API groups",
            ),
            (
                json!({"rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*", "pods"]}]}),
                "webhooks[0].rules[0].resources",
                "Invalid value: []string{\"*\", \"pods\"}: if '*' is present, must not specify other resources without subresources",
            ),
            (
                json!({"rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*/*", "pods/status"]}]}),
                "webhooks[0].rules[0].resources",
                "Invalid value: []string{\"*/*\", \"pods/status\"}: if '*/*' is present",
            ),
            (
                json!({"rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/*", "pods/status"]}]}),
                "webhooks[0].rules[0].resources[1]",
                "Invalid value: \"pods/status\": if 'pods/*' is present, must not specify pods/status",
            ),
            (
                json!({"rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Everywhere"}]}),
                "webhooks[0].rules[0].scope",
                "Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}),
                "webhooks[0].namespaceSelector",
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchConditions": [{"name": "c", "expression": "true"}]}),
                "webhooks[0].matchConditions",
                "Forbidden: localkube does not evaluate CEL match conditions",
            ),
        ];
        for (change, want_field, want_message) in table {
            let mut hook = valid_hook();
            for (k, v) in change.as_object().unwrap() {
                hook[k] = v.clone();
            }
            let causes = check_configuration(&config_with(hook), Phase::Validating);
            assert!(
                causes
                    .iter()
                    .any(|c| c.field == want_field && c.message.starts_with(want_message)),
                "{change}: want {want_field}: {want_message}, got {causes:?}"
            );
        }
        assert_eq!(
            check_configuration(&config_with(valid_hook()), Phase::Validating),
            []
        );
    }

    #[test]
    fn webhook_names_are_unique_and_reinvocation_is_checked_for_mutating_ones() {
        let cfg = json!({"webhooks": [valid_hook(), valid_hook()]});
        let causes = check_configuration(&cfg, Phase::Validating);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "webhooks[1].name");
        assert_eq!(causes[0].reason, "FieldValueDuplicate");
        let mut hook = valid_hook();
        hook["reinvocationPolicy"] = json!("Always");
        assert!(check_configuration(&config_with(hook.clone()), Phase::Validating).is_empty());
        let causes = check_configuration(&config_with(hook), Phase::Mutating);
        assert_eq!(causes[0].field, "webhooks[0].reinvocationPolicy");
    }

    #[test]
    fn defaults_are_kube_apiservers() {
        let mut cfg = config_with(json!({
            "name": "a.b.c",
            "rules": [{"operations": ["*"]}],
            "clientConfig": {"service": {"namespace": "ns", "name": "s"}},
            "timeoutSeconds": 3,
        }));
        set_defaults(&mut cfg, Phase::Mutating);
        let h = &cfg["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 3);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        let mut v = config_with(json!({"name": "a.b.c"}));
        set_defaults(&mut v, Phase::Validating);
        assert!(v["webhooks"][0].get("reinvocationPolicy").is_none());
        assert_eq!(v["webhooks"][0]["timeoutSeconds"], 10);
    }

    #[test]
    fn rules_match_operations_groups_resources_subresources_and_scopes() {
        use Operation::*;
        let pods = gvr("", "v1", "pods");
        let namespaces = gvr("", "v1", "namespaces");
        let crontabs = gvr("stable.example.com", "v1", "crontabs");
        // (rule, operation, resource, subresource, namespace, matches)
        let table = [
            (
                rule(&["CREATE"], &[""], &["pods"], "*"),
                Create,
                &pods,
                "",
                "ns",
                true,
            ),
            (
                rule(&["CREATE"], &[""], &["pods"], "*"),
                Update,
                &pods,
                "",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["pods"], "*"),
                Delete,
                &pods,
                "",
                "ns",
                true,
            ),
            (
                rule(&["*"], &["apps"], &["pods"], "*"),
                Create,
                &pods,
                "",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["pods"], "*"),
                Update,
                &pods,
                "status",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["pods/status"], "*"),
                Update,
                &pods,
                "status",
                "ns",
                true,
            ),
            (
                rule(&["*"], &[""], &["pods/status"], "*"),
                Update,
                &pods,
                "",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["pods/*"], "*"),
                Update,
                &pods,
                "",
                "ns",
                true,
            ),
            (
                rule(&["*"], &[""], &["pods/*"], "*"),
                Update,
                &pods,
                "binding",
                "ns",
                true,
            ),
            (
                rule(&["*"], &[""], &["*"], "*"),
                Update,
                &pods,
                "status",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["*/status"], "*"),
                Update,
                &pods,
                "status",
                "ns",
                true,
            ),
            (
                rule(&["*"], &["*"], &["*/*"], "*"),
                Update,
                &crontabs,
                "",
                "ns",
                true,
            ),
            (
                rule(&["*"], &["stable.example.com"], &["crontabs"], "*"),
                Create,
                &crontabs,
                "",
                "ns",
                true,
            ),
            (
                rule(&["*"], &[""], &["pods"], "Namespaced"),
                Create,
                &pods,
                "",
                "ns",
                true,
            ),
            (
                rule(&["*"], &[""], &["pods"], "Cluster"),
                Create,
                &pods,
                "",
                "ns",
                false,
            ),
            (
                rule(&["*"], &[""], &["namespaces"], "Cluster"),
                Create,
                &namespaces,
                "",
                "x",
                true,
            ),
            (
                rule(&["*"], &[""], &["namespaces"], "Namespaced"),
                Create,
                &namespaces,
                "",
                "x",
                false,
            ),
        ];
        for (i, (r, op, res, sub, ns, want)) in table.into_iter().enumerate() {
            assert_eq!(rule_matches(&r, op, res, sub, ns), want, "case {i}: {r:?}");
        }
    }

    fn hook_with(rules: Vec<Rule>, ns_sel: Value, obj_sel: Value) -> Webhook {
        Webhook {
            configuration: "cfg".into(),
            name: "h.example.com".into(),
            phase: Phase::Validating,
            rules,
            ignore_failures: false,
            namespace_selector: ns_sel,
            object_selector: obj_sel,
            side_effects: "None".into(),
            timeout_seconds: 10,
            review_versions: vec!["v1".into()],
            client: ClientConfig::Url("https://h/x".into()),
            ca_bundle: Vec::new(),
            reinvoke_if_needed: false,
        }
    }

    fn attrs<'a>(
        op: Operation,
        res: &'a Gvr,
        kind: &'a Gvk,
        ns: &'a str,
        obj: Option<&'a Value>,
        old: Option<&'a Value>,
        options: &'a Value,
    ) -> Attributes<'a> {
        Attributes {
            operation: op,
            resource: res,
            subresource: "",
            kind,
            namespace: ns,
            name: "x",
            object: obj,
            old_object: old,
            dry_run: false,
            options,
            user: Box::leak(Box::new(UserInfo::admin())),
        }
    }

    #[test]
    fn selectors_pick_namespaces_and_objects_by_their_labels() {
        let cms = gvr("", "v1", "configmaps");
        let cm_kind = Gvk {
            group: "".into(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
        };
        let all = vec![rule(&["*"], &["*"], &["*"], "*")];
        let labelled = json!({"metadata": {"labels": {"team": "a"}}});
        let plain = json!({"metadata": {}});
        let options = json!({});
        let ns_labels = |ns: &str| match ns {
            "watched" => Some(json!({"watch": "yes"}).as_object().unwrap().clone()),
            "other" => Some(Map::new()),
            _ => None,
        };
        let by_ns = hook_with(
            all.clone(),
            json!({"matchLabels": {"watch": "yes"}}),
            json!({}),
        );
        let by_obj = hook_with(
            all.clone(),
            json!({}),
            json!({"matchLabels": {"team": "a"}}),
        );
        let call = |h: &Webhook, ns: &str, obj: Option<&Value>, old: Option<&Value>| {
            let op = if obj.is_some() {
                Operation::Create
            } else {
                Operation::Delete
            };
            should_call(
                h,
                &attrs(op, &cms, &cm_kind, ns, obj, old, &options),
                &[],
                &ns_labels,
            )
        };
        assert_eq!(
            call(&by_ns, "watched", Some(&plain), None),
            Ok(Some(Target::Requested))
        );
        assert_eq!(call(&by_ns, "other", Some(&plain), None), Ok(None));
        assert_eq!(
            call(&by_ns, "gone", Some(&plain), None).unwrap_err().code,
            404
        );
        assert_eq!(
            call(&by_obj, "other", Some(&labelled), None),
            Ok(Some(Target::Requested))
        );
        assert_eq!(call(&by_obj, "other", Some(&plain), None), Ok(None));
        // A deletion is selected by the old object's labels.
        assert_eq!(
            call(&by_obj, "other", None, Some(&labelled)),
            Ok(Some(Target::Requested))
        );
        // A Namespace being created is selected by its own labels, its name label included.
        let namespaces = gvr("", "v1", "namespaces");
        let ns_kind = Gvk {
            group: "".into(),
            version: "v1".into(),
            kind: "Namespace".into(),
        };
        let by_name = hook_with(
            all,
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["x"]}]}),
            json!({}),
        );
        let a = attrs(
            Operation::Create,
            &namespaces,
            &ns_kind,
            "x",
            Some(&plain),
            None,
            &options,
        );
        assert_eq!(
            should_call(&by_name, &a, &[], &ns_labels),
            Ok(Some(Target::Requested))
        );
    }

    #[test]
    fn equivalent_resources_match_when_the_requested_one_does_not() {
        let v2 = gvr("stable.example.com", "v2", "crontabs");
        let v1 = gvr("stable.example.com", "v1", "crontabs");
        let kind = Gvk {
            group: "stable.example.com".into(),
            version: "v2".into(),
            kind: "CronTab".into(),
        };
        let mut only_v1 = rule(&["*"], &["stable.example.com"], &["crontabs"], "*");
        only_v1.versions = vec!["v1".into()];
        let hook = hook_with(vec![only_v1], json!({}), json!({}));
        let options = json!({});
        let a = attrs(Operation::Create, &v2, &kind, "ns", None, None, &options);
        assert_eq!(matching_resource(&hook, &a, &[]), None);
        assert_eq!(
            matching_resource(&hook, &a, &[v1]),
            Some(Target::Equivalent(0))
        );
    }

    #[test]
    fn reviews_carry_the_request_as_kube_apiserver_sends_it() {
        let pods = gvr("", "v1", "pods");
        let kind = Gvk {
            group: "".into(),
            version: "v1".into(),
            kind: "Pod".into(),
        };
        let obj = json!({"metadata": {"name": "p"}});
        let options = write_options_object(Operation::Update, true, Some("kubectl"), None);
        let mut a = attrs(
            Operation::Update,
            &pods,
            &kind,
            "ns",
            Some(&obj),
            Some(&obj),
            &options,
        );
        a.subresource = "status";
        a.dry_run = true;
        let r = review_request("u1", &a, &pods, &kind, Some(&obj), Some(&obj));
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        let req = &r["request"];
        assert_eq!(req["uid"], "u1");
        assert_eq!(
            req["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(req["resource"]["resource"], "pods");
        assert_eq!(req["subResource"], "status");
        assert_eq!(req["requestSubResource"], "status");
        assert_eq!(req["operation"], "UPDATE");
        assert_eq!(req["userInfo"]["username"], ADMIN_USER);
        assert_eq!(req["dryRun"], true);
        assert_eq!(req["options"]["kind"], "UpdateOptions");
        assert_eq!(req["options"]["dryRun"], json!(["All"]));
        let a = attrs(
            Operation::Delete,
            &pods,
            &kind,
            "ns",
            None,
            Some(&obj),
            &options,
        );
        let r = review_request("u2", &a, &pods, &kind, None, Some(&obj));
        assert_eq!(r["request"]["object"], Value::Null);
        assert_eq!(r["request"]["oldObject"], obj);
        assert!(r["request"].get("subResource").is_none());
    }

    #[test]
    fn answers_are_checked_as_kube_apiserver_checks_them() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let answer = |response: Value| {
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})).unwrap()
        };
        // (phase, body, Ok(allowed) or Err(message start))
        let table: Vec<(Phase, Vec<u8>, Result<bool, &str>)> = vec![
            (Phase::Validating, answer(json!({"uid": "u", "allowed": true})), Ok(true)),
            (Phase::Validating, answer(json!({"uid": "u", "allowed": false})), Ok(false)),
            (Phase::Validating, b"not json".to_vec(), Err("failed to call webhook: ")),
            (Phase::Validating, br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec(),
                Err("received invalid webhook response: webhook response was absent")),
            (Phase::Validating, answer(json!({"uid": "other", "allowed": true})),
                Err("received invalid webhook response: expected response.uid=\"u\", got \"other\"")),
            (Phase::Validating, br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u"}}"#.to_vec(),
                Err("received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1")),
            (Phase::Validating, answer(json!({"uid": "u", "allowed": true, "patch": b64("[]"), "patchType": "JSONPatch"})),
                Err("received invalid webhook response: validating webhook may not return response.patch")),
            (Phase::Mutating, answer(json!({"uid": "u", "allowed": true, "patch": b64("[]")})),
                Err("received invalid webhook response: webhook returned response.patch but not response.patchType")),
            (Phase::Mutating, answer(json!({"uid": "u", "allowed": true, "patchType": "JSONPatch"})),
                Err("received invalid webhook response: webhook returned response.patchType but not response.patch")),
            (Phase::Mutating, answer(json!({"uid": "u", "allowed": true, "patch": "%%%", "patchType": "JSONPatch"})),
                Err("failed to call webhook: illegal base64 data")),
            (Phase::Mutating, answer(json!({"uid": "u", "allowed": true, "patch": b64("[]"), "patchType": "JSONPatch", "warnings": ["w1", "w2"]})), Ok(true)),
        ];
        for (i, (phase, body, want)) in table.into_iter().enumerate() {
            match (read_answer("u", phase, &body), want) {
                (Ok(a), Ok(allowed)) => assert_eq!(a.allowed, allowed, "case {i}"),
                (Err(e), Err(start)) => assert!(e.starts_with(start), "case {i}: {e}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
        let a = read_answer(
            "u",
            Phase::Mutating,
            &answer(json!({"uid": "u", "allowed": true, "patch": b64("[]"), "patchType": "JSONPatch", "warnings": ["w1", "w2"]})),
        )
        .unwrap();
        assert_eq!(a.warnings, ["w1", "w2"]);
        assert_eq!(a.patch, Some((b"[]".to_vec(), "JSONPatch".to_string())));
    }

    #[test]
    fn denials_read_as_kube_apiserver_1_33_words_them() {
        // (status, code, reason, message)
        let table = [
            (
                None,
                400,
                "",
                "admission webhook \"h.example.com\" denied the request without explanation",
            ),
            (
                Some(json!({"code": 200})),
                400,
                "",
                "admission webhook \"h.example.com\" denied the request without explanation",
            ),
            (
                Some(json!({"message": "no"})),
                400,
                "",
                "admission webhook \"h.example.com\" denied the request: no",
            ),
            (
                Some(json!({"reason": "Forbidden", "code": 403})),
                403,
                "Forbidden",
                "admission webhook \"h.example.com\" denied the request: Forbidden",
            ),
            (
                Some(json!({"message": "bad", "reason": "Invalid", "code": 422})),
                422,
                "Invalid",
                "admission webhook \"h.example.com\" denied the request: bad",
            ),
        ];
        for (status, code, reason, message) in table {
            let e = denied("h.example.com", status.as_ref());
            assert_eq!(
                (e.code, e.reason.as_ref(), e.message.as_str()),
                (code, reason, message)
            );
        }
        let causes = json!({"causes": [{"field": "data.x", "message": "must be set"}]});
        let e = denied(
            "h.example.com",
            Some(&json!({"message": "bad", "details": causes})),
        );
        assert_eq!(e.details, Some(Box::new(causes)));
        let s = e.to_status();
        assert!(s.get("reason").is_none(), "no reason is sent as none: {s}");
    }

    #[test]
    fn patches_apply_unless_they_change_what_the_object_is() {
        let hook = hook_with(vec![], json!({}), json!({}));
        let answer = |patch: &str| Answer {
            allowed: true,
            patch: Some((patch.as_bytes().to_vec(), "JSONPatch".to_string())),
            status: None,
            warnings: vec![],
        };
        let original = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let mut obj = original.clone();
        let add = answer(r#"[{"op": "add", "path": "/data", "value": {"k": "v"}}]"#);
        assert_eq!(admit_answer(&hook, &add, Some(&mut obj)), Outcome::Allowed);
        assert_eq!(obj["data"]["k"], "v");
        // (patch, outcome kind)
        let table = [
            (
                r#"[{"op": "replace", "path": "/kind", "value": "Secret"}]"#,
                "refused",
            ),
            (r#"[{"op": "remove", "path": "/metadata"}]"#, "refused"),
            (r#"[{"op": "remove", "path": "/nope/x"}]"#, "refused"),
            (r#"{"not": "a patch"}"#, "failed"),
            ("[]", "allowed"),
        ];
        for (patch, want) in table {
            let mut obj = original.clone();
            let got = match admit_answer(&hook, &answer(patch), Some(&mut obj)) {
                Outcome::Allowed => "allowed",
                Outcome::CallFailed(_) => "failed",
                Outcome::Refused(e) => {
                    assert_eq!(e.code, 500, "{patch}: {e}");
                    assert!(e.message.starts_with("Internal error occurred: "), "{e}");
                    "refused"
                }
            };
            assert_eq!(got, want, "{patch}");
            if want != "allowed" {
                assert_eq!(obj, original, "{patch} leaves the object as it was");
            }
        }
        let mut other_type = answer("[]");
        other_type.patch = Some((b"[]".to_vec(), "MergePatch".into()));
        assert_eq!(
            admit_answer(&hook, &other_type, Some(&mut obj)),
            Outcome::CallFailed("unsupported patch type \"MergePatch\"".into())
        );
        let Outcome::Refused(e) = admit_answer(&hook, &add, None) else {
            panic!("a DELETE may not be patched");
        };
        assert!(e.message.contains("attempted to modify the object"), "{e}");
    }

    #[test]
    fn failures_follow_the_failure_policy_and_dry_runs_the_side_effects() {
        let mut hook = hook_with(vec![], json!({}), json!({}));
        let e = call_failed(
            &hook,
            "failed to call webhook: Post \"https://h/x?timeout=10s\": context deadline exceeded",
        )
        .unwrap();
        assert_eq!((e.code, e.reason.as_ref()), (500, "InternalError"));
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"h.example.com\": failed to call webhook: Post \"https://h/x?timeout=10s\": context deadline exceeded"
        );
        assert_eq!(
            e.details.unwrap()["causes"][0]["message"]
                .as_str()
                .unwrap()
                .len(),
            e.message.len() - "Internal error occurred: ".len()
        );
        hook.ignore_failures = true;
        assert!(call_failed(&hook, "x").is_none());
        // (side effects, dry run, refused)
        for (side_effects, dry, refused) in [
            ("None", true, false),
            ("NoneOnDryRun", true, false),
            ("Some", true, true),
            ("Unknown", true, true),
            ("Some", false, false),
        ] {
            hook.side_effects = side_effects.into();
            let r = refuses_dry_run(&hook, dry);
            assert_eq!(r.is_some(), refused, "{side_effects} {dry}");
            if let Some(e) = r {
                assert_eq!(e.code, 400);
                assert_eq!(
                    e.message,
                    "admission webhook \"h.example.com\" does not support dry run"
                );
            }
        }
        hook.review_versions = vec!["v1beta1".into()];
        assert!(
            unsupported_review_versions(&hook)
                .unwrap()
                .contains("does not accept known AdmissionReview versions")
        );
    }

    #[test]
    fn webhooks_that_ask_are_called_again_after_a_later_change() {
        let call = |index, reinvoke_if_needed, changed| Called {
            index,
            reinvoke_if_needed,
            changed,
        };
        // (first round, called again)
        let table: Vec<(Vec<Called>, Vec<usize>)> = vec![
            (vec![call(0, true, false), call(1, false, false)], vec![]),
            (vec![call(0, true, false), call(1, false, true)], vec![0]),
            (vec![call(0, false, false), call(1, false, true)], vec![]),
            // Its own change does not call a webhook again.
            (vec![call(0, true, true), call(1, false, false)], vec![]),
            (
                vec![
                    call(0, true, false),
                    call(2, true, true),
                    call(3, false, true),
                ],
                vec![0, 2],
            ),
            (vec![call(1, true, true), call(4, true, true)], vec![1]),
        ];
        for (round, want) in table {
            assert_eq!(to_reinvoke(&round), want, "{round:?}");
        }
    }

    #[test]
    fn endpoints_carry_the_timeout_in_their_url() {
        let e = url_endpoint("https://127.0.0.1:8443/validate", 10).unwrap();
        assert_eq!(e.url, "https://127.0.0.1:8443/validate?timeout=10s");
        assert_eq!(
            (e.host.as_str(), e.port, e.server_name.as_str()),
            ("127.0.0.1", 8443, "127.0.0.1")
        );
        assert_eq!(e.path, "/validate?timeout=10s");
        let e = url_endpoint("https://hooks.example.com", 1).unwrap();
        assert_eq!(e.url, "https://hooks.example.com/?timeout=1s");
        assert_eq!(e.port, 443);
        let s = service_endpoint("ns", "svc", 443, "/mutate", "localhost", 30);
        assert_eq!(s.url, "https://svc.ns.svc:443/mutate?timeout=30s");
        assert_eq!(
            (s.host.as_str(), s.server_name.as_str()),
            ("localhost", "svc.ns.svc")
        );
        assert_eq!(
            service_url("ns", "svc", 8443, "", 10),
            "https://svc.ns.svc:8443/?timeout=10s"
        );
    }

    #[test]
    fn configurations_read_into_webhooks_in_call_order() {
        let mut b = config_with(valid_hook());
        b["metadata"]["name"] = json!("b");
        set_defaults(&mut b, Phase::Mutating);
        let mut svc_hook = valid_hook();
        svc_hook["name"] = json!("second.example.com");
        svc_hook["clientConfig"] =
            json!({"service": {"namespace": "ns", "name": "s"}, "caBundle": "YWJj"});
        svc_hook["failurePolicy"] = json!("Ignore");
        let a = json!({"metadata": {"name": "a"}, "webhooks": [valid_hook(), svc_hook]});
        let mut hooks = webhooks_of(&b, Phase::Mutating);
        hooks.extend(webhooks_of(&a, Phase::Mutating));
        let hooks = call_order(hooks);
        let order: Vec<(&str, &str)> = hooks
            .iter()
            .map(|h| (h.configuration.as_str(), h.name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("a", "check.example.com"),
                ("a", "second.example.com"),
                ("b", "check.example.com")
            ]
        );
        assert_eq!(
            hooks[1].client,
            ClientConfig::Service {
                namespace: "ns".into(),
                name: "s".into(),
                port: 443,
                path: String::new()
            }
        );
        assert_eq!(hooks[1].ca_bundle, b"abc");
        assert!(hooks[1].ignore_failures && !hooks[0].ignore_failures);
        assert_eq!(hooks[0].rules[0].resources, ["configmaps"]);
    }
}
