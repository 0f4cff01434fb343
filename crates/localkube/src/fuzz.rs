//! Property tests of everything that reads client input ("fuzzing"): the JSON and YAML body
//! decoder, the protobuf decoder, the four patch engines (alone, and as a PATCH request runs
//! them against stored objects), the label and field selector parsers, and printer-column
//! JSONPaths. Whatever comes in, they return Ok or Err and never panic; a patch of a stored
//! object is an object or a 4xx that changed nothing.
//!
//! Each property runs 64 cases; `PROPTEST_CASES=10000 cargo test -p localkube --lib fuzz`
//! runs more. The continue-token decoder has its property beside it, in `api/read.rs`.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::api::{Core, PatchType, WriteOptions};
use crate::registry::ResourceType;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Keys of the objects the server stores and of patch directives, so that generated patches
/// reach the engines' interesting paths.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "managedFields",
    "resourceVersion",
    "uid",
    "generateName",
    "ownerReferences",
    "data",
    "binaryData",
    "spec",
    "status",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "value",
    "volumes",
    "conditions",
    "type",
    "template",
    "selector",
    "matchLabels",
    "replicas",
    "fieldsV1",
    "f:data",
    "k:{\"name\":\"c\"}",
    "x",
    "a",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$setElementOrder/ports",
];

/// Strings that mean something to the engines.
const WORDS: &[&str] = &[
    "",
    "c",
    "d",
    "busybox",
    "TCP",
    "default",
    "merge",
    "replace",
    "delete",
    "deleteFromPrimitiveList",
    "retainKeys",
    "v1",
    "ConfigMap",
    "Pod",
    "Thing",
    "example.com/v1",
    "1",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-z$/.:~{}\"-]{0,10}",
        1 => any::<String>(),
    ]
}

/// Any JSON value, up to 6 levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object, as merge and strategic patches and apply configurations are.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json_value()), 0..6)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// A JSON pointer of the keys above, list positions, and escapes good and bad.
fn pointer() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => prop::sample::select(vec!["-", "0", "1", "99", "-1", "~0", "~1", "~2", "~", "", "18446744073709551616"])
            .prop_map(str::to_string),
    ];
    prop::collection::vec(token, 0..5).prop_map(|tokens| {
        tokens
            .iter()
            .map(|t| format!("/{}", t.replace('/', "~1")))
            .collect()
    })
}

/// A JSON patch: a list of operations, some malformed.
fn json_patch() -> impl Strategy<Value = Value> {
    let op = (
        prop::sample::select(vec![
            "add", "remove", "replace", "move", "copy", "test", "frob",
        ]),
        pointer(),
        pointer(),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(op, path, from, value, with_value)| {
            let mut o = json!({"op": op, "path": path});
            if matches!(op, "move" | "copy") {
                o["from"] = json!(from);
            }
            if with_value {
                o["value"] = value;
            }
            o
        });
    prop_oneof![
        9 => prop::collection::vec(op, 0..6).prop_map(Value::Array),
        1 => json_value(),
    ]
}

/// Text made of YAML's and JSON's punctuation, so that parsers get past the first byte.
fn document_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-:{}\\[\\],&*!|>'\"%@#?\\n a-z0-9\\t]{0,200}",
        json_value().prop_map(|v| v.to_string()),
        json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()),
        "\\PC{0,100}",
    ]
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One protobuf field as a tag, a wire type and a payload.
#[derive(Debug, Clone)]
enum Field {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
    Raw(Vec<u8>),
}

fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(tag, v) => {
                varint(u64::from(*tag) << 3, out);
                varint(*v, out);
            }
            Field::Fixed64(tag, v) => {
                varint(u64::from(*tag) << 3 | 1, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Fixed32(tag, v) => {
                varint(u64::from(*tag) << 3 | 5, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Bytes(tag, b) => {
                varint(u64::from(*tag) << 3 | 2, out);
                varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Field::Message(tag, inner) => {
                let mut b = Vec::new();
                encode_fields(inner, &mut b);
                varint(u64::from(*tag) << 3 | 2, out);
                varint(b.len() as u64, out);
                out.extend_from_slice(&b);
            }
            Field::Raw(b) => out.extend_from_slice(b),
        }
    }
}

/// A protobuf message of mostly well-formed fields, nested up to 6 levels.
fn protobuf_message() -> impl Strategy<Value = Vec<Field>> {
    let tag = prop_oneof![4 => 1u32..12, 1 => 1u32..40];
    let leaf = prop_oneof![
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Varint(t, v)),
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Fixed64(t, v)),
        (tag.clone(), any::<u32>()).prop_map(|(t, v)| Field::Fixed32(t, v)),
        (tag.clone(), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(t, b)| Field::Bytes(t, b)),
        (tag.clone(), "[a-z0-9.:/-]{0,16}").prop_map(|(t, s)| Field::Bytes(t, s.into_bytes())),
        (tag.clone(), json_value()).prop_map(|(t, v)| Field::Bytes(t, v.to_string().into_bytes())),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Field::Raw),
    ];
    prop::collection::vec(leaf, 0..6).prop_recursive(6, 64, 6, move |inner| {
        prop::collection::vec(
            prop_oneof![
                3 => (tag.clone(), inner).prop_map(|(t, m)| Field::Message(t, m)),
                1 => (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Varint(t, v)),
            ],
            0..6,
        )
    })
}

/// A Kubernetes protobuf document: the magic, an envelope of a known or unknown kind, and a
/// message of random fields (or the bytes after the magic are random).
fn protobuf_document() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop::sample::select(vec![
        ("v1", "ConfigMap"),
        ("v1", "Pod"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "DeleteOptions"),
        ("apps/v1", "Deployment"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("v1", "Bogus"),
    ]);
    let content_type = prop::sample::select(vec!["", "", "", "application/json", "text/plain"]);
    let envelope = (kinds, protobuf_message(), content_type).prop_map(|((av, kind), raw, ct)| {
        let mut raw_bytes = Vec::new();
        encode_fields(&raw, &mut raw_bytes);
        let type_meta = vec![
            Field::Bytes(1, av.as_bytes().to_vec()),
            Field::Bytes(2, kind.as_bytes().to_vec()),
        ];
        let mut unknown = vec![Field::Message(1, type_meta), Field::Bytes(2, raw_bytes)];
        if !ct.is_empty() {
            unknown.push(Field::Bytes(4, ct.as_bytes().to_vec()));
        }
        let mut out = b"k8s\0".to_vec();
        encode_fields(&unknown, &mut out);
        out
    });
    prop_oneof![
        4 => envelope,
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| [b"k8s\0".to_vec(), b].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A Core with a default namespace and one object of each kind of patch target: a
/// ConfigMap, a Pod and a Deployment (strategic merge with their list keys) and a custom
/// resource (merge semantics).
fn core_with_objects() -> Core {
    let core = Core::new(1000, (Ipv4Addr::new(10, 96, 0, 0), 12));
    let opts = WriteOptions::default();
    let create = |group: &str, version: &str, plural: &str, ns: &str, obj: Value| {
        let rt = core.registry.find(group, version, plural).expect("served");
        core.create(&rt, ns, obj, &opts).expect("created");
    };
    create(
        "",
        "v1",
        "namespaces",
        "",
        json!({"metadata": {"name": "default"}}),
    );
    create(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "",
        json!({"metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
    );
    for (group, version, plural, obj) in targets() {
        create(group, version, plural, "default", obj);
    }
    core
}

/// The objects that patches are applied to: (group, version, plural, object).
fn targets() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let pod_spec = json!({"containers": [{"name": "c", "image": "busybox",
        "ports": [{"containerPort": 80, "protocol": "TCP"}], "env": [{"name": "A", "value": "1"}]}]});
    vec![
        (
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"name": "cm", "labels": {"a": "b"}, "finalizers": ["f"]}, "data": {"a": "1"}}),
        ),
        (
            "",
            "v1",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": pod_spec}),
        ),
        (
            "apps",
            "v1",
            "deployments",
            json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod_spec}}}),
        ),
        (
            "example.com",
            "v1",
            "things",
            json!({"metadata": {"name": "t"}, "spec": {"x": [1, 2], "a": {"b": "c"}}}),
        ),
    ]
}

