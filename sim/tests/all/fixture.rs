//! A running simulator and a client that pins its certificate.

use porthole_sim::{SimConfig, SimHandle, Simulator};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use std::time::Duration;

pub struct Sim {
    pub handle: SimHandle,
    pub client: Client,
}

pub async fn start() -> Sim {
    let config = SimConfig {
        auth_failure_delay: Duration::from_millis(20),
        task_duration: Duration::from_millis(50),
        clone_duration: Duration::from_millis(400),
        backup_duration: Duration::from_millis(200),
        restore_duration: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let handle = Simulator::start(config)
        .await
        .unwrap_or_else(|err| panic!("simulator start: {err:#}"));
    let cert = reqwest::Certificate::from_pem(handle.cert_pem().as_bytes())
        .unwrap_or_else(|err| panic!("{err}"));
    let client = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .build()
        .unwrap_or_else(|err| panic!("client: {err}"));
    Sim { handle, client }
}

/// How a request authenticates.
pub enum Auth<'a> {
    Token,
    Ticket {
        ticket: &'a str,
        csrf: Option<&'a str>,
    },
    None,
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}api2/json{path}", self.handle.api_url())
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut request = self.client.request(method.clone(), self.url(path));
        request = match auth {
            Auth::Token => request.header(
                "Authorization",
                format!(
                    "PVEAPIToken={}={}",
                    self.handle.token_id(),
                    self.handle.token_secret()
                ),
            ),
            Auth::Ticket { ticket, csrf } => {
                let request = request.header("Cookie", format!("PVEAuthCookie={ticket}"));
                match csrf {
                    Some(csrf) => request.header("CSRFPreventionToken", csrf),
                    None => request,
                }
            }
            Auth::None => request,
        };
        request = if method == Method::GET || method == Method::DELETE {
            request.query(form)
        } else {
            request.form(form)
        };
        request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
    }

    /// A token-authenticated call that must succeed; returns `data`.
    pub async fn ok(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self.call(method.clone(), path, Auth::Token, form).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{method} {path}: {body}");
        body["data"].clone()
    }

    /// Logs in with the password; returns (ticket, CSRF token).
    pub async fn login(&self) -> (String, String) {
        let (user, password) = (self.handle.user(), self.handle.password());
        let response = self
            .call(
                Method::POST,
                "/access/ticket",
                Auth::None,
                &[("username", &user), ("password", &password)],
            )
            .await;
        let body: Value = response.json().await.unwrap_or_default();
        let data = &body["data"];
        let field = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
        (field("ticket"), field("CSRFPreventionToken"))
    }

    /// Polls a task until it stops; returns its final status.
    pub async fn wait_task(&self, node: &str, upid: &str) -> Value {
        for _ in 0..200 {
            let status = self
                .ok(
                    Method::GET,
                    &format!("/nodes/{node}/tasks/{upid}/status"),
                    &[],
                )
                .await;
            if status["status"] == "stopped" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not stop");
    }
}

impl Sim {
    /// Starts a task that must be accepted and waits for it; returns its final status.
    pub async fn run_task(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let upid = self.ok(method, path, form).await;
        let upid = upid.as_str().unwrap_or_default().to_owned();
        let node = upid.split(':').nth(1).unwrap_or_default().to_owned();
        self.wait_task(&node, &upid).await
    }

    /// A token-authenticated call that must fail; returns (status, message without newline).
    pub async fn fails(&self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let (status, body) = body(self.call(method, path, Auth::Token, form).await).await;
        let message = body["message"].as_str().unwrap_or_default();
        (status, message.trim_end().to_owned())
    }
}

pub async fn body(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}
