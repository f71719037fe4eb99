//! Runtime images: the action server built for musl, put in a build context
//! made in process, built and pushed through the Docker engine's API.
//!
//! On OpenWhisk, wisp's functions run as activations of a Docker image whose
//! only process is `wisp-action`, the action server. Making that image takes
//! three steps, each a function here:
//!
//! 1. [`build_action_binary`] builds `wisp-action` with cargo, statically
//!    linked for [`ACTION_TARGET`], and strips a copy of it;
//! 2. [`build_image`] builds the image through the engine (see [`connect`])
//!    from a build context made in memory: the default Dockerfile
//!    ([`DEFAULT_DOCKERFILE`], `FROM scratch`) or one of the user's, and the
//!    binary;
//! 3. [`push_image`] pushes it to its registry.
//!
//! Every image needs an explicit tag other than `latest` (see
//! [`validate_tag`]).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, RemoveImageOptions};
use cargo_metadata::{Message, Metadata, MetadataCommand, TargetKind};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};

/// The target the action server is built for: static, so that it runs in an
/// image made `FROM scratch`.
pub const ACTION_TARGET: &str = "x86_64-unknown-linux-musl";

/// The package that holds the action server.
pub const ACTION_PACKAGE: &str = "wisp-runtime";

/// The action server's binary, and its file name in every image.
pub const ACTION_BINARY: &str = "wisp-action";

/// The default runtime image's Dockerfile (`runtimes/openwhisk/Dockerfile`).
pub const DEFAULT_DOCKERFILE: &str = include_str!("../../../runtimes/openwhisk/Dockerfile");

/// The engine's address when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The repository of the default image that a custom Dockerfile is built on.
const BASE_REPOSITORY: &str = "wisp-runtime-base";

/// How long the engine has to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The most lines of cargo's output an error carries.
const ERROR_LINES: usize = 60;

/// What to do when the engine does not answer.
const START_ENGINE: &str = "start the engine (for example with `scripts/docker.sh start`) \
                            or set DOCKER_HOST to the address of one that runs";

/// Why an image could not be built or pushed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine is not reachable.
    #[error("cannot reach the Docker engine at {host}: {reason}; {START_ENGINE}")]
    Unreachable {
        /// The address tried.
        host: String,
        /// Why it did not answer.
        reason: String,
    },
    /// The engine refused or failed a request.
    #[error("the Docker engine failed to {action}: {message}")]
    Engine {
        /// What was asked of it.
        action: String,
        /// The engine's message.
        message: String,
    },
    /// An image reference is not one wisp deploys.
    #[error("invalid image tag `{tag}`: {reason}")]
    InvalidTag {
        /// The reference given.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// wisp's source tree, where the action server is built, was not found.
    #[error(
        "cannot find wisp's source tree to build {ACTION_BINARY} in ({tried}); run from a clone \
         of wisp or set WISP_SOURCE_DIR to one"
    )]
    NoSource {
        /// The places tried and why each was not it.
        tried: String,
    },
    /// The musl target is not installed and cannot be.
    #[error(
        "the Rust target {ACTION_TARGET} is not installed and could not be installed for you \
         ({reason}); run `rustup target add {ACTION_TARGET}`"
    )]
    MissingTarget {
        /// Why it could not be installed.
        reason: String,
    },
    /// A program could not be run.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The action server does not compile.
    #[error("{ACTION_BINARY} does not build for {ACTION_TARGET}:\n{output}")]
    Compile {
        /// cargo's output (its last lines).
        output: String,
    },
    /// cargo succeeded but the binary is not where it should be.
    #[error("cargo built {ACTION_BINARY} but it is not at {path}")]
    NoBinary {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The Dockerfile given does not exist.
    #[error("no Dockerfile at {path}: pass the path of an existing file")]
    DockerfileNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image did not build.
    #[error("image {tag} did not build: {message}")]
    Build {
        /// The image.
        tag: String,
        /// The engine's message.
        message: String,
    },
    /// The image could not be pushed.
    #[error("cannot push {tag} to the registry {registry}: {message}; {hint}")]
    Push {
        /// The image.
        tag: String,
        /// The registry.
        registry: String,
        /// The engine's message.
        message: String,
        /// What to check.
        hint: String,
    },
}

