//! The commands a user reaches for around `wisp submit`: `wisp jobs` and
//! `wisp logs` on kept jobs, `wisp hello` on a fresh set-up, and
//! `wisp config show`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A user's set-up: a config file and local storage of its own.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        Self { dir }
    }

    /// Runs `wisp` from the repository root with this set-up.
    fn wisp(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("wisp runs")
    }

    /// The command line of `wisp` with this set-up, to run or spawn.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wisp"));
        command
            .args(args)
            .current_dir(repo())
            .env("WISP_CONFIG", self.dir.path().join("config.yaml"))
            .env("WISP_STORAGE_DIR", self.dir.path().join("storage"));
        for var in wisp::config::ENV_OVERRIDES {
            if !matches!(var, "WISP_CONFIG" | "WISP_STORAGE_DIR") {
                command.env_remove(var);
            }
        }
        command.envs(env.iter().copied());
        command
    }

    /// `wisp submit --keep` of the faults fixture; returns the job's id.
    fn keep(&self, function: &str, map_json: &str) -> String {
        let out = self.wisp(
            &[
                "submit",
                "tests/guests/faults",
                "--function",
                function,
                "--map-json",
                map_json,
                "--keep",
            ],
            &[],
        );
        let err = stderr(&out);
        let job = err
            .lines()
            .find_map(|line| line.strip_prefix("kept job "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no kept job in: {err}"));
        job.to_owned()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The row of `job` in `wisp jobs`, split into its columns.
fn row(listing: &str, job: &str) -> Vec<String> {
    listing
        .lines()
        .find(|line| line.starts_with(job))
        .unwrap_or_else(|| panic!("job {job} is not listed:\n{listing}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn jobs_lists_kept_jobs_with_their_outcomes() {
    let setup = Setup::new("");
    let empty = setup.wisp(&["jobs"], &[]);
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "");
    assert!(stderr(&empty).contains("--keep"), "{}", stderr(&empty));

    let mixed = setup.keep("add", r#"[[1, 2], ["x", 1], [3, 4]]"#);
    let failing = setup.keep("fail", r#"["no", "never"]"#);
    let out = setup.wisp(&["jobs"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing = stdout(&out);
    let header: Vec<&str> = listing
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "JOB", "FUNCTION", "STATE", "CALLS", "OK", "FAILED", "PENDING", "AGE"
        ]
    );
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let mixed_row = row(&listing, &mixed);
    assert_eq!(
        mixed_row[1..7],
        ["add", "failed", "3", "2", "1", "0"],
        "{listing}"
    );
    let failing_row = row(&listing, &failing);
    assert_eq!(
        failing_row[1..7],
        ["fail", "failed", "2", "0", "2", "0"],
        "{listing}"
    );
    assert!(failing_row[7].ends_with('s'), "age in seconds: {listing}");
    // Oldest first.
    let first = listing.lines().nth(1).unwrap_or("");
    assert!(first.starts_with(&mixed), "{listing}");
}

#[test]
fn jobs_counts_calls_without_an_outcome_as_pending() {
    let setup = Setup::new("");
    let job = setup.keep("echo", "[1, 2, 3]");
    let done = stdout(&setup.wisp(&["jobs"], &[]));
    assert_eq!(
        row(&done, &job)[2..7],
        ["done", "3", "3", "0", "0"],
        "{done}"
    );
    // Take the outcomes away, as when a run is cut short before its calls
    // are recorded.
    let status = setup
        .dir
        .path()
        .join("storage/wisp-data/wisp/jobs")
        .join(&job)
        .join("status");
    assert!(status.is_dir(), "statuses at {}", status.display());
    std::fs::remove_dir_all(&status).expect("remove statuses");
    // Its client, the `wisp submit` above, is gone: the job will never
    // finish.
    let gone = stdout(&setup.wisp(&["jobs"], &[]));
    assert_eq!(
        row(&gone, &job)[2..7],
        ["interrupted", "3", "0", "0", "3"],
        "{gone}"
    );
    // Without the record of its client, nothing says it stopped.
    std::fs::remove_file(status.with_file_name("client.json")).expect("remove client.json");
    let running = stdout(&setup.wisp(&["jobs"], &[]));
    assert_eq!(
        row(&running, &job)[2..7],
        ["running", "3", "0", "0", "3"],
        "{running}"
    );
}

#[test]
fn logs_shows_each_calls_log_and_outcome_in_call_order() {
    let setup = Setup::new("");
    let job = setup.keep("log", "[2, 0, 1]");
    let out = setup.wisp(&["logs", &job], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "--- call 00000: ok ---\n\
         stdout line 0\nstderr line 0\nstdout line 1\nstderr line 1\n\
         --- call 00001: ok ---\n\
         --- call 00002: ok ---\n\
         stdout line 0\nstderr line 0\n"
    );
    for call in ["2", "00002"] {
        let one = setup.wisp(&["logs", &job, call], &[]);
        assert_eq!(
            stdout(&one),
            "--- call 00002: ok ---\nstdout line 0\nstderr line 0\n",
            "{call}: {}",
            stderr(&one)
        );
    }

    let failed = setup.keep("fail", r#"["it broke"]"#);
    let out = setup.wisp(&["logs", &failed], &[]);
    assert_eq!(
        stdout(&out),
        "--- call 00000: failed: the function returned an error: it broke ---\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_of_an_unknown_job_or_call_says_how_to_list_jobs() {
    let setup = Setup::new("");
    let job = setup.keep("echo", "[1]");
    let unknown_job = setup.wisp(&["logs", "no-such-job"], &[]);
    assert_eq!(unknown_job.status.code(), Some(2));
    let err = stderr(&unknown_job);
    assert!(err.contains("no job `no-such-job`"), "{err}");
    assert!(err.contains("wisp jobs"), "{err}");

    let unknown_call = setup.wisp(&["logs", &job, "5"], &[]);
    assert_eq!(unknown_call.status.code(), Some(2));
    let err = stderr(&unknown_call);
    assert!(
        err.contains("no call `5`") && err.contains("00000"),
        "{err}"
    );
    assert_eq!(stdout(&unknown_call), "");
}

#[test]
fn hello_runs_my_function_on_the_embedded_default() {
    let setup = Setup::new("");
    let out = setup.wisp(&["hello"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("my_function(3) = 10\n"), "{text}");
    assert!(text.contains("backend  localhost"), "{text}");
    assert!(text.contains("local storage at"), "{text}");
    let config = setup.dir.path().join("config.yaml");
    assert!(text.contains(&config.display().to_string()), "{text}");
    // The job's data is removed afterwards.
    let jobs = setup.wisp(&["jobs"], &[]);
    assert_eq!(stdout(&jobs), "", "{}", stderr(&jobs));

    for (x, y) in [
        ("-20", "-13"),
        ("0", "7"),
        ("999999999999999992", "999999999999999999"),
    ] {
        let out = setup.wisp(&["hello", "--", x], &[]);
        let text = stdout(&out);
        assert!(
            text.contains(&format!("my_function({x}) = {y}\n")),
            "{text}{}",
            stderr(&out)
        );
    }
}

#[test]
fn hello_names_what_is_not_set_up() {
    let setup = Setup::new("");
    let no_key = setup.wisp(
        &["hello", "-b", "openwhisk"],
        &[("WISP_OPENWHISK_ENDPOINT", "http://127.0.0.1:9")],
    );
    assert_eq!(no_key.status.code(), Some(2));
    let err = stderr(&no_key);
    assert!(err.contains("openwhisk.api_key"), "{err}");
    assert!(err.contains("WISP_OPENWHISK_API_KEY"), "{err}");

    let no_endpoint = setup.wisp(&["hello", "-b", "openwhisk"], &[]);
    let err = stderr(&no_endpoint);
    assert!(err.contains("openwhisk.endpoint"), "{err}");

    // Nothing listens on port 9 of loopback.
    let key = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:\
               123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
    let down = setup.wisp(
        &["hello", "-b", "openwhisk"],
        &[
            ("WISP_OPENWHISK_ENDPOINT", "http://127.0.0.1:9"),
            ("WISP_OPENWHISK_API_KEY", key),
        ],
    );
    assert_eq!(down.status.code(), Some(2));
    let err = stderr(&down);
    assert!(err.contains("OpenWhisk is not reachable"), "{err}");
    assert!(!err.contains(key.split(':').nth(1).unwrap_or(key)), "{err}");
    let unreachable = Setup::new(
        "minio:\n  endpoint: http://127.0.0.1:9\n  access_key_id: a\n  secret_access_key: b\n",
    );
    let out = unreachable.wisp(&["hello", "-s", "minio"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not reachable"), "{err}");
    // A server that answers but refuses the secret is told apart from one
    // that does not answer (the S3 test server of scripts/test).
    if let Ok(endpoint) = std::env::var("WISP_TEST_S3_ENDPOINT") {
        let refused = Setup::new(&format!(
            "minio:\n  endpoint: {endpoint}\n  access_key_id: minioadmin\n  \
             secret_access_key: not-the-secret\n"
        ));
        let out = refused.wisp(&["hello", "-s", "minio"], &[]);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(!err.contains("not-the-secret"), "the secret shows: {err}");
    }
}

#[test]
fn config_show_masks_secrets_and_shows_overrides() {
    let setup = Setup::new(
        "minio:\n  endpoint: http://127.0.0.1:9000\n  access_key_id: user-id\n  \
         secret_access_key: hidden-one\n  session_token: hidden-two\n\
         openwhisk:\n  api_key: uuid:hidden-three\n  docker_user: me\n",
    );
    let out = setup.wisp(
        &["config", "show"],
        &[
            ("WISP_WORKERS", "5"),
            ("WISP_DOCKER_PASSWORD", "hidden-four"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("hidden"), "a secret shows:\n{text}");
    assert_eq!(text.matches("'********'").count(), 4, "{text}");
    let config = setup.dir.path().join("config.yaml");
    assert!(
        text.starts_with(&format!("# from the file {}\n", config.display())),
        "{text}"
    );
    assert!(text.contains("WISP_WORKERS"), "{text}");
    assert!(
        text.contains("\n  workers: 5  # from WISP_WORKERS\n"),
        "{text}"
    );
    // Values neither the file nor the environment set are marked.
    assert!(
        text.contains("\n  backend: localhost  # default\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  runtime_memory: 256  # default\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  create_bucket: false  # default\n"),
        "{text}"
    );
    assert!(text.contains("\n  max_memory: 512  # default\n"), "{text}");
    assert!(
        text.contains("\n  endpoint: http://127.0.0.1:9000\n"),
        "{text}"
    );
    assert!(text.contains("access_key_id: user-id\n"), "{text}");
    assert!(text.contains("docker_user: me\n"), "{text}");
    // The header says the masked secrets must be put back.
    assert!(
        text.contains("\n# each secret shows as ********: put the real one back before wisp reads"),
        "{text}"
    );
    // What it prints is a config wisp reads back (the masks, left in, are
    // read as the secrets themselves).
    let yaml: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let again = Setup::new(&yaml);
    let back = again.wisp(&["config", "show"], &[]);
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    assert!(stdout(&back).contains("workers: 5\n"), "{}", stdout(&back));
}

#[test]
fn an_empty_wisp_config_counts_as_unset() {
    let setup = Setup::new("localhost:\n  workers: 3\n");
    let home = setup.dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let out = setup.wisp(
        &["config", "show"],
        &[("WISP_CONFIG", ""), ("HOME", home.to_str().expect("utf-8"))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("# from the defaults"), "{text}");
    assert!(!text.contains("workers: 3"), "{text}");
    assert!(
        !text.contains("secrets show as"),
        "no secret, no note:\n{text}"
    );
}

#[cfg(unix)]
#[test]
fn storage_put_names_what_it_leaves_out_and_counts_in_words() {
    let setup = Setup::new("");
    let base = setup.dir.path();
    let data = base.join("data");
    std::fs::create_dir_all(data.join(".git")).expect("dirs");
    std::fs::write(data.join("a.txt"), "hello world").expect("write");
    std::fs::write(data.join(".hidden"), "x").expect("write");
    std::fs::write(data.join(".git").join("HEAD"), "x").expect("write");
    std::fs::write(base.join("outside.txt"), "not to be uploaded").expect("write");
    std::os::unix::fs::symlink(base.join("outside.txt"), data.join("link")).expect("symlink");
    let data = data.to_str().expect("utf-8");

    let made = setup.wisp(&["storage", "create-bucket", "put-test"], &[]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let put = setup.wisp(&["storage", "put", "put-test", "pre", data], &[]);
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    let err = stderr(&put);
    for line in [
        format!("skipped {data}/.git: hidden (its name starts with `.`)\n"),
        format!("skipped {data}/.hidden: hidden (its name starts with `.`)\n"),
        format!("skipped {data}/link: a symbolic link, not followed\n"),
        "uploaded 1 file, 11 bytes, to bucket `put-test`\n".to_owned(),
    ] {
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }

    let list = setup.wisp(&["storage", "list", "put-test"], &[]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert_eq!(stderr(&list), "1 object, 11 bytes\n");
    assert!(
        stdout(&list).ends_with("  pre/a.txt\n"),
        "{}",
        stdout(&list)
    );

    let delete = setup.wisp(
        &["storage", "delete", "put-test", "pre/", "--recursive"],
        &[],
    );
    assert_eq!(delete.status.code(), Some(0), "{}", stderr(&delete));
    assert_eq!(stderr(&delete), "deleted 1 object under `pre/`\n");
}

/// An OpenWhisk set-up whose endpoint nothing answers: any request fails
/// with a connection error, so an error about memory proves wisp refused
/// the value itself, before any request.
const DEAD_OPENWHISK: &str = "openwhisk:\n  endpoint: http://127.0.0.1:9\n  \
     api_key: 23bc46b1-71f6-4ed5-8c54-816aa4f8c502:\
     0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";

#[test]
fn openwhisk_memory_outside_the_platform_range_is_refused_by_wisp() {
    let setup = Setup::new(DEAD_OPENWHISK);
    let config = setup.dir.path().join("config.yaml");
    let submit = setup.wisp(
        &[
            "submit",
            "tests/guests/faults",
            "--function",
            "noop",
            "--args",
            "null",
            "--memory",
            "64",
            "-b",
            "openwhisk",
        ],
        &[],
    );
    assert_eq!(submit.status.code(), Some(2), "{}", stderr(&submit));
    let err = stderr(&submit);
    assert!(
        err.starts_with(
            "error: --memory is 64 MB, but OpenWhisk accepts an action memory of 128 to 512 MB: \
             give a value from 128 to 512 (such as 128)"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "set `min_memory` and `max_memory` in the `openwhisk` section of {}",
            config.display()
        )),
        "{err}"
    );
    // Nothing was stored either.
    assert!(!setup.dir.path().join("storage").exists());

    let deploy = setup.wisp(
        &[
            "runtime",
            "deploy",
            "default",
            "--memory",
            "1024",
            "-b",
            "openwhisk",
        ],
        &[],
    );
    assert_eq!(deploy.status.code(), Some(2), "{}", stderr(&deploy));
    assert!(
        stderr(&deploy).starts_with(
            "error: --memory is 1024 MB, but OpenWhisk accepts an action memory of 128 to 512 MB"
        ),
        "{}",
        stderr(&deploy)
    );

    // The same value from the file names its key.
    let from_file = Setup::new(&format!("{DEAD_OPENWHISK}  runtime_memory: 32\n"));
    let out = from_file.wisp(
        &[
            "submit",
            "tests/guests/faults",
            "--function",
            "noop",
            "--args",
            "null",
            "-b",
            "openwhisk",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: openwhisk.runtime_memory is 32 MB"),
        "{}",
        stderr(&out)
    );

    // A deployment that allows more: the value passes wisp's check and the
    // request fails at the dead endpoint instead.
    let raised = Setup::new(&format!("{DEAD_OPENWHISK}  max_memory: 2048\n"));
    let out = raised.wisp(
        &[
            "runtime",
            "deploy",
            "default",
            "--memory",
            "1024",
            "-b",
            "openwhisk",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("accepts an action memory"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
}

#[test]
fn a_broken_config_file_names_the_file_line_and_key() {
    let setup = Setup::new("localhost:\n  workers: four\n");
    let out = setup.wisp(&["config", "show"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let config = setup.dir.path().join("config.yaml");
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: in the config file {}, `localhost.workers` (line 2, column 12) is the text \
             \"four\"; expected a whole number of workers, 1 to 4096",
            config.display()
        )
    );
    let typo = Setup::new("wisp:\n  bakend: openwhisk\n");
    let out = typo.wisp(&["jobs"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("unknown key `wisp.bakend` (line 2, column 3): did you mean `wisp.backend`?"),
        "{}",
        stderr(&out)
    );
}

/// `wisp submit` of 16 calls of 1.5 s on 2 workers (12 s uninterrupted),
/// spawned; returns once the first result is out, so the job is in storage
/// and under way, with the child and a thread that collects its stderr.
fn spawn_slow_map(setup: &Setup) -> (std::process::Child, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    use std::time::Duration;

    let inputs = format!("[{}]", vec!["1500"; 16].join(","));
    let mut child = setup
        .command(
            &[
                "submit",
                "tests/guests/faults",
                "--function",
                "sleep_ms",
                "--map-json",
                &inputs,
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wisp starts");
    let child_out = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let (lines, results) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(child_out).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    // The build of the guest may come first.
    let first = results
        .recv_timeout(Duration::from_secs(300))
        .expect("a first result");
    // sleep_ms returns the milliseconds that passed: 1500 or a little more.
    let slept: u64 = first.parse().expect("a number of milliseconds");
    assert!((1500..3000).contains(&slept), "{first}");
    (child, errors)
}

/// Waits up to 30 s for `child` to exit.
fn exit_of(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "wisp did not exit after the signal"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Ctrl-C during a map: the CLI exits with 130, the job stays in storage
/// marked interrupted, and `wisp clean` removes it.
#[test]
fn ctrl_c_keeps_the_job_listable_as_interrupted_and_cleanable() {
    let setup = Setup::new("localhost:\n  workers: 2\n");
    let (mut child, errors) = spawn_slow_map(&setup);
    // While it runs, clean refuses to pull its data from under it.
    let early = setup.wisp(&["clean"], &[]);
    assert_eq!(early.status.code(), Some(2), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("1 job(s) are still running")
            && stderr(&early).contains("`wisp clean --force`"),
        "{}",
        stderr(&early)
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = exit_of(&mut child);
    let err = errors.join().expect("stderr read");
    assert_eq!(status.code(), Some(130), "{err}");
    let job = err
        .lines()
        .find_map(|line| line.strip_prefix("job "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kept job in: {err}"))
        .to_owned();
    assert!(
        err.contains(&format!("job {job} (interrupted) is kept"))
            && err.contains(&format!("`wisp logs {job}` shows its calls"))
            && err.contains("`wisp clean` removes it"),
        "{err}"
    );
    let marker = setup
        .dir
        .path()
        .join("storage/wisp-data/wisp/jobs")
        .join(&job)
        .join("interrupted.json");
    let mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).expect("the marker")).expect("JSON");
    assert_eq!(mark["signal"], "SIGINT");
    assert_eq!(mark["calls"], 16);

    let listing = stdout(&setup.wisp(&["jobs"], &[]));
    let columns = row(&listing, &job);
    assert_eq!(
        columns[1..4],
        ["sleep_ms", "interrupted", "16"],
        "{listing}"
    );
    let ok: usize = columns[4].parse().expect("a count");
    let pending: usize = columns[6].parse().expect("a count");
    assert!(ok >= 1 && pending >= 1, "{listing}");
    let logs = setup.wisp(&["logs", &job], &[]);
    assert_eq!(logs.status.code(), Some(0), "{}", stderr(&logs));
    assert!(
        stdout(&logs).starts_with("--- call 00000: ok ---"),
        "{}",
        stdout(&logs)
    );

    let clean = setup.wisp(&["clean"], &[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let after = setup.wisp(&["jobs"], &[]);
    assert_eq!(stdout(&after), "", "{}", stderr(&after));
    assert!(!marker.exists());
}

/// A client killed outright (SIGKILL) writes nothing: `wisp jobs` still
/// sees that the job's client is gone.
#[test]
fn a_job_whose_client_was_killed_lists_as_interrupted() {
    let setup = Setup::new("localhost:\n  workers: 2\n");
    let (mut child, _errors) = spawn_slow_map(&setup);
    let listing = stdout(&setup.wisp(&["jobs"], &[]));
    let job = listing
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job listed:\n{listing}"))
        .to_owned();
    assert_eq!(row(&listing, &job)[2], "running", "{listing}");
    let kill = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    assert_eq!(exit_of(&mut child).code(), None, "killed by a signal");
    let listing = stdout(&setup.wisp(&["jobs"], &[]));
    let columns = row(&listing, &job);
    assert_eq!(
        columns[1..4],
        ["sleep_ms", "interrupted", "16"],
        "{listing}"
    );
    let pending: usize = columns[6].parse().expect("a count");
    assert!(pending >= 1, "{listing}");
    let clean = setup.wisp(&["clean"], &[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert_eq!(stdout(&setup.wisp(&["jobs"], &[])), "");
}

#[test]
fn submit_checks_its_flags_before_running_and_says_how_often_a_call_ran() {
    let setup = Setup::new("");
    // Refused with exit status 2, saying `says`, before any call ran.
    let refused = |args: &[&str], says: &str| {
        let out = setup.wisp(&[&["submit", "tests/guests/faults"], args].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?} ran: {}", stdout(&out));
    };
    refused(
        &["-f", "add", "--args", "[1,2]", "--retry-function-errors"],
        "add --retries N",
    );
    refused(&["-f", "add", "--retries", "-1"], "0..=99");
    refused(
        &[
            "-f",
            "sleep_ms",
            "--map-json",
            "[1000,1000]",
            "--reduce",
            "nosuch",
        ],
        "the reduce function `nosuch` is not in the module",
    );
    refused(
        &["-f", "add", "--map-json", "[[1,2]]", "--reduce", "add"],
        "takes 2 parameters (a, b); a reduce takes one",
    );
    let file = setup.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let file = file.to_str().expect("a UTF-8 path");
    refused(
        &["-f", "add", "--args", "[1,2]", "--plots", file],
        "is a file: give a directory",
    );

    let args = format!("[\"cli-retries-{:08x}\", 5]", fastrand::u32(..));
    let retried = setup.wisp(
        &[
            "submit",
            "tests/guests/faults",
            "-f",
            "fail_first",
            "--args",
            &args,
            "--retries",
            "2",
            "--retry-function-errors",
        ],
        &[],
    );
    assert_eq!(retried.status.code(), Some(1), "{}", stderr(&retried));
    assert!(
        stdout(&retried).contains("\"attempts\":3"),
        "{}",
        stdout(&retried)
    );
    assert!(
        stderr(&retried).contains("(ran 3 times)"),
        "{}",
        stderr(&retried)
    );
}
