//! virt-api's stream subresources (`console`, `vnc`, `portforward` of a VMI, `portforward` of
//! a VM): checked as virt-api checks them (`virt_reconciler::intent::streams`), dialled through
//! to the virt-handler of the VMI's node with a websocket handshake of our own, then the
//! client's upgrade is answered and the two raw connections are spliced byte for byte, as
//! KubeVirt's virt-api does: no re-framing, only a copy buffer in between.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use virt_reconciler::handler_client::{self, Dialed, PLAIN_STREAM_PROTOCOL};
use virt_reconciler::intent::IntentError;
use virt_reconciler::intent::streams::{self, Stream};
use virt_reconciler::kube_error::message as api_message;
use virt_reconciler::{VirtualMachine, VirtualMachineInstance, execute};

use super::{SubresourceState, from_intent};

/// What the stream is opened on: the VMI of the path's name, or the VM's VMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Vmi,
    Vm,
}

/// GET `.../virtualmachineinstances/{name}/{console|vnc}`; any other subresource has no GET.
pub async fn vmi_console_or_vnc(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let stream = match action.as_str() {
        "console" => Stream::Console,
        "vnc" => Stream::Vnc,
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    open(&state, &ns, &name, stream, Owner::Vmi, request).await
}

/// GET `.../virtualmachineinstances/{name}/portforward/{port}[/{protocol}]`.
pub async fn vmi_port_forward(
    State(state): State<Arc<SubresourceState>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    port_forward(&state, params, Owner::Vmi, request).await
}

/// GET `.../virtualmachines/{name}/portforward/{port}[/{protocol}]`: the VM's VMI.
pub async fn vm_port_forward(
    State(state): State<Arc<SubresourceState>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    port_forward(&state, params, Owner::Vm, request).await
}

async fn port_forward(
    state: &SubresourceState,
    mut params: HashMap<String, String>,
    owner: Owner,
    request: Request,
) -> Response {
    let mut take = |key: &str| params.remove(key).unwrap_or_default();
    let (ns, name, port) = (take("ns"), take("name"), take("port"));
    let stream = Stream::PortForward {
        port,
        protocol: params.remove("protocol"),
    };
    open(state, &ns, &name, stream, owner, request).await
}

/// Checks the request as virt-api does, dials the handler, answers the upgrade and splices.
async fn open(
    state: &SubresourceState,
    ns: &str,
    name: &str,
    stream: Stream,
    owner: Owner,
    mut request: Request,
) -> Response {
    let target = match checked_target(state, ns, name, &stream, owner).await {
        Ok(target) => target,
        Err(e) => return from_intent(e),
    };
    let handshake = match client_handshake(request.headers()) {
        Ok(h) => h,
        Err(refusal) => return refusal.into_response(),
    };
    let handler_io = match handler_client::dial(&target.address, &target.path).await {
        Ok(Dialed::Upgraded(io)) => io,
        Ok(Dialed::Refused {
            code,
            content_type,
            body,
        }) => return passed_through(code, content_type, body),
        Err(e) => return from_intent(IntentError::internal(e)),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        // The client went away before its upgrade: the handler's connection is dropped.
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client_io = TokioIo::new(upgraded);
        let mut handler_io = handler_io;
        let _ = tokio::io::copy_bidirectional(&mut client_io, &mut handler_io).await;
    });
    switching_protocols(&handshake)
}

/// The VMI fetched and checked for `stream`, then the handler endpoint that carries it.
async fn checked_target(
    state: &SubresourceState,
    ns: &str,
    name: &str,
    stream: &Stream,
    owner: Owner,
) -> Result<streams::HandlerTarget, IntentError> {
    let client = &state.client;
    let vmi = match owner {
        Owner::Vmi => execute::get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?,
        Owner::Vm => {
            let vm = execute::get_opt::<VirtualMachine>(client, ns, "vm", name).await?;
            // virt-api reads the VMI only for a VM that has created one.
            let created = vm
                .as_ref()
                .and_then(|v| v.status.as_ref())
                .is_some_and(|s| s.created);
            let vmi = if created {
                execute::get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?
            } else {
                None
            };
            Some(streams::vmi_of_vm(name, vm.as_ref(), vmi.as_ref())?.clone())
        }
    };
    let vmi = streams::check(stream, name, vmi.as_ref())?;
    let node = match vmi.status.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(node) => get_node(client, node).await?,
        None => None,
    };
    streams::handler_target(stream, vmi, node.as_ref())
}

/// The Node `name`, if it exists (500 when it cannot be read).
async fn get_node(client: &Client, name: &str) -> Result<Option<Node>, IntentError> {
    let api: Api<Node> = Api::all(client.clone());
    api.get_opt(name).await.map_err(|e| {
        IntentError::internal(format!(
            "unable to retrieve node [{name}]: {}",
            api_message(&e)
        ))
    })
}

/// A handler's refusal, as it came: code, content type and body.
fn passed_through(code: u16, content_type: Option<String>, body: hyper::body::Bytes) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (code, body).into_response();
    if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// What the answer to a client's websocket handshake needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientHandshake {
    /// `Sec-WebSocket-Accept`.
    accept: String,
    /// The subprotocol to answer: ours when the client offered it.
    protocol: Option<&'static str>,
}

/// A handshake refused before the upgrade, as gorilla's upgrader in virt-api refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HandshakeRefusal {
    code: StatusCode,
    message: &'static str,
}

