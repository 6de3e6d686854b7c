//! Where the state lives: a SQLite file (the default, one machine) or a PostgreSQL database
//! (several daemons). `database` is a path or a `postgres://` URL; a URL's password and TLS
//! settings live under `[postgres]`, because a password in a URL ends up in every copy of the
//! configuration file.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use serde::Deserialize;
use tokio_postgres::config::{Host, SslMode};

use super::secret::SecretSource;

/// `[postgres]`: used only when `database` is a `postgres://` URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The role's password: `{ file = "…" }` or `{ env = "…" }`. None: trust or peer auth.
    pub password: Option<SecretSource>,
    /// `verify-full` (the default unless the server is on loopback or a socket) or `disable`.
    pub tls: Option<PostgresTlsMode>,
    /// The CA that signed the server's certificate; the public web roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Connections each daemon keeps at most (default 16).
    pub pool_size: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresTlsMode {
    Disable,
    VerifyFull,
}

/// The database a daemon opens.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Box<PostgresTarget>),
}

impl Database {
    /// A path, or a PostgreSQL URL with the `[postgres]` settings; the error says what is wrong
    /// for the caller to place at `database` or `postgres.<key>`.
    pub fn resolve(
        database: &str,
        postgres: &PostgresConfig,
        base: &Path,
    ) -> Result<Self, (&'static str, String)> {
        if !is_postgres_url(database) {
            return Ok(Database::Sqlite(base.join(database)));
        }
        PostgresTarget::resolve(database, postgres, base)
            .map(|target| Database::Postgres(Box::new(target)))
    }
}

/// Whether `text` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// A PostgreSQL server and database, with everything needed to connect.
#[derive(Clone)]
pub struct PostgresTarget {
    config: tokio_postgres::Config,
    tls: Option<Option<PathBuf>>,
    pub pool_size: usize,
}

impl PostgresTarget {
    fn resolve(
        url: &str,
        options: &PostgresConfig,
        base: &Path,
    ) -> Result<Self, (&'static str, String)> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|err| ("database", format!("is not a PostgreSQL URL: {err}")))?;
        if config.get_password().is_some() {
            return Err((
                "database",
                "holds a password; give it as [postgres] password = { file = \"…\" } or \
                 { env = \"…\" } instead"
                    .into(),
            ));
        }
        if config.get_dbname().is_none() {
            return Err((
                "database",
                "must name a database, e.g. postgres://porthole@db.lan/porthole".into(),
            ));
        }
        if let Some(source) = &options.password {
            let password = source
                .read(base)
                .map_err(|err| ("postgres.password", err.to_string()))?;
            config.password(password.expose());
        }
        let local = config.get_hosts().iter().all(is_local);
        let mode = options.tls.unwrap_or(if local {
            PostgresTlsMode::Disable
        } else {
            PostgresTlsMode::VerifyFull
        });
        let tls = match mode {
            PostgresTlsMode::Disable if options.ca_file.is_some() => {
                return Err(("postgres.ca_file", "is set but tls = \"disable\"".into()));
            }
            PostgresTlsMode::Disable => None,
            PostgresTlsMode::VerifyFull => Some(options.ca_file.as_ref().map(|f| base.join(f))),
        };
        config.ssl_mode(if tls.is_some() {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        config.application_name("porthole");
        let pool_size = options.pool_size.unwrap_or(16);
        if !(1..=1000).contains(&pool_size) {
            return Err(("postgres.pool_size", "must be between 1 and 1000".into()));
        }
        Ok(Self {
            config,
            tls,
            pool_size,
        })
    }

    pub fn connect_config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// The TLS connector: with `tls = "disable"` it is never used (the connection's SSL mode is
    /// `disable`), otherwise it verifies the server's certificate and name.
    pub fn tls_connector(&self) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.tls {
            Some(Some(ca_file)) => {
                let pem = std::fs::read(ca_file).map_err(|err| {
                    anyhow::anyhow!("cannot read the database CA {}: {err}", ca_file.display())
                })?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots.add(cert?)?;
                }
            }
            _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The target as logs and errors name it: never the password.
    pub fn display(&self) -> String {
        let user = self.config.get_user().unwrap_or("");
        let db = self.config.get_dbname().unwrap_or("");
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        match self.config.get_ports().first() {
            Some(port) => format!("postgres://{user}@{host}:{port}/{db}"),
            None => format!("postgres://{user}@{host}/{db}"),
        }
    }
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("target", &self.display())
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}
