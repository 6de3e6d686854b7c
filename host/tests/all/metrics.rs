//! `/metrics`: operators only (or a private address of its own), parsed by an independent
//! OpenMetrics parser, holding every family an operator alerts on, and moving with the work.

use std::collections::HashMap;

use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use porthole_sim::{Fault, FaultKind, Times};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt as _;

use crate::api::{demo_with_catalogue_and, order, service_becomes, token, url};
use crate::first_party::plugin_entry;
use porthole::demo::Demo;

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

const FAMILIES: &[&str] = &[
    "porthole_console_sessions",
    "porthole_console_bytes",
    "porthole_console_closes",
    "porthole_console_open_seconds",
    "porthole_jobs",
    "porthole_jobs_parked",
    "porthole_job_step_seconds",
    "porthole_job_step_retries",
    "porthole_proxmox_requests",
    "porthole_proxmox_request_seconds",
    "porthole_plugin_calls",
    "porthole_plugin_call_seconds",
    "porthole_plugin_breaker_open",
    "porthole_plugin_runner_restarts",
    "porthole_webhook_deliveries",
];

async fn scrape(demo: &Demo) -> Exposition {
    let answer = reqwest::Client::new()
        .get(url(demo, "/metrics"))
        .bearer_auth(token(demo, "admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.headers()["content-type"],
        porthole::metrics::CONTENT_TYPE
    );
    let text = answer.text().await.unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|err| panic!("not OpenMetrics: {err:?}\n{text}"))
}

/// The sum of a family's samples whose labels include `labels` (counters and gauges), or the
/// sum of their observation counts (histograms).
fn total(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(family) = exposition.families.get(family) else {
        return 0.0;
    };
    family
        .iter_samples()
        .filter(|sample| {
            let set = sample.get_labelset().unwrap();
            labels
                .iter()
                .all(|(name, value)| set.get_label_value(name) == Some(*value))
        })
        .map(|sample| match &sample.value {
            OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
            OpenMetricsValue::Gauge(gauge) => gauge.as_f64(),
            OpenMetricsValue::Histogram(histogram) => histogram.count.unwrap_or(0) as f64,
            other => panic!("unexpected sample {other:?}"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_operators_parse_as_openmetrics_and_move_with_the_work() {
    let billing = plugin_entry("billing-stripe", "billing-adapter")
        + "settings = { webhook_secret = \"whsec_metrics\", default_plan = \"small\", \
           default_template = \"debian-12\" }\n";
    let demo = demo_with_catalogue_and(&billing).await;
    let http = reqwest::Client::new();
    let anonymous = http.get(url(&demo, "/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let customer = http
        .get(url(&demo, "/metrics"))
        .bearer_auth(token(&demo, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(customer.status(), StatusCode::FORBIDDEN);

    let before = scrape(&demo).await;
    // The clone's connection drops once: a step retried.
    demo.sim().inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/clone".into(),
        kind: FaultKind::Drop {},
        times: Times::ONCE,
    });
    let service = order(&demo, "alice", "metered").await;
    service_becomes(&demo, service, "active").await;
    let base = url(&demo, "");
    let (mut terminal, closed) =
        crate::console::terminal_at(&base, token(&demo, "alice"), service).await;
    terminal.write_all(b"0:3:ls\r").await.unwrap();
    // Bytes count while the session lives, not only once it ends.
    let mut live = scrape(&demo).await;
    for _ in 0..100 {
        let to_vm = [("kind", "term"), ("direction", "to_vm")];
        if total(&live, "porthole_console_bytes", &to_vm)
            > total(&before, "porthole_console_bytes", &to_vm)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        live = scrape(&demo).await;
    }
    assert_eq!(
        total(&live, "porthole_console_sessions", &[("kind", "term")]),
        1.0
    );
    assert!(
        total(
            &live,
            "porthole_console_bytes",
            &[("kind", "term"), ("direction", "to_vm")]
        ) > 0.0,
        "no bytes counted while the session is live"
    );
    drop(terminal);
    tokio::time::timeout(std::time::Duration::from_secs(20), closed)
        .await
        .unwrap()
        .unwrap();
    let hook = http
        .post(url(&demo, "/hooks/billing/billing-stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let hook_status = hook.status().as_u16().to_string();
    // The session's end is recorded just after the browser sees the close.
    let mut after = scrape(&demo).await;
    for _ in 0..100 {
        if total(&after, "porthole_console_closes", &[]) > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&demo).await;
    }

    let families: HashMap<&str, ()> = after.families.keys().map(|k| (k.as_str(), ())).collect();
    for family in FAMILIES {
        assert!(
            families.contains_key(family),
            "no {family} in {:?}",
            families.keys()
        );
    }
    let moved = |family: &str, labels: &[(&str, &str)]| {
        let (was, is) = (
            total(&before, family, labels),
            total(&after, family, labels),
        );
        assert!(is > was, "{family} {labels:?} did not move: {was} → {is}");
    };
    moved("porthole_proxmox_requests", &[("outcome", "ok")]);
    moved(
        "porthole_proxmox_request_seconds",
        &[("endpoint", "POST nodes/{node}/qemu/{vmid}/clone")],
    );
    moved(
        "porthole_plugin_calls",
        &[("plugin", "cloudinit-basic"), ("outcome", "ok")],
    );
    moved(
        "porthole_plugin_call_seconds",
        &[("plugin", "cloudinit-basic")],
    );
    moved(
        "porthole_job_step_seconds",
        &[("kind", "provision"), ("step", "clone")],
    );
    moved(
        "porthole_jobs",
        &[("kind", "provision"), ("state", "succeeded")],
    );
    moved(
        "porthole_job_step_retries",
        &[("kind", "provision"), ("step", "clone")],
    );
    moved(
        "porthole_proxmox_requests",
        &[
            ("endpoint", "POST nodes/{node}/qemu/{vmid}/clone"),
            ("outcome", "transient"),
        ],
    );
    moved("porthole_console_open_seconds", &[("kind", "term")]);
    moved("porthole_console_closes", &[("reason", "browser_closed")]);
    moved(
        "porthole_console_bytes",
        &[("kind", "term"), ("direction", "to_vm")],
    );
    moved(
        "porthole_console_bytes",
        &[("kind", "term"), ("direction", "to_browser")],
    );
    moved(
        "porthole_webhook_deliveries",
        &[("plugin", "billing-stripe"), ("status", &hook_status)],
    );
    assert_eq!(
        total(&after, "porthole_console_sessions", &[("kind", "term")]),
        0.0
    );
    assert_eq!(
        total(
            &after,
            "porthole_plugin_breaker_open",
            &[("plugin", "cloudinit-basic")]
        ),
        0.0
    );
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_the_metrics_alone_without_a_token() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let demo = Demo::start_with(porthole::demo::DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim: porthole_sim::SimConfig::default(),
        extra_config: format!("metrics_listen = \"{addr}\"\n"),
        plugins_dir: None,
        plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let text = answer.text().await.unwrap();
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text).unwrap();
    assert!(
        exposition.families.contains_key("porthole_jobs_parked"),
        "{text}"
    );
    for path in ["/api/v1/whoami", "/healthz", "/"] {
        let answer = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    demo.stop().await.unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the metrics address outlived the daemon"
    );
}
