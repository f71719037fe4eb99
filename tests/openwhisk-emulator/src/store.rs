//! Entities (packages, actions) and activation records, kept in memory
//! where the platform keeps them in CouchDB.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A `{"key", "value"}` pair of parameters and annotations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Limits {
    pub timeout: u64,
    pub memory: u64,
    pub logs: u64,
    pub concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: 60_000,
            memory: 256,
            logs: 10,
            concurrency: 1,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Exec {
    pub kind: String,
    pub image: Option<String>,
    pub code: Option<String>,
    pub main: Option<String>,
    pub binary: bool,
}

#[derive(Clone, Debug)]
pub struct Action {
    pub package: Option<String>,
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub exec: Exec,
    pub parameters: Vec<KeyValue>,
    pub limits: Limits,
    pub annotations: Vec<KeyValue>,
    pub updated: u64,
    /// Changes with every write, so that warm containers of an older
    /// revision are never reused.
    pub revision: u64,
}

pub fn entity_namespace(ns: &str, package: Option<&str>) -> String {
    match package {
        Some(p) => format!("{ns}/{p}"),
        None => ns.to_string(),
    }
}

impl Action {
    pub fn to_json(&self, ns: &str, with_code: bool) -> Value {
        let mut exec = json!({ "kind": self.exec.kind, "binary": self.exec.binary });
        if let Some(image) = &self.exec.image {
            exec["image"] = json!(image);
        }
        if let (Some(code), true) = (&self.exec.code, with_code) {
            exec["code"] = json!(code);
        }
        if let Some(main) = &self.exec.main {
            exec["main"] = json!(main);
        }
        json!({
            "namespace": entity_namespace(ns, self.package.as_deref()),
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "exec": exec,
            "parameters": self.parameters,
            "limits": self.limits,
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }

    pub fn summary(&self, ns: &str) -> Value {
        json!({
            "namespace": entity_namespace(ns, self.package.as_deref()),
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "limits": self.limits,
            "exec": { "binary": self.exec.binary },
            "updated": self.updated,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub binding: Option<Value>,
    pub parameters: Vec<KeyValue>,
    pub annotations: Vec<KeyValue>,
    pub updated: u64,
}

impl Package {
    pub fn to_json(&self, ns: &str) -> Value {
        json!({
            "namespace": ns,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "binding": self.binding.clone().unwrap_or_else(|| json!({})),
            "parameters": self.parameters,
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }

    pub fn summary(&self, ns: &str) -> Value {
        json!({
            "namespace": ns,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "binding": self.binding.clone().unwrap_or_else(|| json!({})),
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }
}

/// A stored activation: the extended record plus what listing needs.
#[derive(Clone, Debug)]
pub struct Activation {
    pub record: Value,
    pub status_code: u8,
    /// `guest/pkg/name` or `guest/name`.
    pub path: String,
    pub start: u64,
}

impl Activation {
    pub fn summary(&self) -> Value {
        let r = &self.record;
        let mut s = json!({
            "namespace": r["namespace"],
            "name": r["name"],
            "version": r["version"],
            "publish": r["publish"],
            "annotations": r["annotations"],
            "activationId": r["activationId"],
            "start": r["start"],
            "end": r["end"],
            "duration": r["duration"],
            "statusCode": self.status_code,
        });
        if let Some(cause) = r.get("cause") {
            s["cause"] = cause.clone();
        }
        s
    }
}

#[derive(Default)]
pub struct Store {
    pub packages: BTreeMap<String, Package>,
    /// Keyed by (package or "", name).
    pub actions: BTreeMap<(String, String), Action>,
    pub activations: HashMap<String, Activation>,
    /// Activation ids, oldest first.
    pub order: Vec<String>,
    pub revisions: u64,
}

/// Bumps the patch number of a `major.minor.patch` version.
pub fn bump_version(v: &str) -> String {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts[2] += 1;
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

/// Whether code counts as binary: non-empty after trimming, a length that
/// is a multiple of 4, and nothing but padded base64.
pub fn is_binary_code(code: &str) -> bool {
    use base64::Engine;
    let t = code.trim();
    !t.is_empty()
        && t.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD.decode(t).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(bump_version("0.0.1"), "0.0.2");
        assert_eq!(bump_version("1.2"), "1.2.1");
    }

    #[test]
    fn binary_code() {
        assert!(is_binary_code("AGFzbQEAAAA="));
        assert!(!is_binary_code("echo hello"));
        assert!(!is_binary_code("   "));
        assert!(is_binary_code("abcd"));
    }
}
