//! The API's OpenAPI document: committed, served, valid to an independent validator, and naming
//! exactly the routes the daemon answers.

use std::path::Path;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::{demo, token, url};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

fn generated() -> String {
    serde_json::to_string_pretty(porthole::api::openapi_document()).unwrap() + "\n"
}

#[test]
fn the_committed_document_is_the_one_the_code_describes() {
    let committed = std::fs::read_to_string(COMMITTED).unwrap();
    assert!(
        committed == generated(),
        "docs/openapi.json is not what the code describes; write it again with \
         `cargo run -p porthole -- openapi > docs/openapi.json`"
    );
}

/// openapi-spec-validator (PyPI), as `cargo xtask test` installs it from
/// `xtask/openapi-validator/requirements.txt`, or from PATH.
fn validator() -> String {
    std::env::var("PORTHOLE_OPENAPI_VALIDATOR").unwrap_or_else(|_| "openapi-spec-validator".into())
}

#[test]
fn an_independent_validator_accepts_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, generated()).unwrap();
    let output = Command::new(validator())
        .arg(&file)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run openapi-spec-validator ({err}); `cargo xtask test` installs it")
        });
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.trim_end().ends_with("OK"),
        "{said}"
    );
    assert!(Path::new(COMMITTED).exists());
}

/// Every operation the document names reaches a handler (no 405, no "no such API route"), and
/// the daemon serves the document itself without sign-in.
#[tokio::test]
async fn every_documented_operation_is_routed_and_the_document_is_served() {
    let demo = demo().await;
    let client = reqwest::Client::new();
    let served: Value = client
        .get(url(&demo, "/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let document = serde_json::to_value(porthole::api::openapi_document()).unwrap();
    assert_eq!(served, document);

    let admin = token(&demo, "admin");
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        // Ids no object has, so no request changes anything.
        let concrete = path
            .replace("{id}", "999999")
            .replace("{name}", "no-such-name")
            .replace("{action}", "suspend");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client
                .request(method.clone(), url(&demo, &format!("/api/v1{concrete}")))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "not found", "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} operations");
    let response = client
        .get(url(&demo, "/api/v1/no/such/route"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("no such API route")
    );
    demo.stop().await.unwrap();
}
