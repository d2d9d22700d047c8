//! The generator's one property: every instance validates against its schema. Checked
//! with a small validator of the same keyword subset (written here, test-only), over
//! hand-written schemas shaped like Pydantic's and over random schemas.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::instance;

/// Why `value` does not validate against `schema` (resolving `$ref` in `root`), if so.
fn violation(root: &Value, schema: &Value, value: &Value) -> Option<String> {
    let Some(map) = schema.as_object() else {
        return (schema == &Value::Bool(false)).then(|| "false schema".into());
    };
    let fail = |why: &str| Some(format!("{why}: {value} against {schema}"));
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        return match root.pointer(reference.trim_start_matches('#')) {
            Some(target) => violation(root, target, value),
            None => Some(format!("unresolved {reference}")),
        };
    }
    if map.get("const").is_some_and(|c| c != value) {
        return fail("const");
    }
    if map.get("enum").and_then(Value::as_array).is_some_and(|e| !e.contains(value)) {
        return fail("enum");
    }
    if let Some(variants) = map.get("anyOf").and_then(Value::as_array)
        && variants.iter().all(|v| violation(root, v, value).is_some())
    {
        return fail("anyOf");
    }
    if let Some(variants) = map.get("oneOf").and_then(Value::as_array)
        && variants.iter().filter(|v| violation(root, v, value).is_none()).count() != 1
    {
        return fail("oneOf");
    }
    if let Some(parts) = map.get("allOf").and_then(Value::as_array)
        && let Some(why) = parts.iter().find_map(|p| violation(root, p, value))
    {
        return Some(why);
    }
    if let Some(types) = map.get("type") {
        let names: Vec<&str> = match types {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        let matches = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !names.iter().any(|t| matches(t)) {
            return fail("type");
        }
    }
    match value {
        Value::Object(fields) => object_violation(root, map, fields),
        Value::Array(items) => array_violation(root, map, items),
        Value::Number(n) => {
            let x = n.as_f64()?;
            let num = |k: &str| map.get(k).and_then(Value::as_f64);
            let bad = num("minimum").is_some_and(|m| x < m)
                || num("maximum").is_some_and(|m| x > m)
                || num("exclusiveMinimum").is_some_and(|m| x <= m)
                || num("exclusiveMaximum").is_some_and(|m| x >= m)
                || num("multipleOf").is_some_and(|m| (x / m).fract() != 0.0);
            if bad { fail("bounds") } else { None }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            let size = |k: &str| map.get(k).and_then(Value::as_u64);
            let bad = size("minLength").is_some_and(|m| len < m) || size("maxLength").is_some_and(|m| len > m);
            if bad { fail("length") } else { None }
        }
        _ => None,
    }
}

fn object_violation(
    root: &Value,
    map: &serde_json::Map<String, Value>,
    fields: &serde_json::Map<String, Value>,
) -> Option<String> {
    let properties = map.get("properties").and_then(Value::as_object);
    for name in map.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !fields.contains_key(name) {
            return Some(format!("required {name}"));
        }
    }
    for (name, value) in fields {
        let why = match properties.and_then(|p| p.get(name)) {
            Some(schema) => violation(root, schema, value),
            None => match map.get("additionalProperties") {
                Some(Value::Bool(false)) => Some(format!("additional {name}")),
                Some(extra) => violation(root, extra, value),
                None => None,
            },
        };
        if why.is_some() {
            return why;
        }
    }
    None
}

fn array_violation(root: &Value, map: &serde_json::Map<String, Value>, items: &[Value]) -> Option<String> {
    let len = items.len() as u64;
    let size = |k: &str| map.get(k).and_then(Value::as_u64);
    if size("minItems").is_some_and(|m| len < m) || size("maxItems").is_some_and(|m| len > m) {
        return Some(format!("{len} items against {map:?}"));
    }
    let prefix = map.get("prefixItems").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for (i, item) in items.iter().enumerate() {
        let schema = prefix.get(i).or_else(|| map.get("items"));
        if let Some(why) = schema.and_then(|s| violation(root, s, item)) {
            return Some(why);
        }
    }
    if map.get("uniqueItems") == Some(&Value::Bool(true))
        && items.iter().enumerate().any(|(i, a)| items[..i].contains(a))
    {
        return Some("unique".into());
    }
    None
}

fn assert_valid(schema: &Value, seed: u64) -> Value {
    let value = instance(schema, seed);
    if let Some(why) = violation(schema, schema, &value) {
        panic!("seed {seed}: {why}");
    }
    value
}

