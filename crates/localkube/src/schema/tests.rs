//! Tests of pruning, defaulting, validation and the structural check.

use super::format::{bad_value, go_float, go_quote};
use super::validate::is_multiple_of;
use super::*;
use serde_json::json;

fn no_refs<'a>(_: &str) -> Option<&'a Value> {
    None
}

fn plain(root: &Value) -> Schema<'_> {
    Schema {
        root,
        resolve: &no_refs,
    }
}

fn vm_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "running": {"type": "boolean"},
                    "template": {
                        "type": "object",
                        "properties": {
                            "metadata": {
                                "type": "object",
                                "nullable": true,
                                "x-kubernetes-preserve-unknown-fields": true
                            },
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": true,
                                "properties": {
                                    "domain": {
                                        "type": "object",
                                        "properties": {
                                            "cpu": {
                                                "type": "object",
                                                "properties": {
                                                    "cores": {"type": "integer"}
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    },
                    "dataVolumeTemplates": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}}
                        }
                    }
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

fn vm_object() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "whatever": {"deep": 1}},
        "extra": 1,
        "spec": {
            "running": true,
            "foo": "bar",
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "domain": {
                        "cpu": {"cores": 2, "bogus": true},
                        "devices": {"disks": [{"name": "d"}]}
                    },
                    "volumes": [{"name": "v", "containerDisk": {"image": "x"}}]
                },
                "junk": 3
            },
            "dataVolumeTemplates": [{"name": "a"}, {"name": "b", "extra": {"x": 1}}]
        },
        "status": {"anything": {"goes": [1, 2]}}
    })
}

#[test]
fn prune_vm_like_schema() {
    let schema = vm_schema();
    let mut obj = vm_object();
    let removed = prune(&mut obj, &plain(&schema), true);
    assert_eq!(
        removed,
        vec![
            ".extra",
            ".spec.foo",
            ".spec.template.spec.domain.cpu.bogus",
            // Preservation applies to template.spec itself, not to its specified children.
            ".spec.template.spec.domain.devices",
            ".spec.template.junk",
            ".spec.dataVolumeTemplates[1].extra",
        ]
    );
    assert_eq!(obj["metadata"]["whatever"]["deep"], 1);
    assert_eq!(obj["spec"]["template"]["metadata"]["labels"]["a"], "b");
    assert!(
        obj["spec"]["template"]["spec"]["domain"]
            .get("devices")
            .is_none()
    );
    assert_eq!(
        obj["spec"]["template"]["spec"]["volumes"][0]["containerDisk"]["image"],
        "x"
    );
    assert_eq!(
        obj["spec"]["template"]["spec"]["domain"]["cpu"],
        json!({"cores": 2})
    );
    assert_eq!(obj["status"]["anything"]["goes"], json!([1, 2]));
    assert_eq!(obj["spec"]["dataVolumeTemplates"][1], json!({"name": "b"}));
    // Key order is preserved and pruning again is a no-op.
    let keys: Vec<&String> = obj.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
    assert!(prune(&mut obj, &plain(&schema), true).is_empty());
    assert!(validate(&obj, &plain(&schema)).is_empty());
}

#[test]
fn prune_not_root_prunes_meta_fields() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {}, "a": "x"});
    let removed = prune(&mut obj, &plain(&schema), false);
    assert_eq!(removed, vec![".apiVersion", ".kind", ".metadata"]);
    assert_eq!(obj, json!({"a": "x"}));
    let mut root = json!({"apiVersion": "v1", "kind": "K", "metadata": {"x": 1}});
    assert!(prune(&mut root, &plain(&schema), true).is_empty());
}

#[test]
fn prune_embedded_resource() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object", "properties": {}}}
                    }
                }
            }
        }
    });
    let mut obj = json!({"spec": {"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"x": 1}, "other": 2
    }}});
    let removed = prune(&mut obj, &plain(&schema), true);
    assert_eq!(
        removed,
        vec![".spec.template.spec.x", ".spec.template.other"]
    );
    assert_eq!(obj["spec"]["template"]["metadata"]["name"], "p");
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");

    let missing = json!({"spec": {"template": {"kind": ""}}});
    let errs = validate(&missing, &plain(&schema));
    let fields: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                "spec.template.apiVersion",
                "Required value: must not be empty"
            ),
            ("spec.template.kind", "Required value: must not be empty"),
        ]
    );
}

