//! The RFB (VNC) handshakes the relay performs itself, so that the VNC password never leaves the
//! daemon: as a client towards the node (version, VNC authentication with the proxy's password),
//! and as a server towards the browser (version, security type None). After both, ClientInit,
//! ServerInit and everything else pass through verbatim.
//!
//! RFC 6143 §7.1–7.2. Only RFB 3.8 is spoken upstream (what QEMU and vncterm speak); browsers may
//! speak 3.7 or 3.8 (noVNC speaks 3.8).

use bytes::Bytes;
use des::Des;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt as _, KeyInit as _};
use futures_util::{Sink, Stream};

use super::frames::{ByteReader, Message, ReadError, send_binary};
use crate::proxmox::Sensitive;

const VERSION_3_8: &[u8; 12] = b"RFB 003.008\n";
const VERSION_3_7: &[u8; 12] = b"RFB 003.007\n";
const SECURITY_NONE: u8 = 1;
const SECURITY_VNC_AUTH: u8 = 2;
/// Longest failure reason we read from a server; a real one is a sentence.
const MAX_REASON_BYTES: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub(super) enum RfbError {
    #[error("connection: {0}")]
    Read(#[from] ReadError),
    #[error("send: {0}")]
    Write(String),
    #[error("unsupported protocol version {0:?}")]
    Version(String),
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("the server offers no security type we can use (offered {0:?})")]
    NoUsableSecurity(Vec<u8>),
    #[error("VNC authentication failed: {0}")]
    AuthFailed(String),
    #[error("the browser chose security type {0}, which was not offered")]
    BadChoice(u8),
}

/// The RFB version a browser speaks; they differ only in whether None gets a SecurityResult.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrowserVersion {
    V3_7,
    V3_8,
}

/// Client side towards the node: agrees on RFB 3.8 and authenticates with `password` (VNC
/// authentication), or with nothing if the server asks for nothing.
pub(super) async fn authenticate_upstream<S, K, M, E>(
    reader: &mut ByteReader<'_, S>,
    sink: &mut K,
    password: &Sensitive,
) -> Result<(), RfbError>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    K: Sink<M> + Unpin,
    K::Error: std::fmt::Display,
    M: Message,
    E: std::fmt::Display,
{
    let version = reader.read_exact(12).await?;
    if version.as_ref() != VERSION_3_8 {
        return Err(RfbError::Version(printable(&version)));
    }
    send(sink, Bytes::from_static(VERSION_3_8)).await?;
    let count = reader.read_u8().await?;
    if count == 0 {
        return Err(RfbError::Refused(read_reason(reader).await?));
    }
    let offered = reader.read_exact(usize::from(count)).await?.to_vec();
    let chosen = if offered.contains(&SECURITY_VNC_AUTH) {
        SECURITY_VNC_AUTH
    } else if offered.contains(&SECURITY_NONE) {
        SECURITY_NONE
    } else {
        return Err(RfbError::NoUsableSecurity(offered));
    };
    send(sink, Bytes::copy_from_slice(&[chosen])).await?;
    if chosen == SECURITY_VNC_AUTH {
        let challenge: [u8; 16] = reader
            .read_exact(16)
            .await?
            .as_ref()
            .try_into()
            .map_err(|_| RfbError::Refused("short challenge".into()))?;
        let response = vnc_auth_response(&challenge, password.expose().as_bytes());
        send(sink, Bytes::copy_from_slice(&response)).await?;
    }
    match reader.read_u32().await? {
        0 => Ok(()),
        _ => Err(RfbError::AuthFailed(read_reason(reader).await?)),
    }
}

/// Server side towards the browser: RFB 3.8 (or 3.7) with security type None only.
pub(super) async fn greet_browser<S, K, M, E>(
    reader: &mut ByteReader<'_, S>,
    sink: &mut K,
) -> Result<(), RfbError>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    K: Sink<M> + Unpin,
    K::Error: std::fmt::Display,
    M: Message,
    E: std::fmt::Display,
{
    send(sink, Bytes::from_static(VERSION_3_8)).await?;
    let version = reader.read_exact(12).await?;
    let version = match version.as_ref() {
        v if v == VERSION_3_8 => BrowserVersion::V3_8,
        v if v == VERSION_3_7 => BrowserVersion::V3_7,
        other => return Err(RfbError::Version(printable(other))),
    };
    send(sink, Bytes::from_static(&[1, SECURITY_NONE])).await?;
    let choice = reader.read_u8().await?;
    if choice != SECURITY_NONE {
        return Err(RfbError::BadChoice(choice));
    }
    if version == BrowserVersion::V3_8 {
        send(sink, Bytes::from_static(&[0, 0, 0, 0])).await?;
    }
    Ok(())
}

async fn send<K, M>(sink: &mut K, data: Bytes) -> Result<(), RfbError>
where
    K: Sink<M> + Unpin,
    K::Error: std::fmt::Display,
    M: Message,
{
    send_binary(sink, data).await.map_err(RfbError::Write)
}

async fn read_reason<S, M, E>(reader: &mut ByteReader<'_, S>) -> Result<String, RfbError>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    M: Message,
    E: std::fmt::Display,
{
    let length = reader.read_u32().await?.min(MAX_REASON_BYTES);
    let reason = reader.read_exact(length as usize).await?;
    Ok(printable(&reason))
}

/// Bytes from a peer, made safe for a log line.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

/// VNC authentication (RFC 6143 §7.2.2): DES-encrypt the 16-byte challenge with the password
/// (truncated or zero-padded to 8 bytes) as key, where VNC mirrors the bits of each key byte.
fn vnc_auth_response(challenge: &[u8; 16], password: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (slot, byte) in key.iter_mut().zip(password) {
        *slot = byte.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut response = *challenge;
    for block in response.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The classic DES test vector (key 133457799BBCDFF1, plaintext 0123456789ABCDEF →
    /// 85E813540F0AB405), with the key given as VNC does: bit-mirrored bytes.
    #[test]
    fn vnc_auth_is_des_with_bit_mirrored_key_bytes() {
        let des_key = [0x13u8, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1];
        let password: Vec<u8> = des_key.iter().map(|b| b.reverse_bits()).collect();
        let block = [0x01u8, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let mut challenge = [0u8; 16];
        challenge[..8].copy_from_slice(&block);
        challenge[8..].copy_from_slice(&block);
        let response = vnc_auth_response(&challenge, &password);
        let expected = [0x85u8, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05];
        assert_eq!(&response[..8], &expected);
        assert_eq!(&response[8..], &expected);
    }

    #[test]
    fn only_the_first_eight_password_bytes_count() {
        let challenge = [7u8; 16];
        assert_eq!(
            vnc_auth_response(&challenge, b"PVEVNC:0123456789"),
            vnc_auth_response(&challenge, b"PVEVNC:0")
        );
        assert_ne!(
            vnc_auth_response(&challenge, b"short"),
            vnc_auth_response(&challenge, b"short\0\0x")
        );
    }

    #[test]
    fn peer_text_is_made_printable() {
        assert_eq!(printable(b"RFB 003.003\n"), "RFB 003.003.");
    }
}
