//! The SQLite store survives being killed in the middle of writing.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use porthole::store::{self, Store, audit};

const WRITER_ENV: &str = "PORTHOLE_TEST_STORE_WRITER";

/// In the child process: write audit rows as fast as possible until killed.
fn write_forever(path: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(std::path::Path::new(path)).await.unwrap();
        let mut announced = false;
        for i in 0u64.. {
            store
                .call(move |conn| {
                    let tx = conn.transaction()?;
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
                        )?;
                    }
                    tx.commit()
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

        let conn = store::open_connection(&path).unwrap();
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
    let (version, tables, foreign_keys, journal) = store
        .call(|conn| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let mut statement =
                conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let tables = statement
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let foreign_keys: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            Ok((version, tables, foreign_keys, journal))
        })
        .await
        .unwrap();
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
async fn a_panicking_call_is_rolled_back_and_the_store_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("panic.db")).await.unwrap();
    let failed = store
        .call(|conn| -> rusqlite::Result<()> {
            conn.execute_batch(
                "BEGIN; INSERT INTO clusters (name, created_at) VALUES ('half-written', 0);",
            )?;
            panic!("a bug in a query");
        })
        .await;
    assert!(
        matches!(failed, Err(store::StoreError::Aborted)),
        "{failed:?}"
    );
    let clusters: i64 = store
        .call(|conn| conn.query_row("SELECT count(*) FROM clusters", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(
        clusters, 0,
        "the panicked call's transaction was rolled back"
    );
}