#[test]
fn prune_anything_goes_and_int_or_string() {
    let schema = json!({
        "type": "object",
        "properties": {
            "free": {"description": "schemars output for a raw value"},
            "empty": {},
            "port": {"x-kubernetes-int-or-string": true},
            "map": {"type": "object", "additionalProperties": true},
            "typed": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"a": {"type": "string"}}
            }},
            "closed": {"type": "object"}
        }
    });
    let mut obj = json!({
        "free": {"x": {"y": 1}},
        "empty": [{"z": 1}],
        "port": {"weird": true},
        "map": {"k": {"v": 1}},
        "typed": {"one": {"a": "x", "b": "y"}},
        "closed": {"gone": 1}
    });
    let removed = prune(&mut obj, &plain(&schema), false);
    assert_eq!(removed, vec![".typed.one.b", ".closed.gone"]);
    assert_eq!(obj["free"]["x"]["y"], 1);
    assert_eq!(obj["empty"][0]["z"], 1);
    assert_eq!(obj["port"]["weird"], true);
    assert_eq!(obj["map"]["k"]["v"], 1);
}

#[test]
fn prune_preserved_array_items_and_nulls() {
    let schema = json!({
        "type": "object",
        "properties": {
            "list": {
                "type": "array",
                "x-kubernetes-preserve-unknown-fields": true,
                "items": {"type": "object", "properties": {"a": {"type": "string"}}}
            },
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": true},
            "defaulted": {"type": "string", "default": "d"},
            "schemars": {"type": ["string", "null"]}
        }
    });
    let mut obj = json!({
        "list": [{"a": "x", "b": "kept"}],
        "plain": null, "nullable": null, "defaulted": null, "schemars": null
    });
    let s = plain(&schema);
    assert!(prune(&mut obj, &s, false).is_empty());
    assert_eq!(obj["list"][0]["b"], "kept");
    assert!(obj.get("plain").is_none());
    assert!(obj["nullable"].is_null());
    assert!(obj["schemars"].is_null());
    assert!(obj["defaulted"].is_null());
    apply_defaults(&mut obj, &s);
    assert_eq!(obj["defaulted"], "d");
    assert!(obj["nullable"].is_null());
    assert!(validate(&obj, &s).is_empty());
}

fn components() -> Value {
    json!({
        "Spec": {
            "type": "object",
            "description": "target",
            "properties": {
                "replicas": {"type": "integer", "format": "int32", "minimum": 0},
                "selector": {"allOf": [{"$ref": "#/components/schemas/Selector"}],
                             "description": "sibling"},
                "child": {"$ref": "#/components/schemas/Tree"}
            },
            "required": ["replicas"]
        },
        "Selector": {
            "type": "object",
            "properties": {
                "matchLabels": {"type": "object",
                                "additionalProperties": {"type": "string"}}
            }
        },
        "Tree": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "leaf"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}
            }
        }
    })
}

