//! Requests the API server hands to a pod's node, as kube-apiserver does for pod subresources:
//! where the pod's kubelet endpoint is (`Node.status.daemonEndpoints.kubeletEndpoint.Port`, on
//! 127.0.0.1), and `pods/portforward`, whose HTTP/1.1 upgrade (SPDY or websocket) is passed
//! through to the kubelet's `/portForward/{ns}/{pod}` unchanged: the kubelet's answer goes back
//! as it came, and after a 101 the two upgraded connections are spliced byte for byte.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::api::Core;
use crate::status::{ApiError, ApiResult};

/// The pod `ns/name`.
pub fn get_pod(core: &Core, ns: &str, name: &str) -> ApiResult<Value> {
    let pods = core
        .registry
        .find("", "v1", "pods")
        .ok_or_else(ApiError::not_found_path)?;
    core.get(&pods, ns, name)
}

/// The node a pod (named `name`) is bound to, and that node's kubelet port (None: the node
/// has no endpoint, so runs nothing).
pub fn kubelet_of(core: &Core, pod: &Value, name: &str) -> ApiResult<(String, Option<u16>)> {
    let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let port = core
        .registry
        .find("", "v1", "nodes")
        .and_then(|nodes| core.get(&nodes, "", &node).ok())
        .and_then(|n| {
            n.pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
                .and_then(Value::as_u64)
        })
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))
        .map(|p| p as u16);
    Ok((node, port))
}

/// Whether a request asks for an HTTP/1.1 upgrade.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && headers.contains_key(header::UPGRADE)
}

/// Request headers not passed to the kubelet: the API server's credentials and what the new
/// connection sets itself.
fn forwarded(name: &header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "authorization" | "host" | "content-length" | "transfer-encoding" | "proxy-authorization"
    )
}

/// GET or POST pods/{name}/portforward.
pub async fn port_forward(
    core: &Core,
    ns: &str,
    name: &str,
    query: Option<&str>,
    req: Request,
) -> ApiResult<Response> {
    let pod = get_pod(core, ns, name)?;
    let (node, port) = kubelet_of(core, &pod, name)?;
    if !is_upgrade(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let Some(port) = port else {
        return Err(ApiError::bad_request(format!(
            "node {node} has no kubelet endpoint: its pods cannot be port-forwarded"
        )));
    };
    let path = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/portForward/{ns}/{name}?{q}"),
        None => format!("/portForward/{ns}/{name}"),
    };
    pass_upgrade(&node, port, &path, req).await
}

/// Sends `req` (its method and headers) to the kubelet on 127.0.0.1:`port` at `path`; passes
/// the answer back, and after a 101 splices the client's and the kubelet's connections.
async fn pass_upgrade(node: &str, port: u16, path: &str, mut req: Request) -> ApiResult<Response> {
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!(
            "cannot reach the kubelet of node {node} on 127.0.0.1:{port}: {e}"
        ))
    };
    let from_client = hyper::upgrade::on(&mut req);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| unreachable(&e))?;
    let _ = tcp.set_nodelay(true);
    let mut to_kubelet = http::Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(header::HOST, format!("127.0.0.1:{port}"));
    for (name, value) in req.headers() {
        if forwarded(name) {
            to_kubelet = to_kubelet.header(name, value);
        }
    }
    let to_kubelet = to_kubelet
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    exchange(tcp, to_kubelet, Some(from_client))
        .await
        .map_err(|e| unreachable(&e))
}

/// Sends `outgoing` over a fresh HTTP/1.1 connection on `io` and passes the answer back as it
/// comes (its body streamed). After a 101, when the client asked for an upgrade
/// (`from_client`), the client's and the peer's upgraded connections are spliced byte for byte.
pub async fn exchange<IO>(
    io: IO,
    outgoing: http::Request<Body>,
    from_client: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("proxied connection: {e}");
        }
    });
    let mut answer = sender.send_request(outgoing).await?;
    let Some(from_client) =
        from_client.filter(|_| answer.status() == StatusCode::SWITCHING_PROTOCOLS)
    else {
        let (parts, body) = answer.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    };
    let from_peer = hyper::upgrade::on(&mut answer);
    tokio::spawn(async move {
        let (client, peer) = match tokio::try_join!(from_client, from_peer) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!("proxied upgrade: {e}");
                return;
            }
        };
        let (mut client, mut peer) = (TokioIo::new(client), TokioIo::new(peer));
        // Bytes go on as they come; the buffers only bound each copy.
        let _ =
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut peer, 64 * 1024, 64 * 1024)
                .await;
    });
    let (parts, _) = answer.into_parts();
    Ok(Response::from_parts(parts, Body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_need_connection_upgrade_and_an_upgrade_header() {
        let cases: [(&[(&str, &str)], bool); 4] = [
            (&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")], true),
            (
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "websocket"),
                ],
                true,
            ),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "Upgrade")], false),
        ];
        for (headers, want) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                map.append(
                    header::HeaderName::from_static(k),
                    v.parse().expect("header value"),
                );
            }
            assert_eq!(is_upgrade(&map), want, "{headers:?}");
        }
    }

    #[test]
    fn credentials_stay_with_the_api_server() {
        for (name, want) in [
            ("authorization", false),
            ("host", false),
            ("upgrade", true),
            ("sec-websocket-protocol", true),
            ("x-stream-protocol-version", true),
        ] {
            assert_eq!(
                forwarded(&header::HeaderName::from_static(name)),
                want,
                "{name}"
            );
        }
    }
}
