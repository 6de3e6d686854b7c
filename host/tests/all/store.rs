//! The SQLite store survives being killed in the middle of writing.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use porthole::store::{self, Db as _, Store, audit, params};

const WRITER_ENV: &str = "PORTHOLE_TEST_STORE_WRITER";

/// In the child process: write audit rows as fast as possible until killed.
fn write_forever(path: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(std::path::Path::new(path)).await.unwrap();
        let mut announced = false;
        for i in 0u64.. {
            store
                .transaction(|tx| async move {
                    for j in 0..20 {
                        audit::record(
                            &tx,
                            &audit::Entry {
                                actor: "system",
                                action: "test.write",
                                target: Some(&format!("{i}/{j}")),
                                detail: serde_json::json!({ "padding": "x".repeat(512) }),
                                client: None,
                            },
                        )
                        .await?;
                    }
                    Ok::<_, store::StoreError>(())
                })
                .await
                .unwrap();
            if !announced {
                println!("writing");
                announced = true;
            }
        }
    });
}

#[test]
fn a_writer_killed_mid_stream_leaves_a_database_that_opens_and_checks_clean() {
    if let Ok(path) = std::env::var(WRITER_ENV) {
        write_forever(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "store::a_writer_killed_mid_stream_leaves_a_database_that_opens_and_checks_clean",
                "--exact",
                "--nocapture",
            ])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let started = lines.find(|line| line.as_ref().is_ok_and(|l| l.contains("writing")));
        assert!(started.is_some(), "the writer never started writing");
        // Vary the moment of death so it lands at different points of a transaction.
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        child.kill().unwrap(); // SIGKILL: no destructors, no clean close.
        child.wait().unwrap();

        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))
            .unwrap();
        assert!(
            rows > 0 && rows % 20 == 0,
            "round {round}: {rows} rows, not whole transactions"
        );
    }
}

#[tokio::test]
async fn migrations_apply_once_and_the_schema_has_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    drop(Store::open(&path).await.unwrap());
    let store = Store::open(&path).await.unwrap();
    let one = |sql: &'static str| {
        let store = store.clone();
        async move { store.query_one(sql, params![]).await.unwrap() }
    };
    let version: i64 = one("PRAGMA user_version").await.get(0).unwrap();
    let tables: Vec<String> = store
        .query(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            params![],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0).unwrap())
        .collect();
    let foreign_keys: i64 = one("PRAGMA foreign_keys").await.get(0).unwrap();
    let journal: String = one("PRAGMA journal_mode").await.get(0).unwrap();
    assert_eq!(version as usize, store::SCHEMA_VERSION);
    for table in [
        "api_tokens",
        "audit_log",
        "clusters",
        "jobs",
        "nodes",
        "services",
        "sessions",
        "users",
    ] {
        assert!(tables.iter().any(|t| t == table), "missing table {table}");
    }
    assert_eq!((foreign_keys, journal.as_str()), (1, "wal"));
}

#[tokio::test]
async fn a_panicking_transaction_is_rolled_back_and_the_store_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("panic.db")).await.unwrap();
    let panicking = store.clone();
    let failed = tokio::spawn(async move {
        panicking
            .transaction(|tx| async move {
                tx.execute(
                    "INSERT INTO clusters (name, created_at) VALUES ('half-written', 0)",
                    params![],
                )
                .await?;
                if std::hint::black_box(true) {
                    panic!("a bug in a query");
                }
                Ok::<_, store::StoreError>(())
            })
            .await
    })
    .await;
    assert!(failed.is_err_and(|err| err.is_panic()));
    let clusters: i64 = store
        .query_one("SELECT count(*) FROM clusters", params![])
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(clusters, 0, "the panicked transaction was rolled back");
}

/// A SQLite installation with a little of everything in it.
async fn populated(path: &std::path::Path) -> Store {
    use porthole::store::{resources, services, users};
    let store = Store::open(path).await.unwrap();
    let alice = users::insert(&store, "alice", users::Role::Customer, "hash")
        .await
        .unwrap();
    porthole::store::nodes::register_clusters(&store, &["lab"])
        .await
        .unwrap();
    for n in 0..450 {
        let name = format!("vm{n}");
        let service = services::insert_active(
            &store,
            &services::ExistingVm {
                owner_id: alice.id,
                name: &name,
                cluster: "lab",
                node: "pve1",
                vmid: 100 + n,
                plan: None,
                stopped: n % 2 == 0,
            },
        )
        .await
        .unwrap();
        resources::record(
            &store,
            &resources::Resource {
                service_id: service.id,
                kind: resources::ResourceKind::DnsRecord,
                provider: "dns".into(),
                external_id: format!("record-{n}"),
                detail: serde_json::json!({ "name": name, "ünïcode": "✓" }),
            },
        )
        .await
        .unwrap();
        audit::record(
            &store,
            &audit::Entry {
                actor: "system",
                action: "test.copy",
                target: Some(&name),
                detail: serde_json::json!({ "n": n }),
                client: None,
            },
        )
        .await
        .unwrap();
    }
    store
        .execute(
            "INSERT INTO plugin_kv (plugin, key, value) VALUES ('dns', 'B', ?1), ('dns', 'a', ?2)",
            params![vec![0u8, 255, 1], Vec::<u8>::new()],
        )
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn a_sqlite_installation_copies_into_postgres_with_every_table_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("porthole.db");
    drop(populated(&file).await);
    let database = tokio::task::spawn_blocking(porthole_pg_fixture::TestDatabase::create)
        .await
        .unwrap()
        .unwrap();
    let copy = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_porthole"))
            .args(["db", "copy", "--from"])
            .arg(file)
            .args(["--to", database.url()])
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let copied = copy(&file);
    let report = String::from_utf8_lossy(&copied.stdout);
    assert!(
        copied.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(report.contains("copied and checked 26 tables"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("services") && l.contains(" 450 rows")),
        "{report}"
    );

    // The copy is a working installation: reads agree, and new rows get fresh ids.
    let target = Store::connect(
        &porthole::config::Database::resolve(
            database.url(),
            &Default::default(),
            std::path::Path::new("/"),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let found = porthole::store::resources::find(
        &target,
        porthole::store::resources::ResourceKind::DnsRecord,
        "record-7",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(found.detail["ünïcode"], "✓");
    let bob =
        porthole::store::users::insert(&target, "bob", porthole::store::users::Role::Customer, "h")
            .await
            .unwrap();
    assert_eq!(bob.id, 2);

    // A second copy would mix two installations: refused, naming the table.
    let again = copy(&file);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
