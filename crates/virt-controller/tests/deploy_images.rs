//! deploy/images/: the Dockerfiles of the four images. They package binaries built on the host,
//! so each `COPY target/release/<bin>` must name a binary target of the workspace, and the
//! build context (.dockerignore) must let it in; other sources must exist; each ENTRYPOINT runs
//! a file the image copied. Every image that deploy/ runs, and the launcher image virt-controller
//! writes into launcher Pods, is built by exactly one Dockerfile, whose header gives the build
//! commands. And every `deploy/...` path the docs and sources mention exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One Dockerfile instruction: its keyword (upper case), its arguments, and its line.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// The instructions of a Dockerfile: comments and blank lines skipped, `\` continuations joined.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        let (body, continued) = match line.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line, false),
        };
        joined.push_str(body);
        joined.push(' ');
        if continued {
            pending = Some((start, joined));
            continue;
        }
        let joined = joined.trim();
        let (keyword, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        out.push(Instruction {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_string(),
            line: start,
        });
    }
    assert!(pending.is_none(), "a Dockerfile ends in a continuation");
    out
}

/// The words of an instruction: its JSON (exec) form, or its words without `--flags`.
fn words(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        let parsed: Vec<String> =
            serde_json::from_str(args).unwrap_or_else(|e| panic!("{args}: {e}"));
        return parsed;
    }
    args.split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .map(str::to_string)
        .collect()
}

