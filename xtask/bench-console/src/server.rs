//! The child process: the simulator and the daemon (`porthole::demo::Demo`), with the bench's VMs
//! and services added. Its RSS is what the idle-session numbers are made of, so nothing of the
//! measuring side (clients, the RFB source, websockify) lives here.

use std::time::Duration;

use anyhow::Context as _;
use porthole::demo::{Demo, DemoSetup};
use porthole::store::services::{self, ExistingVm};
use porthole::store::users;
use porthole_sim::{SimConfig, VmSeed};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

/// The simulator opens at most 100 console proxies per node (ports 5900–5999), so 5,000
/// concurrent sessions need more than 50 nodes; each idle VM sits on a node of its own.
pub const IDLE_NODES: u32 = 55;
/// The VM whose console fronts the bench's RFB source (throughput, latency, first byte).
const FAST_VMID: u32 = 2000;
const FIRST_IDLE_VMID: u32 = 2001;

/// Starts everything, prints one JSON line describing it, and runs until stdin closes.
pub async fn run(backend: &str) -> anyhow::Result<()> {
    crate::raise_fd_limit()?;
    let mut nodes = vec!["pve1".to_owned(), "pve2".to_owned()];
    nodes.extend((1..=IDLE_NODES).map(|n| format!("bench{n:02}")));
    let vm = |node: &str, vmid, name: String, vnc_backend| VmSeed {
        node: node.to_owned(),
        vmid,
        name,
        running: true,
        vnc_backend,
        ..VmSeed::default()
    };
    let mut vms = vec![vm(
        "pve1",
        FAST_VMID,
        "bench-fast".into(),
        Some(backend.to_owned()),
    )];
    vms.extend((0..IDLE_NODES).map(|i| {
        vm(
            &nodes[i as usize + 2],
            FIRST_IDLE_VMID + i,
            format!("bench-idle-{i}"),
            None,
        )
    }));
    let sim = SimConfig {
        nodes,
        templates: false,
        auth_failure_delay: Duration::from_millis(10),
        vms: vms.clone(),
        ..SimConfig::default()
    };
    // Sessions stay open through the whole run; the caps are what 5,000 needs and no more.
    let extra = "\n[console]\nmax_sessions_per_user = 6000\nmax_sessions_total = 6000\n\
                 idle_timeout_secs = 3600\n";
    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse()?,
        data_dir: None,
        sim,
        extra_config: extra.to_owned(),
        plugins_dir: None,
        plugin_runner: None,
    })
    .await
    .context("while starting the simulator and the daemon")?;
    let store = demo.daemon().store().clone();
    let (alice, _) = store
        .call(|c| users::find_for_login(c, "alice"))
        .await?
        .context("the demo has no alice")?;
    let mut services = Vec::new();
    for seed in vms {
        let owner_id = alice.id;
        let service = store
            .call(move |c| {
                services::insert_active(
                    c,
                    &ExistingVm {
                        owner_id,
                        name: &seed.name,
                        cluster: "sim",
                        node: &seed.node,
                        vmid: seed.vmid,
                        plan: None,
                        stopped: false,
                    },
                )
            })
            .await?;
        services.push(json!({ "service": service.id, "node": service.node, "vmid": service.vmid }));
    }
    let sim = demo.sim();
    let info = json!({
        "url": demo.credentials().url,
        "token": demo.account("alice").context("the demo has no alice")?.api_token,
        "sim_api": sim.api_url().as_str(),
        "sim_token": format!("PVEAPIToken={}={}", sim.token_id(), sim.token_secret()),
        "sim_cert": sim.cert_pem(),
        "fast": services[0],
        "idle": services[1..],
    });
    println!("{info}");
    // The parent closes our stdin when it is done (or dies).
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    demo.stop().await
}
