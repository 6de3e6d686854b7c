//! The rendered user-data passes cloud-init's own schema check (Debian's `cloud-init` package).

use cloudinit_lab::{Context, Options, render_with};
use porthole_plugin_support::testing::cloud_init_schema;

#[test]
fn lab_user_data_passes_cloud_init_schema() {
    let context = Context {
        hostname: "lab7".into(),
        fqdn: "lab7.lab.example.com".into(),
        username: "student".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests s@x".into()],
        password_hash: Some("$6$salt$0123456789abcdefghijABCDEFGHIJ./0123".into()),
        tunnel_token: Some("eyJhIjoiYWNjdCJ9".into()),
        os: "ubuntu-24.04".into(),
        extra: vec![],
    };
    for containerlab in [false, true] {
        let options = Options {
            containerlab,
            packages: vec!["tmux".into()],
            ..Options::default()
        };
        let rendered = render_with(&context, &options).unwrap();
        cloud_init_schema(&rendered.user_data).unwrap();
    }
}