/// What Pydantic v2 emits for a model with a nested model, a list of models, an enum,
/// an optional field and a recursive reference, in strict mode.
fn pydantic_schema() -> Value {
    json!({
        "$defs": {
            "Color": {"enum": ["red", "green", "blue"], "title": "Color", "type": "string"},
            "Address": {
                "additionalProperties": false,
                "properties": {"street": {"title": "Street", "type": "string"}, "zip": {"title": "Zip", "type": "integer", "minimum": 10000, "maximum": 99999}},
                "required": ["street", "zip"], "title": "Address", "type": "object"
            },
            "Node": {
                "additionalProperties": false,
                "properties": {
                    "label": {"type": "string", "maxLength": 5},
                    "children": {"items": {"$ref": "#/$defs/Node"}, "type": "array"},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}
                },
                "required": ["label", "children", "parent"], "title": "Node", "type": "object"
            }
        },
        "additionalProperties": false,
        "properties": {
            "name": {"title": "Name", "type": "string", "minLength": 3},
            "age": {"title": "Age", "type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 130},
            "score": {"title": "Score", "type": "number", "minimum": 0, "maximum": 1},
            "active": {"title": "Active", "type": "boolean"},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Nickname"},
            "favourite": {"$ref": "#/$defs/Color"},
            "home": {"$ref": "#/$defs/Address"},
            "previous": {"items": {"$ref": "#/$defs/Address"}, "type": "array", "minItems": 1, "maxItems": 3},
            "tree": {"$ref": "#/$defs/Node"},
            "kind": {"const": "person", "type": "string"},
            "point": {"prefixItems": [{"type": "number"}, {"type": "number"}], "type": "array", "minItems": 2, "maxItems": 2},
            "tags": {"type": ["array", "null"], "items": {"type": "string", "format": "uuid"}, "uniqueItems": true},
            "born": {"type": "string", "format": "date-time"},
            "extra": {"allOf": [{"$ref": "#/$defs/Address"}]}
        },
        "required": ["name", "age", "score", "active", "nickname", "favourite", "home", "previous", "tree", "kind", "point", "tags", "born", "extra"],
        "title": "Person",
        "type": "object"
    })
}

#[test]
fn pydantic_shaped_schema_validates_for_many_seeds() {
    let schema = pydantic_schema();
    for seed in 0..500 {
        let value = assert_valid(&schema, seed);
        assert!(value["home"]["zip"].as_i64().unwrap() >= 10000);
    }
}

#[test]
fn instances_are_deterministic() {
    let schema = pydantic_schema();
    assert_eq!(instance(&schema, 7), instance(&schema, 7));
    assert_ne!(instance(&schema, 7), instance(&schema, 8));
}

#[test]
fn degenerate_schemas_have_instances() {
    for schema in [
        json!({}),
        json!(true),
        json!({"type": "object"}),
        json!({"type": "null"}),
        json!({"enum": [1]}),
        json!({"type": "integer", "multipleOf": 7, "minimum": 3}),
    ] {
        assert_valid(&schema, 1);
    }
    // Recursion with no way out ends (in `null`, which the schema refuses: no instance exists).
    let endless = json!({"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}}, "$ref": "#/$defs/A"});
    let _ = instance(&endless, 1);
}

/// Random schemas of the generated subset, nested up to `depth`.
fn schema_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({"type": "string"})),
        (0u64..5, 5u64..20).prop_map(|(lo, hi)| json!({"type": "string", "minLength": lo, "maxLength": hi})),
        (-50i64..50, 0i64..100).prop_map(|(lo, w)| json!({"type": "integer", "minimum": lo, "maximum": lo + w})),
        (-5i64..5).prop_map(|lo| json!({"type": "number", "exclusiveMinimum": lo})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"enum": ["a", "b", 3, null]})),
        Just(json!({"type": ["integer", "null"]})),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|fields| {
                let properties: serde_json::Map<String, Value> =
                    fields.into_iter().enumerate().map(|(i, s)| (format!("f{i}"), s)).collect();
                let required: Vec<&String> = properties.keys().collect();
                json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
            }),
            (inner.clone(), 0u64..3, 0u64..3).prop_map(|(items, min, extra)| {
                json!({"type": "array", "items": items, "minItems": min, "maxItems": min + extra})
            }),
            proptest::collection::vec(inner, 1..3).prop_map(|variants| json!({"anyOf": variants})),
        ]
    })
}

proptest! {
    #[test]
    fn random_schemas_validate(schema in schema_strategy(), seed in any::<u64>()) {
        let value = instance(&schema, seed);
        prop_assert_eq!(violation(&schema, &schema, &value), None);
    }
}
