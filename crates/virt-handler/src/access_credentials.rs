//! A VMI's `spec.accessCredentials`: which Secrets hold SSH keys to propagate by noCloud, what
//! is ignored and why (pure), and reading the keys out of those Secrets.
//!
//! Only `sshPublicKey` with `propagationMethod.noCloud` is carried out: the keys go to the
//! launcher with `sync`, which adds them to the NoCloud user-data. `configDrive` needs a
//! `cloudInitConfigDrive` volume, which the launcher does not support; `qemuGuestAgent` and
//! `userPassword` need a guest agent, which the guests here do not have. Those are logged and
//! ignored.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use serde_json::Value;
use virt_reconciler::kube_error;

/// What a VMI's `accessCredentials` ask for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeySources {
    /// Secrets (in the VMI's namespace) whose keys go into the NoCloud user-data, in order.
    pub no_cloud_secrets: Vec<String>,
    /// Credentials not carried out, each with why.
    pub ignored: Vec<String>,
}

/// Reads `spec.accessCredentials` of the VMI's JSON.
pub fn ssh_key_sources(vmi: &Value) -> KeySources {
    let mut sources = KeySources::default();
    let credentials = vmi
        .pointer("/spec/accessCredentials")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, credential) in credentials.iter().enumerate() {
        if credential.get("userPassword").is_some() {
            sources.ignored.push(format!(
                "[{index}] userPassword needs a guest agent, which this guest does not have: ignored"
            ));
            continue;
        }
        let Some(ssh) = credential.get("sshPublicKey") else {
            sources.ignored.push(format!(
                "[{index}] neither sshPublicKey nor userPassword: ignored"
            ));
            continue;
        };
        let Some(secret) = ssh
            .pointer("/source/secret/secretName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            sources.ignored.push(format!(
                "[{index}] sshPublicKey has no source.secret.secretName: ignored"
            ));
            continue;
        };
        let method = ssh.get("propagationMethod");
        let has = |m: &str| method.and_then(|p| p.get(m)).is_some();
        if has("noCloud") {
            sources.no_cloud_secrets.push(secret.to_string());
        } else if has("configDrive") {
            sources.ignored.push(format!(
                "[{index}] keys of Secret {secret:?}: configDrive propagation is not supported \
                 (use noCloud with a cloudInitNoCloud volume): ignored"
            ));
        } else if has("qemuGuestAgent") {
            sources.ignored.push(format!(
                "[{index}] keys of Secret {secret:?}: qemuGuestAgent propagation needs a guest \
                 agent, which this guest does not have (use noCloud): ignored"
            ));
        } else {
            sources.ignored.push(format!(
                "[{index}] keys of Secret {secret:?}: no propagationMethod: ignored"
            ));
        }
    }
    sources
}

/// The authorized_keys lines of a Secret's values (each value may hold several lines), in key
/// order; blank lines and `#` comments are dropped.
pub fn authorized_keys(values: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    values
        .values()
        .flat_map(|value| {
            String::from_utf8_lossy(value)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A Secret's values, `stringData` over `data` (as the API server merges them).
fn secret_values(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut values: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        values.insert(k.clone(), v.clone().into_bytes());
    }
    values
}

/// The keys of every noCloud Secret; a missing Secret is an error (the domain waits for it).
pub async fn read_keys(
    client: &Client,
    ns: &str,
    sources: &KeySources,
) -> anyhow::Result<Vec<String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut keys = Vec::new();
    for name in &sources.no_cloud_secrets {
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| anyhow::anyhow!("reading Secret {name:?}: {}", kube_error::message(&e)))?
            .ok_or_else(|| anyhow::anyhow!("Secret {ns}/{name} not found"))?;
        keys.extend(authorized_keys(&secret_values(&secret)));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_no_cloud_ssh_keys_are_propagated() {
        let vmi = json!({"spec": {"accessCredentials": [
            {"sshPublicKey": {"source": {"secret": {"secretName": "keys-a"}},
                "propagationMethod": {"noCloud": {}}}},
            {"sshPublicKey": {"source": {"secret": {"secretName": "keys-b"}},
                "propagationMethod": {"configDrive": {}}}},
            {"sshPublicKey": {"source": {"secret": {"secretName": "keys-c"}},
                "propagationMethod": {"qemuGuestAgent": {"users": ["root"]}}}},
            {"userPassword": {"source": {"secret": {"secretName": "pw"}},
                "propagationMethod": {"qemuGuestAgent": {}}}},
            {"sshPublicKey": {"source": {}, "propagationMethod": {"noCloud": {}}}},
            {"sshPublicKey": {"source": {"secret": {"secretName": "keys-d"}},
                "propagationMethod": {"noCloud": {}}}},
        ]}});
        let sources = ssh_key_sources(&vmi);
        assert_eq!(sources.no_cloud_secrets, ["keys-a", "keys-d"]);
        let ignored: Vec<&str> = sources
            .ignored
            .iter()
            .map(|m| m.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            ignored,
            [
                "[1] keys of Secret \"keys-b\"",
                "[2] keys of Secret \"keys-c\"",
                "[3] userPassword needs a guest agent, which this guest does not have",
                "[4] sshPublicKey has no source.secret.secretName",
            ]
        );
        assert!(sources.ignored[0].contains("configDrive propagation is not supported"));
        assert_eq!(ssh_key_sources(&json!({"spec": {}})), KeySources::default());
    }

    #[test]
    fn every_value_line_is_a_key() {
        let values: BTreeMap<String, Vec<u8>> = [
            (
                "b".to_string(),
                b"ssh-rsa BBB b@x\n\n# a comment\r\nssh-ed25519 CCC c@x\n".to_vec(),
            ),
            ("a".to_string(), b"  ssh-ed25519 AAA a@x  ".to_vec()),
        ]
        .into();
        assert_eq!(
            authorized_keys(&values),
            [
                "ssh-ed25519 AAA a@x",
                "ssh-rsa BBB b@x",
                "ssh-ed25519 CCC c@x"
            ]
        );
    }
}
