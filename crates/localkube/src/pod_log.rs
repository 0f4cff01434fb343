//! The pods/log subresource: as kube-apiserver does, the API server picks the container and
//! proxies the request to the kubelet endpoint of the pod's node (plain HTTP on loopback,
//! `Node.status.daemonEndpoints.kubeletEndpoint.Port`), streaming the answer.

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::api::Core;
use crate::status::{ApiError, ApiResult};

/// The query parameters forwarded to the kubelet.
const FORWARDED: [&str; 6] = [
    "follow",
    "tailLines",
    "timestamps",
    "previous",
    "limitBytes",
    "sinceSeconds",
];

/// Which container's log a request asks for, or kube-apiserver's words for why it cannot say.
pub fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            let known = containers.iter().any(|n| n == c)
                || names("initContainers").iter().any(|n| n == c)
                || names("ephemeralContainers").iter().any(|n| n == c);
            if known {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// GET pods/{name}/log.
pub async fn serve(
    core: &Core,
    ns: &str,
    name: &str,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let pod = crate::node_proxy::get_pod(core, ns, name)?;
    let asked = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let container = pick_container(&pod, name, asked)?;
    let (node, port) = crate::node_proxy::kubelet_of(core, &pod, name)?;
    // A node without a kubelet endpoint runs nothing: its containers print nothing.
    let Some(port) = port else {
        return Ok(text(StatusCode::OK, Body::empty()));
    };
    let forwarded: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| FORWARDED.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let qs = serde_urlencoded::to_string(&forwarded).unwrap_or_default();
    let path = format!("/containerLogs/{ns}/{name}/{container}?{qs}");
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!(
            "cannot reach the kubelet of node {node} on 127.0.0.1:{port}: {e}"
        ))
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("kubelet connection: {e}");
        }
    });
    let req = http::Request::get(path)
        .header(header::HOST, format!("127.0.0.1:{port}"))
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Err(ApiError::relayed(status.as_u16(), body.trim().to_string()));
    }
    Ok(text(StatusCode::OK, Body::new(resp.into_body())))
}

fn text(code: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_asked_for_or_the_only_one() {
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        let cases = [
            (&one, None, Ok("a")),
            (&two, Some("b"), Ok("b")),
            (&two, Some("i"), Ok("i")),
            (
                &two,
                None,
                Err("a container name must be specified for pod p, choose one of: [a b]"),
            ),
            (&two, Some("z"), Err("container z is not valid for pod p")),
        ];
        for (pod, asked, want) in cases {
            let got = pick_container(pod, "p", asked).map_err(|e| e.message);
            assert_eq!(
                got.as_deref(),
                want.map_err(|m| m.to_string()).as_deref(),
                "{asked:?}"
            );
        }
    }
}
