//! Admission webhooks' IO: the admission of one request (`crate::api::Admission`), which
//! calls the configured webhooks that match it over HTTPS — a `url`, or a Service reached as
//! the aggregation layer reaches one — mutating ones one after another with each patch applied
//! before the next, validating ones all at once; with their timeouts, failure policies and
//! warnings. What to call and what an answer means is `crate::webhooks`'.
//!
//! The verbs are synchronous, so a request with webhooks runs its write on a blocking thread
//! (`run_write`), from which the calls are driven on the server's runtime: a webhook may call
//! back into this server meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{StatusCode, header};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::aggregation::{self, Backend};
use crate::api::{Admission, Core, Operation};
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};
use crate::tls_client::{self, Trust};
use crate::validation::go_quote;
use crate::webhooks::{
    self, Answer, Attributes, ClientConfig, Endpoint, Gvk, Gvr, Outcome, Phase, Target, Webhook,
};

/// The largest answer read from a webhook.
const MAX_ANSWER: usize = 16 << 20;

/// An HTTP/1.1 connection to a webhook, ready for a request.
type Connection = hyper::client::conn::http1::SendRequest<Body>;

/// Which connections may serve a webhook: same address, TLS name and trust.
type PoolKey = (String, u16, String, Vec<u8>);

/// The most idle connections kept per webhook endpoint.
const MAX_IDLE: usize = 8;

/// The HTTPS client of webhooks: TLS configurations by CA bundle, and idle keep-alive
/// connections by endpoint, reused as kube-apiserver reuses its own.
#[derive(Default)]
pub struct Clients {
    configs: Mutex<HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>,
    idle: Mutex<HashMap<PoolKey, Vec<Connection>>>,
}

impl Clients {
    fn config(&self, ca_bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
        if let Some(c) = self.configs.lock().get(ca_bundle) {
            return Ok(c.clone());
        }
        let cfg = tls_client::client_config(Trust::CaBundle(ca_bundle), None).map_err(|e| {
            format!("tls: clientConfig.{e}, and localkube trusts no other certificate authority")
        })?;
        let mut configs = self.configs.lock();
        // A handful of webhooks at most; the bound keeps churning configurations from growing it.
        if configs.len() > 64 {
            configs.clear();
        }
        configs.insert(ca_bundle.to_vec(), cfg.clone());
        Ok(cfg)
    }

    fn take_idle(&self, key: &PoolKey) -> Option<Connection> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, key: PoolKey, c: Connection) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() > 64 {
            idle.clear();
        }
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push(c);
        }
    }

    async fn connect(&self, endpoint: &Endpoint, ca_bundle: &[u8]) -> Result<Connection, String> {
        let cfg = match self.config(ca_bundle) {
            Ok(cfg) => cfg,
            Err(e) => {
                // As Go's client does, a webhook that cannot be reached says so first.
                tls_client::dial(&endpoint.host, endpoint.port)
                    .await
                    .map_err(|e| e.to_string())?;
                return Err(e);
            }
        };
        let stream = tls_client::connect(cfg, &endpoint.host, endpoint.port, &endpoint.server_name)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("webhook connection: {e}");
            }
        });
        Ok(sender)
    }

    /// POSTs `body` to the endpoint: (status, answer). An idle connection is tried first; one
    /// the webhook closed meanwhile gives way to a new one.
    async fn post(
        &self,
        endpoint: &Endpoint,
        ca_bundle: &[u8],
        body: bytes::Bytes,
    ) -> Result<(StatusCode, bytes::Bytes), String> {
        let key = (
            endpoint.host.clone(),
            endpoint.port,
            endpoint.server_name.clone(),
            ca_bundle.to_vec(),
        );
        if let Some(mut c) = self.take_idle(&key)
            && c.ready().await.is_ok()
            && let Ok(answer) = exchange(&mut c, endpoint, body.clone()).await
        {
            self.put_idle(key, c);
            return Ok(answer);
        }
        let mut c = self.connect(endpoint, ca_bundle).await?;
        let answer = exchange(&mut c, endpoint, body).await?;
        self.put_idle(key, c);
        Ok(answer)
    }
}