#[test]
fn refs_and_all_of_are_followed() {
    let comps = components();
    let resolve = |r: &str| {
        r.strip_prefix("#/components/schemas/")
            .and_then(|name| comps.get(name))
    };
    let root = json!({
        "type": "object",
        "properties": {
            "spec": {"$ref": "#/components/schemas/Spec", "description": "sibling"},
            "local": {"$ref": "#/$defs/Local"},
            "legacy": {"$ref": "#/definitions/Legacy"},
            "missing": {"$ref": "#/components/schemas/Nope"}
        },
        "$defs": {"Local": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "definitions": {"Legacy": {"type": "object", "properties": {"b": {"type": "string"}}}}
    });
    let s = Schema {
        root: &root,
        resolve: &resolve,
    };
    let mut obj = json!({
        "spec": {
            "replicas": 1,
            "x": 1,
            "selector": {"matchLabels": {"a": "b"}, "y": 2},
            "child": {"children": [{"children": [{"z": 3}]}]}
        },
        "local": {"a": "x", "b": "y"},
        "legacy": {"a": "x", "b": "y"},
        "missing": {"kept": true}
    });
    let removed = prune(&mut obj, &s, false);
    assert_eq!(
        removed,
        vec![
            ".spec.x",
            ".spec.selector.y",
            ".spec.child.children[0].children[0].z",
            ".local.b",
            ".legacy.a",
        ]
    );
    assert_eq!(obj["missing"]["kept"], true);
    apply_defaults(&mut obj, &s);
    assert_eq!(obj["spec"]["child"]["name"], "leaf");
    assert_eq!(
        obj["spec"]["child"]["children"][0]["children"][0]["name"],
        "leaf"
    );
    assert!(validate(&obj, &s).is_empty());

    let bad = json!({"spec": {"replicas": 3000000000i64, "selector": {"matchLabels": {"a": 1}}},
                     "local": {"a": 2}});
    let errs: Vec<String> = validate(&bad, &s).iter().map(FieldError::display).collect();
    assert_eq!(
        errs,
        vec![
            "spec.replicas: Invalid value: 3000000000: spec.replicas in body must be of type \
             int32: \"3000000000\"",
            "spec.selector.matchLabels.a: Invalid value: \"integer\": \
             spec.selector.matchLabels.a in body must be of type string: \"integer\"",
            "local.a: Invalid value: \"integer\": local.a in body must be of type string: \
             \"integer\"",
        ]
    );
    let missing = json!({"spec": {}});
    let errs = validate(&missing, &s);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.replicas");
    assert_eq!(errs[0].reason, "FieldValueRequired");
    assert_eq!(errs[0].message, "Required value");
}

#[test]
fn self_referencing_ref_terminates() {
    let root = json!({"$ref": "#", "type": "object", "properties": {"a": {"$ref": "#"}}});
    let mut obj = json!({"a": {"a": {"b": 1}}, "c": null});
    let s = plain(&root);
    assert_eq!(prune(&mut obj, &s, false), vec![".a.a.b", ".c"]);
    apply_defaults(&mut obj, &s);
    assert!(validate(&obj, &s).is_empty());
}

#[test]
fn defaults_in_nested_arrays_and_maps() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "strategy": {
                        "type": "object",
                        "default": {},
                        "properties": {
                            "type": {"type": "string", "default": "Rolling"},
                            "maxSurge": {"x-kubernetes-int-or-string": true, "default": "25%"}
                        }
                    },
                    "containers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "ports": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "port": {"type": "integer"},
                                            "protocol": {"type": "string", "default": "TCP"}
                                        }
                                    }
                                }
                            }
                        }
                    },
                    "tags": {"type": "array", "items": {"type": "string", "default": "none"}},
                    "limits": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "default": {"max": 1},
                            "properties": {"min": {"type": "integer", "default": 0}}
                        }
                    },
                    "keep": {"type": "string", "nullable": true, "default": "x"},
                    "given": {"type": "string", "default": "x"}
                }
            }
        }
    });
    let mut obj = json!({"spec": {
        "containers": [
            {"name": "a", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
            {"name": "b"}
        ],
        "tags": ["a", null],
        "limits": {"cpu": {}, "mem": null},
        "keep": null,
        "given": "y"
    }});
    apply_defaults(&mut obj, &plain(&schema));
    let spec = &obj["spec"];
    assert_eq!(
        spec["strategy"],
        json!({"type": "Rolling", "maxSurge": "25%"})
    );
    assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["containers"][0]["ports"][1]["protocol"], "UDP");
    assert!(spec["containers"][1].get("ports").is_none());
    assert_eq!(spec["tags"], json!(["a", "none"]));
    assert_eq!(spec["limits"]["cpu"], json!({"min": 0}));
    assert_eq!(spec["limits"]["mem"], json!({"max": 1, "min": 0}));
    assert!(spec["keep"].is_null());
    assert_eq!(spec["given"], "y");
}

