//! The first-boot shell script: lock SSH to loopback, then install and start `cloudflared`
//! (and optionally containerlab). A script rather than `runcmd` lines so that `set -eu` stops at
//! the first failure and cloud-init reports it.

/// Where the connector token waits (0600) until `cloudflared service install` has read it.
pub const TOKEN_PATH: &str = "/etc/porthole/tunnel-token";
/// Where the script itself is written.
pub const SCRIPT_PATH: &str = "/usr/local/sbin/porthole-lab-setup";
/// The sshd drop-in; Debian's and Ubuntu's `sshd_config` include `sshd_config.d/*.conf` first.
pub const SSHD_DROP_IN_PATH: &str = "/etc/ssh/sshd_config.d/10-porthole-tunnel-only.conf";

/// sshd listens on loopback only; the tunnel's ingress reaches it as `ssh://localhost:22`.
pub const SSHD_DROP_IN: &str = "\
# Written by Porthole's cloudinit-lab template: SSH is reachable only through the tunnel.
ListenAddress 127.0.0.1
ListenAddress ::1
";

const HEADER: &str = r#"#!/bin/sh
# Written by Porthole's cloudinit-lab template.
set -eu
export DEBIAN_FRONTEND=noninteractive

# SSH first, so that even if what follows fails, sshd is not left listening on the network.
# On Ubuntu, ssh.socket takes ListenAddress from sshd_config through a generator.
systemctl daemon-reload
systemctl restart ssh.socket 2>/dev/null || true
systemctl restart ssh

# cloudflared from Cloudflare's apt repository (pkg.cloudflare.com), as a systemd service.
install -d -m 0755 /usr/share/keyrings
curl -fsSL --retry 5 https://pkg.cloudflare.com/cloudflare-main.gpg \
    -o /usr/share/keyrings/cloudflare-main.gpg
echo 'deb [signed-by=/usr/share/keyrings/cloudflare-main.gpg] https://pkg.cloudflare.com/cloudflared any main' \
    > /etc/apt/sources.list.d/cloudflared.list
apt-get update
apt-get install -y cloudflared
cloudflared service install "$(cat /etc/porthole/tunnel-token)"
rm -f /etc/porthole/tunnel-token
"#;

const CONTAINERLAB: &str = r#"
# containerlab (https://containerlab.dev) on Debian's Docker.
apt-get install -y docker.io
curl -fsSL --retry 5 https://get.containerlab.dev -o /tmp/containerlab-install.sh
bash /tmp/containerlab-install.sh
rm -f /tmp/containerlab-install.sh
"#;

/// The script; `docker_user` is added to the `docker` group when containerlab is installed.
pub fn script(containerlab: Option<&str>) -> String {
    let mut script = HEADER.to_owned();
    if let Some(user) = containerlab {
        script.push_str(CONTAINERLAB);
        // The user name was validated as a login name: no shell metacharacters.
        script.push_str(&format!("usermod -aG docker {user}\n"));
    }
    script
}
