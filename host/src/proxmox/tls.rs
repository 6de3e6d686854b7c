//! TLS trust towards Proxmox VE nodes.
//!
//! Proxmox nodes usually present self-signed certificates (or ones signed by the cluster's own
//! `pve-root-ca`), so the daemon either trusts an explicit CA bundle or pins the SHA-256
//! fingerprint of each node's certificate. [`client_config`] turns either into a rustls
//! [`ClientConfig`]; the API client uses it, and so can anything else that connects to the same
//! nodes (the console relay's WebSocket) so that both apply exactly the same trust.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// How the daemon decides that it is talking to the real Proxmox node.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// PEM bundle of CA certificates (e.g. the cluster's `pve-root-ca.pem`). The server name is
    /// checked against the certificate as usual.
    CaPem(Vec<u8>),
    /// SHA-256 fingerprints of the nodes' end-entity certificates; any one of them is accepted.
    /// List one per node when `api_urls` names several nodes. The host name is not checked in
    /// this mode (PVE's self-signed certificates name the node, not the address used), but the
    /// handshake signature is still verified against the pinned certificate's key.
    PinnedSha256(Vec<[u8; 32]>),
}

impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaPem(pem) => write!(f, "CaPem({} bytes)", pem.len()),
            Self::PinnedSha256(pins) => f
                .debug_tuple("PinnedSha256")
                .field(&pins.iter().map(format_fingerprint).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// Why a [`TlsTrust`] could not be turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("CA bundle is not valid PEM: {0}")]
    InvalidPem(String),
    #[error("CA bundle contains no certificates")]
    NoCertificates,
    #[error("CA certificate rejected: {0}")]
    BadCertificate(String),
    #[error("no certificate fingerprints to pin")]
    NoPins,
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why a certificate fingerprint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintParseError {
    #[error("fingerprint must be 32 bytes of hex (64 digits, optionally colon-separated pairs)")]
    Length,
    #[error("fingerprint contains a character that is not a hex digit: {0:?}")]
    NotHex(char),
}

/// Parses a SHA-256 certificate fingerprint as Proxmox shows it (`AB:CD:…`), also accepting
/// lowercase and the form without colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], FingerprintParseError> {
    let text = text.trim();
    let digits: String = if text.contains(':') {
        // With separators every group must be exactly one byte, so "A:BC:…" is rejected.
        let groups: Vec<&str> = text.split(':').collect();
        if groups.len() != 32 || groups.iter().any(|g| g.len() != 2) {
            return Err(FingerprintParseError::Length);
        }
        groups.concat()
    } else {
        text.to_owned()
    };
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(FingerprintParseError::NotHex(bad));
    }
    let bytes = hex::decode(&digits).map_err(|_| FingerprintParseError::Length)?;
    bytes.try_into().map_err(|_| FingerprintParseError::Length)
}

/// Formats a fingerprint the way Proxmox displays it: uppercase hex pairs joined by colons.
pub fn format_fingerprint(fingerprint: &[u8; 32]) -> String {
    fingerprint
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds the rustls client configuration for `trust`, using the ring provider. No ALPN is set:
/// pveproxy speaks HTTP/1.1 only, which also suits a WebSocket upgrade on the same config.
pub fn client_config(trust: &TlsTrust) -> Result<ClientConfig, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        TlsTrust::CaPem(pem) => builder
            .with_root_certificates(root_store(pem)?)
            .with_no_client_auth(),
        TlsTrust::PinnedSha256(pins) => {
            let verifier = PinnedVerifier::new(pins, &provider)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

fn root_store(pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| TlsConfigError::InvalidPem(e.to_string()))?;
        store
            .add(cert)
            .map_err(|e| TlsConfigError::BadCertificate(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(TlsConfigError::NoCertificates);
    }
    Ok(store)
}

/// The error a pinned connection fails with when the server's certificate matches no pin. It
/// travels inside `rustls::Error` so that callers can recognise it (see [`fingerprint_mismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintMismatch {
    /// SHA-256 of the certificate the server actually presented.
    pub actual: [u8; 32],
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate SHA-256 fingerprint {} matches no pinned fingerprint",
            format_fingerprint(&self.actual)
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Finds a [`FingerprintMismatch`] inside a rustls error, if that is what it is.
pub fn fingerprint_mismatch(error: &rustls::Error) -> Option<&FingerprintMismatch> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<FingerprintMismatch>()
        }
        _ => None,
    }
}

