//! `virtctl status [VM...]`: a table of VMs with their instance's phase, node and IP
//! (Part A §8), or the VMs themselves with `-o yaml|json`.

use std::collections::HashMap;

use anyhow::anyhow;
use comfy_table::{Table, TableStyle};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use crate::client::{LazyConnection, error_chain};
use crate::settings::{StatusOutput, StatusSettings};

/// What kubectl prints for a value that is not there.
const NONE: &str = "<none>";

/// One line of the table, every cell already formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub namespace: String,
    pub name: String,
    pub age: String,
    pub status: String,
    pub ready: String,
    pub vmi_phase: String,
    pub node: String,
    pub ip: String,
}

/// The row of `vm`, with `vmi` the instance of the same name if there is one.
pub fn status_row(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    now: Timestamp,
) -> StatusRow {
    let age = vm
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| human_age(now.duration_since(t.0).as_secs()))
        .unwrap_or_else(|| NONE.to_string());
    let status = vm.status.as_ref();
    let vmi_status = vmi.and_then(|v| v.status.as_ref());
    let or_none = |v: Option<&str>| {
        v.filter(|s| !s.is_empty())
            .map_or_else(|| NONE.to_string(), str::to_string)
    };
    StatusRow {
        namespace: vm.metadata.namespace.clone().unwrap_or_default(),
        name: vm.metadata.name.clone().unwrap_or_default(),
        age,
        status: or_none(status.and_then(|s| s.printable_status.as_deref())),
        ready: match status {
            Some(s) if s.ready => "True".to_string(),
            Some(_) => "False".to_string(),
            None => NONE.to_string(),
        },
        vmi_phase: or_none(vmi_status.and_then(|s| s.phase.as_deref())),
        node: or_none(vmi_status.and_then(|s| s.node_name.as_deref())),
        ip: or_none(
            vmi_status
                .and_then(|s| s.interfaces.first())
                .and_then(|i| i.ip_address.as_deref()),
        ),
    }
}

/// kubectl's AGE: two units at most, coarser as the age grows (`45s`, `3m2s`, `5h`, `2d`).
pub fn human_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let s = seconds.max(0);
    let (minutes, hours, days) = (s / 60, s / 3600, s / 86400);
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if minutes < 10 {
        pair(minutes, "m", s % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        pair(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        pair(days, "d", hours % 24, "h")
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        pair(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// The table as kubectl prints it: no borders, upper-case headers, columns left-aligned and
/// three spaces apart, no trailing spaces. Ends with a newline.
pub fn render_table(rows: &[StatusRow], with_namespace: bool) -> String {
    let mut header = vec!["NAME", "AGE", "STATUS", "READY", "VMI PHASE", "NODE", "IP"];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    let mut table = Table::new();
    table.load_style(TableStyle::new());
    table.set_header(header.clone());
    for r in rows {
        let mut cells = vec![
            r.name.as_str(),
            &r.age,
            &r.status,
            &r.ready,
            &r.vmi_phase,
            &r.node,
            &r.ip,
        ];
        if with_namespace {
            cells.insert(0, &r.namespace);
        }
        table.add_row(cells);
    }
    let last = header.len() - 1;
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 3 }));
    }
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}

/// kubectl's words for an error from the API server: `Error from server (NotFound): ...`.
fn server_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("Error from server ({}): {}", s.reason, s.message)
        }
        other => error_chain(other),
    }
}