/// Validates `{"x": value}` against `{"properties": {"x": prop}}` under `spec`.
fn errors_for(prop: Value, value: Value) -> Vec<FieldError> {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"x": prop}
    }}});
    validate(&json!({"spec": {"x": value}}), &plain(&schema))
}

fn one(prop: Value, value: Value) -> (String, &'static str) {
    let errs = errors_for(prop, value);
    assert_eq!(errs.len(), 1, "{errs:?}");
    (errs[0].display(), errs[0].reason)
}

#[test]
fn keyword_messages() {
    let cases: Vec<(Value, Value, &str, &str)> = vec![
        (
            json!({"type": "integer"}),
            json!("string"),
            "spec.x: Invalid value: \"string\": spec.x in body must be of type integer: \
             \"string\"",
            "FieldValueTypeInvalid",
        ),
        (
            json!({"type": "integer"}),
            json!(1.5),
            "spec.x: Invalid value: \"number\": spec.x in body must be of type integer: \
             \"number\"",
            "FieldValueTypeInvalid",
        ),
        (
            json!({"type": "string", "enum": ["a", "b"]}),
            json!("x"),
            "spec.x: Unsupported value: \"x\": supported values: \"a\", \"b\"",
            "FieldValueNotSupported",
        ),
        (
            json!({"type": "integer", "enum": [1, 2]}),
            json!(3),
            "spec.x: Unsupported value: 3: supported values: \"1\", \"2\"",
            "FieldValueNotSupported",
        ),
        (
            json!({"type": "integer", "maximum": 100}),
            json!(300),
            "spec.x: Invalid value: 300: spec.x in body should be less than or equal to 100",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "integer", "maximum": 100, "exclusiveMaximum": true}),
            json!(100),
            "spec.x: Invalid value: 100: spec.x in body should be less than 100",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "number", "minimum": 0.5}),
            json!(0.25),
            "spec.x: Invalid value: 0.25: spec.x in body should be greater than or equal to \
             0.5",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}),
            json!(0),
            "spec.x: Invalid value: 0: spec.x in body should be greater than 0",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "integer", "multipleOf": 5}),
            json!(12),
            "spec.x: Invalid value: 12: spec.x in body should be a multiple of 5",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "string", "maxLength": 5}),
            json!("abcdef"),
            "spec.x: Too long: may not be more than 5 bytes",
            "FieldValueTooLong",
        ),
        (
            json!({"type": "string", "minLength": 3}),
            json!("ab"),
            "spec.x: Invalid value: \"ab\": spec.x in body should be at least 3 chars long",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            json!("abc1"),
            "spec.x: Invalid value: \"abc1\": spec.x in body should match '^[a-z]+$'",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "array", "maxItems": 3}),
            json!([1, 2, 3, 4]),
            "spec.x: Too many: 4: must have at most 3 items",
            "FieldValueTooMany",
        ),
        (
            json!({"type": "array", "minItems": 2}),
            json!([1]),
            "spec.x: Invalid value: 1: spec.x in body should have at least 2 items",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "array", "uniqueItems": true}),
            json!([1, 2, 1]),
            "spec.x: Invalid value: \"\": spec.x in body shouldn't contain duplicates",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "object", "maxProperties": 1}),
            json!({"a": 1, "b": 2}),
            "spec.x: Too many: 2: must have at most 1 items",
            "FieldValueTooMany",
        ),
        (
            json!({"type": "object", "minProperties": 2}),
            json!({"a": 1}),
            "spec.x: Invalid value: 1: spec.x in body should have at least 2 properties",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "object", "required": ["name"]}),
            json!({}),
            "spec.x.name: Required value",
            "FieldValueRequired",
        ),
        (
            json!({"type": "object", "additionalProperties": false}),
            json!({"a": 1}),
            "spec.x: Invalid value: \"a\": spec.x.a in body is a forbidden property",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "boolean"}),
            json!(null),
            "spec.x: Invalid value: \"null\": spec.x in body must be of type boolean: \"null\"",
            "FieldValueTypeInvalid",
        ),
        (
            json!({"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 1}]}),
            json!(5),
            "spec.x: Invalid value: \"\": spec.x in body must validate at least one schema \
             (anyOf)",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "integer", "oneOf": [{"minimum": 1}, {"minimum": 2}]}),
            json!(5),
            "spec.x: Invalid value: \"\": spec.x in body must validate one and only one \
             schema (oneOf)",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "string", "not": {"enum": ["forbidden"]}}),
            json!("forbidden"),
            "spec.x: Invalid value: \"\": spec.x in body must not validate the schema (not)",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "object", "allOf": [{"required": ["a"]}, {"required": ["b"]}]}),
            json!({"a": 1}),
            "spec.x.b: Required value",
            "FieldValueRequired",
        ),
    ];
    for (prop, value, message, reason) in cases {
        assert_eq!(one(prop, value), (message.to_string(), reason));
    }
}

