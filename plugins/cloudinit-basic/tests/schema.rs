//! The rendered user-data passes cloud-init's own schema check (Debian's `cloud-init` package).

use cloudinit_basic::{Context, Options, render_with};
use porthole_plugin_support::testing::cloud_init_schema;

fn context() -> Context {
    Context {
        hostname: "vm42".into(),
        fqdn: "vm42.lab.example.com".into(),
        username: "alice".into(),
        ssh_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests alice@laptop".into(),
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQFakeRsaKey bob".into(),
        ],
        password_hash: Some("$6$rounds=4096$salt$0123456789abcdefghijABCDEFGHIJ./0123".into()),
        tunnel_token: None,
        os: "debian-12".into(),
        extra: vec![],
    }
}

#[test]
fn full_user_data_passes_cloud_init_schema() {
    let options = Options {
        packages: vec!["curl".into(), "qemu-guest-agent".into()],
        package_upgrade: true,
        ..Options::default()
    };
    let rendered = render_with(&context(), &options).unwrap();
    cloud_init_schema(&rendered.user_data).unwrap();
}

#[test]
fn minimal_user_data_passes_cloud_init_schema() {
    let mut context = context();
    context.ssh_keys.clear();
    context.password_hash = None;
    let mut options = Options::default();
    options.user.sudo = false;
    let rendered = render_with(&context, &options).unwrap();
    cloud_init_schema(&rendered.user_data).unwrap();
}