pub async fn run(connection: &LazyConnection, opts: &StatusSettings) -> anyhow::Result<()> {
    let conn = connection.get().await?;
    let vm_resource = ApiResource::erase::<VirtualMachine>(&());
    let (vms, vmis): (Api<DynamicObject>, Api<VirtualMachineInstance>) = if opts.all_namespaces {
        (
            Api::all_with(conn.client.clone(), &vm_resource),
            Api::all(conn.client.clone()),
        )
    } else {
        (
            Api::namespaced_with(conn.client.clone(), &conn.namespace, &vm_resource),
            Api::namespaced(conn.client.clone(), &conn.namespace),
        )
    };
    // Raw objects, so that -o prints exactly what the server holds.
    let mut found: Vec<Value> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    if opts.names.is_empty() {
        let list = vms
            .list(&ListParams::default())
            .await
            .map_err(|e| anyhow!("{}", server_error(&e)))?;
        for vm in list.items {
            found.push(object_value(vm, &vm_resource)?);
        }
    } else {
        for name in &opts.names {
            match vms.get(name).await {
                Ok(vm) => found.push(object_value(vm, &vm_resource)?),
                Err(e) => errors.push(server_error(&e)),
            }
        }
    }
    match opts.output {
        StatusOutput::Json | StatusOutput::Yaml => print_objects(&found, opts)?,
        StatusOutput::Table if found.is_empty() && errors.is_empty() => {
            if opts.all_namespaces {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {} namespace.", conn.namespace);
            }
        }
        StatusOutput::Table if found.is_empty() => {}
        StatusOutput::Table => {
            let instances: HashMap<(String, String), VirtualMachineInstance> = vmis
                .list(&ListParams::default())
                .await
                .map_err(|e| anyhow!("{}", server_error(&e)))?
                .items
                .into_iter()
                .map(|vmi| {
                    let key = (
                        vmi.metadata.namespace.clone().unwrap_or_default(),
                        vmi.metadata.name.clone().unwrap_or_default(),
                    );
                    (key, vmi)
                })
                .collect();
            let now = Timestamp::now();
            let mut rows = Vec::new();
            for raw in &found {
                let vm: VirtualMachine = serde_json::from_value(raw.clone())
                    .map_err(|e| anyhow!("cannot read a VirtualMachine: {e}"))?;
                let key = (
                    vm.metadata.namespace.clone().unwrap_or_default(),
                    vm.metadata.name.clone().unwrap_or_default(),
                );
                rows.push(status_row(&vm, instances.get(&key), now));
            }
            print!("{}", render_table(&rows, opts.all_namespaces));
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// The object as JSON, with `apiVersion` and `kind` first (list items come without them).
fn object_value(obj: DynamicObject, resource: &ApiResource) -> anyhow::Result<Value> {
    let Value::Object(fields) = serde_json::to_value(obj)? else {
        anyhow::bail!("a VirtualMachine is not a JSON object");
    };
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), json!(resource.api_version));
    out.insert("kind".into(), json!(resource.kind));
    out.extend(
        fields
            .into_iter()
            .filter(|(k, _)| k != "apiVersion" && k != "kind"),
    );
    Ok(Value::Object(out))
}

/// One name: the object itself. Otherwise a `List`, as kubectl prints it.
fn print_objects(found: &[Value], opts: &StatusSettings) -> anyhow::Result<()> {
    let doc = if opts.names.len() == 1 && found.len() == 1 {
        found[0].clone()
    } else {
        json!({
            "apiVersion": "v1",
            "items": found,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        })
    };
    if opts.names.len() == 1 && found.is_empty() {
        return Ok(());
    }
    let text = match opts.output {
        StatusOutput::Json => serde_json::to_string_pretty(&doc)?,
        _ => serde_saphyr::to_string(&doc).map_err(|e| anyhow!("cannot print YAML: {e}"))?,
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 4 * 86400, "3y4d"),
            (9 * 365 * 86400 + 4 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_age(seconds), want, "{seconds}s");
        }
    }

    fn vm(value: Value) -> VirtualMachine {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rows_from_the_vm_and_its_instance() {
        let now: Timestamp = "2026-08-01T10:03:02Z".parse().unwrap();
        let running = vm(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm1", "namespace": "dev", "creationTimestamp": "2026-08-01T10:00:00Z"},
            "spec": {"template": {"spec": {}}},
            "status": {"printableStatus": "Running", "ready": true},
        }));
        let vmi: VirtualMachineInstance = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "vm1", "namespace": "dev"},
            "spec": {"domain": {"devices": {}}},
            "status": {"phase": "Running", "nodeName": "node-1",
                       "interfaces": [{"name": "default", "ipAddress": "10.244.0.7"}]},
        }))
        .unwrap();
        let row = status_row(&running, Some(&vmi), now);
        assert_eq!(
            row,
            StatusRow {
                namespace: "dev".into(),
                name: "vm1".into(),
                age: "3m2s".into(),
                status: "Running".into(),
                ready: "True".into(),
                vmi_phase: "Running".into(),
                node: "node-1".into(),
                ip: "10.244.0.7".into(),
            }
        );
        let fresh = vm(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm2"},
            "spec": {"template": {"spec": {}}},
        }));
        let row = status_row(&fresh, None, now);
        assert_eq!(
            (row.age.as_str(), row.status.as_str(), row.ready.as_str()),
            ("<none>", "<none>", "<none>")
        );
        assert_eq!(
            (row.vmi_phase, row.node, row.ip),
            ("<none>".into(), "<none>".into(), "<none>".into())
        );
    }

    fn row(ns: &str, name: &str, status: &str) -> StatusRow {
        StatusRow {
            namespace: ns.into(),
            name: name.into(),
            age: "5s".into(),
            status: status.into(),
            ready: "False".into(),
            vmi_phase: "<none>".into(),
            node: "<none>".into(),
            ip: "<none>".into(),
        }
    }

    #[test]
    fn table_is_kubectl_plain() {
        let rows = [
            row("default", "vm1", "Stopped"),
            row("team", "a-long-name", "Running"),
        ];
        assert_eq!(
            render_table(&rows, false),
            "\
NAME          AGE   STATUS    READY   VMI PHASE   NODE     IP
vm1           5s    Stopped   False   <none>      <none>   <none>
a-long-name   5s    Running   False   <none>      <none>   <none>
"
        );
        assert_eq!(
            render_table(&rows[..1], true),
            "\
NAMESPACE   NAME   AGE   STATUS    READY   VMI PHASE   NODE     IP
default     vm1    5s    Stopped   False   <none>      <none>   <none>
"
        );
    }
}
