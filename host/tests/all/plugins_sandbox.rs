//! Containment of hostile plugins: each one ends in a clear error within its deadline, while a
//! well-behaved plugin's calls keep succeeding beside it.
//!
//! The hostile components live in `tests/plugins/` and are built here, once per test binary run,
//! with one well-behaved DNS provider built against the contract's first version, `0.1.0`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use porthole::config::{PluginLimits, PluginSpec, PluginWorld, Secret};
use porthole::plugins::{
    CallError, DnsRecord, FailureKind, PlanSize, PluginRuntime, PluginState, PtrRecord, RecordKind,
    RenderContext, RuntimeOptions,
};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds `tests/plugins` for wasm32-wasip2 once and returns its output directory.
fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let workspace = repo_root().join("tests/plugins");
        let target_dir = workspace.join("target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--locked",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(workspace.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .map_err(|err| format!("could not run cargo: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "building tests/plugins failed (is the wasm32-wasip2 target installed? \
                 `rustup target add wasm32-wasip2`):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(target_dir.join("wasm32-wasip2/release"))
    });
    match built {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

pub(crate) fn wasm(crate_name: &str) -> PathBuf {
    built_plugins().join(format!("{}.wasm", crate_name.replace('-', "_")))
}

pub(crate) fn sha256_of(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A manifest for `file` as plugin `name`, with test-friendly limits.
pub(crate) fn manifest(name: &str, file: &Path, world: PluginWorld) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        world,
        path: file.to_path_buf(),
        sha256: sha256_of(file),
        allowed_hosts: Vec::new(),
        allowed_addresses: Vec::new(),
        ca_file: None,
        limits: PluginLimits {
            memory_mib: 32,
            // Generous: the sandbox, not a slow CI machine, should be what stops a plugin.
            timeout_ms: 10_000,
            max_http_requests: 4,
            kv_quota_kib: 64,
            ..PluginLimits::default()
        },
        settings: BTreeMap::new(),
    }
}

pub(crate) fn template(name: &str, crate_name: &str) -> PluginSpec {
    manifest(name, &wasm(crate_name), PluginWorld::CloudInitTemplate)
}

async fn runtime_with(plugins: &[PluginSpec]) -> PluginRuntime {
    runtime_with_options(plugins, RuntimeOptions::default()).await
}

pub(crate) async fn runtime_with_options(
    plugins: &[PluginSpec],
    options: RuntimeOptions,
) -> PluginRuntime {
    let runtime = PluginRuntime::new(crate::plugins_isolation::isolated(options)).unwrap();
    runtime.load_all(plugins).await;
    runtime
}

pub(crate) fn context() -> RenderContext {
    RenderContext {
        hostname: "vm42".into(),
        fqdn: "vm42.lab.example.com".into(),
        username: "alice".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3Nza alice@laptop".into()],
        password_hash: None,
        tunnel_token: None,
        plan: PlanSize {
            cores: 2,
            memory_mib: 2048,
            disk_gib: 20,
        },
        os: "debian-12".into(),
        extra: Vec::new(),
    }
}

fn state_of(runtime: &PluginRuntime, name: &str) -> PluginState {
    runtime
        .status()
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.state)
        .unwrap()
}

/// Runs the hostile call and, at the same time, a good plugin's call; the good one must succeed.
async fn beside_good_plugin<T>(
    runtime: &PluginRuntime,
    hostile: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let good = runtime.cloud_init_template("good");
    let good_calls = async {
        for _ in 0..5 {
            let rendered = good.render(&context()).await;
            assert!(
                rendered.is_ok(),
                "the good plugin failed beside a hostile one: {rendered:?}"
            );
        }
    };
    let (outcome, ()) = tokio::join!(hostile, good_calls);
    outcome
}

#[tokio::test]
async fn good_template_renders_validated_cloud_config() {
    let runtime = runtime_with(&[template("good", "good-template")]).await;
    let rendered = runtime
        .cloud_init_template("good")
        .render(&context())
        .await
        .unwrap();
    assert!(rendered.user_data.starts_with("#cloud-config\n"));
    assert!(rendered.user_data.contains("hostname: vm42"));
    assert!(
        rendered
            .user_data
            .contains("ssh-ed25519 AAAAC3Nza alice@laptop")
    );
    assert_eq!(state_of(&runtime, "good"), PluginState::Loaded);
}

#[tokio::test]
async fn each_plugin_reads_only_its_own_settings() {
    let mut first = template("first", "good-template");
    first
        .settings
        .insert("greeting".into(), Secret::new("hello from first"));
    let mut second = template("second", "good-template");
    second
        .settings
        .insert("other".into(), Secret::new("second's secret"));
    let runtime = runtime_with(&[first, second]).await;

    let first = runtime
        .cloud_init_template("first")
        .render(&context())
        .await
        .unwrap();
    assert!(first.user_data.contains("hello from first"));
    let second = runtime
        .cloud_init_template("second")
        .render(&context())
        .await
        .unwrap();
    assert!(!second.user_data.contains("hello from first"));
    assert!(second.user_data.contains("content: \"hello\""));
}

#[tokio::test(flavor = "current_thread")]
async fn infinite_loop_ends_in_a_timeout_while_other_plugins_keep_working() {
    let mut spin = template("spin", "spin-template");
    spin.limits.timeout_ms = 1_000;
    let runtime = runtime_with(&[template("good", "good-template"), spin]).await;
    // One runtime thread: the good plugin's calls can only finish first if the looping guest
    // gives the thread back while it runs.
    let good_done = std::cell::Cell::new(false);
    let good_calls = async {
        for _ in 0..5 {
            let rendered = runtime.cloud_init_template("good").render(&context()).await;
            assert!(rendered.is_ok(), "{rendered:?}");
        }
        good_done.set(true);
    };
    let spinning = async {
        let outcome = runtime.cloud_init_template("spin").render(&context()).await;
        (outcome, good_done.get())
    };
    let ((outcome, good_finished_first), ()) = tokio::join!(spinning, good_calls);
    assert!(
        good_finished_first,
        "the good plugin's calls waited for the looping one to end"
    );
    assert!(
        matches!(
            outcome,
            Err(CallError::Timeout {
                limit_ms: 1_000,
                ..
            })
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("bomb", "memory-bomb"),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("bomb").render(&context()),
    )
    .await;
    match outcome {
        Err(CallError::ResourceLimit { detail, .. }) => {
            assert_eq!(detail, "memory limit of 32 MiB reached")
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
}

#[tokio::test]
async fn handing_the_host_too_much_data_in_one_call_is_a_limit_that_counts_against_the_plugin() {
    let options = RuntimeOptions {
        breaker_threshold: 1,
        breaker_cool_down: Duration::from_secs(3600),
        ..RuntimeOptions::default()
    };
    let runtime = runtime_with_options(
        &[
            template("good", "good-template"),
            template("cue", "cue-template"),
        ],
        options,
    )
    .await;
    // 9 MiB in one `host.log` call, past the 8 MiB one host call may carry.
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("cue").render(&on_cue("hog")),
    )
    .await;
    match outcome {
        Err(CallError::ResourceLimit { detail, .. }) => {
            assert!(
                detail.contains("more than 8 MiB in one host call"),
                "{detail}"
            )
        }
        other => panic!("expected the hostcall data limit, got {other:?}"),
    }
    assert!(matches!(
        state_of(&runtime, "cue"),
        PluginState::Tripped { .. }
    ));
}

#[tokio::test]
async fn deep_recursion_ends_in_a_trap_not_a_host_crash() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("deep", "deep-recursion"),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("deep").render(&context()),
    )
    .await;
    // Either the wasm stack limit or the guest's own shadow stack (in linear memory) gives out
    // first; both end the call without touching the host's stack.
    match outcome {
        Err(CallError::ResourceLimit { detail, .. }) => {
            assert!(detail.contains("stack"), "{detail}")
        }
        Err(CallError::Trap { detail, .. }) => {
            assert!(detail.contains("out of bounds"), "{detail}")
        }
        other => panic!("expected the recursion to trap, got {other:?}"),
    }
}

#[tokio::test]
async fn log_flood_is_capped_and_the_call_still_succeeds() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("flood", "log-flood"),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("flood").render(&context()),
    )
    .await;
    assert!(outcome.unwrap().user_data.contains("hostname: vm42"));
}

