//! The HTTP API against a real daemon, the simulator and a real SQLite file, over loopback.

use std::time::{Duration, Instant};

use crate::first_party::plugin_entry;
use porthole::demo::{Demo, DemoSetup};
use porthole_sim::SimConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) async fn demo() -> Demo {
    let sim = SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..SimConfig::default()
    };
    Demo::start("127.0.0.1:0".parse().unwrap(), None, sim)
        .await
        .unwrap()
}

/// The demo with what an order needs: the basic cloud-init plugin, quick retries, a template on
/// `pve1` (VM 9000) and the plan `small` on the node group `pve1`, `pve2`.
pub(crate) async fn demo_with_catalogue() -> Demo {
    demo_with_catalogue_and("").await
}

/// [`demo_with_catalogue`] with `extra` configuration (more plugins) appended.
pub(crate) async fn demo_with_catalogue_and(extra: &str) -> Demo {
    let sim = SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        task_duration: Duration::from_millis(20),
        clone_duration: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim,
        extra_config: plugin_entry("cloudinit-basic", "cloud-init-template")
            + extra
            + "\n[lifecycle]\nretry_initial_ms = 20\nretry_max_ms = 100\nmax_attempts = 10\n",
        plugins_dir: None,
        plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
    })
    .await
    .unwrap();
    let admin = token(&demo, "admin");
    let template = json!({
        "name": "debian-12", "cluster": "sim", "node": "pve1", "vmid": 9000, "os": "debian",
        "cloud_init": "cloudinit-basic"
    });
    let (status, body) = send(
        &demo,
        admin,
        Method::PUT,
        "/api/v1/templates/debian-12",
        template,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plan = json!({
        "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
        "templates": ["debian-12"], "nodes": ["pve1", "pve2"]
    });
    let (status, body) = send(&demo, admin, Method::PUT, "/api/v1/plans/small", plan).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    demo
}

