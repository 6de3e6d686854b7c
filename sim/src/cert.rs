//! The API server's self-signed certificate, made fresh at every start like a new PVE node's,
//! so clients must pin it by fingerprint rather than trust a CA.

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

pub struct SelfSigned {
    pub acceptor: TlsAcceptor,
    pub cert_pem: String,
    /// Uppercase hex pairs joined by colons.
    pub fingerprint: String,
}

impl SelfSigned {
    pub fn generate() -> anyhow::Result<Self> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified =
            rcgen::generate_simple_self_signed(names).context("generating the certificate")?;
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key)
            .context("building the TLS config")?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_pem: certified.cert.pem(),
            fingerprint: fingerprint(&cert_der),
        })
    }
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