/// Everything the daemon logs on this thread while `f` runs, as plain text.
async fn logged_during<T>(f: impl Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let value = {
        let _on_this_thread = tracing::subscriber::set_default(subscriber);
        f.await
    };
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    (value, text)
}

// One thread, so that the subscriber set for it sees the call's output being logged.
#[tokio::test(flavor = "current_thread")]
async fn a_gigantic_stdout_line_is_cut_with_a_marker_and_the_call_still_succeeds() {
    let runtime = runtime_with(&[template("cue", "cue-template")]).await;
    // 32 MiB on stdout, one line with no newline.
    let (outcome, log) =
        logged_during(runtime.cloud_init_template("cue").render(&on_cue("shout"))).await;
    assert!(outcome.unwrap().user_data.contains("hostname: shout"));
    let line = log
        .lines()
        .find(|line| line.contains("stream=\"stdout\""))
        .unwrap_or_else(|| panic!("no stdout line logged:\n{log}"));
    assert!(line.contains(&"a".repeat(4096)), "{line:.200}");
    assert!(!line.contains(&"a".repeat(4097)), "{line:.200}");
    assert!(
        line.contains(&format!(
            "[… {} more bytes of this line cut]",
            (32 << 20) - 4096
        )),
        "{line:.200}"
    );
    assert!(log.len() < 16 * 1024, "{} bytes logged", log.len());
}

