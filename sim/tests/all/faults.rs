use crate::fixture::{Auth, body, start};
use porthole_sim::{Fault, FaultKind, Times};
use reqwest::Method;

fn fault(path: &str, kind: FaultKind, times: Times) -> Fault {
    Fault {
        method: None,
        path: path.into(),
        kind,
        times,
    }
}

#[tokio::test]
async fn status_fault_fires_once() {
    let sim = start().await;
    let kind = FaultKind::Status {
        code: 503,
        message: "Service Unavailable".into(),
    };
    sim.handle.inject(fault("/version", kind, Times::ONCE));
    let (status, body) = body(sim.call(Method::GET, "/version", Auth::Token, &[]).await).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (503, Some("Service Unavailable\n"))
    );
    assert_eq!(
        sim.call(Method::GET, "/version", Auth::Token, &[])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn always_fault_fires_until_cleared() {
    let sim = start().await;
    sim.handle.inject(fault(
        "/nodes/{node}/qemu",
        FaultKind::Drop {},
        Times::ALWAYS,
    ));
    for _ in 0..2 {
        let result = sim.client.get(sim.url("/nodes/pve1/qemu")).send().await;
        assert!(result.is_err(), "dropped connection must not answer");
    }
    sim.handle.clear_faults();
    assert_eq!(
        sim.call(Method::GET, "/nodes/pve1/qemu", Auth::Token, &[])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn task_fail_fault_fails_the_clone_and_removes_it() {
    let sim = start().await;
    let kind = FaultKind::TaskFail {
        message: "storage went away".into(),
    };
    sim.handle
        .inject(fault("/nodes/{node}/qemu/{vmid}/clone", kind, Times::ONCE));
    let upid = sim
        .ok(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150")],
        )
        .await;
    let status = sim
        .wait_task("pve1", upid.as_str().unwrap_or_default())
        .await;
    assert_eq!(status["exitstatus"], "storage went away");
    assert!(sim.handle.vm_config("pve1", 150).is_none());
}
