//! The version this toolkit reports where KubeVirt's does: the KubeVirt minor whose API and
//! behaviour it follows, with this build in the semver build metadata, so that KubeVirt's own
//! virtctl sees no version skew against the playground.

/// The KubeVirt release whose API and behaviour this toolkit follows.
pub const KUBEVIRT_RELEASE: &str = "v1.9.0";

/// `v1.9.0+virt-toolkit.<crate version>`.
pub fn kubevirt_compatible() -> String {
    format!(
        "{KUBEVIRT_RELEASE}+virt-toolkit.{}",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_followed_release_with_our_build_as_metadata() {
        let v = super::kubevirt_compatible();
        assert!(v.starts_with("v1.9.0+virt-toolkit."), "{v}");
        assert_eq!(
            v,
            format!("v1.9.0+virt-toolkit.{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
