//! Building a guest crate into a module.
//!
//! A crate directory is built with the user's own cargo for
//! `wasm32-wasip1`, in release, and cargo's JSON messages say which file
//! is the module. cargo_metadata reads the crate first, so that a directory
//! that is not a crate, or a crate with nothing to build into a module,
//! fails with a message that says what to change before any compiling.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, MetadataCommand, TargetKind};

/// The target guest crates are built for.
pub const TARGET: &str = "wasm32-wasip1";

/// Why a crate could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// There is no crate there.
    #[error("{path} is neither a .wasm file nor a crate directory (no Cargo.toml in it)")]
    NotACrate {
        /// The path given.
        path: PathBuf,
    },
    /// cargo could not read the crate.
    #[error("cargo cannot read the crate at {path}: {message}")]
    Metadata {
        /// The crate.
        path: PathBuf,
        /// cargo's message.
        message: String,
    },
    /// The crate builds nothing that can be a module.
    #[error(
        "crate `{package}` has no library of crate-type \"cdylib\" and no binary, so it \
         builds no module: add\n\n[lib]\ncrate-type = [\"cdylib\"]\n\nto {manifest}"
    )]
    NoModuleTarget {
        /// The package.
        package: String,
        /// Its Cargo.toml.
        manifest: PathBuf,
    },
    /// The wasm target is not installed and cannot be.
    #[error(
        "the Rust target {TARGET} is not installed and could not be installed for you ({reason}); \
         run `rustup target add {TARGET}`"
    )]
    MissingTarget {
        /// Why it could not be installed.
        reason: String,
    },
    /// cargo could not be run.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The crate does not compile.
    #[error("crate `{package}` does not build for {TARGET}:\n{diagnostics}")]
    Compile {
        /// The package.
        package: String,
        /// cargo's and rustc's messages.
        diagnostics: String,
    },
    /// cargo said it succeeded but named no module.
    #[error("cargo built crate `{package}` but produced no .wasm file")]
    NoArtifact {
        /// The package.
        package: String,
    },
}

/// Builds the crate in `dir` for [`TARGET`] and returns the module's path.
///
/// # Errors
///
/// See [`BuildError`]: each case says what to change.
pub fn build_crate(dir: &Path) -> Result<PathBuf, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate {
            path: dir.to_owned(),
        });
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let metadata = MetadataCommand::new()
        .cargo_path(&cargo)
        .manifest_path(&manifest)
        .no_deps()
        .exec()
        .map_err(|e| BuildError::Metadata {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest)
        .ok_or_else(|| BuildError::Metadata {
            path: dir.to_owned(),
            message: "its Cargo.toml is a virtual workspace manifest; \
                      pass the directory of one of its member crates"
                .to_owned(),
        })?;
    let cdylib = package
        .targets
        .iter()
        .any(|t| t.kind.contains(&TargetKind::CDyLib));
    let bin = package
        .targets
        .iter()
        .find(|t| t.kind.contains(&TargetKind::Bin));
    if !cdylib && bin.is_none() {
        return Err(BuildError::NoModuleTarget {
            package: package.name.to_string(),
            manifest: manifest.clone(),
        });
    }
    ensure_target(&cargo)?;

    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--message-format"])
        .arg("json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--package", &package.name]);
    if cdylib {
        command.arg("--lib");
    } else if let Some(bin) = bin {
        command.args(["--bin", &bin.name]);
    }
    tracing::debug!(?command, "building guest crate");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            program: cargo.clone(),
            source,
        })?;
    // Drain stderr beside stdout so that neither pipe fills and blocks cargo.
    let mut stderr = child.stderr.take().map(BufReader::new);
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let mut wasm = None;
    let mut diagnostics = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)) {
            match message {
                Ok(Message::CompilerArtifact(artifact)) if artifact.package_id == package.id => {
                    if let Some(file) = artifact
                        .filenames
                        .iter()
                        .find(|f| f.extension() == Some("wasm"))
                    {
                        wasm = Some(file.clone().into_std_path_buf());
                    }
                }
                Ok(Message::CompilerMessage(msg)) => {
                    if let Some(rendered) = msg.message.rendered {
                        diagnostics.push(rendered);
                    }
                }
                _ => {}
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        program: cargo.clone(),
        source,
    })?;
    let stderr = stderr_thread.join().unwrap_or_default();
    if !status.success() {
        let mut text = diagnostics.join("");
        let cargo_lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim_start().starts_with("Compiling") && !l.trim().is_empty())
            .collect();
        if !cargo_lines.is_empty() {
            text.push_str(&cargo_lines.join("\n"));
        }
        return Err(BuildError::Compile {
            package: package.name.to_string(),
            diagnostics: text.trim_end().to_owned(),
        });
    }
    wasm.ok_or_else(|| BuildError::NoArtifact {
        package: package.name.to_string(),
    })
}

/// Makes sure the wasm target's standard library is installed, installing
/// it with rustup when it is not: that is what a new user needs, and the
/// one thing that stands between a fresh toolchain and a first job.
fn ensure_target(cargo: &str) -> Result<(), BuildError> {
    install_target(cargo, TARGET).map_err(|reason| BuildError::MissingTarget { reason })
}

/// Makes sure the standard library of `target` is installed for the
/// toolchain of `cargo`, running `rustup target add` when it is not; the
/// error is why that failed, in rustup's last words.
pub(crate) fn install_target(cargo: &str, target: &str) -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| {
        Path::new(cargo)
            .parent()
            .map(|dir| dir.join("rustc"))
            .filter(|p| p.is_file())
            .map_or_else(|| "rustc".to_owned(), |p| p.display().to_string())
    });
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && sysroot.join("lib/rustlib").join(target).is_dir()
    {
        return Ok(());
    }
    tracing::info!("installing the Rust target {target} with rustup");
    let output = Command::new("rustup")
        .args(["target", "add", target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("rustup cannot be run: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("rustup failed")
            .to_owned());
    }
    Ok(())
}