#[tokio::test]
async fn oversized_user_data_is_refused_by_the_facade() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("big", "oversized-output"),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("big").render(&context()),
    )
    .await;
    match outcome {
        Err(CallError::InvalidOutput { detail, .. }) => {
            assert!(detail.contains("user-data is"), "{detail}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[tokio::test]
async fn user_data_that_is_not_yaml_is_refused() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("yaml", "invalid-yaml"),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("yaml").render(&context()),
    )
    .await;
    match outcome {
        Err(CallError::InvalidOutput { detail, .. }) => {
            assert!(detail.contains("not valid YAML"), "{detail}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[tokio::test]
async fn environment_arguments_and_files_are_invisible_to_a_plugin() {
    // SAFETY of the test's claim: the daemon's own environment is not empty.
    assert!(std::env::vars().count() > 0);
    let runtime = runtime_with(&[
        template("good", "good-template"),
        template("snoop", "snoop-template"),
    ])
    .await;
    let seen = beside_good_plugin(
        &runtime,
        runtime.cloud_init_template("snoop").render(&context()),
    )
    .await
    .unwrap()
    .user_data;
    assert!(seen.contains("env_count: 0"), "{seen}");
    assert!(seen.contains("args_count: 0"), "{seen}");
    for (what, line) in [
        ("/etc/passwd", "passwd"),
        ("environ", "environ"),
        ("cwd file", "dot"),
        ("/", "root"),
    ] {
        let found = seen
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_default();
        assert!(found.contains("error"), "{what} was readable: {found}");
    }
}

#[tokio::test]
async fn a_component_that_opens_a_socket_loads_and_is_denied_the_socket() {
    let runtime = runtime_with(&[template("socket", "socket-user")]).await;
    assert_eq!(state_of(&runtime, "socket"), PluginState::Loaded);
    let rendered = runtime
        .cloud_init_template("socket")
        .render(&context())
        .await
        .map(|r| r.user_data);
    let Ok(user_data) = rendered else {
        panic!("the plugin should see the refusal and answer: {rendered:?}");
    };
    assert!(
        user_data.contains("socket: PermissionDenied"),
        "{user_data}"
    );
}

/// A component whose one core module declares three memories.
fn many_memories_component() -> Vec<u8> {
    use wasm_encoder::{
        Component, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    };
    let mut memories = MemorySection::new();
    for _ in 0..3 {
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    let mut module = Module::new();
    module.section(&memories);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    component.section(&instances);
    component.finish()
}

#[tokio::test]
async fn component_with_several_memories_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memories.wasm");
    std::fs::write(&file, many_memories_component()).unwrap();
    let runtime =
        runtime_with(&[manifest("memories", &file, PluginWorld::CloudInitTemplate)]).await;
    match state_of(&runtime, "memories") {
        PluginState::Refused { reason } => assert!(reason.contains("memor"), "{reason}"),
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn digest_mismatch_refuses_the_plugin_and_the_status_says_why() {
    let mut tampered = template("tampered", "good-template");
    tampered.sha256 = "0".repeat(64);
    let runtime = runtime_with(&[tampered, template("good", "good-template")]).await;
    match state_of(&runtime, "tampered") {
        PluginState::Refused { reason } => assert!(reason.contains("SHA-256 mismatch"), "{reason}"),
        other => panic!("expected refusal, got {other:?}"),
    }
    assert_eq!(state_of(&runtime, "good"), PluginState::Loaded);
}

#[tokio::test]
async fn declared_world_must_match_what_the_component_exports() {
    let runtime = runtime_with(&[manifest(
        "liar",
        &wasm("good-template"),
        PluginWorld::DnsProvider,
    )])
    .await;
    match state_of(&runtime, "liar") {
        PluginState::Refused { reason } => {
            assert!(
                reason.contains("dns-provider") && reason.contains("cloud-init-template"),
                "{reason}"
            )
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn calling_a_plugin_as_another_kind_is_refused() {
    let runtime = runtime_with(&[template("good", "good-template")]).await;
    let call = runtime
        .dns_provider("good")
        .list_records("example.com")
        .await;
    assert!(
        matches!(call, Err(CallError::WrongWorld { .. })),
        "{call:?}"
    );
    let call = runtime
        .cloud_init_template("nobody")
        .render(&context())
        .await;
    assert!(matches!(call, Err(CallError::Unknown { .. })), "{call:?}");
}

#[tokio::test]
async fn repeated_misbehaviour_trips_the_plugin_until_an_operator_resets_it() {
    // The plugin's own limit, not the runtime's default of 5.
    let mut plugin = template("yaml", "invalid-yaml");
    plugin.limits.failures_to_trip = Some(2);
    let runtime = runtime_with(&[plugin]).await;
    let yaml = runtime.cloud_init_template("yaml");
    for _ in 0..2 {
        assert!(matches!(
            yaml.render(&context()).await,
            Err(CallError::InvalidOutput { .. })
        ));
    }
    assert!(matches!(
        state_of(&runtime, "yaml"),
        PluginState::Tripped { .. }
    ));
    assert!(matches!(
        yaml.render(&context()).await,
        Err(CallError::Tripped { .. })
    ));
    let status = runtime
        .status()
        .into_iter()
        .find(|s| s.name == "yaml")
        .unwrap();
    assert!(
        status
            .recent_errors
            .iter()
            .any(|e| e.message.contains("YAML"))
    );

    assert!(runtime.reset("yaml").await);
    assert_eq!(state_of(&runtime, "yaml"), PluginState::Loaded);
    assert!(matches!(
        yaml.render(&context()).await,
        Err(CallError::InvalidOutput { .. })
    ));
}

/// `context()` with `hostname` as the cue the `cue-template` plugin acts on.
pub(crate) fn on_cue(cue: &str) -> RenderContext {
    RenderContext {
        hostname: cue.into(),
        ..context()
    }
}

/// A short cool-down, and a trip at the first misbehaviour, remembered in a database at `dir`.
async fn breaker_options(dir: &Path) -> RuntimeOptions {
    let store = porthole::store::Store::open(&dir.join("porthole.db"))
        .await
        .unwrap();
    RuntimeOptions {
        breaker_threshold: 1,
        breaker_cool_down: COOL_DOWN,
        ..porthole::plugins::backed_by(&store)
    }
}

const COOL_DOWN: Duration = Duration::from_millis(500);

fn is_tripped(outcome: &Result<impl std::fmt::Debug, CallError>) -> bool {
    matches!(outcome, Err(CallError::Tripped { .. }))
}

/// Two daemons on one PostgreSQL database, each following the breakers there: a plugin that
/// misbehaves on one is switched off on the other within a second, and an operator's reset on
/// the other switches it on again on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_tripped_or_reset_on_one_daemon_holds_on_every_daemon() {
    let database = tokio::task::spawn_blocking(porthole_pg_fixture::TestDatabase::create)
        .await
        .unwrap()
        .unwrap();
    let target =
        porthole::config::Database::resolve(database.url(), &Default::default(), Path::new("/"))
            .unwrap();
    let plugins = [template("cue", "cue-template")];
    let mut daemons = Vec::new();
    for _ in 0..2 {
        let store = porthole::store::Store::connect(&target).await.unwrap();
        let options = RuntimeOptions {
            breaker_threshold: 1,
            breaker_cool_down: Duration::from_secs(600),
            ..porthole::plugins::backed_by(&store)
        };
        let runtime = runtime_with_options(&plugins, options).await;
        let follower = tokio::spawn(porthole::plugins::follow_breakers(runtime.clone(), store));
        daemons.push((runtime, follower));
    }
    let (one, other) = (&daemons[0].0, &daemons[1].0);
    other
        .cloud_init_template("cue")
        .render(&on_cue("fine"))
        .await
        .unwrap();

    let trapped = one.cloud_init_template("cue").render(&on_cue("trap")).await;
    assert!(
        matches!(trapped, Err(CallError::Trap { .. })),
        "{trapped:?}"
    );
    let switched_off = async {
        while !matches!(state_of(other, "cue"), PluginState::Tripped { .. }) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), switched_off)
        .await
        .expect("the other daemon switched the plugin off within a second");
    let refused = other
        .cloud_init_template("cue")
        .render(&on_cue("fine"))
        .await;
    assert!(is_tripped(&refused), "{refused:?}");

    assert!(other.reset("cue").await);
    let switched_on = async {
        while state_of(one, "cue") != PluginState::Loaded {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), switched_on)
        .await
        .expect("the first daemon switched the plugin on within a second");
    one.cloud_init_template("cue")
        .render(&on_cue("fine"))
        .await
        .unwrap();
    for (_, follower) in daemons {
        follower.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripped_plugin_comes_back_through_one_trial_call_after_its_cool_down() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [template("cue", "cue-template")];
    let runtime = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    let cue = runtime.cloud_init_template("cue");
    let trapped = cue.render(&on_cue("trap")).await;
    assert!(
        matches!(trapped, Err(CallError::Trap { .. })),
        "{trapped:?}"
    );
    assert!(is_tripped(&cue.render(&on_cue("fine")).await));

    tokio::time::sleep(COOL_DOWN).await;
    // The trial computes for a while; once it is under way, every other call is still refused.
    let slow = on_cue("slow-1500");
    let mut trial = std::pin::pin!(cue.render(&slow));
    let still_running = tokio::time::timeout(Duration::from_millis(200), &mut trial).await;
    assert!(still_running.is_err(), "{still_running:?}");
    for _ in 0..3 {
        assert!(is_tripped(&cue.render(&on_cue("fine")).await));
    }
    assert!(matches!(
        state_of(&runtime, "cue"),
        PluginState::Tripped { .. }
    ));
    trial.await.unwrap();

    assert_eq!(state_of(&runtime, "cue"), PluginState::Loaded);
    cue.render(&on_cue("fine")).await.unwrap();
    // The successful trial cleared the remembered trip: a restart finds the plugin switched on.
    let restarted = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    assert_eq!(state_of(&restarted, "cue"), PluginState::Loaded);
    restarted
        .cloud_init_template("cue")
        .render(&on_cue("fine"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trial_switches_the_plugin_off_for_a_fresh_cool_down_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [template("cue", "cue-template")];
    let runtime = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    let cue = runtime.cloud_init_template("cue");
    assert!(cue.render(&on_cue("trap")).await.is_err());
    tokio::time::sleep(COOL_DOWN).await;
    let trial = cue.render(&on_cue("trap")).await;
    assert!(matches!(trial, Err(CallError::Trap { .. })), "{trial:?}");
    assert!(is_tripped(&cue.render(&on_cue("fine")).await));

    let restarted = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    assert!(matches!(
        state_of(&restarted, "cue"),
        PluginState::Tripped { .. }
    ));
    let status = restarted
        .status()
        .into_iter()
        .find(|s| s.name == "cue")
        .unwrap();
    assert!(
        status
            .recent_errors
            .iter()
            .any(|e| e.message.contains("before a restart") && e.message.contains("crashed")),
        "{:?}",
        status.recent_errors
    );
    let again = restarted.cloud_init_template("cue");
    assert!(is_tripped(&again.render(&on_cue("fine")).await));
    tokio::time::sleep(COOL_DOWN).await;
    again.render(&on_cue("fine")).await.unwrap();
    assert_eq!(state_of(&restarted, "cue"), PluginState::Loaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_trial_hands_the_trial_to_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with_options(
        &[template("cue", "cue-template")],
        breaker_options(dir.path()).await,
    )
    .await;
    let cue = runtime.cloud_init_template("cue");
    assert!(cue.render(&on_cue("trap")).await.is_err());
    tokio::time::sleep(COOL_DOWN).await;
    // The caller gives up on the trial (a client hanging up does this), dropping the call.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(200), cue.render(&on_cue("slow-5000"))).await;
    assert!(abandoned.is_err(), "{abandoned:?}");
    cue.render(&on_cue("fine")).await.unwrap();
    assert_eq!(state_of(&runtime, "cue"), PluginState::Loaded);
}

#[tokio::test]
async fn an_operators_reset_also_clears_the_trip_a_restart_would_find() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [template("cue", "cue-template")];
    let runtime = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    assert!(
        runtime
            .cloud_init_template("cue")
            .render(&on_cue("trap"))
            .await
            .is_err()
    );
    assert!(runtime.reset("cue").await);
    let restarted = runtime_with_options(&plugins, breaker_options(dir.path()).await).await;
    assert_eq!(state_of(&restarted, "cue"), PluginState::Loaded);
}

/// A tiny HTTP server on loopback that answers `hello` and counts connections.
async fn hello_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    (address, connections)
}

fn probe(name: &str, allowed_hosts: &[String], allowed_addresses: &[IpAddr]) -> PluginSpec {
    let mut plugin = manifest(name, &wasm("egress-probe"), PluginWorld::DnsProvider);
    plugin.allowed_hosts = allowed_hosts
        .iter()
        .map(|h| Url::parse(h).unwrap())
        .collect();
    plugin.allowed_addresses = allowed_addresses.to_vec();
    plugin
}

/// Asks the probe plugin to GET `url`.
async fn fetch(runtime: &PluginRuntime, plugin: &str, url: &str) -> Result<String, CallError> {
    let record = DnsRecord {
        name: "example.com".into(),
        kind: RecordKind::Txt,
        content: url.into(),
        ttl: 60,
        proxied: false,
    };
    runtime
        .dns_provider(plugin)
        .upsert_record("example.com", &record)
        .await
}

fn assert_refused(outcome: Result<String, CallError>, code: &str) {
    match outcome {
        Err(CallError::Plugin { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Upstream);
            assert!(failure.message.contains(code), "{}", failure.message);
        }
        other => panic!("expected the request to be refused with {code}, got {other:?}"),
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn plugin_reaches_a_listed_loopback_endpoint_when_the_operator_lists_that_address() {
    let (address, connections) = hello_server().await;
    let origin = format!("http://{address}");
    let runtime = runtime_with(&[
        template("good", "good-template"),
        probe("probe", std::slice::from_ref(&origin), &[LOOPBACK]),
    ])
    .await;
    let outcome = beside_good_plugin(
        &runtime,
        fetch(&runtime, "probe", &format!("{origin}/zones")),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200:hello");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn listed_loopback_address_opens_nothing_else() {
    let (address, _) = hello_server().await;
    let (other, other_connections) = hello_server().await;
    let runtime =
        runtime_with(&[probe("probe", &[format!("http://{address}")], &[LOOPBACK])]).await;
    assert_refused(
        fetch(&runtime, "probe", &format!("http://{other}/")).await,
        "HttpRequestDenied",
    );
    assert_refused(
        fetch(
            &runtime,
            "probe",
            &format!("http://localhost:{}/", address.port()),
        )
        .await,
        "HttpRequestDenied",
    );
    assert_refused(
        fetch(&runtime, "probe", &format!("https://{address}/")).await,
        "HttpRequestDenied",
    );
    assert_eq!(other_connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn egress_to_an_unlisted_host_is_refused() {
    let runtime = runtime_with(&[
        template("good", "good-template"),
        probe("probe", &["https://api.cloudflare.com".into()], &[]),
    ])
    .await;
    let outcome =
        beside_good_plugin(&runtime, fetch(&runtime, "probe", "https://example.com/")).await;
    assert_refused(outcome, "HttpRequestDenied");
    let status = runtime
        .status()
        .into_iter()
        .find(|s| s.name == "probe")
        .unwrap();
    assert!(
        status
            .recent_errors
            .iter()
            .any(|e| e.message.contains("example.com")),
        "{:?}",
        status.recent_errors
    );
}

#[tokio::test]
async fn egress_to_loopback_metadata_and_proxmox_addresses_is_refused_even_when_listed_as_hosts() {
    let (loopback, loopback_connections) = hello_server().await;
    let (proxmox, proxmox_connections) = hello_server().await;
    let proxmox_url = format!("http://{proxmox}");
    let hosts = vec![
        format!("http://{loopback}"),
        "http://169.254.169.254".to_owned(),
        proxmox_url.clone(),
    ];
    let options = RuntimeOptions {
        protected_urls: vec![Url::parse(&proxmox_url).unwrap()],
        ..RuntimeOptions::default()
    };
    let runtime = runtime_with_options(
        &[
            template("good", "good-template"),
            probe("probe", &hosts, &[]),
        ],
        options,
    )
    .await;
    for url in [
        format!("http://{loopback}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("{proxmox_url}/api2/json/access/ticket"),
    ] {
        let outcome = beside_good_plugin(&runtime, fetch(&runtime, "probe", &url)).await;
        assert_refused(outcome, "DestinationIpProhibited");
    }
    assert_eq!(loopback_connections.load(Ordering::SeqCst), 0);
    assert_eq!(proxmox_connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn allowed_host_name_that_resolves_to_loopback_is_refused() {
    let (address, connections) = hello_server().await;
    let origin = format!("http://localhost:{}", address.port());
    let runtime = runtime_with(&[probe("probe", std::slice::from_ref(&origin), &[])]).await;
    assert_refused(
        fetch(&runtime, "probe", &format!("{origin}/")).await,
        "DestinationIpProhibited",
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn plugin_may_make_only_its_quota_of_requests_per_call() {
    // The probe makes one request per call, so a quota of zero refuses it.
    let (address, connections) = hello_server().await;
    let mut plugin = probe("probe", &[format!("http://{address}")], &[LOOPBACK]);
    plugin.limits.max_http_requests = 0;
    let runtime = runtime_with(&[plugin]).await;
    assert_refused(
        fetch(&runtime, "probe", &format!("http://{address}/")).await,
        "HttpRequestDenied",
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn compiled_artifacts_are_cached_and_a_tampered_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache: Some((dir.path().to_path_buf(), [9; 32])),
        ..RuntimeOptions::default()
    };
    let plugins = [template("good", "good-template")];
    let first = runtime_with_options(&plugins, options.clone()).await;
    assert!(
        first
            .cloud_init_template("good")
            .render(&context())
            .await
            .is_ok()
    );
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    // A restart loads from the cache.
    let second = runtime_with_options(&plugins, options.clone()).await;
    assert!(
        second
            .cloud_init_template("good")
            .render(&context())
            .await
            .is_ok()
    );

    // A flipped byte fails the MAC: the entry is ignored and the plugin compiled afresh.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entries[0], bytes).unwrap();
    let third = runtime_with_options(&plugins, options.clone()).await;
    assert_eq!(state_of(&third, "good"), PluginState::Loaded);
    assert!(
        third
            .cloud_init_template("good")
            .render(&context())
            .await
            .is_ok()
    );

    // An entry in another layout (its version byte says so) is recompiled and rewritten.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let version = bytes[0];
    bytes[0] = version.wrapping_add(1);
    std::fs::write(&entries[0], bytes).unwrap();
    let fourth = runtime_with_options(&plugins, options.clone()).await;
    assert_eq!(state_of(&fourth, "good"), PluginState::Loaded);
    assert_eq!(std::fs::read(&entries[0]).unwrap()[0], version);

    // Entries no configured plugin uses any more (a removed plugin, an older component) go.
    let stale = dir.path().join("gone-0000-1111.cwasm");
    std::fs::write(&stale, b"left behind").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    // Written a moment ago, perhaps by another daemon sharing the directory: kept.
    let fresh = dir.path().join("other-2222-3333.cwasm");
    std::fs::write(&fresh, b"another daemon's").unwrap();
    let unrelated = dir.path().join("README");
    std::fs::write(&unrelated, b"not ours").unwrap();
    drop(runtime_with_options(&plugins, options).await);
    assert!(!stale.exists(), "a stale entry was pruned");
    assert!(entries[0].exists() && unrelated.exists() && fresh.exists());
}

#[tokio::test]
async fn a_cached_artifact_copied_over_another_plugins_entry_is_recompiled_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache: Some((dir.path().to_path_buf(), [9; 32])),
        ..RuntimeOptions::default()
    };
    let plugins = [
        template("good", "good-template"),
        template("yaml", "invalid-yaml"),
    ];
    runtime_with_options(&plugins, options.clone()).await;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let sealed: Vec<Vec<u8>> = entries.iter().map(|e| std::fs::read(e).unwrap()).collect();
    // Each entry now holds the other plugin's artifact, genuinely sealed by this daemon.
    std::fs::write(&entries[0], &sealed[1]).unwrap();
    std::fs::write(&entries[1], &sealed[0]).unwrap();

    let restarted = runtime_with_options(&plugins, options).await;
    let good = restarted
        .cloud_init_template("good")
        .render(&context())
        .await;
    assert!(good.is_ok(), "the good plugin ran other code: {good:?}");
    let yaml = restarted
        .cloud_init_template("yaml")
        .render(&context())
        .await;
    assert!(
        matches!(yaml, Err(CallError::InvalidOutput { .. })),
        "the invalid-yaml plugin ran other code: {yaml:?}"
    );
    for (entry, original) in entries.iter().zip(&sealed) {
        assert_eq!(&std::fs::read(entry).unwrap(), original, "{entry:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_beyond_a_plugins_cap_are_refused_until_one_ends() {
    use porthole::demo::{Demo, DemoSetup};
    let file = wasm("slow-billing");
    let extra = format!(
        "\n[webhooks]\nmax_in_flight = 1\n\n[[plugins]]\nname = \"slow\"\npath = \"{}\"\nsha256 = \"{}\"\nworld = \"billing-adapter\"\n[plugins.limits]\ntimeout_ms = 3000\n",
        file.display(),
        sha256_of(&file)
    );
    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim: porthole_sim::SimConfig::default(),
        extra_config: extra,
        plugins_dir: None,
        plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let hook = format!("{}/hooks/billing/slow", demo.credentials().url);
    let deliver = || async {
        let answer = http.post(&hook).body("{}").send().await.unwrap();
        let retry_after = answer.headers().get("retry-after").cloned();
        (answer.status(), retry_after)
    };

    // Whichever arrives first holds the only place until the deadline stops the plugin (3 s,
    // far longer than the three take to arrive); the other two are turned away at once.
    let (a, b, c) = tokio::join!(deliver(), deliver(), deliver());
    let mut statuses = vec![a.0, b.0, c.0];
    statuses.sort();
    use reqwest::StatusCode;
    assert_eq!(
        statuses,
        [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
    );
    for (status, retry_after) in [a, b, c] {
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(retry_after.unwrap(), "1");
        }
    }
    // The place is free again once the plugin's call has ended.
    let (status, _) = deliver().await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);

    let unknown = http
        .post(format!("{}/hooks/billing/nope", demo.credentials().url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_component_built_against_contract_0_1_0_loads_unchanged_and_keeps_records() {
    let file = wasm("dns-contract-0-1-0");
    let (inspection, verdict) = porthole::plugins::check_file(&file, None).unwrap();
    assert_eq!(inspection.contract.as_deref(), Some("0.1.0"));
    assert_eq!(verdict.unwrap(), PluginWorld::DnsProvider);

    let dir = tempfile::TempDir::new().unwrap();
    let database = porthole::store::Store::open(&dir.path().join("porthole.db"))
        .await
        .unwrap();
    let spec = manifest("old-dns", &file, PluginWorld::DnsProvider);
    let runtime = runtime_with_options(&[spec], porthole::plugins::backed_by(&database)).await;
    assert_eq!(state_of(&runtime, "old-dns"), PluginState::Loaded);
    let dns = runtime.dns_provider("old-dns");
    let record = DnsRecord {
        name: "vm1.lab.example.com".into(),
        kind: RecordKind::Aaaa,
        content: "2001:db8::10".into(),
        ttl: 300,
        proxied: false,
    };
    let id = dns.upsert_record("lab.example.com", &record).await.unwrap();
    let listed = dns.list_records("lab.example.com").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((&listed[0].id, &listed[0].record), (&id, &record));
    dns.delete_record("lab.example.com", &id).await.unwrap();
    assert!(
        dns.list_records("lab.example.com")
            .await
            .unwrap()
            .is_empty()
    );

    // It predates reverse DNS: asking for it is refused before anything runs, and is not held
    // against the plugin.
    assert!(!runtime.keeps_reverse_dns("old-dns"));
    let ptr = PtrRecord {
        name: "10.2.0.192.in-addr.arpa".into(),
        target: "vm1.lab.example.com".into(),
        ttl: 1,
    };
    let refused = dns.set_ptr("2.0.192.in-addr.arpa", &ptr).await.unwrap_err();
    assert!(
        matches!(&refused, CallError::Unsupported { .. })
            && refused.to_string().contains("reverse-dns"),
        "{refused}"
    );
    let status = runtime
        .status()
        .into_iter()
        .find(|s| s.name == "old-dns")
        .unwrap();
    assert!(!status.reverse_dns);
    assert!(
        status.recent_errors.is_empty(),
        "{:?}",
        status.recent_errors
    );
}
