//! Where a containerDisk image lives on the node: `[REGISTRY/]REPO[:TAG][@DIGEST]` is the
//! file `<REPO with / as _>.img` in the images directory (docs/data-plane.md, "Images").

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("containerDisk image {image:?}: {why}")]
pub struct ImageRefError {
    pub image: String,
    pub why: &'static str,
}

/// The image's file name, `kubevirt_cirros-container-disk-demo.img` for
/// `quay.io/kubevirt/cirros-container-disk-demo:latest`.
pub fn image_file_name(image: &str) -> Result<String, ImageRefError> {
    let error = |why| ImageRefError {
        image: image.to_string(),
        why,
    };
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let mut segments: Vec<&str> = without_digest.split('/').collect();
    let is_registry =
        |s: &str| (s.contains('.') || s.contains(':') || s == "localhost") && !s.starts_with('.');
    if segments.len() > 1 && is_registry(segments[0]) {
        segments.remove(0);
    }
    if let Some(last) = segments.last_mut() {
        *last = last.split_once(':').map_or(*last, |(repo, _tag)| repo);
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(error("empty repository name or path segment"));
    }
    // Docker's repository grammar, which also keeps the name a plain file name.
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if !segments.iter().all(|s| s.chars().all(allowed)) {
        return Err(error(
            "the repository may hold only lowercase letters, digits, '.', '_', '-' and '/'",
        ));
    }
    if segments.iter().any(|s| s.starts_with('.')) {
        return Err(error("a path segment may not start with '.'"));
    }
    Ok(format!("{}.img", segments.join("_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_files() {
        let cases = [
            (
                "quay.io/kubevirt/cirros-container-disk-demo:latest",
                "kubevirt_cirros-container-disk-demo.img",
            ),
            (
                "kubevirt/cirros-container-disk-demo:latest",
                "kubevirt_cirros-container-disk-demo.img",
            ),
            (
                "kubevirt/cirros-container-disk-demo",
                "kubevirt_cirros-container-disk-demo.img",
            ),
            ("localhost/guest:v1", "guest.img"),
            ("localhost:5000/a/b/c:tag", "a_b_c.img"),
            ("registry.example:443/tiny", "tiny.img"),
            ("tiny", "tiny.img"),
            ("tiny@sha256:abcdef", "tiny.img"),
            ("reg.io/tiny:1.0@sha256:abcdef", "tiny.img"),
            // A first segment without '.', ':' or "localhost" is part of the repository.
            ("library/busybox", "library_busybox.img"),
        ];
        for (image, want) in cases {
            assert_eq!(image_file_name(image).as_deref(), Ok(want), "{image}");
        }
    }

    #[test]
    fn bad_images_are_refused() {
        for image in [
            "",
            "quay.io/",
            "a//b",
            "Upper/Case",
            "../etc",
            "a/..",
            "x y",
        ] {
            assert!(image_file_name(image).is_err(), "{image}");
        }
        assert_eq!(
            image_file_name("a//b").unwrap_err().to_string(),
            r#"containerDisk image "a//b": empty repository name or path segment"#
        );
    }
}