fn resource(core: &Core, index: usize) -> (std::sync::Arc<ResourceType>, String) {
    let (group, version, plural, obj) = &targets()[index];
    let rt = core.registry.find(group, version, plural).expect("served");
    (
        rt,
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Applies a patch as a PATCH request would: the answer must be an object, or a 4xx that
/// left the store as it was.
fn check_patch(
    target: usize,
    patch_type: PatchType,
    patch: &Value,
    force: bool,
) -> Result<(), TestCaseError> {
    let core = core_with_objects();
    let (rt, name) = resource(&core, target);
    let opts = WriteOptions {
        field_manager: Some("fuzz".into()),
        force,
        ..Default::default()
    };
    let before = core.store.current_rv();
    match core.patch(&rt, "default", &name, patch_type, patch, &opts, false) {
        Ok(written) => prop_assert!(written.object.is_object(), "{}", written.object),
        Err(e) => {
            prop_assert!((400..500).contains(&e.code), "{e:?}");
            prop_assert!(!e.message.is_empty());
            prop_assert_eq!(core.store.current_rv(), before, "{:?} changed the store", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn body_decoder_never_panics(text in document_text(), bytes in prop::collection::vec(any::<u8>(), 0..128), yaml: bool) {
        for body in [text.as_bytes(), &bytes[..]] {
            if let Err(e) = crate::http::parse_document(body, yaml) {
                prop_assert_eq!(e.code, 400);
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn protobuf_decoder_never_panics(body in protobuf_document()) {
        if let Ok(v) = crate::protobuf::decode_object(&body) {
            prop_assert!(v.is_object());
            prop_assert!(v["apiVersion"].is_string() && v["kind"].is_string());
        }
    }

    #[test]
    fn merge_patches_of_stored_objects_are_objects_or_4xx(target in 0..4usize, patch in prop_oneof![4 => json_object(), 1 => json_value()]) {
        check_patch(target, PatchType::Merge, &patch, false)?;
    }

    #[test]
    fn strategic_merge_patches_of_stored_objects_are_objects_or_4xx(target in 0..4usize, patch in prop_oneof![4 => json_object(), 1 => json_value()]) {
        check_patch(target, PatchType::Strategic, &patch, false)?;
    }

    #[test]
    fn json_patches_of_stored_objects_are_objects_or_4xx(target in 0..4usize, patch in json_patch()) {
        check_patch(target, PatchType::Json, &patch, false)?;
    }

    #[test]
    fn applies_to_stored_objects_are_objects_or_4xx(target in 0..4usize, config in json_object(), keep_type: bool, force: bool) {
        let mut config = config;
        // Mostly of the right type and name, so that apply gets to merge.
        if keep_type && let Some(map) = config.as_object_mut() {
            let (_, _, _, obj) = &targets()[target];
            let (api_version, kind) = match target {
                0 => ("v1", "ConfigMap"),
                1 => ("v1", "Pod"),
                2 => ("apps/v1", "Deployment"),
                _ => ("example.com/v1", "Thing"),
            };
            map.insert("apiVersion".into(), json!(api_version));
            map.insert("kind".into(), json!(kind));
            let meta = map.entry("metadata").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("name".into(), obj["metadata"]["name"].clone());
            }
        }
        check_patch(target, PatchType::Apply, &config, force)?;
    }

    /// The engines alone, on any document at all.
    #[test]
    fn patch_engines_never_panic_on_any_document(doc in json_value(), patch in json_value(), ops in json_patch()) {
        let mut merged = doc.clone();
        json_patch::merge(&mut merged, &patch);
        for meta in [
            Box::new(crate::strategic::JsonMergeMeta) as Box<dyn crate::strategic::PatchMeta>,
            Box::new(crate::strategic::BuiltinPatchMeta { kind: "Pod".into() }),
        ] {
            let _ = crate::strategic::strategic_merge(&doc, &patch, &*meta);
            let _ = crate::apply::server_side_apply(Some(&doc), &patch, "fuzz", false, &*meta, "v1", "2024-01-01T00:00:00Z");
            let _ = crate::apply::server_side_apply(None, &patch, "fuzz", true, &*meta, "v1", "2024-01-01T00:00:00Z");
        }
        if let Ok(ops) = serde_json::from_value::<json_patch::Patch>(ops) {
            let mut patched = doc.clone();
            let _ = crate::api::apply_json_patch_ops(&mut patched, ops);
        }
        let mut recorded = patch.clone();
        crate::apply::record_update(Some(&doc), &mut recorded, "fuzz", None, "v1", "2024-01-01T00:00:00Z");
    }

    #[test]
    fn label_selectors_parse_or_fail_and_print_as_parsed(s in prop_oneof![
        "[a-z0-9=!(),<> ./_-]{0,40}",
        "[a-z]{1,3}( (in|notin) \\([a-z,]{0,6}\\)|(=|==|!=|<|>)[a-z0-9]{0,3})?(,[a-z]{1,3})*",
        "\\PC{0,20}",
    ], labels in prop::collection::btree_map("[a-z]{1,3}", "[a-z0-9]{0,3}", 0..4)) {
        if let Ok(selector) = crate::selectors::parse_label_selector(&s) {
            let printed = selector.to_string();
            let again = crate::selectors::parse_label_selector(&printed);
            prop_assert_eq!(again.as_ref().ok(), Some(&selector), "{:?} printed as {:?}", s, printed);
            let labels: Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            selector.matches(&labels);
        }
    }

    #[test]
    fn label_selector_objects_never_panic(v in json_value()) {
        let _ = crate::selectors::label_selector_from_object(&v);
        let _ = crate::selectors::label_selector_from_object(&json!({"matchExpressions": [v.clone()], "matchLabels": v}));
    }

    #[test]
    fn field_selectors_parse_or_fail_and_print_as_parsed(s in prop_oneof![
        "[a-z.=!,\\\\]{0,40}",
        "(metadata\\.name|spec\\.nodeName|status\\.phase)(=|==|!=)[a-z\\\\,=]{0,6}(,(metadata\\.namespace)=[a-z]{0,3})?",
        "\\PC{0,20}",
    ]) {
        // The same terms: their order follows the sorted text, which printing changes.
        let terms = |selector: &crate::selectors::FieldSelector| {
            let mut terms: Vec<String> = selector.requirements().iter().map(ToString::to_string).collect();
            terms.sort();
            terms
        };
        if let Ok(selector) = crate::selectors::parse_field_selector(&s) {
            let printed = selector.to_string();
            let again = crate::selectors::parse_field_selector(&printed);
            prop_assert_eq!(again.as_ref().ok().map(terms), Some(terms(&selector)), "{:?} printed as {:?}", s, printed);
            selector.matches(|_| Some("x".to_string()));
        }
    }

    /// A CRD's printer columns hold JSONPaths that the server evaluates on every table.
    #[test]
    fn printer_column_paths_never_panic(path in prop_oneof![
        "[.a-z\\[\\]0-9*?@()=<>!'\" $-]{0,30}",
        "\\PC{0,20}",
    ], obj in json_value()) {
        let columns = json!([{"name": "x", "type": "string", "jsonPath": path}]);
        let _ = crate::table::crd_cells(&columns, &obj);
        let _ = crate::table::builtin_cells("", "pods", &obj, chrono::Utc::now());
        let _ = crate::table::builtin_cells("apps", "deployments", &obj, chrono::Utc::now());
    }
}
