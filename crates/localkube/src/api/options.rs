//! kube-apiserver's checks of a write's options (`CreateOptions`, `UpdateOptions`,
//! `PatchOptions`, `DeleteOptions`, from the query or a DeleteOptions body): a value it does not
//! support is a 422 `Invalid` of the options in group `meta.k8s.io`, e.g.
//! `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Maybe"}:
//! supported values: "All"`, sent before the body is read.

use super::{FieldValidation, PatchType, Propagation};
use crate::status::{ApiError, Cause};
use crate::validation::go_quote;

/// Which options a request carries: the verb's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsKind {
    Create,
    Update,
    Patch,
    Delete,
}

impl OptionsKind {
    pub fn kind(self) -> &'static str {
        match self {
            OptionsKind::Create => "CreateOptions",
            OptionsKind::Update => "UpdateOptions",
            OptionsKind::Patch => "PatchOptions",
            OptionsKind::Delete => "DeleteOptions",
        }
    }
}

/// The 422 of options with these problems.
pub fn invalid(kind: OptionsKind, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("meta.k8s.io", kind.kind(), "", causes)
}

fn not_supported(field: &str, value: String, supported: &str) -> Cause {
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!("Unsupported value: {value}: supported values: {supported}"),
        field: field.into(),
    }
}

/// Whether `dryRun` (every value it was given) asks for a dry run: each value must be `All`.
pub fn dry_run(values: &[&str]) -> Result<bool, Cause> {
    if values.iter().all(|v| *v == "All") {
        return Ok(!values.is_empty());
    }
    // Go prints the list as %#v does.
    let list: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    Err(not_supported(
        "dryRun",
        format!("[]string{{{}}}", list.join(", ")),
        "\"All\"",
    ))
}

/// The `fieldValidation` directive; absent or empty is `Warn`.
pub fn field_validation(value: Option<&str>) -> Result<FieldValidation, Cause> {
    let value = value.unwrap_or("");
    FieldValidation::parse(value).ok_or_else(|| {
        not_supported(
            "fieldValidation",
            go_quote(value),
            "\"\", \"Ignore\", \"Strict\", \"Warn\"",
        )
    })
}

/// A `propagationPolicy`.
pub fn propagation(value: &str) -> Result<Propagation, Cause> {
    match value {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(not_supported(
            "propagationPolicy",
            go_quote(other),
            "\"Foreground\", \"Background\", \"Orphan\", \"nil\"",
        )),
    }
}

/// What `PatchOptions` must be for a patch of this type: an apply names its field manager,
/// and only an apply may say `force` (even `force=false`).
pub fn patch_rules(patch_type: PatchType, field_manager: Option<&str>, force: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    if patch_type == PatchType::Apply {
        if field_manager.unwrap_or("").is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            });
        }
    } else if force {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may not be specified for non-apply patch".into(),
            field: "force".into(),
        });
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_takes_only_all() {
        assert_eq!(dry_run(&[]), Ok(false));
        assert_eq!(dry_run(&["All"]), Ok(true));
        assert_eq!(dry_run(&["All", "All"]), Ok(true));
        for (values, shown) in [
            (&["Maybe"][..], "[]string{\"Maybe\"}"),
            (&["All", "all"][..], "[]string{\"All\", \"all\"}"),
            (&[""][..], "[]string{\"\"}"),
        ] {
            let cause = dry_run(values).unwrap_err();
            assert_eq!(cause.field, "dryRun");
            assert_eq!(cause.reason, "FieldValueNotSupported");
            assert_eq!(
                cause.message,
                format!("Unsupported value: {shown}: supported values: \"All\"")
            );
        }
    }

    #[test]
    fn field_validation_and_propagation_name_what_they_support() {
        assert_eq!(field_validation(None), Ok(FieldValidation::Warn));
        assert_eq!(
            field_validation(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        assert_eq!(
            field_validation(Some("Loose")).unwrap_err().message,
            "Unsupported value: \"Loose\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        assert_eq!(propagation("Orphan"), Ok(Propagation::Orphan));
        assert_eq!(
            propagation("Sideways").unwrap_err().message,
            "Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let e = invalid(OptionsKind::Delete, vec![propagation("x").unwrap_err()]);
        assert_eq!((e.code, &*e.reason), (422, "Invalid"));
        assert!(
            e.message
                .starts_with("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"x\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_an_apply_has_a_field_manager_rule_and_only_it_may_force() {
        let fields = |t, m, f| -> Vec<String> {
            patch_rules(t, m, f).into_iter().map(|c| c.field).collect()
        };
        assert_eq!(fields(PatchType::Apply, None, false), ["fieldManager"]);
        assert_eq!(fields(PatchType::Apply, Some(""), true), ["fieldManager"]);
        assert!(fields(PatchType::Apply, Some("m"), true).is_empty());
        assert_eq!(fields(PatchType::Merge, None, true), ["force"]);
        assert!(fields(PatchType::Json, None, false).is_empty());
    }
}
