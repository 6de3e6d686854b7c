//! What each plugin world may import and must export: pure rules over interface names.
//!
//! The rules are checked against a component's own import list before it is linked, so a plugin
//! that asks for more than its world grants is refused with a message naming the import, rather
//! than failing later with a linker error. Besides the world's own interfaces, every world may
//! import the inert part of WASI that language runtimes reference on start-up (stdio, which we
//! capture; an empty environment; clocks; randomness; a filesystem with nothing in it). Sockets
//! are never granted: `wasi:http` through Porthole's checks is the only way out. Language runtimes
//! whose C library imports `wasi:sockets` whether or not the plugin opens a socket (CPython's,
//! for one) may still import it: it is linked against a context that permits no use, so every
//! attempt to make a socket or look up a name answers `access-denied` before any system call.

use crate::PluginWorld;

/// Interfaces every world may import, without version.
const INERT_WASI: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// Interfaces a component may import but never use: every use is denied.
const DENIED: &[&str] = &[
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Porthole interfaces every world may import.
const PORTHOLE_BASE: &[&str] = &["porthole:plugin/types", "porthole:plugin/host"];

/// What the networked worlds add.
const NETWORKED: &[&str] = &[
    "porthole:plugin/kv",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// The WIT package version range the host implements, per package.
const PORTHOLE_VERSION: &str = "0.1.";
const WASI_VERSION: &str = "0.2.";

pub const ALL_WORLDS: [PluginWorld; 4] = [
    PluginWorld::CloudInitTemplate,
    PluginWorld::DnsProvider,
    PluginWorld::TunnelProvider,
    PluginWorld::BillingAdapter,
];

/// The WIT name of `world`, e.g. `dns-provider`.
pub fn world_name(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::CloudInitTemplate => "cloud-init-template",
        PluginWorld::DnsProvider => "dns-provider",
        PluginWorld::TunnelProvider => "tunnel-provider",
        PluginWorld::BillingAdapter => "billing-adapter",
    }
}

pub fn parse_world(name: &str) -> Option<PluginWorld> {
    ALL_WORLDS.into_iter().find(|w| world_name(*w) == name)
}

/// The interface `world` exports, without version.
pub fn export_of(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::CloudInitTemplate => "porthole:plugin/cloud-init",
        PluginWorld::DnsProvider => "porthole:plugin/dns",
        PluginWorld::TunnelProvider => "porthole:plugin/tunnel",
        PluginWorld::BillingAdapter => "porthole:plugin/billing",
    }
}

/// What a DNS provider exports, besides `dns`, when it also keeps reverse DNS.
const REVERSE_DNS: &str = "porthole:plugin/reverse-dns";

/// Whether `exports` include a `reverse-dns` this host implements.
pub fn exports_reverse_dns<'a>(exports: impl IntoIterator<Item = &'a str>) -> bool {
    exports_interface(REVERSE_DNS, exports)
}

/// Whether `exports` include `wanted` at a version this host implements.
fn exports_interface<'a>(wanted: &str, exports: impl IntoIterator<Item = &'a str>) -> bool {
    exports.into_iter().any(|export| {
        let (interface, version) = split_version(export);
        interface == wanted && version_supported(interface, version)
    })
}

fn is_networked(world: PluginWorld) -> bool {
    world != PluginWorld::CloudInitTemplate
}

/// Splits `wasi:http/types@0.2.12` into the interface and its version.
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    }
}

/// Whether the host implements `version` of the package `interface` belongs to.
fn version_supported(interface: &str, version: Option<&str>) -> bool {
    let Some(version) = version else { return false };
    if interface.starts_with("porthole:") {
        version.starts_with(PORTHOLE_VERSION)
    } else {
        // 0.2.0 through the 0.2.x the host ships are all served by semver-compatible matching.
        version.starts_with(WASI_VERSION)
    }
}

