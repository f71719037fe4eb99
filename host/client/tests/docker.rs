//! Runtime images against a real Docker engine and a real registry.
//!
//! The engine is the one at DOCKER_HOST (or the local socket), the registry
//! the one at WISP_TEST_REGISTRY (default 127.0.0.1:5000): start both with
//! `scripts/docker.sh start`. A test that needs them fails with a message
//! that says so when they do not answer, unless WISP_TEST_DOCKER=skip, which
//! skips it and says so loudly.
//!
//! The action server is built for musl once per run (the first build
//! compiles wasmtime for musl, several minutes; later ones find it built).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    RemoveContainerOptions, TagImageOptions,
};
use futures::StreamExt as _;
use wisp::docker::{self, DockerError, ImageInfo};

const SKIP: &str = "WISP_TEST_DOCKER";

/// Set for the process that checks a bogus DOCKER_HOST.
const BOGUS_HOST: &str = "WISP_TEST_BOGUS_DOCKER_HOST";

fn registry() -> String {
    std::env::var("WISP_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned())
}

fn skipping() -> bool {
    std::env::var(SKIP).is_ok_and(|v| v == "skip")
}

fn skip(what: &str, why: &str) {
    eprintln!("\n***** SKIPPED: {what}: {why} ({SKIP}=skip) *****\n");
}

/// The engine, or `None` when it does not answer and the tests may skip.
async fn engine(test: &str) -> Option<Docker> {
    match docker::connect().await {
        Ok(docker) => Some(docker),
        Err(e) if skipping() => {
            skip(test, &e.to_string());
            None
        }
        Err(e) => {
            panic!("{test} needs a Docker engine: {e}\n(set {SKIP}=skip to skip the Docker tests)")
        }
    }
}

/// Whether the registry answers, panicking (or skipping) when it does not.
async fn registry_answers(test: &str) -> bool {
    let url = format!("http://{}/v2/", registry());
    match reqwest::get(&url).await {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 401 => true,
        outcome if skipping() => {
            skip(test, &format!("no registry at {url}: {outcome:?}"));
            false
        }
        outcome => panic!(
            "{test} needs a registry at {url} (answered {outcome:?}); run \
             `scripts/docker.sh start`, or set {SKIP}=skip to skip the Docker tests"
        ),
    }
}

/// The stripped musl build of the action server, built once per process
/// (and found built by cargo in the processes after the first).
fn action_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let started = std::time::Instant::now();
            let path = docker::build_action_binary(None).unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "wisp-action for musl ready in {:.1?}: {} ({} bytes)",
                started.elapsed(),
                path.display(),
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            );
            path
        })
        .clone()
}

fn random_tag() -> String {
    format!("t{:016x}", fastrand::u64(..))
}

fn runtimes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtimes/openwhisk")
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A handle that never connects: for checks that fail before any request.
fn unused_engine() -> Docker {
    Docker::connect_with_http("tcp://127.0.0.1:9", 5, bollard::API_DEFAULT_VERSION).unwrap()
}

