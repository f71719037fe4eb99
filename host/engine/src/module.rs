//! What a module offers: its manifest, read once when the module is loaded.
//!
//! A module is either a *function module* built with `wisp-guest`, whose
//! custom section names its functions, or a plain *WASI command* that reads
//! JSON on stdin and writes JSON on stdout. Everything a call needs to know
//! about the module is decided here, before the first call, so that a bad
//! module fails once with one clear error instead of once per call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wisp_abi::{ABI_VERSION, MANIFEST_SECTION, SUPPORTED_ABI_VERSIONS};

use crate::ModuleError;

/// The name under which a WASI command module's single function is known.
pub const COMMAND_FUNCTION: &str = "_start";

/// How many function names [`Manifest::function_list`] spells out.
const LISTED_FUNCTIONS: usize = 50;

/// What a module declares about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The guest ABI version the module was built for.
    pub abi: u32,
    /// The version of `wisp-guest` that built it, if it is a function module.
    pub sdk: Option<String>,
    /// Its functions by name, each with its parameter names in order.
    pub functions: BTreeMap<String, FunctionInfo>,
    /// Whether it is a plain WASI command rather than a function module.
    pub command: bool,
}

/// One function of a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// Parameter names, in order.
    pub params: Vec<String>,
}

/// One line of the manifest section, as the guest SDK writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    abi: u32,
    sdk: String,
    function: String,
    params: Vec<String>,
}

impl Manifest {
    /// Reads the manifest of a module's bytes. The bytes must already be
    /// known to be a valid module.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, ModuleError> {
        let mut sections = Vec::new();
        let mut has_start = false;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| ModuleError::Invalid(e.to_string()))?;
            match payload {
                wasmparser::Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION => {
                    sections.push(reader.data().to_vec());
                }
                wasmparser::Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(|e| ModuleError::Invalid(e.to_string()))?;
                        if export.name == COMMAND_FUNCTION
                            && export.kind == wasmparser::ExternalKind::Func
                        {
                            has_start = true;
                        }
                    }
                }
                _ => {}
            }
        }
        if sections.is_empty() {
            if has_start {
                return Ok(Self {
                    abi: ABI_VERSION,
                    sdk: None,
                    functions: BTreeMap::from([(
                        COMMAND_FUNCTION.to_owned(),
                        FunctionInfo { params: vec![] },
                    )]),
                    command: true,
                });
            }
            return Err(ModuleError::NotAFunctionModule);
        }
        Self::parse_sections(&sections)
    }

    fn parse_sections(sections: &[Vec<u8>]) -> Result<Self, ModuleError> {
        let mut abi = None;
        let mut sdk = None;
        let mut functions = BTreeMap::new();
        for line in sections.iter().flat_map(|s| s.split(|&b| b == b'\n')) {
            // The linker may pad the section between records.
            let line = line.trim_ascii_start().trim_ascii_end();
            let line = trim_nul(line);
            if line.is_empty() {
                continue;
            }
            let record: ManifestLine = serde_json::from_slice(line).map_err(|e| {
                ModuleError::BadManifest(format!("line `{}`: {e}", String::from_utf8_lossy(line)))
            })?;
            match abi {
                Some(seen) if seen != record.abi => {
                    return Err(ModuleError::BadManifest(format!(
                        "functions disagree on the ABI version ({seen} and {}): \
                         the module links two versions of wisp-guest",
                        record.abi
                    )));
                }
                _ => abi = Some(record.abi),
            }
            sdk.get_or_insert(record.sdk);
            if functions
                .insert(
                    record.function.clone(),
                    FunctionInfo {
                        params: record.params,
                    },
                )
                .is_some()
            {
                return Err(ModuleError::BadManifest(format!(
                    "function `{}` is declared twice",
                    record.function
                )));
            }
        }
        let Some(abi) = abi else {
            return Err(ModuleError::BadManifest(
                "the manifest section is empty".to_owned(),
            ));
        };
        if !SUPPORTED_ABI_VERSIONS.contains(&abi) {
            return Err(ModuleError::AbiMismatch {
                module: abi,
                sdk: sdk.unwrap_or_default(),
            });
        }
        Ok(Self {
            abi,
            sdk,
            functions,
            command: false,
        })
    }

    /// The names of the module's functions, comma separated, for messages:
    /// the first 50 of them, then how many more there are,
    /// so that a module of thousands of functions keeps messages short.
    pub fn function_list(&self) -> String {
        let names: Vec<&str> = self
            .functions
            .keys()
            .take(LISTED_FUNCTIONS)
            .map(String::as_str)
            .collect();
        let mut list = names.join(", ");
        let more = self.functions.len().saturating_sub(LISTED_FUNCTIONS);
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        list
    }
}

fn trim_nul(mut line: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., 0] = line {
        line = rest;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(lines: &[&str]) -> Vec<Vec<u8>> {
        lines
            .iter()
            .map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn reads_functions_from_several_sections() {
        let manifest = Manifest::parse_sections(&sections(&[
            r#"{"abi":1,"sdk":"0.1.0","function":"add","params":["a","b"]}"#,
            r#"{"abi":1,"sdk":"0.1.0","function":"noop","params":[]}"#,
        ]))
        .expect("valid manifest");
        assert_eq!(manifest.abi, 1);
        assert_eq!(manifest.sdk.as_deref(), Some("0.1.0"));
        assert_eq!(manifest.function_list(), "add, noop");
        let many: Vec<String> = (0..LISTED_FUNCTIONS + 7)
            .map(|i| format!(r#"{{"abi":1,"sdk":"0.1.0","function":"f{i:03}","params":[]}}"#))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let list = Manifest::parse_sections(&sections(&many))
            .expect("valid manifest")
            .function_list();
        assert!(list.starts_with("f000, f001, "), "{list}");
        assert!(list.ends_with(", f049 and 7 more"), "{list}");
        assert_eq!(manifest.functions["add"].params, ["a", "b"]);
        assert!(!manifest.command);
    }

    #[test]
    fn refuses_an_abi_it_does_not_speak() {
        let err = Manifest::parse_sections(&sections(&[
            r#"{"abi":99,"sdk":"9.0.0","function":"f","params":[]}"#,
        ]))
        .expect_err("ABI 99 is not supported");
        let message = err.to_string();
        assert!(message.contains("ABI version 99"), "{message}");
        assert!(message.contains("ABI 1"), "{message}");
    }

    #[test]
    fn refuses_duplicates_and_garbage() {
        let dup = r#"{"abi":1,"sdk":"0.1.0","function":"f","params":[]}"#;
        assert!(matches!(
            Manifest::parse_sections(&sections(&[dup, dup])),
            Err(ModuleError::BadManifest(m)) if m.contains("declared twice")
        ));
        assert!(matches!(
            Manifest::parse_sections(&sections(&["not json"])),
            Err(ModuleError::BadManifest(_))
        ));
        assert!(matches!(
            Manifest::parse_sections(&[b"\0\0\n".to_vec()]),
            Err(ModuleError::BadManifest(m)) if m.contains("empty")
        ));
    }
}
