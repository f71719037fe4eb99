//! The requests of OpenWhisk's action container protocol, as the action
//! server reads them.
//!
//! `/init` carries `{"value": {"main", "binary", "code", "env"}}` once;
//! `/run` carries `{"value": …}` plus the activation's context
//! (`activation_id`, `deadline`, …) each time. A jobs action's value is a
//! [`JobRequest`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most calls one batch may ask for.
pub const MAX_BATCH_CALLS: u32 = 100_000;
/// The longest job id accepted.
pub const MAX_JOB_ID_LEN: usize = 128;

/// A request that cannot be read; the text says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

fn bad(message: impl Into<String>) -> RequestError {
    RequestError(message.into())
}

/// What `/init` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    /// The code, when there is any that is not blank.
    pub code: Option<String>,
    /// Whether the code is base64 (binary) rather than source text.
    pub binary: bool,
    /// The function to call; `main` when not given.
    pub main: String,
    /// The action's environment, each value as text.
    pub env: Vec<(String, String)>,
}

impl InitRequest {
    /// The code decoded from base64.
    ///
    /// # Errors
    ///
    /// When there is no code, it is not marked binary, or not base64.
    pub fn module_bytes(&self) -> Result<Vec<u8>, RequestError> {
        let code = self
            .code
            .as_deref()
            .ok_or_else(|| bad("there is no code"))?;
        if !self.binary {
            return Err(bad(
                "wisp runs WebAssembly modules: send the module base64-encoded, as binary code",
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(code.trim())
            .map_err(|e| bad(format!("the code is not valid base64: {e}")))
    }

    /// The value of an environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
struct InitBody {
    #[serde(default)]
    value: Option<InitValue>,
}

#[derive(Default, Deserialize)]
struct InitValue {
    #[serde(default)]
    main: Option<String>,
    #[serde(default)]
    binary: Option<bool>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    env: Option<serde_json::Map<String, Value>>,
}

/// Reads an `/init` body.
///
/// # Errors
///
/// When the body is not the JSON object the protocol describes; the
/// message starts as OpenWhisk's own runtimes word it.
pub fn parse_init(body: &[u8]) -> Result<InitRequest, RequestError> {
    let body: InitBody = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Error unmarshaling request: {e}")))?;
    let value = body.value.unwrap_or_default();
    Ok(InitRequest {
        code: value.code.filter(|c| !c.trim().is_empty()),
        binary: value.binary.unwrap_or(false),
        main: value
            .main
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "main".to_owned()),
        env: value
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, stringify(v)))
            .collect(),
    })
}

/// What one `/run` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// The activation's value; an empty object when absent.
    pub value: Value,
    /// The deadline, in milliseconds since the epoch, when one was sent
    /// (as a number or a string of digits).
    pub deadline_ms: Option<u64>,
    /// The activation's context as environment variables: every other
    /// key of the body, upper-cased after `__OW_`, its value as text.
    pub context: Vec<(String, String)>,
}

/// Reads a `/run` body.
///
/// # Errors
///
/// When the body is not a JSON object.
pub fn parse_run(body: &[u8]) -> Result<RunRequest, RequestError> {
    let mut body: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Error unmarshaling request: {e}")))?;
    let value = body
        .remove("value")
        .unwrap_or(Value::Object(Default::default()));
    let deadline_ms = body.get("deadline").and_then(deadline_ms);
    let context = body
        .into_iter()
        .map(|(key, v)| (format!("__OW_{}", key.to_uppercase()), stringify(v)))
        .collect();
    Ok(RunRequest {
        value,
        deadline_ms,
        context,
    })
}

/// What a `/run` of a jobs action asks for: the value of the activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "wisp", rename_all = "snake_case")]
pub enum JobRequest {
    /// Run calls `first .. first + count` of a job.
    Batch(BatchRequest),
    /// Describe this runtime: what a client checks before it invokes jobs.
    Metadata,
}

