//! Generated instances of a JSON Schema: the content of `json_schema` structured outputs
//! and the `arguments` of tool calls. The instance is a pure function of (schema, seed)
//! and validates against the subset `OpenAI`'s strict mode accepts and Pydantic emits:
//! `type` (one or a list), `properties` (all of them are filled, so `required` holds
//! and `additionalProperties: false` is never broken), `items`/`prefixItems` with
//! `minItems`/`maxItems`, `enum`, `const`, `anyOf`/`oneOf`/`allOf`, `$ref` into `$defs`
//! or `definitions`, numeric bounds and `multipleOf`, string lengths and common formats.
//! Recursive schemas end because past [`SOFT_DEPTH`] optional branches take their
//! smallest form (`null`, empty arrays).

use serde_json::{Map, Value, json};

use super::text::{sentence, splitmix64};

/// Depth after which `anyOf` prefers `null` and arrays shrink to `minItems`.
const SOFT_DEPTH: usize = 6;
/// Depth at which generation gives up and writes `null` (a schema that recurses with no
/// way out has no finite instance).
const HARD_DEPTH: usize = 32;

/// An instance of `schema` (which is also the root that `$ref`s resolve against).
pub(crate) fn instance(schema: &Value, seed: u64) -> Value {
    let mut generator = Generator { root: schema, state: splitmix64(seed) };
    generator.value(schema, 0)
}

struct Generator<'a> {
    root: &'a Value,
    state: u64,
}

