//! Plugins in runner processes of their own: what the kernel says of a runner, syscalls a
//! runtime escape would make, and runners that die mid-call.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use porthole::config::PluginWorld;
use porthole::plugins::isolation::Isolation;
use porthole::plugins::{
    CallError, DnsRecord, PluginRuntime, PluginState, RecordKind, RuntimeOptions,
};

use crate::plugins_isolation::runner_command;
use crate::plugins_sandbox::{context, manifest, on_cue, template, wasm};

#[tokio::test]
async fn a_template_renders_in_a_runner_process() {
    let options = RuntimeOptions {
        isolation: Isolation::Process(runner_command()),
        ..RuntimeOptions::default()
    };
    let runtime = PluginRuntime::new(options).unwrap();
    runtime.load_all(&[template("good", "good-template")]).await;
    let rendered = runtime
        .cloud_init_template("good")
        .render(&context())
        .await
        .unwrap();
    assert!(rendered.user_data.starts_with("#cloud-config"));
    let status = runtime.status();
    let runner = status[0].runner.as_ref().unwrap();
    let pid = runner.pid.unwrap();
    let confinement = runner.confinement.as_ref().unwrap();
    assert!(
        confinement.seccomp && confinement.no_new_privs,
        "{confinement:?}"
    );
    assert!(confinement.landlock_abi.is_some(), "{confinement:?}");

    // What the kernel says of the process, not what the runner claims.
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        proc_status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Seccomp:"), "2", "{proc_status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{proc_status}");
    let environment = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environment.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&environment)
    );
    let descriptors: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let target = std::fs::read_link(entry.path()).unwrap();
            format!(
                "{} -> {}",
                entry.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect();
    // Besides the channel (descriptor 0), only the event loop's own: anonymous inodes, and the
    // socket pair it makes to wake itself, made inside the runner's own network namespace
    // (which lists exactly the sockets made there), so none of them was inherited.
    let own_sockets = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    let own_inodes: Vec<&str> = own_sockets
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(6))
        .collect();
    for descriptor in &descriptors[1..] {
        let (_, target) = descriptor.split_once(" -> ").unwrap();
        let inherited = match target.strip_prefix("socket:[") {
            Some(inode) => !own_inodes.contains(&inode.trim_end_matches(']')),
            None => !target.starts_with("anon_inode:"),
        };
        assert!(!inherited, "{descriptors:?} (own sockets: {own_inodes:?})");
    }
    assert!(
        descriptors[0].starts_with("0 -> socket:"),
        "{descriptors:?}"
    );
}

/// A runtime whose plugins run in runners, holding `plugins`.
async fn isolated_runtime(plugins: &[porthole::plugins::PluginSpec]) -> PluginRuntime {
    let options = RuntimeOptions {
        isolation: Isolation::Process(runner_command()),
        ..RuntimeOptions::default()
    };
    let runtime = PluginRuntime::new(options).unwrap();
    runtime.load_all(plugins).await;
    runtime
}

#[tokio::test]
async fn a_runtime_escape_inside_a_runner_can_open_connect_exec_or_trace_nothing() {
    // A port of "the daemon's" the escaped guest tries to reach.
    let daemon = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    daemon.set_nonblocking(true).unwrap();
    let port = daemon.local_addr().unwrap().port();
    let probe = manifest("escape", &wasm("escape-probe"), PluginWorld::DnsProvider);
    let runtime = isolated_runtime(&[probe]).await;
    let record = DnsRecord {
        name: "probe.example.com".into(),
        kind: RecordKind::Txt,
        content: format!("{port} {}", std::process::id()),
        ttl: 60,
        proxied: false,
    };
    let outcome = runtime
        .dns_provider("escape")
        .upsert_record("example.com", &record)
        .await;
    let Err(CallError::Plugin { failure, .. }) = outcome else {
        panic!("the probe reports through its error: {outcome:?}");
    };
    let attempts: Vec<&str> = failure.message.lines().collect();
    let tried: Vec<&str> = attempts
        .iter()
        .filter_map(|line| line.split(':').next())
        .collect();
    assert_eq!(
        tried,
        [
            "open",
            "open-daemon-memory",
            "socket",
            "connect",
            "exec",
            "spawn",
            "ptrace",
            "signal",
            "process_vm_readv"
        ]
    );
    for attempt in &attempts {
        assert!(
            attempt.contains(": denied ("),
            "{attempt}\n{}",
            failure.message
        );
    }
    assert!(
        daemon.accept().is_err(),
        "nothing connected to the daemon's port"
    );
    // The runner is still the same process, serving: the exec did not replace it.
    let status = runtime.status();
    let runner = status[0].runner.as_ref().unwrap();
    assert_eq!(runner.restarts, 0, "{runner:?}");
}