/// A batch of consecutive calls of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The job.
    pub job: String,
    /// The index of the first call.
    pub first: u32,
    /// How many calls.
    pub count: u32,
    /// The calls' arguments, each as its JSON text, when small enough to
    /// travel in the request. (Text rather than parsed JSON: the request
    /// passes through OpenWhisk, and text keeps every argument exactly as
    /// the client encoded it.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Otherwise the byte range of the job's arguments object that holds
    /// these calls' lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_range: Option<[u64; 2]>,
    /// Which attempt at these calls this is: 1 unless the client retries
    /// them.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u32,
}

/// The most attempts at one call a batch may claim.
pub const MAX_ATTEMPTS: u32 = 100;

fn first_attempt() -> u32 {
    1
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == 1
}

/// Reads a jobs action's activation value, and checks that a batch is one
/// a client could have sent: a job id that names a job and nothing else,
/// between 1 and [`MAX_BATCH_CALLS`] calls that end within `u32`, an
/// attempt between 1 and [`MAX_ATTEMPTS`], and
/// either one argument per call or a forward byte range.
///
/// # Errors
///
/// When the value is not a job request or breaks one of those rules.
pub fn parse_job_request(value: Value) -> Result<JobRequest, RequestError> {
    let request: JobRequest = serde_json::from_value(value).map_err(|e| {
        bad(format!(
            "this action runs wisp jobs; the value is not a job request: {e}"
        ))
    })?;
    if let JobRequest::Batch(batch) = &request {
        check_batch(batch)?;
    }
    Ok(request)
}

fn check_batch(batch: &BatchRequest) -> Result<(), RequestError> {
    check_job_id(&batch.job)?;
    if !(1..=MAX_ATTEMPTS).contains(&batch.attempt) {
        return Err(bad(format!(
            "attempts are numbered 1 to {MAX_ATTEMPTS}, not {}",
            batch.attempt
        )));
    }
    if batch.count == 0 || batch.count > MAX_BATCH_CALLS {
        return Err(bad(format!(
            "a batch runs 1 to {MAX_BATCH_CALLS} calls, not {}",
            batch.count
        )));
    }
    if batch.first.checked_add(batch.count).is_none() {
        return Err(bad(format!(
            "calls {}..{}+{} run past the last possible call index",
            batch.first, batch.first, batch.count
        )));
    }
    match (&batch.args, batch.args_range) {
        (Some(args), None) if args.len() == batch.count as usize => Ok(()),
        (Some(args), None) => Err(bad(format!(
            "the batch has {} arguments for {} calls",
            args.len(),
            batch.count
        ))),
        (None, Some([start, end])) if start < end => Ok(()),
        (None, Some([start, end])) => Err(bad(format!(
            "the arguments' byte range {start}..{end} is empty or backwards"
        ))),
        (Some(_), Some(_)) => Err(bad(
            "the batch carries both arguments and a range of them; send one",
        )),
        (None, None) => Err(bad("the batch carries neither arguments nor their range")),
    }
}

/// Checks that a job id is one wisp makes: 1 to [`MAX_JOB_ID_LEN`]
/// letters, digits, `-`, `_` and `.`, and not `.` or `..`, so that it
/// names one job's objects and cannot reach another's.
///
/// # Errors
///
/// When it is not.
pub fn check_job_id(job: &str) -> Result<(), RequestError> {
    let shaped = !job.is_empty()
        && job.len() <= MAX_JOB_ID_LEN
        && job != "."
        && job != ".."
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if shaped {
        Ok(())
    } else {
        let shown: String = job.chars().take(40).collect();
        Err(bad(format!(
            "`{shown}` is not a job id: ids are 1 to {MAX_JOB_ID_LEN} letters, digits, `-`, `_` or `.`"
        )))
    }
}