impl Generator<'_> {
    fn next(&mut self) -> u64 {
        self.state = splitmix64(self.state);
        self.state
    }

    fn pick(&mut self, len: usize) -> usize {
        usize::try_from(self.next() % len.max(1) as u64).unwrap_or(0)
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        let Some(map) = schema.as_object() else {
            // `true` (anything) or `false` (nothing fits); a string is as good as any.
            return if schema == &Value::Bool(true) { Value::String("sim".into()) } else { Value::Null };
        };
        if depth >= HARD_DEPTH {
            return Value::Null;
        }
        if let Some(Value::String(reference)) = map.get("$ref") {
            let root = self.root;
            return match resolve(root, reference) {
                Some(target) => self.value(target, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(constant) = map.get("const") {
            return constant.clone();
        }
        if let Some(Value::Array(options)) = map.get("enum")
            && !options.is_empty()
        {
            return options[self.pick(options.len())].clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(variants)) = map.get(key)
                && !variants.is_empty()
            {
                let variant = self.variant(variants, depth);
                return self.value(variant, depth + 1);
            }
        }
        if let Some(Value::Array(parts)) = map.get("allOf") {
            let merged = self.merge(map, parts);
            return self.typed(&merged, depth);
        }
        self.typed(map, depth)
    }

    /// One `anyOf` variant: any non-null one by the seed, `null` once deep enough.
    fn variant<'s>(&mut self, variants: &'s [Value], depth: usize) -> &'s Value {
        let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        let (nulls, others): (Vec<&'s Value>, Vec<&'s Value>) = variants.iter().partition(|v| is_null(v));
        if (depth >= SOFT_DEPTH || others.is_empty()) && !nulls.is_empty() {
            return nulls[0];
        }
        others[self.pick(others.len())]
    }

    /// `allOf` as one object schema: the union of the parts' properties and `required`.
    fn merge(&self, own: &Map<String, Value>, parts: &[Value]) -> Map<String, Value> {
        let mut merged = own.clone();
        merged.remove("allOf");
        let mut properties = own.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        for part in parts {
            let part = part.get("$ref").and_then(Value::as_str).and_then(|r| resolve(self.root, r)).unwrap_or(part);
            let Some(part) = part.as_object() else { continue };
            for (key, value) in part {
                match key.as_str() {
                    "properties" => properties.extend(value.as_object().cloned().unwrap_or_default()),
                    "required" | "allOf" => {}
                    _ => {
                        merged.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        if !properties.is_empty() {
            merged.insert("properties".into(), Value::Object(properties));
        }
        merged
    }

    fn typed(&mut self, map: &Map<String, Value>, depth: usize) -> Value {
        match self.type_of(map, depth) {
            "object" => self.object(map, depth),
            "array" => self.array(map, depth),
            "integer" => Value::from(self.integer(map)),
            "number" => self.number(map),
            "boolean" => Value::Bool(self.next() & 1 == 1),
            "null" => Value::Null,
            _ => Value::String(self.string(map)),
        }
    }

    /// The `type` to generate: the keyword (a non-null entry of a list, unless deep), or
    /// what the other keywords imply.
    fn type_of(&mut self, map: &Map<String, Value>, depth: usize) -> &'static str {
        const TYPES: [&str; 7] = ["object", "array", "integer", "number", "boolean", "null", "string"];
        let known = |name: &str| TYPES.iter().copied().find(|t| *t == name);
        match map.get("type") {
            Some(Value::String(name)) => known(name).unwrap_or("string"),
            Some(Value::Array(names)) => {
                let names: Vec<&'static str> = names.iter().filter_map(Value::as_str).filter_map(known).collect();
                let others: Vec<&'static str> = names.iter().copied().filter(|t| *t != "null").collect();
                if others.is_empty() || (depth >= SOFT_DEPTH && names.contains(&"null")) {
                    if names.is_empty() { "string" } else { "null" }
                } else {
                    others[self.pick(others.len())]
                }
            }
            _ if map.contains_key("properties") => "object",
            _ if map.contains_key("items") || map.contains_key("prefixItems") => "array",
            _ => "string",
        }
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(Value::Object(properties)) = map.get("properties") {
            for (name, schema) in properties {
                let value = self.value(schema, depth + 1);
                out.insert(name.clone(), value);
            }
        }
        let min = bound(map, "minProperties").unwrap_or(0);
        let extra = map.get("additionalProperties").filter(|a| a.is_object());
        let mut k = 0;
        while out.len() < min {
            let value = extra.map_or(Value::String("sim".into()), |s| self.value(s, depth + 1));
            out.insert(format!("key_{k}"), value);
            k += 1;
        }
        Value::Object(out)
    }

    fn array(&mut self, map: &Map<String, Value>, depth: usize) -> Value {
        let min = bound(map, "minItems").unwrap_or(0);
        let max = bound(map, "maxItems").unwrap_or(usize::MAX).max(min);
        let prefix: &[Value] = map.get("prefixItems").and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let wanted = if depth >= SOFT_DEPTH { min } else { 2 };
        let count = wanted.clamp(min, max).max(prefix.len().min(max));
        let items = map.get("items").unwrap_or(&Value::Bool(true));
        let unique = map.get("uniqueItems") == Some(&Value::Bool(true));
        let mut out: Vec<Value> = Vec::with_capacity(count);
        let mut attempts = 0;
        while out.len() < count && attempts < count * 8 + 8 {
            attempts += 1;
            let schema = prefix.get(out.len()).unwrap_or(items);
            let value = self.value(schema, depth + 1);
            if !(unique && out.contains(&value)) {
                out.push(value);
            }
        }
        Value::Array(out)
    }

    fn integer(&mut self, map: &Map<String, Value>) -> i64 {
        let mut lo = number(map, "minimum").map_or(0, |m| int(m.ceil()));
        let mut hi = number(map, "maximum").map_or(lo.max(0) + 100, |m| int(m.floor()));
        if let Some(x) = number(map, "exclusiveMinimum") {
            lo = lo.max(int(x.floor()) + 1);
        }
        if let Some(x) = number(map, "exclusiveMaximum") {
            hi = hi.min(int(x.ceil()) - 1);
        }
        if lo > hi {
            hi = lo;
        }
        let span = u64::try_from(hi.saturating_sub(lo)).unwrap_or(0).saturating_add(1);
        let mut value = lo.saturating_add(i64::try_from(self.next() % span).unwrap_or(0));
        if let Some(step) = number(map, "multipleOf").map(int).filter(|m| *m > 0) {
            value = value.div_euclid(step) * step;
            if value < lo {
                value += step;
            }
        }
        value
    }

    fn number(&mut self, map: &Map<String, Value>) -> Value {
        let whole = self.integer(map);
        let half = float(whole) + 0.5;
        let fits = number(map, "maximum").is_none_or(|m| half <= m)
            && number(map, "exclusiveMaximum").is_none_or(|m| half < m)
            && !map.contains_key("multipleOf");
        if fits { json!(half) } else { json!(float(whole)) }
    }

    fn string(&mut self, map: &Map<String, Value>) -> String {
        let formatted = match map.get("format").and_then(Value::as_str) {
            Some("date-time") => Some("2026-01-01T12:00:00Z".to_owned()),
            Some("date") => Some("2026-01-01".to_owned()),
            Some("time") => Some("12:00:00".to_owned()),
            Some("email") => Some("sim@example.com".to_owned()),
            Some("uri" | "url") => Some("https://example.com/sim".to_owned()),
            Some("uuid") => {
                let (a, b) = (self.next(), self.next());
                Some(format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    b >> 52,
                    b & 0xffff_ffff_ffff
                ))
            }
            _ => None,
        };
        let mut text = formatted.unwrap_or_else(|| sentence(self.next(), 2 + self.next() % 3));
        let min = bound(map, "minLength").unwrap_or(0);
        while text.chars().count() < min {
            text.push_str(" sim");
        }
        if let Some(max) = bound(map, "maxLength") {
            text = text.chars().take(max).collect();
        }
        text
    }
}

/// Largest integer bound honoured: beyond it `f64` bounds lose integer precision.
const SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

#[expect(clippy::cast_possible_truncation, reason = "clamped to the exactly representable range")]
fn int(x: f64) -> i64 {
    x.clamp(-SAFE_INTEGER, SAFE_INTEGER) as i64
}

#[expect(clippy::cast_precision_loss, reason = "generated integers stay within the safe range")]
fn float(x: i64) -> f64 {
    x as f64
}

/// The schema a `$ref` names (`#`, `#/$defs/X`, any JSON pointer into the root).
fn resolve<'r>(root: &'r Value, reference: &str) -> Option<&'r Value> {
    root.pointer(reference.strip_prefix('#')?)
}

fn number(map: &Map<String, Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(Value::as_f64)
}

fn bound(map: &Map<String, Value>, key: &str) -> Option<usize> {
    map.get(key).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests;
