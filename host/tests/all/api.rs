//! The HTTP API against a real daemon, the simulator and a real SQLite file, over loopback.

use std::time::Duration;

use porthole::demo::Demo;
use porthole_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn demo() -> Demo {
    let sim = SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..SimConfig::default()
    };
    Demo::start("127.0.0.1:0".parse().unwrap(), None, sim)
        .await
        .unwrap()
}

fn url(demo: &Demo, path: &str) -> String {
    format!("{}{path}", demo.credentials().url)
}

async fn get(demo: &Demo, token: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url(demo, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn token<'a>(demo: &'a Demo, username: &str) -> &'a str {
    &demo.account(username).unwrap().api_token
}

fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn login(
    demo: &Demo,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(url(demo, "/api/v1/auth/login"))
        .header("origin", &demo.credentials().url)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_token_lists_the_clusters_nodes_and_vms() {
    let demo = demo().await;
    let (status, body) = get(&demo, token(&demo, "admin"), "/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let nodes: Vec<&str> = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["pve1", "pve2"]);

    let (status, body) = get(&demo, token(&demo, "admin"), "/api/v1/vms").await;
    assert_eq!(status, StatusCode::OK);
    let vmids: Vec<u64> = body["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vmid"].as_u64().unwrap())
        .collect();
    for vmid in [101, 102, 103, 110, 9000, 9001] {
        assert!(vmids.contains(&vmid), "vm {vmid} missing from {vmids:?}");
    }
    let (_, status_body) = get(&demo, token(&demo, "admin"), "/api/v1/status").await;
    assert_eq!(
        status_body["clusters"][0]["reachable"],
        json!(true),
        "{status_body}"
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_customer_sees_only_their_own_vms_and_no_proxmox_detail() {
    let demo = demo().await;
    let (status, body) = get(&demo, token(&demo, "alice"), "/api/v1/vms").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice-web", "alice-db"]);
    assert_eq!(body["vms"][0]["power"], "running");
    assert_eq!(body["vms"][1]["power"], "stopped");
    let text = body.to_string();
    for secret in [
        "pve1",
        "pve2",
        "127.0.0.1:",
        "PVEAPIToken",
        "vmid",
        demo.sim().token_secret().as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "customer response leaks {secret:?}: {text}"
        );
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn another_customers_vm_answers_404_like_a_missing_one() {
    let demo = demo().await;
    let bobs = demo.account("bob").unwrap().vms[0];
    let alices = demo.account("alice").unwrap().vms[0];
    let (status, own) = get(
        &demo,
        token(&demo, "alice"),
        &format!("/api/v1/vms/{alices}"),
    )
    .await;
    assert_eq!(
        (status, own["name"].as_str()),
        (StatusCode::OK, Some("alice-web"))
    );
    let (status, other) = get(&demo, token(&demo, "alice"), &format!("/api/v1/vms/{bobs}")).await;
    let (missing_status, missing) = get(&demo, token(&demo, "alice"), "/api/v1/vms/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!((missing_status, &missing), (StatusCode::NOT_FOUND, &other));
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn customers_are_kept_out_of_operator_endpoints() {
    let demo = demo().await;
    for path in ["/api/v1/nodes", "/api/v1/status", "/api/v1/users"] {
        let (status, _) = get(&demo, token(&demo, "alice"), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = get(&demo, "pht_not-a-real-token", "/api/v1/whoami").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_it() {
    let demo = demo().await;
    let alice = demo.account("alice").unwrap();
    let client = cookie_client();
    let response = login(&demo, &client, "alice", &alice.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(value.len(), 43, "a 256-bit id in base64url");

    let whoami: Value = client
        .get(url(&demo, "/api/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["user"]["username"], "alice");

    let logout = client
        .post(url(&demo, "/api/v1/auth/logout"))
        .header("origin", &demo.credentials().url)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let replay = reqwest::Client::new()
        .get(url(&demo, "/api/v1/whoami"))
        .header("cookie", format!("porthole_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "the old cookie must be dead"
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_cookie_state_change_from_another_origin_is_refused() {
    let demo = demo().await;
    let admin = demo.account("admin").unwrap();
    let client = cookie_client();
    assert_eq!(
        login(&demo, &client, "admin", &admin.password)
            .await
            .status(),
        StatusCode::OK
    );
    let body =
        json!({ "username": "mallory", "password": "long enough password", "role": "admin" });
    let forged = client
        .post(url(&demo, "/api/v1/users"))
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let no_origin = client
        .post(url(&demo, "/api/v1/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    let own = client
        .post(url(&demo, "/api/v1/users"))
        .header("origin", &demo.credentials().url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited_per_account() {
    let demo = demo().await;
    let client = cookie_client();
    for _ in 0..5 {
        assert_eq!(
            login(&demo, &client, "bob", "wrong password!")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = login(
        &demo,
        &client,
        "bob",
        &demo.account("bob").unwrap().password,
    )
    .await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(limited.headers().contains_key("retry-after"));
    let other = login(
        &demo,
        &client,
        "alice",
        &demo.account("alice").unwrap().password,
    )
    .await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another account is unaffected"
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit() {
    let demo = demo().await;
    let client = cookie_client();
    // Password hashing takes long enough that all twelve are in flight at once.
    let guesses = (0..12).map(|_| login(&demo, &client, "bob", "wrong password!"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(|response| response.status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|&&s| s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|&&s| s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 7), "{statuses:?}");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn admins_manage_users_and_bad_requests_say_why() {
    let demo = demo().await;
    let admin = token(&demo, "admin");
    let client = reqwest::Client::new();
    let create = |body: Value| {
        client
            .post(url(&demo, "/api/v1/users"))
            .bearer_auth(admin)
            .json(&body)
            .send()
    };
    let short = create(json!({ "username": "carol", "password": "short", "role": "customer" }))
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert!(short.text().await.unwrap().contains("at least"));
    let unknown =
        create(json!({ "username": "carol", "password": "long enough password", "role": "root" }))
            .await
            .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let created = create(
        json!({ "username": "carol", "password": "long enough password", "role": "customer" }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let carol: Value = created.json().await.unwrap();
    let again = create(
        json!({ "username": "carol", "password": "long enough password", "role": "customer" }),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let id = carol["id"].as_i64().unwrap();
    let disabled = client
        .patch(url(&demo, &format!("/api/v1/users/{id}")))
        .bearer_auth(admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let deleted = client
        .delete(url(&demo, &format!("/api/v1/users/{id}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&demo, admin, &format!("/api/v1/users/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_api_token_is_shown_once_and_works_until_revoked() {
    let demo = demo().await;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(url(&demo, "/api/v1/tokens"))
        .bearer_auth(token(&demo, "alice"))
        .json(&json!({ "name": "billing" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_token = created["token"].as_str().unwrap();
    assert!(new_token.starts_with("pht_"));
    let (status, listed) = get(&demo, new_token, "/api/v1/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !listed.to_string().contains(new_token),
        "a listing never shows the token again"
    );
    let id = created["metadata"]["id"].as_i64().unwrap();
    let revoked = client
        .delete(url(&demo, &format!("/api/v1/tokens/{id}")))
        .bearer_auth(token(&demo, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&demo, new_token, "/api/v1/whoami").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    demo.stop().await.unwrap();
}