/// Checks the client's websocket handshake in the order of gorilla's upgrader (virt-api's):
/// `Connection: upgrade` (400), `Upgrade: websocket` (426), version 13 (400), a key of 16
/// bytes in base64 (400).
fn client_handshake(headers: &HeaderMap) -> Result<ClientHandshake, HandshakeRefusal> {
    let refuse = |code, message| Err(HandshakeRefusal { code, message });
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "websocket: the client is not using the websocket protocol: 'upgrade' token not \
             found in 'Connection' header",
        );
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "websocket: the client is not using the websocket protocol: 'websocket' token not \
             found in 'Upgrade' header",
        );
    }
    if !has_token(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        );
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    if !is_websocket_key(key) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 \
             encoded value of 16-byte in length",
        );
    }
    let offered = has_token(
        headers,
        header::SEC_WEBSOCKET_PROTOCOL,
        PLAIN_STREAM_PROTOCOL,
    );
    Ok(ClientHandshake {
        accept: handler_client::websocket_accept(key),
        protocol: offered.then_some(PLAIN_STREAM_PROTOCOL),
    })
}

/// A comma-separated header (every occurrence) holds `token`, in any case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// 16 bytes in padded base64 are 24 characters ending in `==`.
fn is_websocket_key(key: &str) -> bool {
    key.len() == 24
        && key.ends_with("==")
        && key[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl IntoResponse for HandshakeRefusal {
    fn into_response(self) -> Response {
        let reason = match self.code {
            StatusCode::BAD_REQUEST => "BadRequest",
            _ => "",
        };
        let mut response = from_intent(IntentError {
            code: self.code.as_u16(),
            reason,
            message: self.message.to_string(),
            details: None,
        });
        // gorilla's upgrader names the version it speaks on every refusal.
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        if self.code == StatusCode::UPGRADE_REQUIRED {
            response
                .headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        response
    }
}

/// The `101` that completes the client's handshake.
fn switching_protocols(handshake: &ClientHandshake) -> Response {
    let mut builder = http::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, &handshake.accept);
    if let Some(protocol) = handshake.protocol {
        builder = builder.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    builder
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn client_handshakes_are_checked_in_gorillas_order() {
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ];
        let with = |replace: &str, value: Option<&'static str>| {
            let mut pairs: Vec<(&'static str, &str)> = good
                .iter()
                .filter(|(k, _)| *k != replace)
                .copied()
                .collect();
            if let Some(v) = value {
                pairs.push((good.iter().find(|(k, _)| *k == replace).unwrap().0, v));
            }
            headers(&pairs)
        };
        let refused = |code, message| Err::<ClientHandshake, _>(HandshakeRefusal { code, message });
        let cases = [
            (
                headers(&good),
                Ok(ClientHandshake {
                    accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                    protocol: None,
                }),
            ),
            (
                headers(&[]),
                refused(
                    StatusCode::BAD_REQUEST,
                    "websocket: the client is not using the websocket protocol: 'upgrade' token \
                     not found in 'Connection' header",
                ),
            ),
            (
                with("connection", Some("keep-alive")),
                refused(
                    StatusCode::BAD_REQUEST,
                    "websocket: the client is not using the websocket protocol: 'upgrade' token \
                     not found in 'Connection' header",
                ),
            ),
            (
                with("upgrade", Some("h2c")),
                refused(
                    StatusCode::UPGRADE_REQUIRED,
                    "websocket: the client is not using the websocket protocol: 'websocket' \
                     token not found in 'Upgrade' header",
                ),
            ),
            (
                with("sec-websocket-version", Some("8")),
                refused(
                    StatusCode::BAD_REQUEST,
                    "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' \
                     header",
                ),
            ),
            (
                with("sec-websocket-key", None),
                refused(
                    StatusCode::BAD_REQUEST,
                    "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be \
                     Base64 encoded value of 16-byte in length",
                ),
            ),
            (
                with("sec-websocket-key", Some("c2hvcnQ=")),
                refused(
                    StatusCode::BAD_REQUEST,
                    "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be \
                     Base64 encoded value of 16-byte in length",
                ),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(client_handshake(&h), want, "{h:?}");
        }
    }

    #[test]
    fn our_subprotocol_is_answered_only_when_offered() {
        let base = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ];
        let offer = |protocols: &[&'static str]| {
            let mut pairs = base.to_vec();
            pairs.extend(protocols.iter().map(|p| ("sec-websocket-protocol", *p)));
            client_handshake(&headers(&pairs)).unwrap().protocol
        };
        assert_eq!(offer(&[]), None);
        assert_eq!(offer(&["plain.kubevirt.io"]), Some(PLAIN_STREAM_PROTOCOL));
        assert_eq!(
            offer(&["base64.kubevirt.io, plain.kubevirt.io"]),
            Some(PLAIN_STREAM_PROTOCOL)
        );
        assert_eq!(
            offer(&["x", "plain.kubevirt.io"]),
            Some(PLAIN_STREAM_PROTOCOL)
        );
        assert_eq!(offer(&["base64.kubevirt.io"]), None);
    }

    #[test]
    fn the_101_carries_accept_and_protocol() {
        let r = switching_protocols(&ClientHandshake {
            accept: "abc=".into(),
            protocol: Some(PLAIN_STREAM_PROTOCOL),
        });
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()["sec-websocket-accept"], "abc=");
        assert_eq!(r.headers()["sec-websocket-protocol"], "plain.kubevirt.io");
        assert_eq!(r.headers()["upgrade"], "websocket");
        let r = switching_protocols(&ClientHandshake {
            accept: "abc=".into(),
            protocol: None,
        });
        assert!(r.headers().get("sec-websocket-protocol").is_none());
    }
}