impl DockerError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn engine(action: impl Into<String>, error: &BollardError) -> Self {
        Self::Engine {
            action: action.into(),
            message: engine_message(error),
        }
    }
}

/// The engine's own message of an error, without bollard's wrapping.
fn engine_message(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        BollardError::DockerStreamError { error } => error.trim().to_owned(),
        other => other.to_string(),
    }
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image's id (`sha256:…`).
    pub id: String,
    /// The tag it was built under.
    pub tag: String,
    /// Its size.
    pub size_bytes: u64,
}

/// The credentials of a registry. Debug output masks the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// The registry's address, as in image tags (`registry.example.com:5000`).
    pub server: String,
    /// The user name.
    pub user: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("password", &"********")
            .finish()
    }
}

/// Connects to the engine at `DOCKER_HOST`, or at the local unix socket when
/// it is not set, and checks that it answers.
///
/// # Errors
///
/// [`DockerError::Unreachable`], which says how to start an engine.
pub async fn connect() -> Result<Docker, DockerError> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty());
    connect_to(host.as_deref()).await
}

/// Connects to the engine at `host` (`unix://…`, `tcp://…`, `http://…`), or
/// at the local unix socket when `None`, and checks that it answers.
///
/// # Errors
///
/// [`DockerError::Unreachable`], which says how to start an engine.
pub async fn connect_to(host: Option<&str>) -> Result<Docker, DockerError> {
    let shown = host.unwrap_or(DEFAULT_DOCKER_HOST).to_owned();
    let unreachable = |reason: String| DockerError::Unreachable {
        host: shown.clone(),
        reason,
    };
    let docker = match host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_local_defaults(),
    }
    .map_err(|e| unreachable(e.to_string()))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {}s",
                PING_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(unreachable(connection_reason(&e))),
        Ok(Ok(_)) => {}
    }
    // Speak the engine's API version when it is older than bollard's.
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(format!("cannot agree on an API version: {e}")))?;
    tracing::debug!(host = %shown, "Docker engine answers");
    Ok(docker)
}

