//! The template: context + options → NoCloud documents.

use crate::options::Options;
use crate::setup_script::{self, SCRIPT_PATH, SSHD_DROP_IN, SSHD_DROP_IN_PATH, TOKEN_PATH};
use porthole_plugin_support::cloud_config::{
    self, Context, InvalidContext, Rendered, check_packages,
};
use porthole_plugin_support::yaml::Yaml;

/// Packages the setup script itself needs.
const BASE_PACKAGES: [&str; 3] = ["ca-certificates", "curl", "gnupg"];

/// Renders the lab VM's user-data; the context must carry a tunnel token.
pub fn render_with(context: &Context, options: &Options) -> Result<Rendered, InvalidContext> {
    cloud_config::validate(context)?;
    options.user.validate()?;
    check_packages(&options.packages)?;
    let token = tunnel_token(context)?;
    let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
    packages.extend(options.packages.iter().cloned());
    let docker_user = options.containerlab.then_some(context.username.as_str());
    let mut document = cloud_config::identity(context, &options.user);
    document.extend(cloud_config::packages(&packages));
    document.push(("write_files".into(), write_files(token, docker_user)));
    document.push(("runcmd".into(), Yaml::Seq(vec![Yaml::strs(&[SCRIPT_PATH])])));
    Ok(Rendered {
        user_data: cloud_config::user_data(document),
        network_config: None,
        meta_data: None,
    })
}

/// Connector tokens are base64 of a small JSON document.
fn tunnel_token(context: &Context) -> Result<&str, InvalidContext> {
    let missing = || InvalidContext {
        field: "tunnel-token".into(),
        reason: "the lab template needs a tunnel (the service has none)".into(),
    };
    let token = context.tunnel_token.as_deref().ok_or_else(missing)?;
    let valid = !token.is_empty()
        && token.len() <= 4096
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b));
    if !valid {
        return Err(InvalidContext {
            field: "tunnel-token".into(),
            reason: "not a connector token".into(),
        });
    }
    Ok(token)
}

fn write_files(token: &str, docker_user: Option<&str>) -> Yaml {
    let file = |path: &str, permissions: &str, content: String| {
        Yaml::Map(vec![
            ("path".into(), Yaml::str(path)),
            ("owner".into(), Yaml::str("root:root")),
            ("permissions".into(), Yaml::str(permissions)),
            ("content".into(), Yaml::Str(content)),
        ])
    };
    Yaml::Seq(vec![
        file(SSHD_DROP_IN_PATH, "0644", SSHD_DROP_IN.to_owned()),
        file(TOKEN_PATH, "0600", token.to_owned()),
        file(SCRIPT_PATH, "0700", setup_script::script(docker_user)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn context() -> Context {
        Context {
            hostname: "lab7".into(),
            fqdn: "lab7.lab.example.com".into(),
            username: "student".into(),
            ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests s@x".into()],
            password_hash: None,
            tunnel_token: Some("eyJhIjoiYWNjdCIsInQiOiJ0dW4iLCJzIjoic2VjcmV0In0=".into()),
            os: "debian-12".into(),
            extra: vec![],
        }
    }

    #[test]
    fn installs_cloudflared_with_the_token_and_locks_ssh_to_loopback() {
        let user_data = render_with(&context(), &Options::default())
            .unwrap()
            .user_data;
        assert!(user_data.contains("ListenAddress 127.0.0.1"));
        assert!(user_data.contains("cloudflared service install"));
        assert!(user_data.contains("\"eyJhIjoiYWNjdCIsInQiOiJ0dW4iLCJzIjoic2VjcmV0In0=\""));
        assert!(user_data.contains("pkg.cloudflare.com/cloudflared"));
        assert!(!user_data.contains("containerlab"));
        assert!(user_data.contains("runcmd:\n  -\n    - \"/usr/local/sbin/porthole-lab-setup\"\n"));
    }

    #[test]
    fn containerlab_is_opt_in() {
        let options = Options {
            containerlab: true,
            ..Options::default()
        };
        let user_data = render_with(&context(), &options).unwrap().user_data;
        assert!(user_data.contains("get.containerlab.dev"));
        assert!(user_data.contains("usermod -aG docker student"));
    }

    #[test]
    fn refuses_a_missing_or_odd_token() {
        let mut context = context();
        context.tunnel_token = None;
        assert_eq!(
            render_with(&context, &Options::default())
                .unwrap_err()
                .field,
            "tunnel-token"
        );
        context.tunnel_token = Some("abc\"; reboot; \"".into());
        assert_eq!(
            render_with(&context, &Options::default())
                .unwrap_err()
                .field,
            "tunnel-token"
        );
    }
}