/// An environment value as OpenWhisk passes them: strings as they are,
/// null as empty, anything else as compact JSON.
pub fn stringify(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A deadline in epoch milliseconds, sent as a string or a number.
fn deadline_ms(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn init_reads_code_main_and_env() {
        let init = parse_init(
            br#"{"value":{"main":"add","binary":true,"code":"AGFzbQEAAAA=","env":{"A":"x","B":3,"C":null}}}"#,
        )
        .unwrap();
        assert_eq!(init.main, "add");
        assert_eq!(init.module_bytes().unwrap(), b"\0asm\x01\0\0\0");
        assert_eq!(init.var("A"), Some("x"));
        assert_eq!(init.var("B"), Some("3"));
        assert_eq!(init.var("C"), Some(""));
        let empty = parse_init(b"{}").unwrap();
        assert_eq!((empty.code, empty.main.as_str()), (None, "main"));
    }

    #[test]
    fn init_errors_name_the_problem() {
        let err = parse_init(b"{\"value\":").unwrap_err();
        assert!(err.0.starts_with("Error unmarshaling request"), "{err}");
        let text = parse_init(br#"{"value":{"code":"fn main() {}"}}"#).unwrap();
        assert!(
            text.module_bytes()
                .unwrap_err()
                .0
                .contains("base64-encoded")
        );
        let garbage = parse_init(br#"{"value":{"code":"!!","binary":true}}"#).unwrap();
        assert!(
            garbage
                .module_bytes()
                .unwrap_err()
                .0
                .contains("not valid base64")
        );
    }

    #[test]
    fn run_splits_value_deadline_and_context() {
        let run = parse_run(
            br#"{"value":{"x":1},"deadline":"1700000000000","activation_id":"a1","namespace":"ns"}"#,
        )
        .unwrap();
        assert_eq!(run.value, json!({"x": 1}));
        assert_eq!(run.deadline_ms, Some(1_700_000_000_000));
        assert!(
            run.context
                .contains(&("__OW_ACTIVATION_ID".into(), "a1".into()))
        );
        assert!(
            run.context
                .contains(&("__OW_NAMESPACE".into(), "ns".into()))
        );
        assert_eq!(parse_run(br#"{"deadline":-5}"#).unwrap().deadline_ms, None);
        assert_eq!(parse_run(b"{}").unwrap().value, json!({}));
        assert!(parse_run(b"[1]").is_err());
    }

    #[test]
    fn batches_must_be_ones_a_client_could_send() {
        let batch = |v: Value| parse_job_request(v).map_err(|e| e.0);
        assert!(
            batch(json!({"wisp":"batch","job":"1a-00f1-001","first":0,"count":2,"args":["1","2"]}))
                .is_ok()
        );
        assert!(
            batch(json!({"wisp":"batch","job":"j","first":5,"count":3,"args_range":[10,90]}))
                .is_ok()
        );
        assert_eq!(batch(json!({"wisp":"metadata"})), Ok(JobRequest::Metadata));
        for (value, expected) in [
            (
                json!({"wisp":"batch","job":"../x","first":0,"count":1,"args":["1"]}),
                "is not a job id",
            ),
            (
                json!({"wisp":"batch","job":"a/b","first":0,"count":1,"args":["1"]}),
                "is not a job id",
            ),
            (
                json!({"wisp":"batch","job":"","first":0,"count":1,"args":["1"]}),
                "is not a job id",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":0,"args":[]}),
                "1 to 100000 calls",
            ),
            (
                json!({"wisp":"batch","job":"j","first":4294967295u32,"count":1,"args":["1"]}),
                "run past",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":2,"args":["1"]}),
                "1 arguments for 2 calls",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":1,"args_range":[9,9]}),
                "empty or backwards",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":1}),
                "neither arguments",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":1,"args":["1"],"args_range":[0,1]}),
                "send one",
            ),
            (
                json!({"wisp":"batch","job":"j","first":0,"count":1,"args":["1"],"attempt":0}),
                "attempts are numbered",
            ),
            (json!({"wisp":"dance"}), "not a job request"),
            (json!([1, 2]), "not a job request"),
        ] {
            let err = batch(value.clone()).expect_err(&value.to_string());
            assert!(err.contains(expected), "{value}: {err}");
        }
    }
}
