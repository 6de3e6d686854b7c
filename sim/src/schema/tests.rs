//! The validator against pveproxy's own wording, on the real (trimmed) schema.

use super::*;

fn schema() -> Schema {
    Schema::embedded().unwrap_or_else(|err| panic!("embedded schema: {err}"))
}

/// Validates `params` for `method path`, returning the errors (empty when valid).
fn errors(method: &str, path: &str, params: &[(&str, &str)]) -> ParamErrors {
    let schema = schema();
    let Some(route) = schema.route(method, path) else {
        panic!("no route for {method} {path}")
    };
    let mut all: BTreeMap<String, String> = route.path_params.clone();
    all.extend(
        params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    route.method.validate(&all).err().unwrap_or_default()
}

fn error(method: &str, path: &str, params: &[(&str, &str)], name: &str) -> Option<String> {
    errors(method, path, params).remove(name)
}

const CONFIG: &str = "/nodes/pve1/qemu/100/config";

#[test]
fn routes_prefer_literal_segments_and_extract_params() {
    let schema = schema();
    let route = schema.route("GET", "/nodes/pve1/qemu/100/status/current");
    assert_eq!(
        route.as_ref().map(|r| r.template),
        Some("/nodes/{node}/qemu/{vmid}/status/current")
    );
    assert_eq!(
        route.map(|r| r.path_params.get("vmid").cloned()),
        Some(Some("100".into()))
    );
    assert!(schema.route("PATCH", CONFIG).is_none());
    assert!(schema.route("GET", "/nodes/pve1/qemu/100/bogus").is_none());
}

#[test]
fn volume_ids_take_the_rest_of_the_path_encoded_or_not() {
    let schema = schema();
    let volid = "local:backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst";
    for path in [
        "/nodes/pve1/storage/local/content/local%3Abackup%2Fvzdump-qemu-100-2025_01_02-03_04_05.vma.zst",
        "/nodes/pve1/storage/local/content/local:backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst",
    ] {
        let route = schema.route("DELETE", path);
        assert_eq!(
            route.as_ref().map(|r| r.template),
            Some("/nodes/{node}/storage/{storage}/content/{volume}")
        );
        assert_eq!(
            route.and_then(|r| r.path_params.get("volume").cloned()),
            Some(volid.to_owned())
        );
    }
    // Only the content subclass joins the rest; elsewhere an extra segment is no route.
    assert!(
        schema
            .route("GET", "/nodes/pve1/qemu/100/snapshot/a/b")
            .is_none()
    );
}

#[test]
fn valid_config_update_passes() {
    let params = [
        ("cores", "4"),
        ("memory", "4096"),
        ("name", "web-1.example"),
        ("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0"),
        ("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1"),
        ("scsi1", "local-lvm:10,iothread=1"),
        (
            "sshkeys",
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIG%20me%40host",
        ),
        ("cicustom", "user=local:snippets/vm-100-user.yaml"),
        ("tags", "porthole;customer-7"),
        ("delete", "description,ide2"),
        ("onboot", "1"),
    ];
    assert_eq!(errors("PUT", CONFIG, &params), ParamErrors::new());
}

#[test]
fn unknown_parameter_is_rejected() {
    assert_eq!(
        error("PUT", CONFIG, &[("bogus", "1")], "bogus").as_deref(),
        Some(
            "property is not defined in schema and the schema does not allow additional properties"
        )
    );
}

#[test]
fn missing_required_parameter_is_reported() {
    assert_eq!(
        error("POST", "/nodes/pve1/qemu/100/clone", &[], "newid").as_deref(),
        Some("property is missing and it is not optional")
    );
}

#[test]
fn mistyped_integer_is_rejected() {
    assert_eq!(
        error("PUT", CONFIG, &[("cores", "abc")], "cores").as_deref(),
        Some("type check ('integer') failed - got 'abc'")
    );
    assert_eq!(
        error("GET", "/nodes/pve1/qemu/abc/config", &[], "vmid").as_deref(),
        Some("type check ('integer') failed - got 'abc'")
    );
}

#[test]
fn top_level_booleans_are_one_or_zero_as_pveproxy_checks_them() {
    for value in ["0", "1"] {
        assert_eq!(
            error("PUT", CONFIG, &[("onboot", value)], "onboot"),
            None,
            "{value}"
        );
    }
    for value in ["true", "FALSE", "yes", "no", "on", "off", "maybe"] {
        assert_eq!(
            error("PUT", CONFIG, &[("onboot", value)], "onboot"),
            Some(format!("type check ('boolean') failed - got '{value}'")),
            "{value}"
        );
    }
}

#[test]
fn booleans_inside_property_strings_take_every_pve_spelling() {
    let serial = "serial=ZHM9bm9jbG91ZC1uZXQ=";
    for value in ["1", "yes", "ON", "true"] {
        let smbios = format!("{serial},base64={value}");
        assert_eq!(
            error("PUT", CONFIG, &[("smbios1", &smbios)], "smbios1"),
            None,
            "{value}"
        );
    }
}

#[test]
fn ipconfig_prefixes_run_from_8() {
    for (ip, fine) in [
        ("ip=10.0.0.5/24,gw=10.0.0.1", true),
        ("ip=10.0.0.5/8", true),
        ("ip=10.0.0.5/7", false),
        ("ip=10.0.0.5/33", false),
        ("ip6=2001:db8::5/64", true),
        ("ip6=2001:db8::5/4", false),
    ] {
        let error = error("PUT", CONFIG, &[("ipconfig0", ip)], "ipconfig0");
        assert_eq!(error.is_none(), fine, "{ip}: {error:?}");
    }
}

#[test]
fn enum_lists_allowed_values() {
    assert_eq!(
        error("GET", "/cluster/resources", &[("type", "qemu")], "type").as_deref(),
        Some("value 'qemu' does not have a value in the enumeration 'vm, storage, node, sdn'")
    );
}

#[test]
fn range_limits_use_pve_wording() {
    assert_eq!(
        error("PUT", CONFIG, &[("cores", "0")], "cores").as_deref(),
        Some("value must have a minimum value of 1")
    );
    assert_eq!(
        error("GET", "/cluster/nextid", &[("vmid", "99")], "vmid").as_deref(),
        Some("invalid format - value does not look like a valid VM ID\n")
    );
    assert_eq!(
        error("GET", "/cluster/nextid", &[("vmid", "1000000000")], "vmid").as_deref(),
        Some("invalid format - value does not look like a valid VM ID\n")
    );
    assert_eq!(
        error("PUT", CONFIG, &[("cpulimit", "129")], "cpulimit").as_deref(),
        Some("value must have a maximum value of 128")
    );
}

#[test]
fn max_length_is_enforced() {
    let digest = "a".repeat(41);
    assert_eq!(
        error("PUT", CONFIG, &[("digest", &digest)], "digest").as_deref(),
        Some("value may only be 40 characters long")
    );
}

#[test]
fn pattern_is_anchored() {
    let path = "/nodes/pve1/qemu/100/resize";
    assert_eq!(
        error("PUT", path, &[("disk", "scsi0"), ("size", "+10G")], "size"),
        None
    );
    assert_eq!(
        error("PUT", path, &[("disk", "scsi0"), ("size", "32G")], "size"),
        None
    );
    assert_eq!(
        error("PUT", path, &[("disk", "scsi0"), ("size", "10GB")], "size").as_deref(),
        Some("value does not match the regex pattern")
    );
}

#[test]
fn named_formats_are_checked() {
    assert_eq!(
        error("PUT", CONFIG, &[("name", "not_a_dns_name")], "name").as_deref(),
        Some("invalid format - value does not look like a valid DNS name\n")
    );
    assert_eq!(
        error("GET", "/nodes/bad_node!/qemu", &[], "node").as_deref(),
        Some("invalid format - value does not look like a valid node name\n")
    );
    assert!(
        error(
            "POST",
            "/nodes/pve1/qemu/100/clone",
            &[("newid", "101"), ("storage", "-x")],
            "storage"
        )
        .is_some()
    );
    assert!(
        error(
            "POST",
            "/nodes/pve1/qemu/100/clone",
            &[("newid", "101"), ("pool", "a b")],
            "pool"
        )
        .is_some()
    );
    assert!(error("PUT", CONFIG, &[("tags", "ok;not ok!")], "tags").is_some());
    assert!(error("PUT", CONFIG, &[("delete", "cores,9bad")], "delete").is_some());
    assert!(
        error(
            "PUT",
            CONFIG,
            &[("cicustom", "user=snippets-without-storage")],
            "cicustom"
        )
        .is_some()
    );
}

#[test]
fn sshkeys_must_be_percent_encoded() {
    let raw = "ssh-ed25519 AAAAC3Nza me@host";
    assert_eq!(
        error("PUT", CONFIG, &[("sshkeys", raw)], "sshkeys"),
        Some(format!(
            "invalid format - invalid urlencoded string: {raw}\n"
        ))
    );
    assert!(error("PUT", CONFIG, &[("sshkeys", "ssh-ed25519+AAAA")], "sshkeys").is_some());
}

#[test]
fn ipconfig_accepts_dhcp_auto_and_cidr_only() {
    for ok in [
        "ip=dhcp",
        "ip6=auto",
        "ip=192.0.2.10/24,gw=192.0.2.1",
        "ip6=2001:db8::5/64,gw6=2001:db8::1",
        "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1",
    ] {
        assert_eq!(
            error("PUT", CONFIG, &[("ipconfig0", ok)], "ipconfig0"),
            None,
            "{ok}"
        );
    }
    for bad in [
        "ip=192.0.2.10",
        "ip=dhcp,gw=192.0.2.1",
        "ip=300.1.1.1/24",
        "foo=bar",
        "dhcp",
    ] {
        let why = error("PUT", CONFIG, &[("ipconfig0", bad)], "ipconfig0");
        assert!(
            why.as_deref()
                .is_some_and(|w| w.starts_with("invalid format - ")),
            "{bad}: {why:?}"
        );
    }
}

#[test]
fn property_strings_check_keys_and_values() {
    assert_eq!(
        error(
            "PUT",
            CONFIG,
            &[("net1", "virtio,bridge=vmbr0,tag=10")],
            "net1"
        ),
        None
    );
    let why = error("PUT", CONFIG, &[("net0", "virtio,tag=5000")], "net0");
    assert_eq!(
        why.as_deref(),
        Some("invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n")
    );
    let why = error(
        "PUT",
        CONFIG,
        &[("net0", "model=virtio,colour=red")],
        "net0",
    );
    assert!(
        why.is_some_and(|w| w.contains("invalid key in comma-separated list property: colour"))
    );
    let why = error(
        "PUT",
        CONFIG,
        &[("smbios1", "base64=1,serial=not base64!")],
        "smbios1",
    );
    assert!(why.is_some_and(|w| w.contains("serial")));
    assert_eq!(
        error(
            "PUT",
            CONFIG,
            &[(
                "smbios1",
                "uuid=0c1b1a2e-1111-4222-a333-444455556666,base64=1,serial=ZHM9bm9jbG91ZA=="
            )],
            "smbios1"
        ),
        None
    );
}

#[test]
fn numbered_params_stop_at_pve_maximum() {
    assert_eq!(error("PUT", CONFIG, &[("net31", "virtio")], "net31"), None);
    assert_eq!(
        error("PUT", CONFIG, &[("scsi30", "local-lvm:4")], "scsi30"),
        None
    );
    for name in ["net32", "scsi31", "ide4", "net01", "net"] {
        assert_eq!(
            error("PUT", CONFIG, &[(name, "x")], name).as_deref(),
            Some(UNDEFINED_PROPERTY),
            "{name}"
        );
    }
}

#[test]
fn requires_names_the_missing_partner() {
    assert_eq!(
        error("PUT", CONFIG, &[("force", "1")], "delete").as_deref(),
        Some("missing property - 'force' requires this property")
    );
}

#[test]
fn number_parsing_matches_perl_rules() {
    for ok in ["1", "-2", "+3", "1.5", ".5", "2.", "1e3", "1.5E-2"] {
        assert!(is_number(ok), "{ok}");
    }
    for bad in ["", ".", "e3", "1e", "abc", "1.2.3"] {
        assert!(!is_number(bad), "{bad}");
    }
    assert!(is_integer("-10") && !is_integer("1.0") && !is_integer(""));
}
