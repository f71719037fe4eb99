//! Action containers: a Docker container on the host network, or a child
//! process standing in for one where no engine runs. Both feed their stdout
//! and stderr, line by line, into a [`LogBuffer`] the invoker reads from.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

use crate::util::iso_now;

/// The line an action server writes to each stream after every activation.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// The label that marks every container of one emulator instance.
pub const LABEL: &str = "wisp-openwhisk-emulator";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogLine {
    pub time: String,
    pub stream: Stream,
    pub text: String,
}

impl LogLine {
    /// The line as an activation record stores it: the timestamp
    /// left-justified to 30 columns, the stream, the text.
    pub fn formatted(&self) -> String {
        format!(
            "{:<30} {}: {}",
            self.time,
            self.stream.name(),
            self.text.trim()
        )
    }
}

/// Everything a container wrote, in order of arrival.
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<Vec<LogLine>>,
    changed: Notify,
}

impl LogBuffer {
    pub fn push(&self, stream: Stream, time: String, text: String) {
        self.lines
            .lock()
            .expect("log buffer poisoned")
            .push(LogLine { time, stream, text });
        self.changed.notify_waiters();
    }

    fn len(&self) -> usize {
        self.lines.lock().expect("log buffer poisoned").len()
    }
}

/// Why a container could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The image could not be pulled (an action developer error upstream).
    #[error("Failed to pull container image '{0}'.")]
    Pull(String),
    /// Anything else (a whisk internal error).
    #[error("{0}")]
    Other(String),
}

/// What a container is started with.
pub struct StartSpec<'a> {
    pub name: String,
    pub image: &'a str,
    pub memory_mb: u64,
    pub env: Vec<(String, String)>,
    pub instance: &'a str,
}

enum Backend {
    Docker {
        docker: Docker,
        id: String,
        follower: tokio::task::JoinHandle<()>,
    },
    Process {
        child: Mutex<Option<tokio::process::Child>>,
    },
}

/// One running action container.
pub struct Container {
    pub name: String,
    pub addr: SocketAddr,
    pub logs: Arc<LogBuffer>,
    /// How far the logs have been handed to activations.
    cursor: tokio::sync::Mutex<usize>,
    backend: Backend,
}

/// A free port on loopback for the next container's action server.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

fn spawn_reader(
    stream: impl AsyncRead + Unpin + Send + 'static,
    which: Stream,
    logs: Arc<LogBuffer>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    let text = text.strip_suffix('\r').unwrap_or(text);
                    logs.push(which, iso_now(), text.to_string());
                }
            }
        }
    });
}