/// The workspace's binary targets, each with its package (`cargo metadata`).
fn workspace_binaries() -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut bins = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            if target["kind"].as_array().unwrap().contains(&json!("bin")) {
                bins.insert(
                    target["name"].as_str().unwrap().to_string(),
                    package["name"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    bins
}

/// What a Dockerfile says and does.
#[derive(Debug)]
struct Image {
    file: String,
    /// `-t` of the `docker build` command its header gives.
    tag: String,
    /// The packages and binaries of the `cargo build` command its header gives.
    cargo_packages: BTreeSet<String>,
    cargo_bins: BTreeSet<String>,
    /// COPY destination → source.
    copied: BTreeMap<String, String>,
    entrypoint: String,
}

fn read_image(path: &Path) -> Image {
    let file = format!(
        "deploy/images/{}",
        path.file_name().unwrap().to_str().unwrap()
    );
    let text = std::fs::read_to_string(path).unwrap();
    // The header's build commands, e.g.
    //   cargo build --release -p virt-api --bin virt-api
    //   docker build -f deploy/images/virt-api.Dockerfile -t virt-toolkit/virt-api:v0.1.0 .
    let header: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let command = |prefix: &str| -> Vec<String> {
        let line = header
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{file}: the header has no `{prefix} …` line"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let after = |ws: &[String], flag: &str| -> Vec<String> {
        ws.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    };
    let docker = command("docker build");
    assert_eq!(
        after(&docker, "-f"),
        vec![file.clone()],
        "{file}: its docker build line builds another file"
    );
    assert_eq!(docker.last().map(String::as_str), Some("."), "{file}");
    let tag = after(&docker, "-t").pop().expect("-t");
    let cargo = command("cargo build");
    assert!(cargo.contains(&"--release".to_string()), "{file}");

    let mut copied = BTreeMap::new();
    let mut entrypoint = None;
    let all = instructions(&text);
    assert_eq!(all[0].keyword, "FROM", "{file}");
    for i in &all {
        match i.keyword.as_str() {
            "COPY" | "ADD" => {
                assert!(
                    !i.args.contains("--from"),
                    "{file}:{}: no build stages: binaries come from the host",
                    i.line
                );
                let ws = words(&i.args);
                assert!(ws.len() >= 2, "{file}:{}: {}", i.line, i.args);
                let (dest, sources) = ws.split_last().unwrap();
                for source in sources {
                    let dest = if dest.ends_with('/') {
                        format!(
                            "{dest}{}",
                            Path::new(source).file_name().unwrap().to_str().unwrap()
                        )
                    } else {
                        assert_eq!(
                            sources.len(),
                            1,
                            "{file}:{}: several sources need a directory",
                            i.line
                        );
                        dest.clone()
                    };
                    copied.insert(dest, source.clone());
                }
            }
            "ENTRYPOINT" => {
                assert!(
                    i.args.starts_with('['),
                    "{file}:{}: ENTRYPOINT in exec form, so that signals reach the binary",
                    i.line
                );
                entrypoint = words(&i.args).first().cloned();
            }
            _ => {}
        }
    }
    Image {
        tag,
        cargo_packages: after(&cargo, "-p").into_iter().collect(),
        cargo_bins: after(&cargo, "--bin").into_iter().collect(),
        copied,
        entrypoint: entrypoint.unwrap_or_else(|| panic!("{file}: no ENTRYPOINT")),
        file,
    }
}

fn images() -> Vec<Image> {
    let dir = repo().join("deploy/images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        assert!(
            f.to_str().unwrap().ends_with(".Dockerfile"),
            "{}: deploy/images/ holds only <image>.Dockerfile",
            f.display()
        );
    }
    files.iter().map(|f| read_image(f)).collect()
}

/// The `!path` lines of .dockerignore: what the build context lets in (after its `*`).
fn build_context() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"*"),
        ".dockerignore starts from nothing"
    );
    lines
        .iter()
        .filter_map(|l| l.strip_prefix('!'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_copy_source_is_built_or_in_the_repository_and_every_entrypoint_was_copied() {
    let bins = workspace_binaries();
    let context = build_context();
    let images = images();
    assert!(images.len() >= 4, "{images:?}");
    for image in &images {
        let file = &image.file;
        for source in image.copied.values() {
            match source.strip_prefix("target/release/") {
                Some(bin) => {
                    let package = bins.get(bin).unwrap_or_else(|| {
                        panic!(
                            "{file} copies {source}, but the workspace has no binary {bin}: {:?}",
                            bins.keys()
                        )
                    });
                    // The header's cargo command builds it.
                    assert!(
                        image.cargo_bins.contains(bin) && image.cargo_packages.contains(package),
                        "{file}: its `cargo build` line does not build {bin} (package {package})"
                    );
                }
                None => assert!(
                    repo().join(source).exists(),
                    "{file} copies {source}, which is not in the repository"
                ),
            }
            assert!(
                context.contains(source),
                "{file} copies {source}, which .dockerignore keeps out of the build context"
            );
        }
        assert!(
            image.copied.contains_key(&image.entrypoint),
            "{file}: ENTRYPOINT {} is not a file the image copied: {:?}",
            image.entrypoint,
            image.copied.keys()
        );
        // Nothing built that is not copied.
        for bin in &image.cargo_bins {
            assert!(
                image
                    .copied
                    .values()
                    .any(|s| s == &format!("target/release/{bin}")),
                "{file} builds {bin} but does not copy it"
            );
        }
    }
}

/// Every container image the manifests in deploy/ run.
fn manifest_images() -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(containers) = m.get("containers").and_then(Value::as_array) {
                    for c in containers {
                        out.insert(c["image"].as_str().unwrap().to_string());
                    }
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("deploy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
            docs.iter().for_each(|d| walk(d, &mut out));
        }
    }
    out
}

#[test]
fn every_image_that_runs_is_built_by_one_dockerfile() {
    let images = images();
    let mut wanted = manifest_images();
    wanted.insert(virt_reconciler::vmi::LAUNCHER_IMAGE.to_string());
    let built: Vec<&str> = images.iter().map(|i| i.tag.as_str()).collect();
    for image in &wanted {
        assert_eq!(
            built.iter().filter(|t| *t == image).count(),
            1,
            "{image} runs, but {} Dockerfiles build it: {built:?}",
            built.iter().filter(|t| *t == image).count()
        );
    }
    for tag in &built {
        assert!(
            wanted.contains(*tag),
            "a Dockerfile builds {tag}, which nothing runs"
        );
    }
}

#[test]
fn the_launcher_image_has_the_commands_launcher_pods_run() {
    let vmi: virt_reconciler::VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "default",
                     "uid": "6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11"},
        "spec": {"domain": {"devices": {}}},
    }))
    .unwrap();
    let pod = serde_json::to_value(virt_reconciler::vmi::build_launcher_pod(&vmi)).unwrap();
    let images = images();
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert!(!containers.is_empty());
    for c in containers {
        let tag = c["image"].as_str().unwrap();
        let image = images
            .iter()
            .find(|i| i.tag == tag)
            .unwrap_or_else(|| panic!("no Dockerfile builds {tag}"));
        let command = c["command"][0].as_str().unwrap();
        assert!(
            image.copied.contains_key(command),
            "launcher Pods run {command} (container {}), which {} does not copy: {:?}",
            c["name"],
            image.file,
            image.copied.keys()
        );
    }
    // QEMU, which the launcher runs from the PATH (--qemu qemu-system-x86_64), from Debian.
    let launcher = images
        .iter()
        .find(|i| i.tag == virt_reconciler::vmi::LAUNCHER_IMAGE)
        .unwrap();
    let text = std::fs::read_to_string(repo().join(&launcher.file)).unwrap();
    assert!(
        instructions(&text)
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("qemu-system-x86")),
        "{}: no qemu-system-x86",
        launcher.file
    );
}