#[test]
fn formats() {
    let bad: Vec<(&str, Value)> = vec![
        ("int32", json!(2147483648i64)),
        ("int64", json!(18446744073709551615u64)),
        ("date-time", json!("2024-01-01 10:00")),
        ("date", json!("2024-13-01")),
        ("byte", json!("not base64!")),
        ("uuid", json!("1234")),
    ];
    for (format, value) in bad {
        let t = if value.is_string() {
            "string"
        } else {
            "integer"
        };
        let (msg, reason) = one(json!({"type": t, "format": format}), value.clone());
        assert_eq!(reason, "FieldValueTypeInvalid", "{format}");
        assert!(
            msg.contains(&format!("must be of type {format}: ")),
            "{format}: {msg}"
        );
    }
    let (msg, _) = one(
        json!({"type": "string", "format": "date-time"}),
        json!("abc"),
    );
    assert_eq!(
        msg,
        "spec.x: Invalid value: \"abc\": spec.x in body must be of type date-time: \"abc\""
    );
    let good: Vec<(&str, Value)> = vec![
        ("int32", json!(-2147483648i64)),
        ("int64", json!(9223372036854775807i64)),
        ("date-time", json!("2024-01-01T10:00:00Z")),
        ("date-time", json!("2024-01-01T10:00:00.123+02:00")),
        ("date", json!("2024-02-29")),
        ("byte", json!("aGVsbG8=")),
        ("uuid", json!("123e4567-e89b-12d3-a456-426614174000")),
        ("hostname-ish-unknown", json!("anything")),
    ];
    for (format, value) in good {
        let t = if value.is_string() {
            "string"
        } else {
            "integer"
        };
        let errs = errors_for(json!({"type": t, "format": format}), value);
        assert!(errs.is_empty(), "{format}: {errs:?}");
    }
}

#[test]
fn int_or_string_validation() {
    let prop = json!({"x-kubernetes-int-or-string": true});
    assert!(errors_for(prop.clone(), json!(8080)).is_empty());
    assert!(errors_for(prop.clone(), json!("http")).is_empty());
    let (msg, reason) = one(prop.clone(), json!(true));
    assert_eq!(reason, "FieldValueTypeInvalid");
    assert_eq!(
        msg,
        "spec.x: Invalid value: \"boolean\": spec.x in body must be of type \
         integer,string: \"boolean\""
    );
    let (msg, _) = one(prop, json!(null));
    assert!(
        msg.contains("must be of type integer,string: \"null\""),
        "{msg}"
    );
    let with_pattern = json!({"x-kubernetes-int-or-string": true, "pattern": "^[0-9]+%$"});
    assert!(errors_for(with_pattern.clone(), json!(5)).is_empty());
    assert_eq!(errors_for(with_pattern, json!("5")).len(), 1);
}

#[test]
fn list_type_duplicates() {
    let set = json!({"type": "array", "x-kubernetes-list-type": "set",
                     "items": {"type": "string"}});
    let errs = errors_for(set, json!(["a", "b", "a"]));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].display(), "spec.x[2]: Duplicate value: \"a\"");
    assert_eq!(errs[0].reason, "FieldValueDuplicate");

    let map = json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name", "protocol"],
        "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "protocol": {"type": "string"},
            "port": {"type": "integer"}
        }}
    });
    let value = json!([
        {"name": "a", "protocol": "TCP", "port": 1},
        {"name": "a", "protocol": "UDP", "port": 2},
        {"name": "a", "protocol": "TCP", "port": 3}
    ]);
    let errs = errors_for(map.clone(), value);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].display(),
        "spec.x[2]: Duplicate value: {\"name\":\"a\",\"protocol\":\"TCP\"}"
    );
    assert!(errors_for(map, json!([{"name": "a"}, {"name": "b"}])).is_empty());
    let atomic = json!({"type": "array", "x-kubernetes-list-type": "atomic"});
    assert!(errors_for(atomic, json!([1, 1])).is_empty());
}