impl Container {
    /// Starts `binary` as a child process in place of the image, with the
    /// environment the container would get.
    pub async fn start_process(binary: &Path, spec: StartSpec<'_>) -> Result<Self, StartError> {
        let addr = free_loopback_addr().map_err(|e| StartError::Other(e.to_string()))?;
        let mut cmd = tokio::process::Command::new(binary);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("__OW_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WISP_ACTION_ADDR", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            StartError::Other(format!(
                "Failed to start action process '{}': {e}",
                binary.display()
            ))
        })?;
        let logs = Arc::new(LogBuffer::default());
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, Stream::Stdout, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, Stream::Stderr, logs.clone());
        }
        tracing::debug!(name = %spec.name, %addr, pid = ?child.id(), "started action process");
        Ok(Container {
            name: spec.name,
            addr,
            logs,
            cursor: tokio::sync::Mutex::new(0),
            backend: Backend::Process {
                child: Mutex::new(Some(child)),
            },
        })
    }

    /// Runs the image as a Docker container on the host network, its action
    /// server told to listen on a loopback port of its own.
    pub async fn start_docker(docker: &Docker, spec: StartSpec<'_>) -> Result<Self, StartError> {
        pull(docker, spec.image).await?;
        let addr = free_loopback_addr().map_err(|e| StartError::Other(e.to_string()))?;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("WISP_ACTION_ADDR={addr}"));
        let memory = (spec.memory_mb * 1024 * 1024) as i64;
        let body = ContainerCreateBody {
            image: Some(spec.image.to_string()),
            env: Some(env),
            labels: Some([(LABEL.to_string(), spec.instance.to_string())].into()),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                memory: Some(memory),
                memory_swap: Some(memory),
                pids_limit: Some(1024),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(1024),
                    hard: Some(1024),
                }]),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                StartError::Other(format!(
                    "Failed to run container with image '{}': {e}",
                    spec.image
                ))
            })?;
        let id = created.id;
        if let Err(e) = docker.start_container(&id, None).await {
            remove_docker(docker, &id).await;
            return Err(StartError::Other(format!(
                "Failed to run container with image '{}': {e}",
                spec.image
            )));
        }
        let logs = Arc::new(LogBuffer::default());
        let follower = {
            let docker = docker.clone();
            let id = id.clone();
            let logs = logs.clone();
            tokio::spawn(async move {
                let options = LogsOptionsBuilder::default()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .timestamps(true)
                    .build();
                let mut stream = docker.logs(&id, Some(options));
                while let Some(item) = stream.next().await {
                    let (which, message) = match item {
                        Ok(bollard::container::LogOutput::StdOut { message }) => {
                            (Stream::Stdout, message)
                        }
                        Ok(bollard::container::LogOutput::StdErr { message }) => {
                            (Stream::Stderr, message)
                        }
                        Ok(_) => continue,
                        Err(_) => break,
                    };
                    let line = String::from_utf8_lossy(&message);
                    let line = line.strip_suffix('\n').unwrap_or(&line);
                    // With timestamps on, Docker puts its RFC 3339 time first.
                    let (time, text) = match line.split_once(' ') {
                        Some((t, rest)) if t.ends_with('Z') => (t.to_string(), rest),
                        _ => (iso_now(), line),
                    };
                    logs.push(which, time, text.to_string());
                }
            })
        };
        tracing::debug!(name = %spec.name, %addr, %id, "started action container");
        Ok(Container {
            name: spec.name,
            addr,
            logs,
            cursor: tokio::sync::Mutex::new(0),
            backend: Backend::Docker {
                docker: docker.clone(),
                id,
                follower,
            },
        })
    }

    /// Whether Docker reports that the kernel killed the container for memory.
    pub async fn oom_killed(&self) -> bool {
        match &self.backend {
            Backend::Docker { docker, id, .. } => docker
                .inspect_container(id, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false),
            Backend::Process { .. } => false,
        }
    }

    /// Stops and removes the container (or kills the process).
    pub async fn destroy(&self) {
        match &self.backend {
            Backend::Docker {
                docker,
                id,
                follower,
            } => {
                follower.abort();
                remove_docker(docker, id).await;
            }
            Backend::Process { child } => {
                let child = child.lock().expect("child poisoned").take();
                if let Some(mut child) = child {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
        tracing::debug!(name = %self.name, "destroyed action container");
    }

    /// Kills a process right away, without waiting (for `Drop`).
    pub fn kill_now(&self) {
        if let Backend::Process { child } = &self.backend
            && let Ok(mut guard) = child.lock()
            && let Some(child) = guard.as_mut()
        {
            let _ = child.start_kill();
        }
    }

    /// Hands over this activation's log lines, formatted.
    ///
    /// With `wait_for_sentinels` it reads until it has seen one sentinel in
    /// each stream, polling every 5 ms, giving up when nothing new arrives
    /// for 2 s or after `max(limit MB, 5) × 2 s`. Without it (developer
    /// errors) it takes what is there and says that data may be missing.
    pub async fn collect_logs(&self, limit_mb: u64, wait_for_sentinels: bool) -> Vec<String> {
        let mut cursor = self.cursor.lock().await;
        let started = Instant::now();
        let overall = Duration::from_secs(limit_mb.max(5) * 2);
        let mut last_len = self.logs.len();
        let mut last_change = Instant::now();
        let mut trouble = false;
        let end = loop {
            if !wait_for_sentinels {
                // Give the readers a moment to pass on what was written last.
                tokio::time::sleep(Duration::from_millis(20)).await;
                break self.logs.len();
            }
            {
                let lines = self.logs.lines.lock().expect("log buffer poisoned");
                let (mut out, mut err) = (None, None);
                for (i, l) in lines.iter().enumerate().skip(*cursor) {
                    if l.text.trim() == SENTINEL {
                        match l.stream {
                            Stream::Stdout if out.is_none() => out = Some(i),
                            Stream::Stderr if err.is_none() => err = Some(i),
                            _ => {}
                        }
                    }
                    if out.is_some() && err.is_some() {
                        break;
                    }
                }
                if let (Some(a), Some(b)) = (out, err) {
                    break a.max(b) + 1;
                }
            }
            let len = self.logs.len();
            if len != last_len {
                last_len = len;
                last_change = Instant::now();
            }
            if last_change.elapsed() >= Duration::from_secs(2) || started.elapsed() >= overall {
                trouble = true;
                break len;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.logs.changed.notified()).await;
        };
        let lines = self.logs.lines.lock().expect("log buffer poisoned");
        let limit = limit_mb * 1024 * 1024;
        let mut used = 0u64;
        let mut out = Vec::new();
        let mut truncated = false;
        for l in &lines[*cursor..end] {
            if l.text.trim() == SENTINEL {
                continue;
            }
            used += l.text.len() as u64;
            if used > limit {
                truncated = true;
                break;
            }
            out.push(l.formatted());
        }
        *cursor = end;
        let note = |text: String| {
            LogLine {
                time: iso_now(),
                stream: Stream::Stderr,
                text,
            }
            .formatted()
        };
        if truncated {
            out.push(note(format!(
                "Logs were truncated because the total bytes size exceeds the limit of {limit} bytes."
            )));
        }
        if !wait_for_sentinels {
            out.push(note(
                "The action did not initialize or run as expected. Log data might be missing."
                    .into(),
            ));
        } else if trouble {
            out.push(note(
                "There was an issue while collecting your logs. Data might be missing.".into(),
            ));
        }
        out
    }
}

async fn remove_docker(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(%id, "could not remove container: {e}");
    }
}

/// Whether an image reference names no tag or `latest`.
pub fn pull_is_mandatory(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

/// Pulls the image the way the invoker does: for `latest` or no tag a
/// failed pull is fatal; for any other tag a cached local image will do.
async fn pull(docker: &Docker, image: &str) -> Result<(), StartError> {
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    let mut failed = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            failed = Some(e);
            break;
        }
    }
    let Some(e) = failed else { return Ok(()) };
    tracing::debug!(%image, "pull failed: {e}");
    if !pull_is_mandatory(image) && docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    Err(StartError::Pull(image.to_string()))
}

/// Removes every container labelled with this emulator instance.
pub async fn remove_labelled(docker: &Docker, instance: &str) {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL}={instance}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    if let Ok(list) = docker.list_containers(Some(options)).await {
        for c in list {
            if let Some(id) = c.id {
                remove_docker(docker, &id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mandatory_pulls() {
        assert!(pull_is_mandatory("wisp"));
        assert!(pull_is_mandatory("reg:5000/wisp"));
        assert!(pull_is_mandatory("reg:5000/wisp:latest"));
        assert!(!pull_is_mandatory("reg:5000/wisp:1.0"));
        assert!(!pull_is_mandatory("wisp@sha256:abc"));
    }

    #[test]
    fn line_format() {
        let l = LogLine {
            time: "2024-01-01T00:00:00.5Z".into(),
            stream: Stream::Stdout,
            text: "hello\n".into(),
        };
        assert_eq!(
            l.formatted(),
            "2024-01-01T00:00:00.5Z         stdout: hello"
        );
    }
}