/// The innermost cause of a connection failure, which says more than the
/// client's "error trying to connect".
fn connection_reason(error: &BollardError) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// Builds the action server, `wisp-action`, with cargo for [`ACTION_TARGET`]
/// in the workspace's dev profile, and returns the path of a stripped copy.
///
/// The source tree is `source` when given; otherwise the workspace that
/// holds the current directory if it is wisp's, else `WISP_SOURCE_DIR`, else
/// the tree this library was compiled from. The target is installed with
/// rustup when it is missing. cargo's output goes to stderr as cargo prints
/// it when stderr is a terminal (to the log otherwise), and into the error
/// when the build fails.
///
/// This runs cargo and waits for it: call it from a blocking context
/// (`tokio::task::spawn_blocking` in async code).
///
/// # Errors
///
/// See [`DockerError`]: no source tree, no target, a failed compile.
pub fn build_action_binary(source: Option<&Path>) -> Result<PathBuf, DockerError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let metadata = find_source(&cargo, source)?;
    ensure_target(&cargo)?;
    let manifest = metadata.workspace_root.join("Cargo.toml");
    let terminal = std::io::stderr().is_terminal();

    let mut command = Command::new(&cargo);
    command
        .args(["build", "--target", ACTION_TARGET])
        .args(["--package", ACTION_PACKAGE, "--bin", ACTION_BINARY])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(manifest.as_std_path())
        .args(["--color", if terminal { "always" } else { "never" }]);
    tracing::info!(workspace = %metadata.workspace_root, "building {ACTION_BINARY} for {ACTION_TARGET}");
    tracing::debug!(?command, "running cargo");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| DockerError::Spawn {
            program: cargo.clone(),
            source,
        })?;
    // Forward stderr as it comes, on its own thread so that neither pipe
    // fills and blocks cargo, and keep it for the error.
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if terminal {
                    eprintln!("{line}");
                } else {
                    tracing::debug!(target: "wisp::docker::cargo", "{line}");
                }
                lines.push(line);
            }
        }
        lines
    });
    let mut executable = None;
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)) {
            if let Ok(Message::CompilerArtifact(artifact)) = message
                && artifact.target.name == ACTION_BINARY
                && artifact.target.kind.contains(&TargetKind::Bin)
                && let Some(path) = artifact.executable
            {
                executable = Some(path.into_std_path_buf());
            }
        }
    }
    let status = child.wait().map_err(|source| DockerError::Spawn {
        program: cargo.clone(),
        source,
    })?;
    let lines = stderr_thread.join().unwrap_or_default();
    if !status.success() {
        let kept: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| {
                let l = l.trim_start();
                !l.is_empty() && !l.starts_with("Compiling") && !l.starts_with("Blocking")
            })
            .collect();
        let start = kept.len().saturating_sub(ERROR_LINES);
        return Err(DockerError::Compile {
            output: kept[start..].join("\n"),
        });
    }
    // The artifact message names the file; the profile's usual place is the
    // fallback when cargo printed none (an up-to-date build always does).
    let built = executable.unwrap_or_else(|| {
        metadata
            .target_directory
            .join(ACTION_TARGET)
            .join("debug")
            .join(ACTION_BINARY)
            .into_std_path_buf()
    });
    if !built.is_file() {
        return Err(DockerError::NoBinary { path: built });
    }
    let dir = metadata
        .target_directory
        .join(ACTION_TARGET)
        .join("wisp-image")
        .into_std_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| DockerError::io(&dir, e))?;
    // Stripped under a name of this process's own, then renamed: another
    // build running at the same time never reads a half-written copy.
    let copy = dir.join(ACTION_BINARY);
    let partial = dir.join(format!("{ACTION_BINARY}.{}.partial", std::process::id()));
    std::fs::copy(&built, &partial).map_err(|e| DockerError::io(&partial, e))?;
    strip(&partial);
    std::fs::rename(&partial, &copy).map_err(|e| DockerError::io(&copy, e))?;
    Ok(copy)
}

/// Strips a binary in place with `strip`, when there is one: the image is
/// then a fraction of the size. A binary that cannot be stripped still works.
fn strip(binary: &Path) {
    match Command::new("strip").arg(binary).output() {
        Ok(output) if output.status.success() => {
            tracing::debug!(path = %binary.display(), "stripped");
        }
        Ok(output) => tracing::warn!(
            path = %binary.display(),
            "strip failed, the image keeps the symbols: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => tracing::info!("`strip` cannot be run ({e}); the image keeps the symbols"),
    }
}

/// The metadata of wisp's workspace: the first of `explicit`, the current
/// directory's workspace, `WISP_SOURCE_DIR` and this crate's own source that
/// holds the action server.
fn find_source(cargo: &str, explicit: Option<&Path>) -> Result<Metadata, DockerError> {
    let mut tried = Vec::new();
    if let Some(dir) = explicit {
        return wisp_workspace(cargo, Some(dir)).map_err(|why| DockerError::NoSource {
            tried: format!("{}: {why}", dir.display()),
        });
    }
    match wisp_workspace(cargo, None) {
        Ok(metadata) => return Ok(metadata),
        Err(why) => tried.push(format!("the current directory: {why}")),
    }
    if let Some(dir) = std::env::var_os("WISP_SOURCE_DIR").filter(|d| !d.is_empty()) {
        // A directory named on purpose is the one meant: say why it is not
        // wisp's rather than quietly build another tree.
        let dir = PathBuf::from(dir);
        return wisp_workspace(cargo, Some(&dir)).map_err(|why| DockerError::NoSource {
            tried: format!("WISP_SOURCE_DIR={}: {why}", dir.display()),
        });
    }
    let own = Path::new(env!("CARGO_MANIFEST_DIR"));
    match wisp_workspace(cargo, Some(own)) {
        Ok(metadata) => Ok(metadata),
        Err(why) => {
            tried.push(format!("{}: {why}", own.display()));
            Err(DockerError::NoSource {
                tried: tried.join("; "),
            })
        }
    }
}

/// The metadata of the workspace holding `dir` (the current directory when
/// `None`), if one of its members is the package with the action server.
fn wisp_workspace(cargo: &str, dir: Option<&Path>) -> Result<Metadata, String> {
    let mut command = MetadataCommand::new();
    command.cargo_path(cargo).no_deps();
    if let Some(dir) = dir {
        if !dir.is_dir() {
            return Err("not a directory".to_owned());
        }
        command.current_dir(dir);
    }
    let metadata = command.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } => stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("not a cargo workspace")
            .to_owned(),
        other => other.to_string(),
    })?;
    let has_server = metadata.workspace_packages().iter().any(|p| {
        p.name.as_str() == ACTION_PACKAGE
            && p.targets
                .iter()
                .any(|t| t.name == ACTION_BINARY && t.kind.contains(&TargetKind::Bin))
    });
    if has_server {
        Ok(metadata)
    } else {
        Err(format!(
            "workspace {} has no package {ACTION_PACKAGE} with a binary {ACTION_BINARY}",
            metadata.workspace_root
        ))
    }
}

