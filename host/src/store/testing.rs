//! Store tests run on both back ends: [`on_both_backends!`] turns each test into a `sqlite`
//! and a `postgres` test of the same body. The PostgreSQL one gets a fresh database on the
//! server `PORTHOLE_TEST_POSTGRES` names, or on a throwaway server of its own.

use super::Store;
use crate::config::Database;

/// A store and whatever must outlive it (its directory, its database).
pub(crate) struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    _database: Option<porthole_pg_fixture::TestDatabase>,
}

impl TestStore {
    pub async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("test.db")).await?;
        Ok(Self {
            store,
            _dir: Some(dir),
            _database: None,
        })
    }

    pub async fn postgres() -> anyhow::Result<Self> {
        let database =
            tokio::task::spawn_blocking(porthole_pg_fixture::TestDatabase::create).await??;
        let store = Store::connect(&postgres_target(database.url())?).await?;
        Ok(Self {
            store,
            _dir: None,
            _database: Some(database),
        })
    }

    /// Another daemon's handle on the same PostgreSQL database.
    pub async fn another_daemon(&self) -> anyhow::Result<Store> {
        let database = self
            ._database
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("only a PostgreSQL store has other daemons"))?;
        Store::connect(&postgres_target(database.url())?).await
    }
}

/// A customer `alice` and a cluster `lab`, what most rows need first; alice's id.
pub(crate) async fn customer_on_a_cluster(store: &Store) -> anyhow::Result<i64> {
    let alice = super::users::insert(store, "alice", super::users::Role::Customer, "x").await?;
    super::nodes::register_clusters(store, &["lab"]).await?;
    Ok(alice.id)
}

/// The database behind a test server's URL, as the configuration would give it.
pub(crate) fn postgres_target(url: &str) -> anyhow::Result<Database> {
    let config = crate::config::PostgresConfig::default();
    Database::resolve(url, &config, std::path::Path::new("/"))
        .map_err(|(key, message)| anyhow::anyhow!("{key} {message}"))
}

/// Each `async fn name(store: Store) -> anyhow::Result<()> { … }` becomes a module `name` with a
/// test `sqlite` and a test `postgres`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($store:ident: Store) -> anyhow::Result<()> $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($store: crate::store::Store) -> anyhow::Result<()> $body

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                let test = crate::store::testing::TestStore::sqlite().await?;
                case(test.store.clone()).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                let test = crate::store::testing::TestStore::postgres().await?;
                case(test.store.clone()).await
            }
        }
    )*};
}
pub(crate) use on_both_backends;
