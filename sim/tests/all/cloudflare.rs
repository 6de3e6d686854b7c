//! The Cloudflare API surface: auth, the envelope, zones, DNS records and tunnels, driven over
//! HTTPS like the plugins drive the real API.

use crate::fixture::{self, Sim};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

impl Sim {
    /// A Cloudflare call with the simulator's token; returns (status, envelope).
    async fn cf(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.handle.cloudflare_token();
        self.cf_as(method, path, body, Some(&format!("Bearer {token}")))
            .await
    }

    async fn cf_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.handle.cloudflare_url());
        let mut request = self.client.request(method, url);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|err| panic!("{err}"));
        fixture::body(response).await
    }
}

fn error_code(envelope: &Value) -> i64 {
    assert_eq!(envelope["success"], false, "{envelope}");
    envelope["errors"][0]["code"].as_i64().unwrap_or_default()
}

#[tokio::test]
async fn cloudflare_refuses_missing_and_wrong_tokens() {
    let sim = fixture::start().await;
    let (status, body) = sim.cf_as(Method::GET, "/zones", None, None).await;
    assert_eq!((status, error_code(&body)), (400, 9106));
    let (status, body) = sim
        .cf_as(Method::GET, "/zones", None, Some("Bearer wrong"))
        .await;
    assert_eq!((status, error_code(&body)), (403, 10000));
    assert_eq!(body["errors"][0]["message"], "Authentication error");
    let (status, body) = sim
        .cf_as(Method::GET, "/zones", None, Some("Basic abc"))
        .await;
    assert_eq!((status, error_code(&body)), (400, 6111));
}