/// Makes sure the musl target's standard library is installed, installing
/// it with rustup when it is not.
fn ensure_target(cargo: &str) -> Result<(), DockerError> {
    crate::builder::install_target(cargo, ACTION_TARGET)
        .map_err(|reason| DockerError::MissingTarget { reason })
}

/// An image reference taken apart: `[registry/]repository:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry's address, when the reference names one.
    pub registry: Option<String>,
    /// Everything before the tag, registry included.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

impl ImageRef {
    /// The registry that the image is pushed to and pulled from.
    #[must_use]
    pub fn registry_or_default(&self) -> &str {
        self.registry.as_deref().unwrap_or("docker.io")
    }
}

/// Checks that `tag` is an image reference wisp can deploy, as
/// `[registry[:port]/]name[/name…]:tag` with an explicit tag other than
/// `latest`, and takes it apart.
///
/// # Errors
///
/// [`DockerError::InvalidTag`], which says what is wrong.
pub fn validate_tag(tag: &str) -> Result<ImageRef, DockerError> {
    let invalid = |reason: String| DockerError::InvalidTag {
        tag: tag.to_owned(),
        reason,
    };
    if tag.trim().is_empty() {
        return Err(invalid(
            "the image needs a name and a tag, e.g. `127.0.0.1:5000/me/wisp-runtime:0.1`"
                .to_owned(),
        ));
    }
    if tag.contains('@') {
        return Err(invalid(
            "a digest cannot be built or pushed; give a name and a tag".to_owned(),
        ));
    }
    let (name, version) = match tag.rfind(':') {
        Some(i) if !tag[i + 1..].contains('/') => (&tag[..i], Some(&tag[i + 1..])),
        _ => (tag, None),
    };
    let never_latest = "OpenWhisk pulls an image tagged `latest` (or untagged) at every cold \
                        start and fails the activation when that pull fails, whereas it falls \
                        back to its cached copy of any other tag; give an explicit version";
    let version = match version {
        None => {
            return Err(invalid(format!(
                "it has no tag. {never_latest}, e.g. `{tag}:0.1`"
            )));
        }
        Some("latest") => {
            return Err(invalid(format!(
                "`latest` is refused. {never_latest}, e.g. `{name}:0.1`"
            )));
        }
        Some(v) => v,
    };
    let version_ok = version.len() <= 128
        && version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !version_ok {
        return Err(invalid(format!(
            "the tag `{version}` may hold only letters, digits, `_`, `.` and `-` (not first), \
             at most 128 of them"
        )));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let registry = if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        let host = parts.remove(0);
        let (hostname, port) = host.split_once(':').unwrap_or((host, ""));
        let host_ok = !hostname.is_empty()
            && hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            && port.is_empty() != host.contains(':')
            && port.chars().all(|c| c.is_ascii_digit());
        if !host_ok {
            return Err(invalid(format!(
                "`{host}` is not a registry address (host or host:port)"
            )));
        }
        Some(host.to_owned())
    } else {
        None
    };
    for part in &parts {
        let ok = !part.is_empty()
            && part.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(invalid(format!(
                "the name component `{part}` may hold only lowercase letters, digits, and \
                 `.`, `_` or `-` between them"
            )));
        }
    }
    Ok(ImageRef {
        registry,
        repository: name.to_owned(),
        tag: version.to_owned(),
    })
}

