//! Measures a cloud-init render through the plugin runtime (fresh instance per call) against the
//! same template logic compiled natively. Prints one JSON object; `cargo xtask bench plugins`
//! turns it into a row of docs/benchmarks.md.
//!
//! usage: porthole-bench-plugins COMPONENT.wasm

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use porthole_plugin_host::{
    PlanSize, PluginLimits, PluginRuntime, PluginSpec, PluginWorld, RenderContext, RuntimeOptions,
};
use sha2::Digest;

const WARM_UP: usize = 500;
const SAMPLES: usize = 10_000;
const THROUGHPUT_CALLS: usize = 20_000;
const WORKERS: usize = 2;

fn context() -> RenderContext {
    RenderContext {
        hostname: "vm42".into(),
        fqdn: "vm42.lab.example.com".into(),
        username: "alice".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop".into()],
        password_hash: Some(
            "$6$rounds=5000$porthole$0Xq1y0e5i8Y1bDkq3cZb9vG2h7s5Qw1Lr4nT6uV8wX0yZ2aB4cD6eF8gH0iJ2kL4mN6oP8qR0sT2uV4wX6yZ8a".into(),
        ),
        tunnel_token: Some("eyJhIjoiYWNjb3VudCJ9".into()),
        plan: PlanSize {
            cores: 2,
            memory_mib: 2048,
            disk_gib: 20,
        },
        os: "debian-12".into(),
        extra: vec![("packages".into(), "htop,git".into())],
    }
}

fn native_context() -> cloudinit_basic::Context {
    let c = context();
    cloudinit_basic::Context {
        hostname: c.hostname,
        fqdn: c.fqdn,
        username: c.username,
        ssh_keys: c.ssh_keys,
        password_hash: c.password_hash,
        tunnel_token: c.tunnel_token,
        os: c.os,
        extra: c.extra,
    }
}

fn percentiles(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    serde_json::json!({
        "p50_us": at(0.50).as_secs_f64() * 1e6,
        "p99_us": at(0.99).as_secs_f64() * 1e6,
        "samples": samples.len(),
    })
}

async fn timed<F: Future<Output = ()>>(mut f: impl FnMut() -> F, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wasm = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: porthole-bench-plugins COMPONENT.wasm")?,
    );
    let bytes = std::fs::read(&wasm)?;
    let plugin = PluginSpec {
        name: "cloudinit-basic".into(),
        world: PluginWorld::CloudInitTemplate,
        path: wasm,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        allowed_hosts: Vec::new(),
        allowed_addresses: Vec::new(),
        ca_file: None,
        limits: PluginLimits::default(),
        settings: BTreeMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let plugins = PluginRuntime::new(RuntimeOptions::default())?;
        plugins.load_all(std::slice::from_ref(&plugin)).await;
        let template = plugins.cloud_init_template("cloudinit-basic");
        let ctx = context();
        template.render(&ctx).await?;

        timed(|| async { drop(template.render(&ctx).await) }, WARM_UP).await;
        let render = timed(|| async { drop(template.render(&ctx).await) }, SAMPLES).await;
        let instantiate = timed(
            || async { drop(plugins.instantiate_only("cloudinit-basic").await) },
            SAMPLES,
        )
        .await;

        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..WORKERS {
            let template = template.clone();
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..THROUGHPUT_CALLS / WORKERS {
                    drop(template.render(&ctx).await);
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let calls_per_s = THROUGHPUT_CALLS as f64 / start.elapsed().as_secs_f64();

        let native_ctx = native_context();
        let native: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let start = Instant::now();
                let rendered = cloudinit_basic::render(std::hint::black_box(&native_ctx));
                std::hint::black_box(rendered.is_ok());
                start.elapsed()
            })
            .collect();

        // What the facade's checks of untrusted output (YAML parse, header, sizes) cost alone.
        let doc = template.render(&ctx).await?;
        let validation: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let start = Instant::now();
                let checked = porthole_plugin_host::validate::rendered(std::hint::black_box(&doc));
                std::hint::black_box(checked.is_ok());
                start.elapsed()
            })
            .collect();

        let report = serde_json::json!({
            "validation_only": percentiles(validation),
            "component_bytes": bytes.len(),
            "render_fresh_instance": percentiles(render),
            "instantiate_only": percentiles(instantiate),
            "render_calls_per_s": calls_per_s,
            "workers": WORKERS,
            "native_render": percentiles(native),
        });
        println!("{report}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