#[tokio::test]
async fn cloudflare_finds_zones_by_name_with_result_info() {
    let sim = fixture::start().await;
    let id = sim.handle.cloudflare_zone("example.com");
    sim.handle.cloudflare_zone("other.org");
    let (status, body) = sim.cf(Method::GET, "/zones?name=example.com", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["result"][0]["id"], id.as_str());
    assert_eq!(body["result"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["result_info"]["total_count"], 1);
}

#[tokio::test]
async fn cloudflare_dns_records_create_filter_update_delete() {
    let sim = fixture::start().await;
    let zone = sim.handle.cloudflare_zone("example.com");
    let records = format!("/zones/{zone}/dns_records");
    let a =
        json!({"type": "A", "name": "vm1", "content": "192.0.2.1", "ttl": 300, "proxied": false});
    let (status, created) = sim.cf(Method::POST, &records, Some(a.clone())).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["result"]["name"], "vm1.example.com");
    let id = created["result"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let (status, body) = sim.cf(Method::POST, &records, Some(a)).await;
    assert_eq!((status, error_code(&body)), (400, 81057));
    let cname = json!({"type": "CNAME", "name": "vm1.example.com", "content": "x.example.net"});
    let (status, body) = sim.cf(Method::POST, &records, Some(cname)).await;
    assert_eq!((status, error_code(&body)), (400, 81053));

    let (_, listed) = sim
        .cf(
            Method::GET,
            &format!("{records}?type=A&name=vm1.example.com"),
            None,
        )
        .await;
    assert_eq!(listed["result"][0]["id"], id.as_str());
    let (_, none) = sim
        .cf(
            Method::GET,
            &format!("{records}?type=TXT&name=vm1.example.com"),
            None,
        )
        .await;
    assert_eq!(none["result"], json!([]));

    let update = json!({"type": "A", "name": "vm1.example.com", "content": "192.0.2.2", "ttl": 120, "proxied": true});
    let (status, body) = sim
        .cf(Method::PUT, &format!("{records}/{id}"), Some(update))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["ttl"], 1,
        "proxied records have the automatic TTL"
    );
    let (status, body) = sim
        .cf(
            Method::PATCH,
            &format!("{records}/{id}"),
            Some(json!({"content": "192.0.2.3"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = sim.handle.cloudflare_dns_records("example.com");
    assert_eq!(
        (stored[0].content.as_str(), stored[0].proxied),
        ("192.0.2.3", true)
    );

    let (status, _) = sim
        .cf(Method::DELETE, &format!("{records}/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = sim
        .cf(Method::DELETE, &format!("{records}/{id}"), None)
        .await;
    assert_eq!((status, error_code(&body)), (404, 81044));
    assert!(sim.handle.cloudflare_dns_records("example.com").is_empty());
}

#[tokio::test]
async fn cloudflare_dns_records_are_validated() {
    let sim = fixture::start().await;
    let zone = sim.handle.cloudflare_zone("example.com");
    let records = format!("/zones/{zone}/dns_records");
    let cases = [
        (
            json!({"type": "A", "name": "a", "content": "not-an-ip"}),
            9005,
        ),
        (
            json!({"type": "TXT", "name": "t", "content": "x", "proxied": true}),
            9004,
        ),
        (
            json!({"type": "A", "name": "a", "content": "192.0.2.1", "ttl": 5}),
            9021,
        ),
        (json!({"type": "BOGUS", "name": "a", "content": "x"}), 9000),
        (json!({"name": "a", "content": "x"}), 9005),
    ];
    for (body, code) in cases {
        let (status, answer) = sim.cf(Method::POST, &records, Some(body.clone())).await;
        assert_eq!((status, error_code(&answer)), (400, code), "{body}");
    }
    let (status, answer) = sim
        .cf(
            Method::GET,
            "/zones/0123456789abcdef0123456789abcdef/dns_records",
            None,
        )
        .await;
    assert_eq!((status, error_code(&answer)), (404, 7003));
}

#[tokio::test]
async fn cloudflare_tunnels_lifecycle() {
    let sim = fixture::start().await;
    let account = sim.handle.cloudflare_account_id();
    let tunnels = format!("/accounts/{account}/cfd_tunnel");
    let (status, created) = sim
        .cf(
            Method::POST,
            &tunnels,
            Some(json!({"name": "porthole-svc-1", "config_src": "cloudflare"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["result"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, body) = sim
        .cf(
            Method::POST,
            &tunnels,
            Some(json!({"name": "porthole-svc-1", "config_src": "cloudflare"})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, 1013));

    let no_catch_all = json!({"config": {"ingress": [{"hostname": "a.example.com", "service": "ssh://localhost:22"}]}});
    let (status, body) = sim
        .cf(
            Method::PUT,
            &format!("{tunnels}/{id}/configurations"),
            Some(no_catch_all),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, 1056));
    let config = json!({"config": {"ingress": [
        {"hostname": "a.example.com", "service": "ssh://localhost:22"},
        {"service": "http_status:404"}]}});
    let (status, body) = sim
        .cf(
            Method::PUT,
            &format!("{tunnels}/{id}/configurations"),
            Some(config.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = sim
        .cf(Method::GET, &format!("{tunnels}/{id}/configurations"), None)
        .await;
    assert_eq!(body["result"]["config"], config["config"]);

    let (_, token) = sim
        .cf(Method::GET, &format!("{tunnels}/{id}/token"), None)
        .await;
    let token = token["result"].as_str().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap_or_else(|err| panic!("{err}"));
    let decoded: Value = serde_json::from_slice(&decoded).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        (decoded["a"].as_str(), decoded["t"].as_str()),
        (Some(account.as_str()), Some(id.as_str()))
    );

    assert!(sim.handle.cloudflare_connect_tunnel(&id));
    let (status, body) = sim
        .cf(Method::DELETE, &format!("{tunnels}/{id}"), None)
        .await;
    assert_eq!((status, error_code(&body)), (400, 1022));
    let (status, _) = sim
        .cf(Method::DELETE, &format!("{tunnels}/{id}/connections"), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = sim
        .cf(Method::DELETE, &format!("{tunnels}/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");

    let (_, live) = sim
        .cf(
            Method::GET,
            &format!("{tunnels}?name=porthole-svc-1&is_deleted=false"),
            None,
        )
        .await;
    assert_eq!(live["result"], json!([]));
    let (_, all) = sim
        .cf(Method::GET, &format!("{tunnels}?name=porthole-svc-1"), None)
        .await;
    assert!(all["result"][0]["deleted_at"].is_string());
    let (status, body) = sim
        .cf(Method::DELETE, &format!("{tunnels}/{id}"), None)
        .await;
    assert_eq!((status, error_code(&body)), (404, 1003));
    let (status, body) = sim.cf(Method::GET, "/accounts/0000/cfd_tunnel", None).await;
    assert_eq!((status, error_code(&body)), (403, 10000));
    assert!(sim.handle.cloudflare_tunnels()[0].deleted);
}
