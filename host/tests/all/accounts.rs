//! Accounts and the API for integrators: scoped and expiring tokens, a password change, each
//! account's own activity and the operators' audit export, against a real daemon over loopback.

use porthole::auth::{Scopes, secret_token};
use porthole::demo::Demo;
use porthole::store::tokens::{self, NewToken};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{cookie_client, demo, demo_with_catalogue, get, login, send, token, url};

/// A new token for `username` made with `as_token`, with these scopes.
async fn scoped_token(demo: &Demo, as_token: &str, scopes: &[&str]) -> (StatusCode, Value) {
    let body = json!({ "name": format!("scoped-{}", scopes.join("-")), "scopes": scopes });
    send(demo, as_token, Method::POST, "/api/v1/tokens", body).await
}

#[tokio::test]
async fn a_read_token_reads_but_cannot_order_power_or_suspend() {
    let demo = demo_with_catalogue().await;
    let (alice, admin) = (token(&demo, "alice"), token(&demo, "admin"));
    let (status, created) = scoped_token(&demo, alice, &["read"]).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["scopes"], json!(["read"]));
    let read = created["token"].as_str().unwrap();
    let vm = demo.account("alice").unwrap().vms[0];

    let (status, _) = get(&demo, read, "/api/v1/vms").await;
    assert_eq!(status, StatusCode::OK);
    let order = json!({
        "plan": "small", "template": "debian-12", "hostname": "scoped", "username": "debian"
    });
    let (status, body) = send(&demo, read, Method::POST, "/api/v1/orders", order).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "this API token lacks the \"orders\" scope");
    let power = json!({ "action": "stop" });
    let path = format!("/api/v1/vms/{vm}/power");
    let (status, body) = send(&demo, read, Method::POST, &path, power).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "this API token lacks the \"lifecycle\" scope"
    );

    let (_, admin_read) = scoped_token(&demo, admin, &["read"]).await;
    let admin_read = admin_read["token"].as_str().unwrap();
    let path = format!("/api/v1/services/{vm}/suspend");
    let (status, body) = send(&demo, admin_read, Method::POST, &path, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "this API token lacks the \"lifecycle\" scope"
    );
    let plan =
        json!({ "name": "x", "cores": 1, "memory_mib": 512, "disk_gib": 5, "templates": [] });
    let (status, body) = send(&demo, admin_read, Method::PUT, "/api/v1/plans/x", plan).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "this API token lacks the \"admin\" scope");

    // A lifecycle token (a billing system's) suspends, and nothing was changed by the refusals.
    let (_, billing) = scoped_token(&demo, admin, &["read", "lifecycle"]).await;
    let billing = billing["token"].as_str().unwrap();
    let (status, body) = send(&demo, billing, Method::POST, &path, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_cannot_make_or_remove_a_token_wider_than_itself() {
    let demo = demo().await;
    let alice = token(&demo, "alice");
    let (_, read) = scoped_token(&demo, alice, &["read"]).await;
    let read_id = read["metadata"]["id"].as_i64().unwrap();
    let read = read["token"].as_str().unwrap();
    let (status, body) = scoped_token(&demo, read, &["read", "orders"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "this API token lacks the \"orders\" scope");
    let (status, _) = send(
        &demo,
        read,
        Method::POST,
        "/api/v1/tokens",
        json!({ "name": "all" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "leaving scopes out asks for all of them"
    );

    let (_, wide) = scoped_token(&demo, alice, &["read", "orders"]).await;
    let wide_id = wide["metadata"]["id"].as_i64().unwrap();
    let path = format!("/api/v1/tokens/{wide_id}");
    let (status, _) = send(&demo, read, Method::DELETE, &path, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let path = format!("/api/v1/tokens/{read_id}");
    let (status, _) = send(&demo, read, Method::DELETE, &path, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "a token may remove itself");

    let (status, body) = send(
        &demo,
        alice,
        Method::POST,
        "/api/v1/tokens",
        json!({ "name": "bad", "scopes": ["read", "root"] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("root"), "{body}");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_token_gets_401_saying_so_and_an_expiring_one_shows_when() {
    let demo = demo().await;
    let alice = token(&demo, "alice");
    let body = json!({ "name": "month", "scopes": ["read"], "expires_in_days": 30 });
    let (status, created) = send(&demo, alice, Method::POST, "/api/v1/tokens", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let expires_at = created["metadata"]["expires_at"].as_i64().unwrap();
    let in_30_days = porthole::store::now() + 30 * 86_400;
    assert!((in_30_days - expires_at).abs() < 60, "{created}");

    let (_, me) = get(&demo, alice, "/api/v1/whoami").await;
    let user_id = me["user"]["id"].as_i64().unwrap();
    let expired = secret_token::generate_api_token();
    let new = NewToken {
        user_id,
        name: "old",
        scopes: Scopes::FULL,
        expires_at: Some(porthole::store::now() - 1),
    };
    tokens::insert(demo.daemon().store(), &new, &secret_token::digest(&expired))
        .await
        .unwrap();
    let (status, body) = get(&demo, &expired, "/api/v1/whoami").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "this API token has expired");

    let (_, listed) = get(&demo, alice, "/api/v1/tokens").await;
    let old = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "old")
        .unwrap();
    assert_eq!(
        old["last_used_at"],
        Value::Null,
        "an expired token's use is not noted"
    );
    let (status, body) = send(
        &demo,
        alice,
        Method::POST,
        "/api/v1/tokens",
        json!({ "name": "forever", "expires_in_days": 0 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    demo.stop().await.unwrap();
}

/// Alice and Bob each sign in, open consoles and power their VMs; each sees exactly their own.
#[tokio::test]
async fn each_customer_sees_their_own_activity_and_nobody_elses() {
    let demo = demo().await;
    for (name, action) in [("alice", "reboot"), ("bob", "reboot")] {
        let account = demo.account(name).unwrap();
        let client = cookie_client();
        let signed_in = login(&demo, &client, name, &account.password).await;
        assert_eq!(signed_in.status(), StatusCode::OK);
        let path = format!("/api/v1/vms/{}/power", account.vms[0]);
        let (status, body) = send(
            &demo,
            token(&demo, name),
            Method::POST,
            &path,
            json!({ "action": action }),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    for name in ["alice", "bob"] {
        let account = demo.account(name).unwrap();
        let (status, activity) = get(&demo, token(&demo, name), "/api/v1/account/activity").await;
        assert_eq!(status, StatusCode::OK, "{activity}");
        let entries = activity.as_array().unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["vm.power", "auth.login"], "{name}: {activity}");
        assert_eq!(entries[0]["target"], format!("service:{}", account.vms[0]));
        assert_eq!(entries[0]["detail"], json!({ "action": "reboot" }));
        assert_eq!(entries[0]["by_token"], true);
        assert_eq!(entries[1]["client"], "127.0.0.1");
        assert_eq!(entries[1]["by_token"], false);
        let (_, logins) = get(
            &demo,
            token(&demo, name),
            "/api/v1/account/activity?action=auth&limit=1",
        )
        .await;
        assert_eq!(logins.as_array().unwrap().len(), 1);
        let before = entries[0]["id"].as_i64().unwrap();
        let (_, older) = get(
            &demo,
            token(&demo, name),
            &format!("/api/v1/account/activity?before={before}"),
        )
        .await;
        assert_eq!(older, json!([entries[1]]), "paging by id");
    }
    let (status, body) = get(
        &demo,
        token(&demo, "alice"),
        "/api/v1/account/activity?since=abc",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn operators_export_the_audit_log_as_json_lines_or_csv_filtered() {
    let demo = demo().await;
    let admin = token(&demo, "admin");
    for name in ["alice", "bob", "alice"] {
        let client = cookie_client();
        let account = demo.account(name).unwrap();
        login(&demo, &client, name, &account.password).await;
    }
    let client = reqwest::Client::new();
    let export = |query: &str| {
        client
            .get(url(&demo, &format!("/api/v1/audit?{query}")))
            .bearer_auth(admin)
            .send()
    };
    let (_, alice) = get(&demo, token(&demo, "alice"), "/api/v1/whoami").await;
    let alice_id = alice["user"]["id"].as_i64().unwrap();
    let response = export(&format!(
        "format=jsonl&action=auth.login&actor=user:{alice_id}"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/jsonl");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0]["id"].as_i64() < lines[1]["id"].as_i64(),
        "oldest first"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["actor_name"] == "alice" && l["client"] == "127.0.0.1")
    );

    let response = export("format=csv&action=auth.login").await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("id,at,actor,actor_name,action,target,client,detail")
    );
    let names: Vec<&str> = rows.map(|row| row.split(',').nth(3).unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "alice"]);

    let now = porthole::store::now();
    let response = export(&format!("format=jsonl&since={}", now + 3600))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "");
    let response = export(&format!("since={now}&until={now}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = export("format=xml").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = get(&demo, token(&demo, "alice"), "/api/v1/audit?format=csv").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn changing_the_password_needs_the_old_one_and_ends_other_sessions() {
    let demo = demo().await;
    let alice = demo.account("alice").unwrap();
    let (here, elsewhere) = (cookie_client(), cookie_client());
    for client in [&here, &elsewhere] {
        assert_eq!(
            login(&demo, client, "alice", &alice.password)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let change = |current: &str, new: &str| {
        here.post(url(&demo, "/api/v1/account/password"))
            .header("origin", &demo.credentials().url)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let wrong = change("not the password", "a brand new password")
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let short = change(&alice.password, "short").await.unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let changed = change(&alice.password, "a brand new password")
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);

    let whoami = |client: &reqwest::Client| client.get(url(&demo, "/api/v1/whoami")).send();
    assert_eq!(whoami(&here).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        whoami(&elsewhere).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let again = cookie_client();
    assert_eq!(
        login(&demo, &again, "alice", &alice.password)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&demo, &again, "alice", "a brand new password")
            .await
            .status(),
        StatusCode::OK
    );

    // A token, even a full one, cannot change the password.
    let (status, body) = send(
        &demo,
        token(&demo, "alice"),
        Method::POST,
        "/api/v1/account/password",
        json!({ "current_password": "a brand new password", "new_password": "another one here" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, activity) = get(
        &demo,
        token(&demo, "alice"),
        "/api/v1/account/activity?action=account",
    )
    .await;
    assert_eq!(activity.as_array().unwrap().len(), 1, "{activity}");
    demo.stop().await.unwrap();
}

/// A signed-in browser of `username`, with the Origin the daemon wants on state changes.
struct Browser<'a> {
    demo: &'a Demo,
    client: reqwest::Client,
}

impl<'a> Browser<'a> {
    async fn signed_in(demo: &'a Demo, username: &str) -> Browser<'a> {
        let client = cookie_client();
        let password = &demo.account(username).unwrap().password;
        let answer = login(demo, &client, username, password).await;
        assert_eq!(answer.status(), StatusCode::OK);
        Browser { demo, client }
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, url(self.demo, path))
            .header("origin", &self.demo.credentials().url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn authenticator(secret: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
}

/// The code `app` shows `steps` time steps from now.
fn code(app: &totp_rs::Totp, steps: i64) -> String {
    let at = porthole::store::now() + steps * 30;
    app.generate(u64::try_from(at).unwrap()).to_string()
}

/// Enrols an authenticator for the browser's account; answers the app and the recovery codes.
async fn enrol(browser: &Browser<'_>) -> (totp_rs::Totp, Vec<String>) {
    let (status, enrolment) = browser
        .send(Method::POST, "/api/v1/account/totp", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolment}");
    let app = authenticator(enrolment["secret"].as_str().unwrap());
    let url = enrolment["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Porthole:"), "{url}");
    let confirm = |code: String| {
        browser.send(
            Method::POST,
            "/api/v1/account/totp/confirm",
            json!({ "code": code }),
        )
    };
    let (status, _) = confirm("000000".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong code does not enrol");
    let (status, codes) = confirm(code(&app, 0)).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let codes: Vec<String> = serde_json::from_value(codes["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    (app, codes)
}

/// Signs `username` in with the password; answers the challenge the daemon asks a factor for.
async fn password_step(demo: &Demo, client: &reqwest::Client, username: &str) -> String {
    let password = &demo.account(username).unwrap().password;
    let answer = login(demo, client, username, password).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        answer.headers().get("set-cookie").is_none(),
        "no session before the factor"
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["second_factor"]["methods"],
        json!(["totp", "recovery_code"]),
        "{body}"
    );
    body["second_factor"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn second_step(demo: &Demo, client: &reqwest::Client, answer: Value) -> StatusCode {
    client
        .post(url(demo, "/api/v1/auth/second-factor"))
        .header("origin", &demo.credentials().url)
        .json(&answer)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn totp_guards_sign_in_each_code_works_once_and_recovery_codes_too() {
    let demo = demo().await;
    let browser = Browser::signed_in(&demo, "alice").await;
    let (app, recovery) = enrol(&browser).await;
    let (_, factors) = get(
        &demo,
        token(&demo, "alice"),
        "/api/v1/account/second-factors",
    )
    .await;
    assert_eq!(
        factors,
        json!({
            "totp": true, "passkeys": [], "passkeys_available": false,
            "recovery_codes_left": 10, "required": false
        })
    );

    let client = cookie_client();
    let challenge = password_step(&demo, &client, "alice").await;
    let whoami = || client.get(url(&demo, "/api/v1/whoami")).send();
    assert_eq!(whoami().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The code that confirmed the enrolment was used: it does not sign in.
    let used = json!({ "challenge": challenge, "totp": code(&app, 0) });
    assert_eq!(
        second_step(&demo, &client, used).await,
        StatusCode::UNAUTHORIZED
    );
    let next = json!({ "challenge": challenge, "totp": code(&app, 1) });
    assert_eq!(
        second_step(&demo, &client, next.clone()).await,
        StatusCode::OK
    );
    assert_eq!(whoami().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        second_step(&demo, &client, next).await,
        StatusCode::UNAUTHORIZED,
        "a challenge completes once"
    );

    let client = cookie_client();
    let challenge = password_step(&demo, &client, "alice").await;
    let with_code = json!({ "challenge": challenge, "recovery_code": recovery[3].to_uppercase() });
    assert_eq!(second_step(&demo, &client, with_code).await, StatusCode::OK);
    let challenge = password_step(&demo, &cookie_client(), "alice").await;
    let again = json!({ "challenge": challenge, "recovery_code": recovery[3] });
    assert_eq!(
        second_step(&demo, &cookie_client(), again).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, factors) = get(
        &demo,
        token(&demo, "alice"),
        "/api/v1/account/second-factors",
    )
    .await;
    assert_eq!(factors["recovery_codes_left"], 9);

    let (_, activity) = get(
        &demo,
        token(&demo, "alice"),
        "/api/v1/account/activity?action=auth",
    )
    .await;
    let logins: Vec<&Value> = activity
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login")
        .collect();
    assert_eq!(
        logins[0]["detail"],
        json!({ "second_factor": "recovery_code" })
    );
    assert_eq!(logins[1]["detail"], json!({ "second_factor": "totp" }));
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_codes_are_limited_like_passwords() {
    let demo = demo().await;
    let browser = Browser::signed_in(&demo, "bob").await;
    enrol(&browser).await;
    let client = cookie_client();
    let challenge = password_step(&demo, &client, "bob").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let wrong = json!({ "challenge": challenge, "totp": "123456" });
        statuses.push(second_step(&demo, &client, wrong).await);
    }
    // The account's five attempts are spent; the challenge took its five codes too.
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(
        statuses[5],
        StatusCode::UNAUTHORIZED,
        "the challenge is spent"
    );
    let password = &demo.account("bob").unwrap().password;
    let answer = login(&demo, &client, "bob", password).await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_who_must_have_a_second_factor_can_only_enrol_until_they_do() {
    let demo =
        crate::api::demo_with_catalogue_and("\n[accounts]\noperator_mfa = \"required\"\n").await;
    let browser = Browser::signed_in(&demo, "admin").await;
    let (_, me) = browser
        .send(Method::GET, "/api/v1/whoami", Value::Null)
        .await;
    assert_eq!(me["must_enrol_second_factor"], true);
    let (status, body) = browser
        .send(Method::GET, "/api/v1/users", Value::Null)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("enrol a second factor"),
        "{body}"
    );
    // Customers are not asked.
    let alice = Browser::signed_in(&demo, "alice").await;
    let (status, _) = alice.send(Method::GET, "/api/v1/vms", Value::Null).await;
    assert_eq!(status, StatusCode::OK);

    enrol(&browser).await;
    let (status, _) = browser
        .send(Method::GET, "/api/v1/users", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = browser
        .send(Method::GET, "/api/v1/whoami", Value::Null)
        .await;
    assert_eq!(me["must_enrol_second_factor"], false);
    let (status, body) = browser
        .send(
            Method::POST,
            "/api/v1/account/totp/remove",
            json!({ "current_password": demo.account("admin").unwrap().password }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    demo.stop().await.unwrap();
}

/// SQLite gives a deleted account's id to the next account; its activity stays behind.
#[tokio::test]
async fn a_new_account_never_inherits_a_deleted_accounts_activity() {
    let demo = demo().await;
    let admin = token(&demo, "admin");
    let create = |name: &'static str| {
        let body = json!({ "username": name, "password": "a long password", "role": "customer" });
        send(&demo, admin, Method::POST, "/api/v1/users", body)
    };
    let (status, carol) = create("carol").await;
    assert_eq!(status, StatusCode::CREATED, "{carol}");
    let client = cookie_client();
    assert_eq!(
        login(&demo, &client, "carol", "a long password")
            .await
            .status(),
        StatusCode::OK
    );
    let path = format!("/api/v1/users/{}", carol["id"]);
    let (status, _) = send(&demo, admin, Method::DELETE, &path, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, dave) = create("dave").await;
    let client = cookie_client();
    assert_eq!(
        login(&demo, &client, "dave", "a long password")
            .await
            .status(),
        StatusCode::OK
    );
    let activity: Value = client
        .get(url(&demo, "/api/v1/account/activity"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = activity.as_array().unwrap();
    let carol_logins = format!("/api/v1/audit?action=auth.login&actor=user:{}", carol["id"]);
    let (_, logins) = crate::api::get(&demo, admin, &carol_logins).await;
    let names: Vec<&Value> = logins
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["actor_name"])
        .collect();
    assert!(names.iter().all(|n| **n != "carol"), "{logins}");
    let everything = crate::api::get(&demo, admin, "/api/v1/audit?action=auth.login")
        .await
        .1;
    let carols = everything
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user_id"].is_null() && e["actor"] == format!("user:{}", carol["id"]))
        .count();
    assert_eq!(
        carols, 1,
        "carol's sign-in is unlinked, and named nobody's: {everything}"
    );
    assert_eq!(
        entries.len(),
        1,
        "only dave's own sign-in (ids {} and {}): {activity}",
        carol["id"],
        dave["id"]
    );
    demo.stop().await.unwrap();
}

/// Removing the only factor takes its recovery codes with it: sign-in asks for the password
/// alone, and a factor added later brings new codes.
#[tokio::test]
async fn removing_the_last_factor_takes_the_recovery_codes_with_it() {
    let demo = demo().await;
    let browser = Browser::signed_in(&demo, "alice").await;
    enrol(&browser).await;
    let password = demo.account("alice").unwrap().password.clone();
    let (status, _) = browser
        .send(
            Method::POST,
            "/api/v1/account/totp/remove",
            json!({ "current_password": "wrong one!" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = browser
        .send(
            Method::POST,
            "/api/v1/account/totp/remove",
            json!({ "current_password": password }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, factors) = browser
        .send(Method::GET, "/api/v1/account/second-factors", Value::Null)
        .await;
    assert_eq!(
        (
            factors["totp"].clone(),
            factors["recovery_codes_left"].clone()
        ),
        (json!(false), json!(0))
    );
    let answer = login(&demo, &cookie_client(), "alice", &password).await;
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["user"]["username"], "alice",
        "signed in with the password: {body}"
    );
    demo.stop().await.unwrap();
}

/// A right password does not clear the wrong codes before it: guessing codes between sign-ins
/// reaches the account's limit as wrong passwords would.
#[tokio::test]
async fn a_right_password_does_not_forgive_the_wrong_codes_before_it() {
    let demo = demo().await;
    let browser = Browser::signed_in(&demo, "bob").await;
    enrol(&browser).await;
    let client = cookie_client();
    for guesses in [3, 2] {
        let challenge = password_step(&demo, &client, "bob").await;
        for _ in 0..guesses {
            let wrong = json!({ "challenge": challenge, "totp": "123456" });
            assert_eq!(
                second_step(&demo, &client, wrong).await,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    let password = &demo.account("bob").unwrap().password;
    let answer = login(&demo, &client, "bob", password).await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_expiring_token_cannot_make_one_that_outlives_it() {
    let demo = demo().await;
    let alice = token(&demo, "alice");
    let body = json!({ "name": "week", "scopes": ["read"], "expires_in_days": 7 });
    let (_, week) = send(&demo, alice, Method::POST, "/api/v1/tokens", body).await;
    let week = week["token"].as_str().unwrap();
    for (name, days) in [("forever", Value::Null), ("month", json!(30))] {
        let body = json!({ "name": name, "scopes": ["read"], "expires_in_days": days });
        let (status, answer) = send(&demo, week, Method::POST, "/api/v1/tokens", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {answer}");
    }
    let body = json!({ "name": "day", "scopes": ["read"], "expires_in_days": 1 });
    let (status, _) = send(&demo, week, Method::POST, "/api/v1/tokens", body).await;
    assert_eq!(status, StatusCode::CREATED);
    demo.stop().await.unwrap();
}