/// A spinner on stderr, or nothing when `enabled` is false or stderr is not
/// a terminal.
fn spinner(enabled: bool, message: String) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Builds the runtime image `tag` with the engine and returns what it built.
///
/// The build context is made in memory: with no `dockerfile`, wisp's default
/// Dockerfile ([`DEFAULT_DOCKERFILE`]) and `binary` as `wisp-action`; with a
/// Dockerfile of the user's, that file's directory and `binary` as
/// `wisp-action` beside it. When that Dockerfile declares
/// `ARG BASE_IMAGE`, the default image is built first from the same binary
/// and its (temporary) tag passed as `BASE_IMAGE`. The build's output goes to the log,
/// and to a spinner on stderr when `progress` is set and stderr is a
/// terminal.
///
/// # Errors
///
/// An invalid tag, a missing Dockerfile or binary, or a failed build, with
/// the engine's message.
pub async fn build_image(
    docker: &Docker,
    tag: &str,
    dockerfile: Option<&Path>,
    binary: &Path,
    progress: bool,
) -> Result<ImageInfo, DockerError> {
    validate_tag(tag)?;
    if let Some(path) = dockerfile
        && !path.is_file()
    {
        return Err(DockerError::DockerfileNotFound {
            path: path.to_owned(),
        });
    }
    let server = std::fs::read(binary).map_err(|e| DockerError::io(binary, e))?;
    let Some(path) = dockerfile else {
        let context = default_context(&server).map_err(|e| DockerError::io(binary, e))?;
        return build_context(docker, tag, "Dockerfile", context, None, progress).await;
    };
    let text = std::fs::read_to_string(path).map_err(|e| DockerError::io(path, e))?;
    let mut args = HashMap::new();
    let mut base_tag = None;
    if declares_base_image(&text) {
        let digest = Sha256::new()
            .chain_update(DEFAULT_DOCKERFILE)
            .chain_update(&server)
            .finalize();
        let base = format!("{BASE_REPOSITORY}:{}", &hex::encode(digest)[..12]);
        let context = default_context(&server).map_err(|e| DockerError::io(binary, e))?;
        build_context(docker, &base, "Dockerfile", context, None, progress).await?;
        args.insert("BASE_IMAGE".to_owned(), base.clone());
        base_tag = Some(base);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let context = tokio::task::spawn_blocking(move || directory_context(&dir, server))
        .await
        .map_err(|e| DockerError::Engine {
            action: "make the build context".to_owned(),
            message: e.to_string(),
        })??;
    let built = build_context(docker, tag, &name, context, Some(args), progress).await;
    // The base only needs its tag for the build: the custom image keeps its
    // layers (and the engine its build cache), so drop the tag rather than
    // leave one image behind per build of the server.
    if let Some(base) = base_tag
        && let Err(e) = remove_image(docker, &base).await
    {
        tracing::debug!("the base image {base} keeps its tag: {e}");
    }
    built
}

/// Whether a Dockerfile declares the build argument `BASE_IMAGE`.
fn declares_base_image(text: &str) -> bool {
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("ARG"))
            && words
                .next()
                .is_some_and(|w| w == "BASE_IMAGE" || w.starts_with("BASE_IMAGE="))
    })
}

