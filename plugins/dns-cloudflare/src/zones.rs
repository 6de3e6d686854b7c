//! Finding a zone's id: from the `zone_id` setting, or by name.

use porthole_plugin_support::cloudflare::Cloudflare;
use porthole_plugin_support::error::{ErrorKind, PluginError};
use porthole_plugin_support::http::{HttpClient, encode_component};
use serde::Deserialize;

#[derive(Deserialize)]
struct Zone {
    id: String,
    name: String,
}

/// The id of the zone named `zone` (already normalized: lowercase, no trailing dot).
pub fn lookup<H: HttpClient>(api: &Cloudflare<'_, H>, zone: &str) -> Result<String, PluginError> {
    let path = format!("/zones?name={}", encode_component(zone));
    let zones: Vec<Zone> = api.list(&path)?;
    zones
        .into_iter()
        .find(|z| z.name.eq_ignore_ascii_case(zone))
        .map(|z| z.id)
        .ok_or_else(|| {
            PluginError::new(
                ErrorKind::NotFound,
                format!("no Cloudflare zone named {zone} is visible to the API token"),
            )
        })
}

/// Cloudflare ids are hex; anything else must not reach a URL path.
pub fn check_id(id: &str, what: &str) -> Result<(), PluginError> {
    let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    valid
        .then_some(())
        .ok_or_else(|| PluginError::invalid(format!("{what} {id:?} is not a Cloudflare id")))
}
