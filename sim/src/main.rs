//! `porthole-sim`: runs the Proxmox VE simulator until SIGINT/SIGTERM, after printing one JSON
//! line with everything a client needs (URLs, certificate fingerprint, token).

use clap::Parser;
use porthole_sim::{SimConfig, Simulator};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "An in-memory Proxmox VE cluster speaking the PVE API over HTTPS")]
struct Args {
    /// Address both listeners bind to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// HTTPS port of the PVE API (0 = any free port).
    #[arg(long, default_value_t = 0)]
    api_port: u16,
    /// Plain-HTTP port of the control API (0 = any free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Cluster node names, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "pve1,pve2")]
    nodes: Vec<String>,
    /// Nodes that are members but unreachable.
    #[arg(long, value_delimiter = ',')]
    offline_nodes: Vec<String>,
    /// Delay of every 401 answer, in milliseconds (pveproxy: 3000).
    #[arg(long, default_value_t = 3000)]
    auth_failure_delay_ms: u64,
    /// Duration of a task, in milliseconds.
    #[arg(long, default_value_t = 300)]
    task_ms: u64,
    /// Duration of a full clone, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    clone_ms: u64,
    /// Duration of one VM's backup (vzdump), in milliseconds.
    #[arg(long, default_value_t = 1500)]
    backup_ms: u64,
    /// Duration of a restore, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    restore_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(env_filter())
        .init();
    let args = Args::parse();
    let config = SimConfig {
        nodes: args.nodes,
        offline_nodes: args.offline_nodes,
        auth_failure_delay: Duration::from_millis(args.auth_failure_delay_ms),
        task_duration: Duration::from_millis(args.task_ms),
        clone_duration: Duration::from_millis(args.clone_ms),
        backup_duration: Duration::from_millis(args.backup_ms),
        restore_duration: Duration::from_millis(args.restore_ms),
        bind: args.bind,
        api_port: args.api_port,
        control_port: args.control_port,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await?;
    let banner = serde_json::json!({
        "api_url": sim.api_url(),
        "control_url": sim.control_url(),
        "fingerprint": sim.cert_fingerprint_sha256(),
        "token_id": sim.token_id(),
        "token_secret": sim.token_secret(),
        "user": sim.user(),
        "password": sim.password(),
    });
    println!("{banner}");
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(())
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
