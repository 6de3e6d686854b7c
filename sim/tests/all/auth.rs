use crate::fixture::{Auth, body, start};
use reqwest::Method;
use std::time::Duration;

#[tokio::test]
async fn no_credentials_is_401_no_ticket() {
    let sim = start().await;
    let (status, body) = body(sim.call(Method::GET, "/version", Auth::None, &[]).await).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "No ticket\n");
}

#[tokio::test]
async fn ticket_write_without_csrf_is_401() {
    let sim = start().await;
    let (ticket, csrf) = sim.login().await;
    assert!(ticket.starts_with("PVE:porthole@pve:"));
    let read = sim
        .call(
            Method::GET,
            "/nodes",
            Auth::Ticket {
                ticket: &ticket,
                csrf: None,
            },
            &[],
        )
        .await;
    assert_eq!(read.status(), 200);
    let path = "/nodes/pve1/qemu/9000/config";
    let write = sim
        .call(
            Method::PUT,
            path,
            Auth::Ticket {
                ticket: &ticket,
                csrf: None,
            },
            &[("cores", "3")],
        )
        .await;
    let (status, body) = body(write).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "Permission denied - invalid csrf token\n");
    let write = sim
        .call(
            Method::PUT,
            path,
            Auth::Ticket {
                ticket: &ticket,
                csrf: Some(&csrf),
            },
            &[("cores", "3")],
        )
        .await;
    assert_eq!(write.status(), 200);
}

#[tokio::test]
async fn token_writes_without_csrf() {
    let sim = start().await;
    let response = sim
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            Auth::Token,
            &[("cores", "3")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let recorded = sim.handle.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r.auth == porthole_sim::AuthKind::Token && r.status == 200)
    );
}

#[tokio::test]
async fn bad_password_and_expired_ticket_are_refused() {
    let sim = start().await;
    let login = [("username", "porthole@pve"), ("password", "wrong")];
    let (status, body_bad) = body(
        sim.call(Method::POST, "/access/ticket", Auth::None, &login)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body_bad["message"], "authentication failure\n");
    let (ticket, _) = sim.login().await;
    sim.handle.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let expired = sim
        .call(
            Method::GET,
            "/version",
            Auth::Ticket {
                ticket: &ticket,
                csrf: None,
            },
            &[],
        )
        .await;
    assert_eq!(expired.status(), 401);
}
