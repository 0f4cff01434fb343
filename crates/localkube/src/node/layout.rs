//! Where a process pod lives on the host, under the node's root directory: hostPath `/x/y` is
//! `<root>/x/y`, the pod's directory is `<root>/var/lib/kubelet/pods/<uid>/`, its emptyDirs are
//! `volumes/kubernetes.io~empty-dir/<name>/`, its logs `logs/<container>.log`, and container
//! `<c>` runs in `rootfs/<c>/`, where each volume mount is a symlink to its volume.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Container, Pod};

/// The directory of a pod.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("var/lib/kubelet/pods").join(uid)
}

/// The log file of a container's current run.
pub fn log_file(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(format!("{container}.log"))
}

/// The log file of a container's previous run.
pub fn previous_log_file(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir
        .join("logs")
        .join(format!("{container}.previous.log"))
}

/// The working directory ("root") of a container.
pub fn rootfs(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("rootfs").join(container)
}

/// `path` under `base`, refusing `..` so that a pod cannot reach outside.
fn under(base: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("path {path:?} must not contain \"..\"");
    }
    Ok(base.join(rel))
}

/// Creates the directories of a pod's volumes; returns each volume's host directory by name.
pub fn prepare_volumes(root: &Path, pod: &Pod) -> anyhow::Result<HashMap<String, PathBuf>> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = pod_dir(root, &uid);
    let mut out = HashMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in volumes {
        let path = if let Some(hp) = &v.host_path {
            let path =
                under(root, &hp.path).with_context(|| format!("hostPath volume {}", v.name))?;
            match hp.type_.as_deref().unwrap_or("") {
                "" | "DirectoryOrCreate" => create_dir(&path)?,
                "Directory" if !path.is_dir() => {
                    bail!(
                        "hostPath volume {}: {} is not a directory",
                        v.name,
                        path.display()
                    )
                }
                _ => {}
            }
            path
        } else {
            // emptyDir, and any other kind as an empty directory of its own.
            let kind = if v.empty_dir.is_some() {
                "kubernetes.io~empty-dir"
            } else {
                "localkube~unsupported"
            };
            let path = dir.join("volumes").join(kind).join(&v.name);
            create_dir(&path)?;
            path
        };
        out.insert(v.name, path);
    }
    create_dir(&dir.join("logs"))?;
    Ok(out)
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Creates a container's working directory with its volume mounts as symlinks.
pub fn prepare_rootfs(
    pod_dir: &Path,
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> anyhow::Result<PathBuf> {
    let fs = rootfs(pod_dir, &container.name);
    create_dir(&fs)?;
    for m in container.volume_mounts.clone().unwrap_or_default() {
        let Some(volume) = volumes.get(&m.name) else {
            bail!("volume mount {}: no volume of that name", m.name);
        };
        let target = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let t = under(volume, sub).with_context(|| format!("subPath of {}", m.name))?;
                create_dir(&t)?;
                t
            }
            None => volume.clone(),
        };
        let link = under(&fs, &m.mount_path)
            .with_context(|| format!("mountPath of volume mount {}", m.name))?;
        if link == fs {
            bail!("volume mount {}: mountPath must not be /", m.name);
        }
        if let Some(parent) = link.parent() {
            create_dir(parent)?;
        }
        // A restarted container finds its links from the run before.
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::remove_file(&link)
                .with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))?;
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volumes_and_mounts_land_where_the_layout_says() {
        let root = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "scratch", "mountPath": "/var/run/x"},
                    {"name": "host", "mountPath": "/data"},
                ]}],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/srv/h", "type": "DirectoryOrCreate"}},
                ],
            },
        }))
        .unwrap();
        let volumes = prepare_volumes(root.path(), &pod).unwrap();
        let dir = pod_dir(root.path(), "u1");
        assert_eq!(
            volumes["scratch"],
            dir.join("volumes/kubernetes.io~empty-dir/scratch")
        );
        assert_eq!(volumes["host"], root.path().join("srv/h"));
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let fs = prepare_rootfs(&dir, c, &volumes).unwrap();
        assert_eq!(fs, dir.join("rootfs/c"));
        assert_eq!(
            std::fs::read_link(fs.join("var/run/x")).unwrap(),
            volumes["scratch"]
        );
        assert_eq!(
            std::fs::read_link(fs.join("data")).unwrap(),
            volumes["host"]
        );
        // Again, as for a restart.
        prepare_rootfs(&dir, c, &volumes).unwrap();
    }

    #[test]
    fn paths_cannot_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"uid": "u"},
            "spec": {"containers": [], "volumes": [{"name": "h", "hostPath": {"path": "/../etc"}}]},
        }))
        .unwrap();
        let err = prepare_volumes(root.path(), &pod).unwrap_err();
        assert!(format!("{err:#}").contains("must not contain"), "{err:#}");
    }
}