/// A tar header for a regular file, with a fixed time so that the engine's
/// build cache recognises an unchanged context.
fn file_header(size: usize, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// The default image's context: the embedded Dockerfile and the server.
fn default_context(server: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = file_header(DEFAULT_DOCKERFILE.len(), 0o644);
    tar.append_data(&mut header, "Dockerfile", DEFAULT_DOCKERFILE.as_bytes())?;
    let mut header = file_header(server.len(), 0o755);
    tar.append_data(&mut header, ACTION_BINARY, server)?;
    tar.into_inner()
}

/// A custom image's context: every file under `dir` (but `.git`, and a
/// `wisp-action` of its own), and the server as `wisp-action`.
fn directory_context(dir: &Path, server: Vec<u8>) -> Result<Vec<u8>, DockerError> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let here = dir.join(&relative);
        let entries = std::fs::read_dir(&here).map_err(|e| DockerError::io(&here, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DockerError::io(&here, e))?;
            let name = entry.file_name();
            let path = entry.path();
            let inner = relative.join(&name);
            if name == ".git" || inner == Path::new(ACTION_BINARY) {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| DockerError::io(&path, e))?;
            if meta.is_dir() {
                tar.append_dir(&inner, &path)
                    .map_err(|e| DockerError::io(&path, e))?;
                pending.push(inner);
            } else if meta.is_file() {
                tar.append_path_with_name(&path, &inner)
                    .map_err(|e| DockerError::io(&path, e))?;
            }
        }
    }
    let mut header = file_header(server.len(), 0o755);
    tar.append_data(&mut header, ACTION_BINARY, server.as_slice())
        .map_err(|e| DockerError::io(dir, e))?;
    let context = tar.into_inner().map_err(|e| DockerError::io(dir, e))?;
    tracing::debug!(dir = %dir.display(), bytes = context.len(), "build context made");
    Ok(context)
}

/// Builds `tag` from a context and inspects the result.
async fn build_context(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    context: Vec<u8>,
    args: Option<HashMap<String, String>>,
    progress: bool,
) -> Result<ImageInfo, DockerError> {
    tracing::info!(tag, context_bytes = context.len(), "building image");
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_owned(),
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        buildargs: args.filter(|a| !a.is_empty()),
        ..Default::default()
    };
    let bar = spinner(progress, format!("building {tag}"));
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                for line in info.stream.iter().chain(info.status.iter()) {
                    for line in line.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        tracing::debug!(target: "wisp::docker::build", "{line}");
                        bar.set_message(line.to_owned());
                    }
                }
            }
            Err(e) => {
                failure = Some(engine_message(&e));
                break;
            }
        }
    }
    bar.finish_and_clear();
    if let Some(message) = failure {
        return Err(DockerError::Build {
            tag: tag.to_owned(),
            message,
        });
    }
    let image = docker
        .inspect_image(tag)
        .await
        .map_err(|e| DockerError::engine(format!("inspect the image {tag} it built"), &e))?;
    let info = ImageInfo {
        id: image.id.unwrap_or_default(),
        tag: tag.to_owned(),
        size_bytes: image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
    };
    tracing::info!(tag, id = %info.id, size_bytes = info.size_bytes, "image built");
    Ok(info)
}