/// Builds the default image under a fresh tag of `repository`.
async fn default_image(docker: &Docker, repository: &str) -> ImageInfo {
    let tag = format!("{repository}:{}", random_tag());
    let binary = action_binary();
    docker::build_image(docker, &tag, None, &binary, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Removes an image a test made. Images of tests running beside this one
/// may share its layers, or have containers made from them for a moment:
/// a refusal is reported, not failed on.
async fn clean_up(docker: &Docker, tag: &str) {
    if let Err(e) = docker::remove_image(docker, tag).await {
        eprintln!("left {tag} behind: {e}");
    }
}

/// The bytes of one file in an image, read from a container created (never
/// started) from it: a scratch image has no shell to ask.
async fn file_in_image(docker: &Docker, image: &str, path: &str) -> Option<Vec<u8>> {
    let container = docker
        .create_container(
            None::<CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(image.to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let options = DownloadFromContainerOptions {
        path: path.to_owned(),
    };
    let mut stream = docker.download_from_container(&container.id, Some(options));
    let mut archive = Vec::new();
    let mut found = true;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => archive.extend_from_slice(&bytes),
            Err(_) => {
                found = false;
                break;
            }
        }
    }
    docker
        .remove_container(&container.id, None::<RemoveContainerOptions>)
        .await
        .unwrap();
    if !found {
        return None;
    }
    let mut tar = tar::Archive::new(archive.as_slice());
    let mut entry = tar.entries().ok()?.next()?.ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes).ok()?;
    Some(bytes)
}

#[tokio::test]
async fn default_image_is_the_binary_alone_and_round_trips_through_the_registry() {
    let test = "default image";
    let Some(docker) = engine(test).await else {
        return;
    };
    if !registry_answers(test).await {
        return;
    }
    let repository = format!("{}/wisp-test/runtime", registry());
    let image = default_image(&docker, &repository).await;
    let binary_size = std::fs::metadata(action_binary()).unwrap().len();
    eprintln!(
        "default image {}: {} bytes ({:.1} MB), the stripped binary {} bytes",
        image.tag,
        image.size_bytes,
        image.size_bytes as f64 / 1e6,
        binary_size
    );
    // FROM scratch: one layer, the binary, and nothing else.
    assert!(
        image.size_bytes >= binary_size && image.size_bytes < binary_size + 64 * 1024,
        "image of {} bytes for a binary of {binary_size}",
        image.size_bytes
    );
    let inspect = docker.inspect_image(&image.tag).await.unwrap();
    let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
    assert_eq!(layers.len(), 1, "layers: {layers:?}");
    let config = inspect.config.unwrap();
    assert_eq!(config.entrypoint, Some(vec!["/wisp-action".to_owned()]));
    assert_eq!(config.exposed_ports, Some(vec!["8080/tcp".to_owned()]));
    assert!(docker::image_exists(&docker, &image.tag).await.unwrap());

    docker::push_image(&docker, &image.tag, None, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let version = image.tag.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://{}/v2/wisp-test/runtime/tags/list", registry());
    let tags: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert!(
        tags["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == version.as_str())),
        "{version} not in {tags}"
    );

    // Gone from the engine, then pulled back from the registry.
    assert!(docker::remove_image(&docker, &image.tag).await.unwrap());
    assert!(!docker::image_exists(&docker, &image.tag).await.unwrap());
    assert!(!docker::remove_image(&docker, &image.tag).await.unwrap());
    let options = CreateImageOptions {
        from_image: Some(repository.clone()),
        tag: Some(version.clone()),
        ..Default::default()
    };
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(item) = pull.next().await {
        item.unwrap_or_else(|e| panic!("pulling {} back: {e}", image.tag));
    }
    let pulled = docker.inspect_image(&image.tag).await.unwrap();
    assert_eq!(pulled.id.as_deref(), Some(image.id.as_str()));
    clean_up(&docker, &image.tag).await;
}

#[tokio::test]
async fn custom_images_build_on_the_default_one() {
    let test = "custom image";
    let Some(docker) = engine(test).await else {
        return;
    };
    let binary = action_binary();

    // The skeleton as shipped: the default image and nothing more.
    let skeleton = runtimes_dir().join("Dockerfile.custom");
    let tag = format!("wisp-test/custom:{}", random_tag());
    let plain = docker::build_image(&docker, &tag, Some(&skeleton), &binary, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let inspect = docker.inspect_image(&tag).await.unwrap();
    assert_eq!(
        inspect.config.unwrap().entrypoint,
        Some(vec!["/wisp-action".to_owned()])
    );
    eprintln!("custom skeleton image: {} bytes", plain.size_bytes);
    clean_up(&docker, &tag).await;

    // The skeleton with its preload and CA lines in use: the files of the
    // Dockerfile's directory are in the context.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&skeleton).unwrap();
    let text = text
        .replace("# COPY preload/", "COPY preload/")
        .replace("# COPY ca-certificates.crt", "COPY ca-certificates.crt");
    assert!(text.contains("\nCOPY preload/") && text.contains("\nCOPY ca-certificates.crt"));
    std::fs::write(dir.path().join("Dockerfile.custom"), text).unwrap();
    std::fs::create_dir(dir.path().join("preload")).unwrap();
    let module = b"\0asm\x01\0\0\0".to_vec();
    std::fs::write(dir.path().join("preload/empty.wasm"), &module).unwrap();
    std::fs::write(
        dir.path().join("ca-certificates.crt"),
        b"-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let tag = format!("wisp-test/custom:{}", random_tag());
    let image = docker::build_image(
        &docker,
        &tag,
        Some(&dir.path().join("Dockerfile.custom")),
        &binary,
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(image.size_bytes > plain.size_bytes);
    assert_eq!(
        file_in_image(&docker, &tag, "/wisp/preload/empty.wasm").await,
        Some(module)
    );
    assert!(
        file_in_image(&docker, &tag, "/etc/ssl/certs/ca-certificates.crt")
            .await
            .is_some()
    );
    clean_up(&docker, &tag).await;

    // A Dockerfile that fails reports the engine's message.
    std::fs::write(
        dir.path().join("Dockerfile.broken"),
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY missing-file /missing-file\n",
    )
    .unwrap();
    let tag = format!("wisp-test/custom:{}", random_tag());
    let error = docker::build_image(
        &docker,
        &tag,
        Some(&dir.path().join("Dockerfile.broken")),
        &binary,
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DockerError::Build { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&tag) && message.contains("missing-file"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_tags_are_refused_before_any_work() {
    // No engine needed: the tag is checked first.
    let docker = unused_engine();
    let binary = Path::new("/nonexistent/wisp-action");
    for (tag, expected) in [
        ("", "needs a name and a tag"),
        ("wisp-runtime", "no tag"),
        ("127.0.0.1:5000/me/wisp-runtime", "cold start"),
        ("me/wisp-runtime:latest", "`latest` is refused"),
        ("me/wisp-runtime:latest", "cold start"),
        ("Me/wisp-runtime:0.1", "lowercase"),
        ("me/wisp-runtime:0.1!", "letters, digits"),
    ] {
        let error = docker::build_image(&docker, tag, None, binary, false)
            .await
            .unwrap_err();
        assert!(matches!(error, DockerError::InvalidTag { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(expected), "{tag}: {message}");
        let error = docker::push_image(&docker, tag, None, false)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{tag}: {error}");
    }
}

#[tokio::test]
async fn an_unknown_dockerfile_is_named() {
    let docker = unused_engine();
    let error = docker::build_image(
        &docker,
        "wisp-test/custom:1",
        Some(Path::new("/nonexistent/Dockerfile.custom")),
        Path::new("/nonexistent/wisp-action"),
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DockerError::DockerfileNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "no Dockerfile at /nonexistent/Dockerfile.custom: pass the path of an existing file"
    );
}

#[tokio::test]
async fn pushing_to_an_unreachable_registry_names_it() {
    let test = "unreachable registry";
    let Some(docker) = engine(test).await else {
        return;
    };
    let image = default_image(&docker, "wisp-test/runtime").await;
    let port = closed_port();
    let repository = format!("127.0.0.1:{port}/wisp-test/runtime");
    let version = random_tag();
    let tag = format!("{repository}:{version}");
    let options = TagImageOptions {
        repo: Some(repository.clone()),
        tag: Some(version),
    };
    docker.tag_image(&image.tag, Some(options)).await.unwrap();
    let credentials = docker::RegistryCredentials {
        server: format!("127.0.0.1:{port}"),
        user: "wisp".to_owned(),
        password: "not-a-real-secret".to_owned(),
    };
    let error = docker::push_image(&docker, &tag, Some(&credentials), false)
        .await
        .unwrap_err();
    let message = error.to_string();
    eprintln!("{message}");
    assert!(matches!(error, DockerError::Push { .. }), "{error:?}");
    assert!(
        message.contains(&format!("registry 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(message.contains("registry runs"), "{message}");
    assert!(!message.contains("not-a-real-secret"), "{message}");
    assert!(!format!("{error:?}").contains("not-a-real-secret"));
    clean_up(&docker, &tag).await;

    // An image that was never built.
    let missing = format!("{}/wisp-test/never-built:{}", registry(), random_tag());
    let error = docker::push_image(&docker, &missing, None, false)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("build the image first"),
        "{error}"
    );
    clean_up(&docker, &image.tag).await;
}

#[tokio::test]
async fn an_unreachable_engine_says_how_to_start_one() {
    let port = closed_port();
    for host in [
        format!("tcp://127.0.0.1:{port}"),
        "unix:///nonexistent/wisp-docker.sock".to_owned(),
    ] {
        let error = docker::connect_to(Some(&host)).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, DockerError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(message.contains(&host), "{message}");
        assert!(message.contains("scripts/docker.sh start"), "{message}");
        assert!(message.contains("DOCKER_HOST"), "{message}");
    }

    // The same through DOCKER_HOST, in a process of its own so that no
    // other test sees the variable.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "connect_reads_docker_host",
            "--ignored",
            "--nocapture",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/wisp-docker.sock")
        .env(BOGUS_HOST, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Run by `an_unreachable_engine_says_how_to_start_one` with a bogus
/// DOCKER_HOST; ignored otherwise.
#[tokio::test]
#[ignore = "run by an_unreachable_engine_says_how_to_start_one with a bogus DOCKER_HOST"]
async fn connect_reads_docker_host() {
    if std::env::var_os(BOGUS_HOST).is_none() {
        eprintln!("connect_reads_docker_host checks nothing unless run by its caller");
        return;
    }
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST is set by the caller");
    let message = docker::connect().await.unwrap_err().to_string();
    println!("{message}");
    assert!(message.contains(&host), "{message}");
    assert!(message.contains("start the engine"), "{message}");
}

#[test]
fn a_source_tree_that_is_not_wisps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = docker::build_action_binary(Some(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DockerError::NoSource { .. }), "{error:?}");
    assert!(
        message.contains(&dir.path().display().to_string()) && message.contains("WISP_SOURCE_DIR"),
        "{message}"
    );
}
