//! A minimal action server speaking the OpenWhisk action protocol, for the
//! emulator's own tests. It listens on `WISP_ACTION_ADDR` (default
//! `0.0.0.0:8080`) and answers `/run` according to the arguments:
//!
//! - anything else: prints `hello stdout` / `hello stderr`, returns the
//!   arguments;
//! - `{"sleep_ms": n}`: sleeps first, then as above;
//! - `{"whoami": true}`: returns `{"pid", "inits", "context", "value",
//!   "init_env", "api_host"}`;
//! - `{"reply": {"status": s, "body": "text"}}`: answers exactly that;
//! - `{"chunked": true}`: answers without `Content-Length`;
//! - `{"big": n}`: returns `{"big": "<n x>"}`;
//! - `{"exit": true}`: exits without answering.
//!
//! It writes the log sentinel to both streams after every run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

static INITS: AtomicUsize = AtomicUsize::new(0);
static INIT_ENV: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

fn main() {
    let addr = std::env::var("WISP_ACTION_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let listener = TcpListener::bind(&addr).expect("bind");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

fn respond(mut stream: &TcpStream, status: u16, body: &str, chunked: bool) {
    let head = if chunked {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    } else {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.flush();
}

fn sentinels() {
    println!("{SENTINEL}");
    eprintln!("{SENTINEL}");
    let _ = std::io::stdout().flush();
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match path.as_str() {
        "/init" => {
            if INITS.fetch_add(1, Ordering::SeqCst) > 0 {
                eprintln!("Cannot initialize the action more than once.");
                respond(
                    &stream,
                    403,
                    r#"{"error":"Cannot initialize the action more than once."}"#,
                    false,
                );
            } else {
                *INIT_ENV.lock().unwrap() = Some(request["value"]["env"].clone());
                respond(&stream, 200, r#"{"ok":true}"#, false);
            }
        }
        "/run" => run(&stream, request),
        _ => respond(&stream, 404, r#"{"error":"not found"}"#, false),
    }
}

fn run(stream: &TcpStream, mut request: serde_json::Value) {
    let value = request["value"].take();
    if let Some(ms) = value.get("sleep_ms").and_then(|v| v.as_u64()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    if value.get("exit").is_some() {
        std::process::exit(3);
    }
    println!("hello stdout");
    eprintln!("hello stderr");
    let (status, body, chunked) = if value.get("whoami").is_some() {
        let reply = serde_json::json!({
            "pid": std::process::id(),
            "inits": INITS.load(Ordering::SeqCst),
            "context": request,
            "value": value,
            "init_env": INIT_ENV.lock().unwrap().clone(),
            "api_host": std::env::var("__OW_API_HOST").ok(),
        });
        (200, reply.to_string(), false)
    } else if let Some(reply) = value.get("reply") {
        let status = reply["status"].as_u64().unwrap_or(200) as u16;
        let body = reply["body"].as_str().unwrap_or("").to_string();
        (status, body, false)
    } else if value.get("chunked").is_some() {
        (200, value.to_string(), true)
    } else if let Some(n) = value.get("big").and_then(|v| v.as_u64()) {
        let reply = serde_json::json!({ "big": "x".repeat(n as usize) });
        (200, reply.to_string(), false)
    } else {
        (200, value.to_string(), false)
    };
    sentinels();
    respond(stream, status, &body, chunked);
}