#[tokio::test]
async fn a_runner_killed_amid_a_hundred_calls_fails_them_cleanly_and_is_started_again() {
    let runtime = isolated_runtime(&[template("cue", "cue-template")]).await;
    let first = runtime.status()[0].runner.clone().unwrap();
    let template = runtime.cloud_init_template("cue");
    // Each call computes for 20 ms, so the hundred are still in the runner when it is killed.
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let template = template.clone();
            tokio::spawn(async move { template.render(&on_cue("slow-20")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = Pid::from_raw(first.pid.unwrap() as i32);
    nix::sys::signal::kill(pid, Signal::SIGKILL).unwrap();

    let (mut succeeded, mut failed) = (0, Vec::new());
    for call in calls {
        match call.await.unwrap() {
            Ok(rendered) => {
                assert!(rendered.user_data.starts_with("#cloud-config"));
                succeeded += 1;
            }
            Err(err) => failed.push(err),
        }
    }
    assert!(!failed.is_empty(), "the kill came after every call");
    for err in &failed {
        assert!(
            matches!(
                err,
                CallError::Runner { .. } | CallError::Interrupted { .. }
            ),
            "{err:?}"
        );
    }
    eprintln!(
        "{succeeded} calls finished before the kill, {} were cut short",
        failed.len()
    );

    // The daemon's side goes on: the next call starts a new runner, and the crash counted once.
    let rendered = template.render(&context()).await.unwrap();
    assert!(rendered.user_data.contains("hostname: vm42"));
    let status = &runtime.status()[0];
    let second = status.runner.clone().unwrap();
    assert_eq!(second.restarts, 1, "{second:?}");
    assert_ne!(second.pid, first.pid);
    assert_eq!(status.state, PluginState::Loaded, "{status:?}");
}

/// The probe's record, with `content` as its cue.
fn cue(content: &str) -> DnsRecord {
    DnsRecord {
        name: "probe.example.com".into(),
        kind: RecordKind::Txt,
        content: content.into(),
        ttl: 60,
        proxied: false,
    }
}

#[tokio::test]
async fn a_runner_that_garbles_its_channel_or_hangs_is_killed_and_replaced() {
    let mut probe = manifest("escape", &wasm("escape-probe"), PluginWorld::DnsProvider);
    probe.limits.timeout_ms = 500;
    let runtime = isolated_runtime(&[probe]).await;
    let dns = runtime.dns_provider("escape");
    let pid = || runtime.status()[0].runner.clone().unwrap().pid;

    let before = pid();
    let garbled = dns.upsert_record("example.com", &cue("garble")).await;
    assert!(
        matches!(&garbled, Err(CallError::Runner { detail, .. }) if detail.contains("malformed")),
        "{garbled:?}"
    );
    // The next call runs in a new runner.
    let listed = dns.list_records("example.com").await.unwrap();
    assert!(listed.is_empty());
    let after_garble = pid();
    assert_ne!(after_garble, before);

    // Stuck outside the guest, past the call's deadline and its grace: killed.
    let started = std::time::Instant::now();
    let hung = dns.upsert_record("example.com", &cue("hang 30000")).await;
    assert!(matches!(hung, Err(CallError::Timeout { .. })), "{hung:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    dns.list_records("example.com").await.unwrap();
    assert_ne!(pid(), after_garble);
    assert_eq!(runtime.status()[0].runner.clone().unwrap().restarts, 2);
}

/// The demo with the cloud-init plugin, its runners started as `runner`, and `extra` config.
async fn demo_with_runner(runner: &str, extra: &str) -> anyhow::Result<porthole::demo::Demo> {
    porthole::demo::Demo::start_with(porthole::demo::DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim: porthole_sim::SimConfig::default(),
        extra_config: crate::first_party::plugin_entry("cloudinit-basic", "cloud-init-template")
            + extra,
        plugins_dir: None,
        plugin_runner: Some(runner.into()),
    })
    .await
}

#[tokio::test]
async fn a_daemon_that_cannot_confine_its_plugins_refuses_to_start_unless_told_in_process() {
    // `/bin/false` stands for a kernel without Landlock or seccomp: no runner confines itself.
    let refused = demo_with_runner("/bin/false", "").await;
    let err = format!("{:#}", refused.err().expect("the daemon started"));
    assert!(err.contains("plugins cannot be isolated here"), "{err}");
    assert!(err.contains("mode = \"in-process\""), "{err}");

    let demo = demo_with_runner(
        "/bin/false",
        "\n[plugin_isolation]\nmode = \"in-process\"\n",
    )
    .await
    .unwrap();
    let admin = demo.account("admin").unwrap().api_token.clone();
    let plugins: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/plugins", demo.credentials().url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plugin = &plugins[0];
    assert_eq!(plugin["isolation"], "in-process", "{plugins}");
    assert_eq!(plugin["state"]["state"], "loaded", "{plugins}");
    assert!(plugin["runner"].is_null(), "{plugins}");
    demo.stop().await.unwrap();
}
