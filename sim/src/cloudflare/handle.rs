//! What tests and the demo see of the Cloudflare side, on [`crate::SimHandle`].

use crate::SimHandle;
use crate::cloudflare::{CloudflareDnsRecord, CloudflareTunnel};

impl SimHandle {
    /// `https://127.0.0.1:PORT/client/v4`: the `api_base` a Cloudflare plugin is pointed at
    /// (same self-signed certificate as the PVE API).
    pub fn cloudflare_url(&self) -> url::Url {
        let text = format!("https://{}/client/v4", self.inner.cloudflare_addr);
        // A socket address always forms a valid URL.
        url::Url::parse(&text).unwrap_or_else(|err| unreachable!("{text} is not a URL: {err}"))
    }

    /// The API token the Cloudflare surface accepts (`Authorization: Bearer …`).
    pub fn cloudflare_token(&self) -> String {
        self.inner.cloudflare.token.clone()
    }

    /// The account id tunnels live under.
    pub fn cloudflare_account_id(&self) -> String {
        self.inner.cloudflare.account_id.clone()
    }

    /// The id of zone `name`, which is created if it does not exist yet.
    pub fn cloudflare_zone(&self, name: &str) -> String {
        self.inner.cloudflare.zone(name)
    }

    /// The DNS records of zone `name`.
    pub fn cloudflare_dns_records(&self, zone: &str) -> Vec<CloudflareDnsRecord> {
        self.inner.cloudflare.dns_records(zone)
    }

    /// Every tunnel of the account, deleted ones included.
    pub fn cloudflare_tunnels(&self) -> Vec<CloudflareTunnel> {
        self.inner.cloudflare.tunnels()
    }

    /// Simulates `cloudflared` connecting to tunnel `id`; returns whether the tunnel is live.
    pub fn cloudflare_connect_tunnel(&self, id: &str) -> bool {
        self.inner.cloudflare.connect_tunnel(id)
    }

    /// `"METHOD /client/v4/…"` of every Cloudflare request so far.
    pub fn cloudflare_requests(&self) -> Vec<String> {
        self.inner.cloudflare.requests()
    }
}
