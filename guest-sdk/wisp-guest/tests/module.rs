//! Builds a guest crate for `wasm32-wasip1` and reads the module, to check
//! what no host-side unit test can: that a `cdylib` depending on the SDK
//! exports the allocator and one function per `#[function]`, imports the
//! panic hook's host function, and carries one manifest line per function.
//!
//! The guest is `tests/guest/lib.rs`, built as a crate of its own in
//! cargo's temporary directory for tests, so nothing is written beside the
//! sources.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};

/// Writes the guest crate and builds it; returns the module's path.
fn build_guest() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        r#"[package]
name = "tiny-guest"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]
path = {lib:?}

[dependencies]
wisp-guest = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}

[workspace]
"#,
        lib = sdk.join("tests/guest/lib.rs"),
        sdk = sdk,
    );
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("Cargo.toml"), manifest).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target"))
        .status()
        .unwrap();
    assert!(status.success(), "building the guest failed: {status}");
    root.join("target/wasm32-wasip1/debug/tiny_guest.wasm")
}

/// What the test checks in a module.
#[derive(Default)]
struct Module {
    /// Exports with their kind and, for functions, `(params) -> (results)`.
    exports: Vec<(String, String)>,
    imports: Vec<(String, String, String)>,
    manifest: Vec<u8>,
}

fn read(wasm: &[u8]) -> Module {
    let mut module = Module::default();
    let (mut types, mut functions) = (Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.unwrap();
                    types.push(format!("{:?} -> {:?}", ty.params(), ty.results()));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    let signature = match import.ty {
                        TypeRef::Func(index) => {
                            functions.push(index);
                            types[index as usize].clone()
                        }
                        other => format!("{other:?}"),
                    };
                    module
                        .imports
                        .push((import.module.into(), import.name.into(), signature));
                }
            }
            Payload::FunctionSection(reader) => {
                functions.extend(reader.into_iter().map(Result::unwrap));
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    let kind = match export.kind {
                        ExternalKind::Func => {
                            types[functions[export.index as usize] as usize].clone()
                        }
                        other => format!("{other:?}"),
                    };
                    module.exports.push((export.name.into(), kind));
                }
            }
            Payload::CustomSection(section) if section.name() == wisp_abi::MANIFEST_SECTION => {
                module.manifest.extend_from_slice(section.data());
            }
            _ => {}
        }
    }
    module
}

#[test]
fn a_guest_module_follows_the_abi() {
    let wasm = std::fs::read(build_guest()).unwrap();
    let module = read(&wasm);
    let export = |name: &str| {
        let found = module.exports.iter().find(|(export, _)| export == name);
        found.map(|(_, kind)| kind.as_str())
    };

    let call = format!("{:?} -> {:?}", [ValType::I32, ValType::I32], [ValType::I64]);
    let alloc = format!("{:?} -> {:?}", [ValType::I32], [ValType::I32]);
    assert_eq!(export("memory"), Some("Memory"));
    assert_eq!(export(wisp_abi::ALLOC_EXPORT), Some(alloc.as_str()));
    let names = [
        "my_function",
        "add",
        "parse",
        "noop",
        "norm-2",
        "greet",
        "boom",
    ];
    for name in names {
        assert_eq!(
            export(&wisp_abi::function_export(name)),
            Some(call.as_str()),
            "{name}"
        );
    }
    let functions = module
        .exports
        .iter()
        .filter(|(name, _)| name.starts_with("wisp:fn:"));
    assert_eq!(functions.count(), names.len(), "{:?}", module.exports);

    let panic = format!(
        "{:?} -> {:?}",
        [ValType::I32, ValType::I32],
        [ValType::I32; 0]
    );
    let wisp_imports: Vec<_> = module
        .imports
        .iter()
        .filter(|(module, ..)| module == wisp_abi::IMPORT_MODULE)
        .collect();
    assert_eq!(
        wisp_imports,
        [&(
            wisp_abi::IMPORT_MODULE.to_owned(),
            wisp_abi::IMPORT_PANIC.to_owned(),
            panic
        )]
    );

    let manifest = std::str::from_utf8(&module.manifest).unwrap();
    assert!(manifest.ends_with('\n'), "{manifest:?}");
    let mut lines: Vec<&str> = manifest.lines().collect();
    lines.sort_unstable();
    let sdk = env!("CARGO_PKG_VERSION");
    let line = |function: &str, params: &str| {
        format!(
            r#"{{"abi":{},"sdk":"{sdk}","function":"{function}","params":[{params}]}}"#,
            wisp_abi::ABI_VERSION
        )
    };
    assert_eq!(
        lines,
        [
            line("add", r#""a","b""#),
            line("boom", r#""message""#),
            line("greet", r#""name""#),
            line("my_function", r#""x""#),
            line("noop", ""),
            line("norm-2", r#""p","scale""#),
            line("parse", r#""s""#),
        ]
    );
}