#[derive(Debug)]
struct PinnedVerifier {
    pins: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn new(pins: &[[u8; 32]], provider: &CryptoProvider) -> Result<Self, TlsConfigError> {
        if pins.is_empty() {
            return Err(TlsConfigError::NoPins);
        }
        Ok(Self {
            pins: pins.to_vec(),
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// Compares against every pin without short-circuiting, so timing reveals nothing about
    /// how close a presented certificate came to a pin.
    fn is_pinned(&self, actual: &[u8; 32]) -> bool {
        let matched = self
            .pins
            .iter()
            .fold(Choice::from(0), |acc, pin| acc | pin.ct_eq(actual));
        bool::from(matched)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.is_pinned(&actual) {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = FingerprintMismatch { actual };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COLONS: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    #[test]
    fn fingerprint_parses_proxmox_colon_form() {
        let fp = parse_fingerprint(COLONS).unwrap();
        assert_eq!(fp[0], 0xAB);
        assert_eq!(fp[31], 0x89);
    }

    #[test]
    fn fingerprint_accepts_lowercase_and_bare_hex() {
        let expected = parse_fingerprint(COLONS).unwrap();
        assert_eq!(parse_fingerprint(&COLONS.to_lowercase()).unwrap(), expected);
        assert_eq!(
            parse_fingerprint(&COLONS.replace(':', "")).unwrap(),
            expected
        );
        assert_eq!(
            parse_fingerprint(&format!("  {COLONS}\n")).unwrap(),
            expected
        );
    }

    #[test]
    fn fingerprint_round_trips_through_display_form() {
        let fp = parse_fingerprint(COLONS).unwrap();
        assert_eq!(format_fingerprint(&fp), COLONS);
    }

    #[test]
    fn fingerprint_rejects_wrong_length_and_bad_digits() {
        assert_eq!(
            parse_fingerprint("AB:CD"),
            Err(FingerprintParseError::Length)
        );
        assert_eq!(
            parse_fingerprint(&COLONS[3..]),
            Err(FingerprintParseError::Length)
        );
        assert_eq!(
            parse_fingerprint(&COLONS.replace(':', "")[2..]),
            Err(FingerprintParseError::Length)
        );
        let bad = COLONS.replacen("AB", "XB", 1);
        assert_eq!(
            parse_fingerprint(&bad),
            Err(FingerprintParseError::NotHex('X'))
        );
        let sha1 = "AB:".repeat(19) + "AB";
        assert_eq!(parse_fingerprint(&sha1), Err(FingerprintParseError::Length));
        let odd_groups = COLONS.replacen("AB:CD", "A:BCD", 1);
        assert_eq!(
            parse_fingerprint(&odd_groups),
            Err(FingerprintParseError::Length)
        );
    }

    #[test]
    fn pinned_config_needs_at_least_one_pin() {
        assert!(matches!(
            client_config(&TlsTrust::PinnedSha256(vec![])),
            Err(TlsConfigError::NoPins)
        ));
    }

    #[test]
    fn ca_config_needs_certificates() {
        assert!(matches!(
            client_config(&TlsTrust::CaPem(b"not a pem".to_vec())),
            Err(TlsConfigError::NoCertificates)
        ));
    }

    #[test]
    fn mismatch_is_recognisable_inside_rustls_error() {
        let err = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
            FingerprintMismatch { actual: [7; 32] },
        ))));
        assert_eq!(fingerprint_mismatch(&err).unwrap().actual, [7; 32]);
        assert!(fingerprint_mismatch(&rustls::Error::DecryptError).is_none());
    }
}