/// One POST on a connection, its answer read whole.
async fn exchange(
    c: &mut Connection,
    endpoint: &Endpoint,
    body: bytes::Bytes,
) -> Result<(StatusCode, bytes::Bytes), String> {
    let request = http::Request::post(&endpoint.path)
        .header(
            header::HOST,
            format!("{}:{}", endpoint.server_name, endpoint.port),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, */*")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let answer = c.send_request(request).await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let bytes = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// What the HTTP layer knows of a request, for its admission.
pub struct RequestInfo {
    pub rt: Arc<ResourceType>,
    /// `status`, `binding`, `finalize`, `portforward`, or empty.
    pub subresource: String,
    /// The kind of the object admitted: the type's, or the subresource's (`Binding`).
    pub kind: Gvk,
    /// The request's namespace (empty for cluster-scoped resources).
    pub namespace: String,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    /// For DELETE: the DeleteOptions, as the AdmissionRequest carries them.
    pub delete_options: Value,
    /// Who asked for the write.
    pub user: crate::rbac::UserInfo,
}

/// The webhooks configured, each list in call order.
fn configured(core: &Core) -> (Vec<Webhook>, Vec<Webhook>) {
    let read = |plural: &str, phase: Phase| -> Vec<Webhook> {
        let Some(rt) = core.registry.find(webhooks::GROUP, "v1", plural) else {
            return Vec::new();
        };
        let (stored, _) = core.store.list(&rt.store, None);
        let hooks = stored
            .iter()
            .flat_map(|s| webhooks::webhooks_of(&s.value(), phase))
            .collect();
        webhooks::call_order(hooks)
    };
    (
        read("mutatingwebhookconfigurations", Phase::Mutating),
        read("validatingwebhookconfigurations", Phase::Validating),
    )
}

/// The admission of one request's writes by the configured webhooks; None when none is
/// configured or the resource is exempt (the configurations themselves).
pub fn admission_for(
    core: &Arc<Core>,
    clients: &Arc<Clients>,
    info: RequestInfo,
) -> Option<Arc<WebhookAdmission>> {
    if webhooks::is_exempt(&info.rt.group, &info.rt.plural) {
        return None;
    }
    let (mutating, validating) = configured(core);
    if mutating.is_empty() && validating.is_empty() {
        return None;
    }
    let equivalents = core
        .registry
        .all()
        .into_iter()
        .filter(|t| {
            t.store == info.rt.store
                && !(t.group == info.rt.group
                    && t.version == info.rt.version
                    && t.plural == info.rt.plural)
        })
        .collect();
    Some(Arc::new(WebhookAdmission {
        core: core.clone(),
        clients: clients.clone(),
        mutating,
        validating,
        resource: Gvr::of(&info.rt),
        equivalents,
        info,
        handle: tokio::runtime::Handle::current(),
        warnings: Mutex::new(Vec::new()),
    }))
}

/// Runs a write: at once without webhooks, else on a blocking thread, from which the
/// webhooks are called while the runtime goes on serving.
pub async fn run_write<T: Send + 'static>(
    admitted: bool,
    write: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    if !admitted {
        return write();
    }
    tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| ApiError::internal(format!("the write did not finish: {e}")))?
}

/// The admission of one request by webhooks.
pub struct WebhookAdmission {
    core: Arc<Core>,
    clients: Arc<Clients>,
    mutating: Vec<Webhook>,
    validating: Vec<Webhook>,
    info: RequestInfo,
    resource: Gvr,
    /// Types that serve the same objects in another version or group.
    equivalents: Vec<Arc<ResourceType>>,
    handle: tokio::runtime::Handle,
    warnings: Mutex<Vec<String>>,
}

/// One call's view of the object: converted for an equivalent resource, or as requested.
struct Converted {
    resource: Gvr,
    kind: Gvk,
    to: Option<Arc<ResourceType>>,
}

impl WebhookAdmission {
    /// The warnings webhooks answered with, for the response's `Warning` headers.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    fn options(&self, op: Operation) -> Value {
        match op {
            Operation::Delete => self.info.delete_options.clone(),
            Operation::Connect => Value::Null,
            _ => webhooks::write_options_object(
                op,
                self.info.dry_run,
                self.info.field_manager.as_deref(),
                self.info.field_validation.as_deref(),
            ),
        }
    }

    fn attributes<'a>(
        &'a self,
        op: Operation,
        name: &'a str,
        object: Option<&'a Value>,
        old: Option<&'a Value>,
        options: &'a Value,
    ) -> Attributes<'a> {
        let is_namespace = self.info.rt.group.is_empty() && self.info.rt.plural == "namespaces";
        Attributes {
            operation: op,
            resource: &self.resource,
            subresource: &self.info.subresource,
            kind: &self.info.kind,
            namespace: if is_namespace {
                name
            } else {
                &self.info.namespace
            },
            name,
            object,
            old_object: old,
            dry_run: self.info.dry_run,
            options,
            user: &self.info.user,
        }
    }

    fn namespace_labels(&self, ns: &str) -> Option<Map<String, Value>> {
        let rt = self.core.registry.find("", "v1", "namespaces")?;
        let obj = self.core.get(&rt, "", ns).ok()?;
        Some(
            obj.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Whether a webhook is called, and for which resource (the request's or an equivalent).
    fn target(&self, hook: &Webhook, attrs: &Attributes) -> ApiResult<Option<Converted>> {
        let equivalents: Vec<Gvr> = self.equivalents.iter().map(|t| Gvr::of(t)).collect();
        let found =
            webhooks::should_call(hook, attrs, &equivalents, &|ns| self.namespace_labels(ns))?;
        Ok(found.map(|t| match t {
            Target::Requested => Converted {
                resource: self.resource.clone(),
                kind: self.info.kind.clone(),
                to: None,
            },
            Target::Equivalent(i) => {
                let rt = self.equivalents[i].clone();
                Converted {
                    resource: Gvr::of(&rt),
                    kind: Gvk::of(&rt),
                    to: Some(rt),
                }
            }
        }))
    }

    /// `obj` (in the request's version) as `to` shows it.
    fn convert(&self, obj: &Value, to: &ResourceType) -> Value {
        self.core
            .to_view(to, &self.core.to_storage(&self.info.rt, obj.clone()))
    }

    /// `obj` (as `from` shows it) back in the request's version.
    fn convert_back(&self, obj: &Value, from: &ResourceType) -> Value {
        self.core
            .to_view(&self.info.rt, &self.core.to_storage(from, obj.clone()))
    }

    /// Where a webhook is reached, or why not (a failed call).
    fn endpoint(&self, hook: &Webhook) -> Result<Endpoint, String> {
        let t = hook.timeout_seconds;
        match &hook.client {
            ClientConfig::Url(url) => webhooks::url_endpoint(url, t).map_err(|e| {
                format!(
                    "failed to call webhook: the url {} does not parse: {e}",
                    go_quote(url)
                )
            }),
            ClientConfig::Service {
                namespace,
                name,
                port,
                path,
            } => {
                let backend = Backend {
                    namespace: namespace.clone(),
                    service: name.clone(),
                    port: *port,
                    ca_bundle: Vec::new(),
                    insecure: false,
                };
                let service = self
                    .core
                    .registry
                    .find("", "v1", "services")
                    .and_then(|rt| self.core.get(&rt, namespace, name).ok());
                let host = aggregation::host_of(&backend, service.as_ref()).map_err(|u| {
                    format!(
                        "failed to call webhook: Post {}: {}",
                        go_quote(&webhooks::service_url(namespace, name, *port, path, t)),
                        u.message
                    )
                })?;
                Ok(webhooks::service_endpoint(
                    namespace, name, *port, path, &host, t,
                ))
            }
        }
    }

    /// POSTs the review and reads the answer; an error is the reason of a failed call.
    async fn call(
        &self,
        hook: &Webhook,
        attrs: &Attributes<'_>,
        target: &Converted,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Answer, String> {
        if let Some(reason) = webhooks::unsupported_review_versions(hook) {
            return Err(reason);
        }
        let endpoint = self.endpoint(hook)?;
        let uid = uuid::Uuid::new_v4().to_string();
        let review =
            webhooks::review_request(&uid, attrs, &target.resource, &target.kind, object, old);
        let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
        let post = format!("Post {}", go_quote(&endpoint.url));
        let exchange = self
            .clients
            .post(&endpoint, &hook.ca_bundle, bytes::Bytes::from(body));
        let timeout = Duration::from_secs(hook.timeout_seconds);
        let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(format!(
                    "failed to call webhook: {post}: context deadline exceeded"
                ));
            }
            Ok(Err(e)) => return Err(format!("failed to call webhook: {post}: {e}")),
            Ok(Ok(answer)) => answer,
        };
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            return Err(if text.is_empty() {
                format!(
                    "failed to call webhook: the server responded with the status code {} but did not return more information",
                    status.as_u16()
                )
            } else {
                format!(
                    "failed to call webhook: an error on the server ({}) has prevented the request from succeeding",
                    go_quote(&text.chars().take(512).collect::<String>())
                )
            });
        }
        webhooks::read_answer(&uid, hook.phase, &bytes)
    }

    /// Calls one webhook about `attrs.object`, and puts the patched object in `patched` (the
    /// mutating phase's object under admission).
    async fn admit_one(
        &self,
        hook: &Webhook,
        attrs: &Attributes<'_>,
        target: &Converted,
        patched: Option<&mut Value>,
    ) -> Outcome {
        let (view, old) = match &target.to {
            None => (attrs.object.cloned(), attrs.old_object.cloned()),
            Some(to) => (
                attrs.object.map(|o| self.convert(o, to)),
                attrs.old_object.map(|o| self.convert(o, to)),
            ),
        };
        let answer = match self
            .call(hook, attrs, target, view.as_ref(), old.as_ref())
            .await
        {
            Ok(a) => a,
            Err(reason) => return Outcome::CallFailed(reason),
        };
        {
            // Each text once, as kube-apiserver's warning recorder keeps them.
            let mut warnings = self.warnings.lock();
            for w in &answer.warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
        }
        let mut view = view;
        let outcome = webhooks::admit_answer(hook, &answer, view.as_mut());
        if outcome == Outcome::Allowed
            && answer.patch.is_some()
            && let (Some(obj), Some(view)) = (patched, view)
        {
            *obj = match &target.to {
                None => view,
                Some(from) => self.convert_back(&view, from),
            };
        }
        outcome
    }

    /// The request's error for an outcome, if any.
    fn settle(&self, hook: &Webhook, outcome: Outcome) -> ApiResult<()> {
        match outcome {
            Outcome::Allowed => Ok(()),
            Outcome::Refused(e) => Err(e),
            Outcome::CallFailed(reason) => match webhooks::call_failed(hook, &reason) {
                Some(e) => Err(e),
                None => {
                    tracing::warn!(
                        "failed calling webhook {}, failing open: {reason}",
                        hook.name
                    );
                    Ok(())
                }
            },
        }
    }

    async fn run_mutating(
        &self,
        op: Operation,
        name: &str,
        mut object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let options = self.options(op);
        let mut first_round = Vec::new();
        for (index, hook) in self.mutating.iter().enumerate() {
            if let Some(changed) = self
                .call_mutating(hook, op, name, object.as_deref_mut(), old, &options)
                .await?
            {
                first_round.push(webhooks::Called {
                    index,
                    reinvoke_if_needed: hook.reinvoke_if_needed,
                    changed,
                });
            }
        }
        for index in webhooks::to_reinvoke(&first_round) {
            let hook = &self.mutating[index];
            self.call_mutating(hook, op, name, object.as_deref_mut(), old, &options)
                .await?;
        }
        Ok(())
    }

    /// Calls one mutating webhook if it matches: whether its answer changed the object.
    async fn call_mutating(
        &self,
        hook: &Webhook,
        op: Operation,
        name: &str,
        mut object: Option<&mut Value>,
        old: Option<&Value>,
        options: &Value,
    ) -> ApiResult<Option<bool>> {
        let current = object.as_deref().cloned();
        let attrs = self.attributes(op, name, current.as_ref(), old, options);
        let Some(target) = self.target(hook, &attrs)? else {
            return Ok(None);
        };
        if let Some(e) = webhooks::refuses_dry_run(hook, self.info.dry_run) {
            return Err(e);
        }
        let outcome = self
            .admit_one(hook, &attrs, &target, object.as_deref_mut())
            .await;
        self.settle(hook, outcome)?;
        Ok(Some(object.as_deref() != current.as_ref()))
    }

    async fn run_validating(
        &self,
        op: Operation,
        name: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let options = self.options(op);
        let attrs = self.attributes(op, name, object, old, &options);
        let mut calls = Vec::new();
        for hook in &self.validating {
            let Some(target) = self.target(hook, &attrs)? else {
                continue;
            };
            let attrs = &attrs;
            calls.push(async move {
                if let Some(e) = webhooks::refuses_dry_run(hook, self.info.dry_run) {
                    return Err(e);
                }
                let outcome = self.admit_one(hook, attrs, &target, None).await;
                self.settle(hook, outcome)
            });
        }
        // All at once; the first refusal in configuration order is the answer.
        futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<ApiResult<Vec<()>>>()
            .map(|_| ())
    }
}

impl Admission for WebhookAdmission {
    fn mutate(
        &self,
        op: Operation,
        name: &str,
        object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if self.mutating.is_empty() {
            return Ok(());
        }
        self.handle
            .block_on(self.run_mutating(op, name, object, old))
    }

    fn validate(
        &self,
        op: Operation,
        name: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if self.validating.is_empty() {
            return Ok(());
        }
        self.handle
            .block_on(self.run_validating(op, name, object, old))
    }
}
