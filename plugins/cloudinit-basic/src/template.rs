//! The template: context + options → NoCloud documents.

use crate::options::Options;
use porthole_plugin_support::cloud_config::{
    self, Context, InvalidContext, Rendered, check_packages,
};
use porthole_plugin_support::yaml::Yaml;

/// Renders with the default options (passwordless sudo, bash, no extra packages).
pub fn render(context: &Context) -> Result<Rendered, InvalidContext> {
    render_with(context, &Options::default())
}

/// Renders the user-data; network-config and meta-data are left to Porthole (DHCP, and its
/// own instance-id).
pub fn render_with(context: &Context, options: &Options) -> Result<Rendered, InvalidContext> {
    cloud_config::validate(context)?;
    options.user.validate()?;
    check_packages(&options.packages)?;
    let mut document = cloud_config::identity(context, &options.user);
    document.extend(cloud_config::packages(&options.packages));
    if options.package_upgrade {
        document.push(("package_upgrade".into(), Yaml::Bool(true)));
    }
    Ok(Rendered {
        user_data: cloud_config::user_data(document),
        network_config: None,
        meta_data: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            hostname: "web1".into(),
            fqdn: "web1.example.com".into(),
            username: "alice".into(),
            ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests a@b".into()],
            password_hash: Some("$6$saltsalt$0123456789abcdefghijABCDEFGHIJ./0123456789".into()),
            tunnel_token: None,
            os: "ubuntu-24.04".into(),
            extra: vec![],
        }
    }

    #[test]
    fn renders_the_user_with_keys_and_hash() {
        let options = Options {
            packages: vec!["curl".into()],
            ..Options::default()
        };
        let user_data = render_with(&context(), &options).unwrap().user_data;
        assert_eq!(
            user_data,
            r#"#cloud-config
hostname: "web1"
fqdn: "web1.example.com"
prefer_fqdn_over_hostname: false
manage_etc_hosts: true
users:
  - name: "alice"
    shell: "/bin/bash"
    groups:
      - "sudo"
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: false
    passwd: "$6$saltsalt$0123456789abcdefghijABCDEFGHIJ./0123456789"
    ssh_authorized_keys:
      - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests a@b"
ssh_pwauth: false
disable_root: true
package_update: true
packages:
  - "curl"
"#
        );
    }

    #[test]
    fn without_a_hash_the_password_stays_locked() {
        let mut context = context();
        context.password_hash = None;
        let user_data = render(&context).unwrap().user_data;
        assert!(user_data.contains("lock_passwd: true"));
        assert!(!user_data.contains("\n    passwd: "));
        assert!(!user_data.contains("packages"));
    }

    #[test]
    fn refuses_bad_input_instead_of_writing_it() {
        let mut context = context();
        context.hostname = "web1\nruncmd: [reboot]".into();
        assert_eq!(render(&context).unwrap_err().field, "hostname");
        let options = Options {
            packages: vec!["curl\nruncmd".into()],
            ..Options::default()
        };
        assert_eq!(
            render_with(&self::context(), &options).unwrap_err().field,
            "package"
        );
    }
}