/// Pushes the image `tag` to its registry, with `credentials` when the
/// registry asks for them. The push's output goes to the log, and to a
/// spinner on stderr when `progress` is set and stderr is a terminal.
///
/// # Errors
///
/// An invalid tag, or a push the registry or the engine refused, with a
/// message that names the registry and what to check.
pub async fn push_image(
    docker: &Docker,
    tag: &str,
    credentials: Option<&RegistryCredentials>,
    progress: bool,
) -> Result<(), DockerError> {
    let image = validate_tag(tag)?;
    let registry = image.registry_or_default().to_owned();
    tracing::info!(tag, %registry, with_credentials = credentials.is_some(), "pushing image");
    let options = PushImageOptions {
        tag: Some(image.tag.clone()),
        ..Default::default()
    };
    let credentials = credentials.map(|c| DockerCredentials {
        username: Some(c.user.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.server.clone()),
        ..Default::default()
    });
    let bar = spinner(progress, format!("pushing {tag}"));
    let mut stream = docker.push_image(&image.repository, Some(options), credentials);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status.as_deref() {
                    tracing::debug!(target: "wisp::docker::push", "{status}");
                    let message = match info.progress_detail.as_ref() {
                        Some(d) if d.total.unwrap_or(0) > 0 => format!(
                            "{status} {}/{} MB",
                            d.current.unwrap_or(0) >> 20,
                            d.total.unwrap_or(0) >> 20
                        ),
                        _ => status.to_owned(),
                    };
                    bar.set_message(message);
                }
            }
            Err(e) => {
                failure = Some(engine_message(&e));
                break;
            }
        }
    }
    bar.finish_and_clear();
    let Some(message) = failure else {
        tracing::info!(tag, "image pushed");
        return Ok(());
    };
    let lower = message.to_lowercase();
    let hint = if lower.contains("does not exist locally") || lower.contains("no such image") {
        format!("build the image first (`wisp runtime build {tag}`)")
    } else if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        format!("check the credentials for {registry}")
    } else if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("timeout")
        || lower.contains("dial tcp")
    {
        format!(
            "check that the registry runs and answers at {registry} (for a local one, \
             `scripts/docker.sh start` starts it on 127.0.0.1:5000)"
        )
    } else {
        format!("check that the registry runs at {registry} and that the credentials are right")
    };
    Err(DockerError::Push {
        tag: tag.to_owned(),
        registry,
        message,
        hint,
    })
}

/// Whether the engine has an image of that reference.
///
/// # Errors
///
/// [`DockerError::Engine`] when the engine fails to answer.
pub async fn image_exists(docker: &Docker, tag: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(DockerError::engine(format!("inspect the image {tag}"), &e)),
    }
}

/// Removes the image reference `tag` from the engine (the image itself goes
/// when no other tag names it). Returns false when there was no such image.
///
/// # Errors
///
/// [`DockerError::Engine`] when the engine refuses, for example because a
/// container uses the image.
pub async fn remove_image(docker: &Docker, tag: &str) -> Result<bool, DockerError> {
    let options = RemoveImageOptions {
        force: false,
        noprune: false,
        ..Default::default()
    };
    match docker.remove_image(tag, Some(options), None).await {
        Ok(_) => {
            tracing::info!(tag, "image removed");
            Ok(true)
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(DockerError::engine(format!("remove the image {tag}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let image = validate_tag("127.0.0.1:5000/me/wisp-runtime:0.1").unwrap();
        assert_eq!(image.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(image.repository, "127.0.0.1:5000/me/wisp-runtime");
        assert_eq!(image.tag, "0.1");
        let image = validate_tag("me/wisp-runtime:v1_2").unwrap();
        assert_eq!(image.registry_or_default(), "docker.io");
        assert!(validate_tag("localhost/x:1").unwrap().registry.is_some());
        for bad in [
            "",
            "x",
            "x:latest",
            "127.0.0.1:5000/x",
            "X:1",
            "x:",
            "x:-1",
            "a//b:1",
            "x@sha256:00",
        ] {
            assert!(validate_tag(bad).is_err(), "{bad} accepted");
        }
        let message = validate_tag("me/x:latest").unwrap_err().to_string();
        assert!(message.contains("cold start"), "{message}");
    }

    #[test]
    fn credentials_debug_masks_the_password() {
        let c = RegistryCredentials {
            server: "r:5000".into(),
            user: "me".into(),
            password: "hunter2".into(),
        };
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2") && text.contains("me"), "{text}");
    }

    #[test]
    fn base_image_argument() {
        assert!(declares_base_image("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"));
        assert!(declares_base_image("arg BASE_IMAGE=x:1\n"));
        assert!(!declares_base_image("FROM scratch\n# ARG BASE_IMAGES\n"));
    }
}