#[test]
fn the_instructions_parse_as_docker_reads_them() {
    let parsed = instructions(
        "# comment\nFROM base\n\nRUN a \\\n  && b\n# inside\nCOPY --chown=1:1 x /y\nENTRYPOINT [\"/y\", \"run\"]\n",
    );
    let got: Vec<(&str, &str, usize)> = parsed
        .iter()
        .map(|i| (i.keyword.as_str(), i.args.as_str(), i.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("FROM", "base", 2),
            ("RUN", "a  && b", 4),
            ("COPY", "--chown=1:1 x /y", 7),
            ("ENTRYPOINT", "[\"/y\", \"run\"]", 8),
        ]
    );
    assert_eq!(words("--chown=1:1 x /y"), vec!["x", "/y"]);
    assert_eq!(words("[\"/y\", \"run\"]"), vec!["/y", "run"]);
}

/// `deploy/…` paths in `text`, as far as path characters go.
fn deploy_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("deploy/") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
            .unwrap_or(tail.len());
        // `wt-deploy/`, `../deploy` (a path from elsewhere) are not the repository's.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
            out.push(tail[..end].trim_end_matches(['.', ',']).to_string());
        }
        rest = &tail["deploy/".len()..];
    }
    out
}

#[test]
fn every_deploy_path_the_docs_and_sources_mention_exists() {
    // (Spelt in pieces: this file is among those checked.)
    let d = "deploy/";
    assert_eq!(
        deploy_paths(&format!(
            "see {d}x.Dockerfile, and `{d}crds`. not ../{d}y wt-{d}z"
        )),
        vec![format!("{d}x.Dockerfile"), format!("{d}crds")]
    );
    let root = repo();
    let tracked = Command::new("git")
        .args([
            "ls-files",
            "*.md",
            "*.rs",
            "*.sh",
            "*.yaml",
            "*.Dockerfile",
            ".dockerignore",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(tracked.status.success());
    let mut checked = 0;
    for file in String::from_utf8(tracked.stdout).unwrap().lines() {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        for path in deploy_paths(&text) {
            checked += 1;
            assert!(
                root.join(&path).exists(),
                "{file} mentions {path}, which does not exist"
            );
        }
    }
    assert!(checked > 10, "only {checked} mentions found");
}