#[test]
fn null_handling_in_validation() {
    let list = json!({"type": "array", "items": {"type": "string"}});
    let errs = errors_for(list, json!(["a", null]));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].display(),
        "spec.x[1]: Invalid value: \"null\": spec.x[1] in body must be of type string: \
         \"null\""
    );
    let nullable = json!({"type": "array", "items": {"type": "string", "nullable": true}});
    assert!(errors_for(nullable, json!(["a", null])).is_empty());
    assert!(errors_for(json!({"type": ["string", "null"]}), json!(null)).is_empty());
    assert!(errors_for(json!({"description": "free"}), json!(null)).is_empty());
    let nested_ok = json!({"type": "object", "properties": {"y": {"type": "number"}}});
    assert!(errors_for(nested_ok.clone(), json!({"y": 1})).is_empty());
    assert!(errors_for(nested_ok, json!({"y": 1.5, "z": "unchecked"})).is_empty());
}

#[test]
fn display_and_unknown_fields_message() {
    let e = FieldError {
        field: "spec.x".into(),
        reason: "FieldValueInvalid",
        message: "Invalid value: 1: bad".into(),
    };
    assert_eq!(e.display(), "spec.x: Invalid value: 1: bad");
    let root = FieldError {
        field: String::new(),
        ..e
    };
    assert_eq!(root.display(), "Invalid value: 1: bad");
    assert_eq!(
        unknown_fields_message(&["spec.foo".into(), "spec.bar".into()]),
        "strict decoding error: unknown field \"spec.foo\", unknown field \"spec.bar\""
    );
}

#[test]
fn go_style_numbers_and_quotes() {
    assert_eq!(go_float(300.0), "300");
    assert_eq!(go_float(0.5), "0.5");
    assert_eq!(go_float(1e21), "1e+21");
    assert_eq!(go_float(1.5e-5), "1.5e-05");
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    assert_eq!(bad_value(&json!({"a": [1]})), "{\"a\":[1]}");
    assert!(is_multiple_of(&json!(0.3), &json!(0.1)));
    assert!(!is_multiple_of(&json!(0.35), &json!(0.1)));
}

#[test]
fn structural_check() {
    assert!(check_structural(&vm_schema()).is_empty());
    assert_eq!(
        check_structural(&json!({"properties": {}})),
        vec!["type: Required value: must not be empty at the root"]
    );
    assert_eq!(
        check_structural(&json!({"type": "array", "items": {"type": "string"}})),
        vec!["type: Invalid value: \"array\": must be object at the root"]
    );
    let untyped = json!({"type": "object", "properties": {
        "spec": {"properties": {"a": {"type": "string"}}},
        "list": {"type": "array", "items": {"items": {"type": "string"}}},
        "free": {"x-kubernetes-preserve-unknown-fields": true, "properties": {}},
        "port": {"x-kubernetes-int-or-string": true},
        "desc": {"description": "no type, nothing specified"}
    }});
    assert_eq!(
        check_structural(&untyped),
        vec![
            "properties[spec].type: Required value: must not be empty for specified object \
             fields",
            "properties[list].items.type: Required value: must not be empty for specified \
             array items",
        ]
    );
    let name_only = json!({"type": "object", "properties": {"metadata": {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}}
    }}});
    assert!(check_structural(&name_only).is_empty());
    let labels = json!({"type": "object", "properties": {"metadata": {
        "type": "object",
        "properties": {"labels": {"type": "object"}}
    }}});
    let problems = check_structural(&labels);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("properties[metadata]: Forbidden"));
}
