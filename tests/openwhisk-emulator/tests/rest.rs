//! The emulator's REST API: auth, headers, entity CRUD and validation.

mod common;

use common::{Api, annotation, start_default};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_openwhisk_emulator::GUEST_KEY;

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let rid = r
        .headers()
        .get("x-request-id")
        .expect("X-Request-ID")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = r.json().await.expect("error JSON");
    assert_eq!(body["code"], json!(rid), "code is the transaction id");
    (
        status,
        body["error"].as_str().expect("error text").to_string(),
    )
}

#[tokio::test]
async fn guest_key_has_a_64_character_secret() {
    let (uuid, secret) = GUEST_KEY.split_once(':').unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(secret.len(), 64);
}

#[tokio::test]
async fn info_ping_and_authentication() {
    let em = start_default().await;
    let api = Api::new(&em);
    let c = &api.client;

    let r = c.get(format!("{}/api/v1", api.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["api_version_path"], "v1");

    let r = c.get(format!("{}/ping", api.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "pong");

    let r = c
        .get(format!("{}/api/v1/namespaces", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"OpenWhisk secure realm\""
    );
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);

    let r = c
        .get(format!("{}/api/v1/namespaces", api.base))
        .basic_auth("23bc46b1-71f6-4ed5-8c54-816aa4f8c502", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid".into()
        )
    );

    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let r = c
        .get(format!("{}/api/v1/namespaces", api.base))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["guest"]));

    let r = c
        .get(format!("{}/api/v1/namespaces/someone/actions", api.base))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::FORBIDDEN,
            "The supplied authentication is not authorized to access this resource.".into()
        )
    );
    // The namespace by its name works like `_`.
    let r = c
        .get(format!("{}/api/v1/namespaces/guest/actions", api.base))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = api.get("nothing/here").await;
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.".into()
        )
    );
    em.shutdown().await;
}

#[tokio::test]
async fn packages_create_update_list_and_delete() {
    let em = start_default().await;
    let api = Api::new(&em);

    let r = api
        .put("packages/p1?overwrite=False", &json!({"name": "p1"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["namespace"], "guest");
    assert_eq!(p["name"], "p1");
    assert_eq!(p["version"], "0.0.1");
    assert_eq!(p["publish"], false);
    assert_eq!(p["binding"], json!({}));
    assert!(p["updated"].is_u64());

    let r = api.put("packages/p1?overwrite=False", &json!({})).await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::CONFLICT, "resource already exists".into())
    );
    let r = api
        .put(
            "packages/p1?overwrite=True",
            &json!({"parameters": [{"key": "a", "value": 1}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["version"], "0.0.2");
    assert_eq!(p["parameters"], json!([{"key": "a", "value": 1}]));

    let r = api.put("packages/p1?overwrite=maybe", &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api.put("packages/default", &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    api.action("p1/a1", json!({})).await;
    let r = api.get("packages/p1").await;
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["actions"][0]["name"], "a1");
    assert_eq!(p["actions"][0]["namespace"], "guest/p1");
    assert_eq!(p["feeds"], json!([]));

    let r = api.get("packages").await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = api.get("packages?count=true").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"packages": 1}));

    let r = api.delete("packages/p1").await;
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::CONFLICT,
            "Package not empty (contains 1 entities). Set force param or delete package contents."
                .into()
        )
    );
    let r = api.delete("packages/p1?force=True").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "p1");
    assert_eq!(api.get("packages/p1").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("actions/p1/a1").await.status(),
        StatusCode::NOT_FOUND
    );
    em.shutdown().await;
}

