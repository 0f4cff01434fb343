//! The version this toolkit reports where KubeVirt's does (virtctl and the subresource API):
//! the KubeVirt release whose API and behaviour it follows, with this build in the semver
//! build metadata, so that KubeVirt's version-skew rule (major and minor) sees no skew between
//! KubeVirt's own virtctl and us.

/// The KubeVirt release whose API and behaviour this toolkit follows.
pub const KUBEVIRT_RELEASE: &str = "v1.9.0";

/// `v1.9.0+virt-toolkit.<crate version>` (a literal, so that it is a `const`; a test keeps it
/// in step with [`KUBEVIRT_RELEASE`]).
pub const KUBEVIRT_COMPATIBLE: &str = concat!("v1.9.0+virt-toolkit.", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_followed_release_with_our_build_as_metadata() {
        assert_eq!(
            KUBEVIRT_COMPATIBLE,
            format!(
                "{KUBEVIRT_RELEASE}+virt-toolkit.{}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
