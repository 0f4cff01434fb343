//! KubeVirt's `version.Info`: this client's, the server's (virt-api's
//! `GET /apis/subresources.kubevirt.io/<version>/version`), and the Go-syntax line that
//! KubeVirt's `virtctl version` prints, which scripts may parse.

use serde_json::Value;

use crate::client::{Connection, error_chain};
use crate::lifecycle::SUBRESOURCE_GROUP;
use crate::names::path_segment;

/// This client's version, e.g. `v1.9.0+virt-toolkit.0.1.0`: the KubeVirt release this toolkit
/// follows, with our build in the semver metadata, so KubeVirt's skew rule sees none.
pub const CLIENT_VERSION: &str = virt_reconciler::version::KUBEVIRT_COMPATIBLE;

/// KubeVirt's `version.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionInfo {
    pub git_version: String,
    pub git_commit: String,
    pub git_tree_state: String,
    pub build_date: String,
    pub go_version: String,
    pub compiler: String,
    pub platform: String,
}

impl VersionInfo {
    /// This build's.
    pub fn client() -> VersionInfo {
        VersionInfo {
            git_version: CLIENT_VERSION.to_string(),
            git_commit: String::new(),
            git_tree_state: String::new(),
            build_date: "1970-01-01T00:00:00Z".to_string(),
            go_version: "none (Rust)".to_string(),
            compiler: "rustc".to_string(),
            platform: go_platform(std::env::consts::OS, std::env::consts::ARCH),
        }
    }

    /// From virt-api's JSON (`gitVersion`, ...); a missing field is empty, as in Go.
    pub fn from_json(json: &Value) -> Option<VersionInfo> {
        let field = |name: &str| match &json[name] {
            Value::String(s) => Some(s.clone()),
            Value::Null => Some(String::new()),
            _ => None,
        };
        json.is_object().then_some(())?;
        Some(VersionInfo {
            git_version: field("gitVersion")?,
            git_commit: field("gitCommit")?,
            git_tree_state: field("gitTreeState")?,
            build_date: field("buildDate")?,
            go_version: field("goVersion")?,
            compiler: field("compiler")?,
            platform: field("platform")?,
        })
    }

    /// As Go's `%#v` prints it: `version.Info{GitVersion:"v1.9.0", GitCommit:"...", ...}`.
    pub fn go_syntax(&self) -> String {
        let fields = [
            ("GitVersion", &self.git_version),
            ("GitCommit", &self.git_commit),
            ("GitTreeState", &self.git_tree_state),
            ("BuildDate", &self.build_date),
            ("GoVersion", &self.go_version),
            ("Compiler", &self.compiler),
            ("Platform", &self.platform),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}:{}", go_quote(value)))
            .collect();
        format!("version.Info{{{}}}", body.join(", "))
    }
}

/// `GOOS/GOARCH` for Rust's OS and architecture names.
pub fn go_platform(os: &str, arch: &str) -> String {
    let os = match os {
        "macos" => "darwin",
        other => other,
    };
    let arch = match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("{os}/{arch}")
}

/// A string literal as Go's `strconv.Quote` writes it, so that a server's text cannot break
/// the line.
fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The server's KubeVirt version: the subresource group's preferred version, then its
/// `version` endpoint. The error is one sentence for users.
pub async fn server(conn: &Connection) -> Result<VersionInfo, String> {
    let group = get_json(conn, &format!("/apis/{SUBRESOURCE_GROUP}")).await?;
    let group_version = group["preferredVersion"]["groupVersion"]
        .as_str()
        .or_else(|| group["versions"][0]["groupVersion"].as_str())
        .ok_or_else(|| format!("the server's {SUBRESOURCE_GROUP} API group lists no version"))?;
    // The server's answer goes into a URL: each of its two segments is encoded.
    let (group, version) = group_version
        .split_once('/')
        .ok_or_else(|| format!("the server's {SUBRESOURCE_GROUP} API group lists no version"))?;
    let path = format!(
        "/apis/{}/{}/version",
        path_segment(group),
        path_segment(version)
    );
    let info = get_json(conn, &path).await?;
    VersionInfo::from_json(&info)
        .ok_or_else(|| format!("the server's answer to {path} is not a KubeVirt version"))
}

/// GET `path` as JSON; errors as Go's virtctl words them (the method, the URL, then why).
async fn get_json(conn: &Connection, path: &str) -> Result<Value, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    conn.client
        .request::<Value>(request)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 404 => format!(
                "the server does not serve {SUBRESOURCE_GROUP} (is KubeVirt installed?): {}",
                // A plain-text 404 (Go's mux, as kube-apiserver's) ends in a newline.
                status.message.trim_end()
            ),
            kube::Error::Api(status) if !status.message.trim().is_empty() => {
                status.message.trim_end().to_string()
            }
            other => format!(
                "Get \"{}{path}\": {}",
                conn.server.trim_end_matches('/'),
                error_chain(&other)
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_version_is_the_followed_kubevirt_with_our_build() {
        assert_eq!(
            CLIENT_VERSION,
            format!("v1.9.0+virt-toolkit.{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn go_syntax_of_version_info() {
        let info = VersionInfo {
            git_version: "v1.9.0".into(),
            git_commit: "abc".into(),
            git_tree_state: "clean".into(),
            build_date: "2026-01-01T00:00:00Z".into(),
            go_version: "go1.24.4".into(),
            compiler: "gc".into(),
            platform: "linux/amd64".into(),
        };
        assert_eq!(
            info.go_syntax(),
            "version.Info{GitVersion:\"v1.9.0\", GitCommit:\"abc\", GitTreeState:\"clean\", \
             BuildDate:\"2026-01-01T00:00:00Z\", GoVersion:\"go1.24.4\", Compiler:\"gc\", \
             Platform:\"linux/amd64\"}"
        );
        assert_eq!(
            VersionInfo::default().go_syntax(),
            "version.Info{GitVersion:\"\", GitCommit:\"\", GitTreeState:\"\", BuildDate:\"\", \
             GoVersion:\"\", Compiler:\"\", Platform:\"\"}"
        );
    }

    #[test]
    fn go_quoting() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("line\nbreak\ttab", "\"line\\nbreak\\ttab\""),
            ("\u{1b}[31m", "\"\\x1b[31m\""),
            ("\u{85}", "\"\\u0085\""),
            ("é", "\"é\""),
        ];
        for (raw, quoted) in cases {
            assert_eq!(go_quote(raw), quoted, "{raw:?}");
        }
    }

    #[test]
    fn platforms() {
        assert_eq!(go_platform("linux", "x86_64"), "linux/amd64");
        assert_eq!(go_platform("linux", "aarch64"), "linux/arm64");
        assert_eq!(go_platform("macos", "aarch64"), "darwin/arm64");
        assert_eq!(go_platform("linux", "riscv64"), "linux/riscv64");
    }

    #[test]
    fn server_answers_parse_with_missing_fields_empty() {
        let info = VersionInfo::from_json(&serde_json::json!({
            "gitVersion": "v1.9.0+virt-toolkit.0.1.0", "compiler": "rustc", "extra": 1
        }))
        .unwrap();
        assert_eq!(info.git_version, "v1.9.0+virt-toolkit.0.1.0");
        assert_eq!(info.compiler, "rustc");
        assert_eq!(info.git_commit, "");
        assert_eq!(
            VersionInfo::from_json(&serde_json::json!({"gitVersion": 1})),
            None
        );
        assert_eq!(VersionInfo::from_json(&serde_json::json!("v1.9.0")), None);
    }
}