#[tokio::test]
async fn actions_create_merge_and_annotations() {
    let em = start_default().await;
    let api = Api::new(&em);

    let a = api
        .action(
            "hello",
            json!({"exec": {"kind": "blackbox", "image": "wisp/x:1", "code": "AGFzbQEAAAA=", "main": "echo"}}),
        )
        .await;
    assert_eq!(a["namespace"], "guest");
    assert_eq!(a["version"], "0.0.1");
    assert_eq!(
        a["exec"],
        json!({"kind": "blackbox", "image": "wisp/x:1", "binary": true, "code": "AGFzbQEAAAA=", "main": "echo"})
    );
    assert_eq!(
        a["limits"],
        json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
    );
    assert_eq!(annotation(&a, "exec"), Some(&json!("blackbox")));
    assert_eq!(annotation(&a, "provide-api-key"), Some(&json!(false)));

    let r = api
        .put(
            "actions/hello?overwrite=false",
            &json!({"limits": {"memory": 512}}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::CONFLICT, "resource already exists".into())
    );
    let r = api
        .put(
            "actions/hello?overwrite=True",
            &json!({"limits": {"memory": 512}, "annotations": [{"key": "x", "value": 1}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["version"], "0.0.2");
    assert_eq!(a["limits"]["memory"], 512);
    assert_eq!(a["limits"]["timeout"], 60000);
    assert_eq!(a["exec"]["image"], "wisp/x:1");
    assert_eq!(annotation(&a, "x"), Some(&json!(1)));
    assert_eq!(annotation(&a, "provide-api-key"), Some(&json!(false)));

    let r = api
        .put(
            "actions/hello?overwrite=true",
            &json!({"delAnnotations": ["x"]}),
        )
        .await;
    let a: Value = r.json().await.unwrap();
    assert_eq!(annotation(&a, "x"), None);

    let r = api.get("actions/hello?code=false").await;
    let a: Value = r.json().await.unwrap();
    assert!(a["exec"].get("code").is_none());
    assert_eq!(a["exec"]["binary"], true);
    let r = api.get("actions/hello").await;
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["exec"]["code"], "AGFzbQEAAAA=");

    // Text that is not base64 is not binary.
    let a = api
        .action(
            "text",
            json!({"exec": {"kind": "blackbox", "image": "i:1", "code": "echo hi"}}),
        )
        .await;
    assert_eq!(a["exec"]["binary"], false);

    let r = api.delete("actions/hello").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "hello");
    assert_eq!(
        api.delete("actions/hello").await.status(),
        StatusCode::NOT_FOUND
    );
    em.shutdown().await;
}

#[tokio::test]
async fn actions_validation() {
    let em = start_default().await;
    let api = Api::new(&em);
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "actions/a",
            json!({}),
            StatusCode::BAD_REQUEST,
            "exec undefined",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"memory": 4096}}),
            StatusCode::BAD_REQUEST,
            "memory size 4096 MB exceeds allowed threshold of 2048 MB",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"memory": 64}}),
            StatusCode::BAD_REQUEST,
            "memory size 64 MB below allowed threshold of 128 MB",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"timeout": 300001}}),
            StatusCode::BAD_REQUEST,
            "duration 300001 milliseconds exceeds allowed threshold of 300000 milliseconds",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"timeout": 99}}),
            StatusCode::BAD_REQUEST,
            "duration 99 milliseconds below allowed threshold of 100 milliseconds",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"concurrency": 501}}),
            StatusCode::BAD_REQUEST,
            "concurrency 501 exceeds allowed threshold of 500",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}, "limits": {"logs": 11}}),
            StatusCode::BAD_REQUEST,
            "log size 11 MB exceeds allowed threshold of 10 MB",
        ),
        (
            "actions/a",
            json!({"exec": {"kind": "blackbox"}}),
            StatusCode::BAD_REQUEST,
            "The request content was malformed:\n'image' must be a string defined in 'exec' for 'blackbox' actions",
        ),
        (
            "actions/a%20",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}}),
            StatusCode::BAD_REQUEST,
            "The name of the entity contains illegal characters.",
        ),
        (
            "actions/-a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}}),
            StatusCode::BAD_REQUEST,
            "The name of the entity contains illegal characters.",
        ),
        (
            "actions/nopkg/a",
            json!({"exec": {"kind": "blackbox", "image": "i:1"}}),
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.",
        ),
    ];
    for (path, body, status, message) in cases {
        let r = api.put(path, &body).await;
        assert_eq!(
            error_of(r).await,
            (status, message.to_string()),
            "{path} {body}"
        );
    }
    let r = api
        .put(
            "actions/a",
            &json!({"exec": {"kind": "nodejs:20", "code": "x"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = "a".repeat(1024 * 1024 + 10);
    let r = api
        .put(
            "actions/a",
            &json!({"exec": {"kind": "blackbox", "image": "i:1"}, "parameters": [{"key": "k", "value": big}]}),
        )
        .await;
    let (status, message) = error_of(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        message.starts_with("parameters larger than allowed: "),
        "{message}"
    );
    assert!(message.ends_with(" > 1048576 bytes."), "{message}");
    // A name with allowed punctuation and spaces, percent-encoded.
    let r = api
        .put(
            "actions/a%20b.c@d&e-f",
            &json!({"exec": {"kind": "blackbox", "image": "i:1"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "a b.c@d&e-f");
    em.shutdown().await;
}

#[tokio::test]
async fn action_lists_pages_and_counts() {
    let em = start_default().await;
    let api = Api::new(&em);
    for i in 0..5 {
        api.action(&format!("a{i}"), json!({})).await;
    }
    assert_eq!(
        api.put("packages/pkg", &json!({})).await.status(),
        StatusCode::OK
    );
    api.action("pkg/inner", json!({})).await;

    let list: Value = api.get("actions").await.json().await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert!(!names.contains(&"inner"));
    assert_eq!(list[0]["exec"], json!({"binary": false}));
    assert!(list[0]["limits"].is_object());

    let list: Value = api.get("actions/pkg/").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "inner");
    assert_eq!(list[0]["namespace"], "guest/pkg");

    let list: Value = api
        .get("actions?limit=2&skip=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let r = api.get("actions?count=true").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"actions": 5}));
    let r = api.get("actions?limit=201").await;
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::BAD_REQUEST,
            "The value '201' is not in the range of 0 to 200 for actions.".into()
        )
    );
    let r = api.get("actions?limit=0").await;
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        5
    );
    assert_eq!(
        api.get("actions/nopkg/").await.status(),
        StatusCode::NOT_FOUND
    );
    em.shutdown().await;
}

#[tokio::test]
async fn invoke_request_validation() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("a", json!({})).await;

    let r = api.post("actions/missing", &json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let big = json!({ "s": "x".repeat(1024 * 1024) });
    let r = api.post("actions/a", &big).await;
    let n = serde_json::to_vec(&big).unwrap().len();
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request larger than allowed: {n} > 1048576 bytes.")
        )
    );
    for t in ["0", "60001", "abc"] {
        let r = api
            .post(&format!("actions/a?blocking=true&timeout={t}"), &json!({}))
            .await;
        assert_eq!(
            error_of(r).await,
            (
                StatusCode::BAD_REQUEST,
                "Timeout must be number of milliseconds up to 60000.".into()
            )
        );
    }
    let r = api.post("actions/a?blocking=perhaps", &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A final parameter cannot be overridden.
    api.action(
        "fin",
        json!({"parameters": [{"key": "k", "value": 1}], "annotations": [{"key": "final", "value": true}]}),
    )
    .await;
    let r = api.post("actions/fin", &json!({"k": 2})).await;
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::BAD_REQUEST,
            "Request defines parameters that are not allowed (e.g., reserved properties).".into()
        )
    );

    for bad in ["nothex", "0123456789abcdef0123456789abcdeZ"] {
        let r = api.get(&format!("activations/{bad}")).await;
        assert_eq!(
            error_of(r).await,
            (
                StatusCode::BAD_REQUEST,
                "The activation id is not valid.".into()
            )
        );
    }
    let r = api
        .get("activations/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    em.shutdown().await;
}
