//! Plugins in runner processes of their own: what the kernel says of a runner, syscalls a
//! runtime escape would make, and runners that die mid-call.

use porthole::plugins::isolation::Isolation;
use porthole::plugins::{PluginRuntime, RuntimeOptions};

use crate::plugins_isolation::runner_command;
use crate::plugins_sandbox::{context, template};

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
