//! TLS served by the daemon itself (`[tls]`): a certificate chain and its key from PEM files,
//! checked to belong together, and read again on SIGHUP. A reload changes what new connections
//! are offered; connections already open keep the session they negotiated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

/// Where the certificate chain and its private key are (both PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why the files make no server configuration; says which file to look at.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", .0.display())]
    NoKey(PathBuf),
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot use the certificate and key: {0}")]
    Rejected(rustls::Error),
}

impl TlsFiles {
    /// Reads both files and makes the server configuration (HTTP/1.1 only: WebSocket upgrades
    /// need it, and the daemon speaks nothing else).
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = self.certificates()?;
        let key = self.private_key()?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Rejected)?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(|err| match err {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        TlsError::KeyMismatch {
                            cert: self.cert_file.clone(),
                            key: self.key_file.clone(),
                        }
                    }
                    other => TlsError::Rejected(other),
                })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = read(&self.cert_file)?;
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Read {
                path: self.cert_file.clone(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(self.cert_file.clone()));
        }
        Ok(chain)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let pem = read(&self.key_file)?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|source| TlsError::Read {
                path: self.key_file.clone(),
                source,
            })?
            .ok_or_else(|| TlsError::NoKey(self.key_file.clone()))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Certificate files and what they held when the configuration was checked.
#[derive(Debug, Clone)]
pub struct LoadedTls {
    pub files: TlsFiles,
    pub config: Arc<ServerConfig>,
}

/// The configuration new connections get: the last one that loaded.
#[derive(Clone)]
pub struct Acceptor {
    current: watch::Receiver<Arc<ServerConfig>>,
}

impl Acceptor {
    /// An acceptor with the configuration loaded last.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.borrow()))
    }
}

/// Serves `tls.config` now, and loads the files again on every SIGHUP until the returned task
/// is aborted. A reload that fails is logged and changes nothing: the daemon keeps serving the
/// last good pair.
pub fn reloading(tls: LoadedTls) -> (Acceptor, tokio::task::JoinHandle<()>) {
    let LoadedTls { files, config } = tls;
    let (publish, current) = watch::channel(config);
    let task = tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; TLS files will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match files.load() {
                Ok(config) => {
                    publish.send_replace(config);
                    tracing::info!(cert_file = %files.cert_file.display(), "reloaded the TLS certificate");
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot reload the TLS certificate; still serving the previous one");
                }
            }
        }
    });
    (Acceptor { current }, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` in `dir`: (cert file, key file).
    fn self_signed(dir: &Path, name: &str) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert_file: dir.join(format!("{name}.crt")),
            key_file: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert_file, certified.cert.pem()).unwrap();
        std::fs::write(&files.key_file, certified.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_certificate_and_its_key_load_for_http_1_1() {
        let dir = tempfile::tempdir().unwrap();
        let config = self_signed(dir.path(), "a").load().unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(dir.path(), "a");
        let b = self_signed(dir.path(), "b");
        let crossed = TlsFiles {
            cert_file: a.cert_file.clone(),
            key_file: b.key_file.clone(),
        };
        let err = crossed.load().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("b.key") && message.contains("a.crt"),
            "{message}"
        );
    }

    #[test]
    fn files_without_pem_say_which_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let good = self_signed(dir.path(), "a");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let no_cert = TlsFiles {
            cert_file: empty.clone(),
            key_file: good.key_file.clone(),
        };
        assert!(matches!(no_cert.load(), Err(TlsError::NoCertificate(path)) if path == empty));
        let no_key = TlsFiles {
            cert_file: good.cert_file.clone(),
            key_file: empty.clone(),
        };
        assert!(matches!(no_key.load(), Err(TlsError::NoKey(path)) if path == empty));
        let missing = TlsFiles {
            cert_file: dir.path().join("missing.crt"),
            key_file: good.key_file,
        };
        assert!(matches!(missing.load(), Err(TlsError::Read { .. })));
    }
}