/// Why an import is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefused {
    #[error(
        "imports {0}, which no Porthole plugin may use: remove what needs it (a plugin has no \
         sockets and no files; HTTP goes through wasi:http/outgoing-handler)"
    )]
    NeverGranted(String),
    #[error(
        "imports {import}, which the {world} world does not grant (it has no network and no kv): \
         remove what uses it"
    )]
    OutsideWorld { import: String, world: &'static str },
    #[error(
        "imports {0}, a version this Porthole does not implement (it serves porthole:plugin \
         0.1.x and WASI 0.2.x): rebuild for wasm32-wasip2 against the contract `porthole plugin \
         wit` writes"
    )]
    UnsupportedVersion(String),
    #[error(
        "targets porthole:plugin@{0}, which this Porthole does not implement (it accepts 0.1.x): \
         upgrade Porthole, or rebuild against the contract `porthole plugin wit` writes"
    )]
    UnsupportedContract(String),
}

/// The porthole:plugin version the component's exports target, e.g. `0.1.0`.
pub fn contract_version<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    exports.into_iter().find_map(|export| {
        let (interface, version) = split_version(export);
        interface
            .starts_with("porthole:plugin/")
            .then_some(version)
            .flatten()
    })
}

/// Refuses a component whose exports target a contract version this host does not implement.
pub fn check_contract<'a>(exports: impl IntoIterator<Item = &'a str>) -> Result<(), ImportRefused> {
    match contract_version(exports) {
        Some(version) if !version.starts_with(PORTHOLE_VERSION) => {
            Err(ImportRefused::UnsupportedContract(version.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Checks one import name against `world`.
pub fn check_import(world: PluginWorld, import: &str) -> Result<(), ImportRefused> {
    let (interface, version) = split_version(import);
    #[cfg(feature = "hostile-test-hooks")]
    if interface == crate::escape_hooks::IMPORT {
        return Ok(());
    }
    let in_base = INERT_WASI.contains(&interface)
        || PORTHOLE_BASE.contains(&interface)
        || DENIED.contains(&interface);
    let in_network = NETWORKED.contains(&interface);
    if !in_base && !in_network {
        return Err(ImportRefused::NeverGranted(import.to_owned()));
    }
    if in_network && !is_networked(world) {
        return Err(ImportRefused::OutsideWorld {
            import: import.to_owned(),
            world: world_name(world),
        });
    }
    if !version_supported(interface, version) {
        return Err(ImportRefused::UnsupportedVersion(import.to_owned()));
    }
    Ok(())
}

/// The world whose interface `exports` contains, if exactly one.
pub fn detect_world<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<PluginWorld> {
    let exports: Vec<&str> = exports.into_iter().map(|e| split_version(e).0).collect();
    let mut found = ALL_WORLDS
        .into_iter()
        .filter(|world| exports.contains(&export_of(*world)));
    match (found.next(), found.next()) {
        (Some(world), None) => Some(world),
        _ => None,
    }
}

/// Whether `exports` contains `world`'s interface at a supported version.
pub fn exports_world<'a>(world: PluginWorld, exports: impl IntoIterator<Item = &'a str>) -> bool {
    exports_interface(export_of(world), exports)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUST_STD_IMPORTS: &[&str] = &[
        "wasi:cli/environment@0.2.6",
        "wasi:cli/exit@0.2.6",
        "wasi:io/error@0.2.6",
        "wasi:io/streams@0.2.6",
        "wasi:cli/stderr@0.2.6",
        "wasi:cli/terminal-stderr@0.2.6",
        "wasi:filesystem/preopens@0.2.6",
    ];

    #[test]
    fn every_world_accepts_what_rust_std_imports() {
        for world in ALL_WORLDS {
            for import in RUST_STD_IMPORTS {
                assert_eq!(check_import(world, import), Ok(()), "{world:?} {import}");
            }
            assert!(check_import(world, "porthole:plugin/host@0.1.0").is_ok());
            assert!(check_import(world, "porthole:plugin/types@0.1.0").is_ok());
        }
    }

    #[test]
    fn cloud_init_template_may_not_use_kv_or_http() {
        for import in [
            "porthole:plugin/kv@0.1.0",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:http/types@0.2.0",
        ] {
            assert!(matches!(
                check_import(PluginWorld::CloudInitTemplate, import),
                Err(ImportRefused::OutsideWorld { .. })
            ));
        }
    }

    #[test]
    fn networked_worlds_may_use_kv_and_http() {
        for world in [
            PluginWorld::DnsProvider,
            PluginWorld::TunnelProvider,
            PluginWorld::BillingAdapter,
        ] {
            assert!(check_import(world, "porthole:plugin/kv@0.1.0").is_ok());
            assert!(check_import(world, "wasi:http/outgoing-handler@0.2.4").is_ok());
            assert!(check_import(world, "wasi:http/types@0.2.12").is_ok());
        }
    }

    #[test]
    fn sockets_may_be_imported_though_never_used() {
        for world in ALL_WORLDS {
            for import in [
                "wasi:sockets/tcp@0.2.9",
                "wasi:sockets/ip-name-lookup@0.2.0",
            ] {
                assert_eq!(check_import(world, import), Ok(()), "{world:?} {import}");
            }
        }
    }

    #[test]
    fn unknown_interfaces_are_never_granted() {
        for world in ALL_WORLDS {
            for import in [
                "wasi:http/incoming-handler@0.2.0",
                "porthole:plugin/admin@0.1.0",
                "evil:steal/secrets",
            ] {
                assert!(
                    matches!(
                        check_import(world, import),
                        Err(ImportRefused::NeverGranted(_))
                    ),
                    "{world:?} {import}"
                );
            }
        }
    }

    #[test]
    fn unsupported_versions_are_refused() {
        for import in [
            "porthole:plugin/host@0.2.0",
            "porthole:plugin/host@1.0.0",
            "wasi:cli/exit@0.3.0",
            "porthole:plugin/host",
        ] {
            assert!(matches!(
                check_import(PluginWorld::DnsProvider, import),
                Err(ImportRefused::UnsupportedVersion(_))
            ));
        }
    }

    #[test]
    fn a_newer_contract_is_named_with_what_to_do() {
        assert_eq!(check_contract(["porthole:plugin/dns@0.1.7"]), Ok(()));
        let refused = check_contract(["wasi:cli/run@0.2.0", "porthole:plugin/dns@0.2.0"]);
        assert_eq!(
            refused,
            Err(ImportRefused::UnsupportedContract("0.2.0".into()))
        );
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("upgrade Porthole"), "{message}");
    }

    #[test]
    fn world_is_detected_from_its_single_porthole_export() {
        assert_eq!(
            detect_world(["porthole:plugin/dns@0.1.0"]),
            Some(PluginWorld::DnsProvider)
        );
        assert_eq!(
            detect_world(["porthole:plugin/cloud-init@0.1.3", "wasi:cli/run@0.2.0"]),
            Some(PluginWorld::CloudInitTemplate)
        );
        assert_eq!(detect_world(["wasi:cli/run@0.2.0"]), None);
        assert_eq!(
            detect_world(["porthole:plugin/dns@0.1.0", "porthole:plugin/tunnel@0.1.0"]),
            None
        );
    }

    #[test]
    fn world_names_round_trip() {
        for world in ALL_WORLDS {
            assert_eq!(parse_world(world_name(world)), Some(world));
            assert!(exports_world(
                world,
                [format!("{}@0.1.0", export_of(world)).as_str()]
            ));
            assert!(!exports_world(
                world,
                [format!("{}@0.2.0", export_of(world)).as_str()]
            ));
        }
    }

    #[test]
    fn reverse_dns_is_found_among_a_dns_providers_exports_at_any_0_1() {
        let reverse = [
            "porthole:plugin/dns@0.1.1",
            "porthole:plugin/reverse-dns@0.1.1",
        ];
        assert!(exports_reverse_dns(reverse));
        assert_eq!(detect_world(reverse), Some(PluginWorld::DnsProvider));
        assert!(!exports_reverse_dns(["porthole:plugin/dns@0.1.0"]));
        assert!(!exports_reverse_dns(["porthole:plugin/reverse-dns@0.2.0"]));
    }
}