/// `username` orders `small` from `debian-12` under `hostname`; answers the new service's id.
pub(crate) async fn order(demo: &Demo, username: &str, hostname: &str) -> i64 {
    let order = json!({
        "plan": "small", "template": "debian-12", "hostname": hostname, "username": "debian"
    });
    let (status, receipt) = send(
        demo,
        token(demo, username),
        Method::POST,
        "/api/v1/orders",
        order,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    receipt["service_id"].as_i64().unwrap()
}

/// Waits until the service `id` is `state`, as an operator sees it.
pub(crate) async fn service_becomes(demo: &Demo, id: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = get(
            demo,
            token(demo, "admin"),
            &format!("/api/v1/services/{id}"),
        )
        .await;
        if view["service"]["state"] == state {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "service {id} never became {state}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn send(
    demo: &Demo,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, url(demo, path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) fn url(demo: &Demo, path: &str) -> String {
    format!("{}{path}", demo.credentials().url)
}

pub(crate) async fn get(demo: &Demo, token: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url(demo, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) fn token<'a>(demo: &'a Demo, username: &str) -> &'a str {
    &demo.account(username).unwrap().api_token
}

pub(crate) fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

pub(crate) async fn login(
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

    // An operator cannot lock themselves out, not even with another operator to come to help.
    let me = user_id(&demo, "admin").await;
    for lockout in [json!({ "disabled": true }), json!({ "role": "customer" })] {
        let (status, body) = send(
            &demo,
            admin,
            Method::PATCH,
            &format!("/api/v1/users/{me}"),
            lockout,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("your own"),
            "{body}"
        );
    }
    let (status, _) = get(&demo, admin, "/api/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
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

#[tokio::test]
async fn customers_see_plans_without_the_nodes_they_are_placed_on() {
    let demo = demo_with_catalogue().await;
    let (status, plans) = get(&demo, token(&demo, "admin"), "/api/v1/plans").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plans[0]["nodes"], json!(["pve1", "pve2"]), "{plans}");
    let (status, offered) = get(&demo, token(&demo, "alice"), "/api/v1/plans").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        offered,
        json!([{
            "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
            "templates": ["debian-12"]
        }])
    );
    demo.stop().await.unwrap();
}

/// Fails when `value` names anything of Proxmox: a field for a node, VM id, cluster or task, an
/// error text, a node name, a task id, the cluster's address or secret, or one of `ids`.
fn assert_no_proxmox_detail(what: &str, value: &Value, demo: &Demo, ids: &[u64]) {
    const FIELDS: [&str; 8] = [
        "node",
        "nodes",
        "vmid",
        "cluster",
        "upid",
        "api_url",
        "last_error",
        "message",
    ];
    let api = demo.sim().api_url();
    let address = format!("{}:{}", api.host_str().unwrap(), api.port().unwrap());
    let secret = demo.sim().token_secret();
    let words = [
        "pve1",
        "pve2",
        "UPID:",
        "PVEAPIToken",
        address.as_str(),
        secret.as_str(),
    ];
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                let empty = inner.is_null();
                assert!(
                    !FIELDS.contains(&key.as_str())
                        || (empty && matches!(key.as_str(), "last_error" | "message")),
                    "{what} answers {key:?} to a customer: {value}"
                );
                assert_no_proxmox_detail(what, inner, demo, ids);
            }
        }
        Value::Array(items) => {
            for item in items {
                assert_no_proxmox_detail(what, item, demo, ids);
            }
        }
        Value::String(text) => {
            for word in words {
                assert!(
                    !text.contains(word),
                    "{what} tells a customer {word:?}: {text:?}"
                );
            }
        }
        Value::Number(number) => {
            assert!(
                !number.as_u64().is_some_and(|n| ids.contains(&n)),
                "{what} tells a customer a Proxmox VM id: {number}"
            );
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// The Server-Sent Events a stream sends within `quiet` of the one before, as JSON.
async fn events(demo: &Demo, token: &str, path: &str, quiet: Duration) -> Vec<Value> {
    let mut response = reqwest::Client::new()
        .get(url(demo, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(quiet, response.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

#[tokio::test]
async fn nothing_a_customer_can_read_names_a_node_a_vm_id_a_cluster_or_a_task() {
    let demo = demo_with_catalogue().await;
    let id = order(&demo, "alice", "leak-check").await;
    let view = service_becomes(&demo, id, "active").await;
    // What the operator sees, and the customer must not.
    let vmid = view["service"]["vmid"].as_u64().unwrap();
    assert!(view["service"]["node"].is_string(), "{view}");
    let alice = token(&demo, "alice");
    let seeded = demo.account("alice").unwrap().vms[0];
    let paths = [
        "/api/v1/whoami".to_owned(),
        "/api/v1/tokens".to_owned(),
        "/api/v1/plans".to_owned(),
        "/api/v1/vms".to_owned(),
        format!("/api/v1/vms/{id}"),
        format!("/api/v1/vms/{seeded}"),
        format!("/api/v1/services/{id}"),
        format!("/api/v1/services/{seeded}"),
    ];
    let ids = [9000, 101, 102, vmid];
    for path in &paths {
        let (status, body) = get(&demo, alice, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_no_proxmox_detail(path, &body, &demo, &ids);
    }
    let path = format!("/api/v1/services/{id}/events");
    let progress = events(&demo, alice, &path, Duration::from_millis(500)).await;
    assert!(progress.len() >= 2, "{progress:?}");
    assert_no_proxmox_detail(&path, &Value::from(progress), &demo, &ids);
    demo.stop().await.unwrap();
}

/// The account `username`'s id, as operators see it.
async fn user_id(demo: &Demo, username: &str) -> i64 {
    let (_, users) = get(demo, token(demo, "admin"), "/api/v1/users").await;
    let users = users.as_array().unwrap();
    let user = users.iter().find(|u| u["username"] == username).unwrap();
    user["id"].as_i64().unwrap()
}

#[tokio::test]
async fn operators_list_services_with_owner_plan_and_last_job_by_state() {
    let demo = demo_with_catalogue().await;
    let admin = token(&demo, "admin");
    let ordered = order(&demo, "bob", "svc-list").await;
    service_becomes(&demo, ordered, "active").await;

    let (status, all) = get(&demo, admin, "/api/v1/services").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = all.as_array().unwrap();
    let names: Vec<&str> = all.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["svc-list", "bob-lab", "alice-db", "alice-web"],
        "newest first"
    );
    let new = &all[0];
    assert_eq!(new["id"], ordered);
    assert_eq!(
        new["owner"],
        json!({ "id": user_id(&demo, "bob").await, "username": "bob" })
    );
    assert_eq!(
        (&new["plan"], &new["state"], &new["hostname"]),
        (&json!("small"), &json!("active"), &json!("svc-list"))
    );
    assert_eq!(
        (&new["last_job"]["kind"], &new["last_job"]["state"]),
        (&json!("provision"), &json!("succeeded")),
        "{new}"
    );
    assert_eq!(
        all[3]["last_job"],
        Value::Null,
        "a seeded service never had a job"
    );

    let (_, suspended) = get(&demo, admin, "/api/v1/services?state=suspended").await;
    assert_eq!(suspended, json!([]));
    let alice_db = demo.account("alice").unwrap().vms[1];
    let (status, _) = send(
        &demo,
        admin,
        Method::POST,
        &format!("/api/v1/services/{alice_db}/suspend"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    service_becomes(&demo, alice_db, "suspended").await;
    let (_, suspended) = get(&demo, admin, "/api/v1/services?state=suspended").await;
    let suspended = suspended.as_array().unwrap();
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(
        (&suspended[0]["name"], &suspended[0]["owner"]["username"]),
        (&json!("alice-db"), &json!("alice"))
    );
    assert_eq!(suspended[0]["last_job"]["kind"], "suspend");
    let (_, active) = get(&demo, admin, "/api/v1/services?state=active").await;
    assert_eq!(active.as_array().unwrap().len(), 3, "{active}");

    let (status, refused) = get(&demo, admin, "/api/v1/services?state=asleep").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"].as_str().unwrap().contains("suspended"),
        "{refused}"
    );
    for path in ["/api/v1/services", "/api/v1/services?state=active"] {
        let (status, _) = get(&demo, token(&demo, "alice"), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_reads_a_customers_quota_limits_and_usage() {
    let demo = demo_with_catalogue().await;
    let admin = token(&demo, "admin");
    let alice = user_id(&demo, "alice").await;
    let path = format!("/api/v1/users/{alice}/quota");
    let ordered = order(&demo, "alice", "quota-use").await;
    service_becomes(&demo, ordered, "active").await;

    let (status, quota) = get(&demo, admin, &path).await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    // The seeded VMs' plan is not in the catalogue: they count as VMs only, as for an order.
    assert_eq!(
        quota,
        json!({
            "user_id": alice,
            "limits": { "max_vms": 5, "max_cores": 16, "max_memory_mib": 32768, "max_disk_gib": 500 },
            "custom": false,
            "usage": { "vms": 3, "cores": 2, "memory_mib": 2048, "disk_gib": 20 },
        })
    );
    let limits =
        json!({ "max_vms": 3, "max_cores": 4, "max_memory_mib": 4096, "max_disk_gib": 40 });
    // A limit below what is in use saves, and says so.
    let below = json!({ "max_vms": 2, "max_cores": 4, "max_memory_mib": 4096, "max_disk_gib": 40 });
    let (status, saved) = send(&demo, admin, Method::PUT, &path, below).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        saved["over"],
        json!([{ "limit": "VM count", "in_use": 3, "allowed": 2 }])
    );
    let (status, saved) = send(&demo, admin, Method::PUT, &path, limits.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(saved["over"], json!([]));
    let (_, quota) = get(&demo, admin, &path).await;
    assert_eq!(
        (&quota["limits"], &quota["custom"]),
        (&limits, &json!(true))
    );
    // Terminated services no longer count.
    let (status, _) = send(
        &demo,
        admin,
        Method::POST,
        &format!("/api/v1/services/{ordered}/terminate"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    service_becomes(&demo, ordered, "terminated").await;
    let (_, quota) = get(&demo, admin, &path).await;
    assert_eq!(
        quota["usage"],
        json!({ "vms": 2, "cores": 0, "memory_mib": 0, "disk_gib": 0 })
    );

    let (status, _) = get(&demo, token(&demo, "alice"), &path).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "quotas are set and read by operators"
    );
    let (status, _) = get(&demo, admin, "/api/v1/users/999999/quota").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn power_buttons_and_consoles_follow_the_vms_power_state() {
    let demo = demo().await;
    let alice = token(&demo, "alice");
    let (web, db) = (
        demo.account("alice").unwrap().vms[0],
        demo.account("alice").unwrap().vms[1],
    );
    let (_, running) = get(&demo, alice, &format!("/api/v1/vms/{web}")).await;
    assert_eq!(
        running["actions"],
        json!({ "power": ["shutdown", "reboot", "stop"], "console": true, "unavailable": null })
    );
    let (_, stopped) = get(&demo, alice, &format!("/api/v1/vms/{db}")).await;
    assert_eq!(
        stopped["actions"],
        json!({ "power": ["start"], "console": false, "unavailable": "the VM is not running" })
    );

    let (status, body) = power(&demo, web, "start").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("the VM is already running"))
    );
    let (status, body) = power(&demo, db, "reboot").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("the VM is not running"))
    );

    let console = json!({ "kind": "vnc" });
    let path = format!("/api/v1/vms/{db}/console");
    let (status, body) = send(&demo, alice, Method::POST, &path, console.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("the VM is not running"))
    );
    let (_, audit) = get(
        &demo,
        token(&demo, "admin"),
        "/api/v1/audit?action=console.refused",
    )
    .await;
    let refusals: Vec<&Value> = audit.as_array().unwrap().iter().collect();
    assert_eq!(refusals.len(), 1, "{audit}");
    assert_eq!(refusals[0]["detail"]["reason"], "not_running", "{audit}");
    assert_eq!(refusals[0]["actor_name"], "alice", "{audit}");
    // A family of actions by its first word; a partial word matches nothing.
    let (_, family) = get(&demo, token(&demo, "admin"), "/api/v1/audit?action=console").await;
    assert_eq!(family, audit, "{family}");
    let (_, partial) = get(
        &demo,
        token(&demo, "admin"),
        "/api/v1/audit?action=console.ref",
    )
    .await;
    assert_eq!(partial, json!([]));

    let (status, body) = power(&demo, db, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while demo.sim().vm_status(102).as_deref() != Some("running") {
        assert!(Instant::now() < deadline, "VM 102 never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = send(&demo, alice, Method::POST, &path, console).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    demo.stop().await.unwrap();
}

/// alice asks for `action` on her VM `id`.
async fn power(demo: &Demo, id: i64, action: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/vms/{id}/power");
    send(
        demo,
        token(demo, "alice"),
        Method::POST,
        &path,
        json!({ "action": action }),
    )
    .await
}

#[tokio::test]
async fn a_username_no_account_can_have_is_refused_before_it_is_counted_or_logged() {
    let demo = demo().await;
    let client = cookie_client();
    let huge = "a".repeat(100_000);
    for _ in 0..30 {
        let refused = login(&demo, &client, &huge, "whatever password").await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("1-64 characters"),
            "{body}"
        );
    }
    let long_password = "p".repeat(2000);
    let refused = login(&demo, &client, "alice", &long_password).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let (_, failed) = get(
        &demo,
        token(&demo, "admin"),
        "/api/v1/audit?action=auth.login_failed",
    )
    .await;
    assert_eq!(failed, json!([]));
    // None of it counted against the address: a right password still signs in at once.
    let password = demo.account("alice").unwrap().password.clone();
    assert_eq!(
        login(&demo, &client, "alice", &password).await.status(),
        StatusCode::OK
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn api_answers_are_never_cached_and_tls_sites_ask_for_tls_from_then_on() {
    let demo = demo().await;
    let response = reqwest::Client::new()
        .get(url(&demo, "/api/v1/whoami"))
        .bearer_auth(token(&demo, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "plain HTTP"
    );
    demo.stop().await.unwrap();

    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim: SimConfig::default(),
        extra_config: "public_url = \"https://panel.example.com\"\n".into(),
        plugins_dir: None,
        plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
    })
    .await
    .unwrap();
    // A proxy would end TLS; the test speaks to the daemon behind it.
    let behind_the_proxy = format!("http://{}/", demo.listening());
    let response = reqwest::get(behind_the_proxy).await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_trickles_headers_or_a_body_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let demo = demo().await;
    let addr = demo.daemon().addr();
    let started = Instant::now();
    // Headers begun and never finished: the connection is closed after the header deadline.
    let headers = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /api/v1/whoami HTTP/1.1\r\nHost: panel\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer));
        assert!(
            read.await.is_ok(),
            "the connection was still open after 20 s"
        );
        started.elapsed()
    };
    // A body promised and sent in part: 408 after the body deadline.
    let body = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: panel\r\nOrigin: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user",
            demo.credentials().url
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = vec![0; 64];
        let read = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut answer));
        let n = read.await.expect("no answer within 30 s").unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    // A kept-alive connection left idle after its answer goes the same way.
    let idle = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: panel\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0; 256];
        let n = tcp.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut rest));
        assert!(
            read.await.is_ok(),
            "the idle connection was still open after 20 s"
        );
    };
    let (closed_after, answer, ()) = tokio::join!(headers, body, idle);
    assert!(closed_after >= Duration::from_secs(9), "{closed_after:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_must_name_nodes_of_its_cluster_and_a_retired_plan_takes_no_new_orders() {
    let demo = demo_with_catalogue().await;
    let admin = token(&demo, "admin");
    let plan = |nodes: Value, retired: bool| {
        json!({
            "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
            "templates": ["debian-12"], "nodes": nodes, "retired": retired
        })
    };
    let (status, body) = send(
        &demo,
        admin,
        Method::PUT,
        "/api/v1/plans/small",
        plan(json!(["pve1", "pve9"]), false),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "node \"pve9\" is not a node of cluster \"sim\", where template \"debian-12\" is (its nodes: pve1, pve2)"
    );

    let ordered = order(&demo, "alice", "before-retiring").await;
    let (status, body) = send(
        &demo,
        admin,
        Method::PUT,
        "/api/v1/plans/small",
        plan(json!(["pve1"]), true),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, offered) = get(&demo, token(&demo, "alice"), "/api/v1/plans").await;
    assert_eq!(offered, json!([]), "a retired plan is not offered");
    let (_, all) = get(&demo, admin, "/api/v1/plans").await;
    assert_eq!(all[0]["retired"], true);
    let again = json!({
        "plan": "small", "template": "debian-12", "hostname": "after-retiring", "username": "debian"
    });
    let (status, body) = send(
        &demo,
        token(&demo, "alice"),
        Method::POST,
        "/api/v1/orders",
        again,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "plan \"small\" is no longer offered");
    // The service ordered before keeps its plan.
    let view = service_becomes(&demo, ordered, "active").await;
    assert_eq!(view["service"]["plan"], "small");
    demo.stop().await.unwrap();
}
