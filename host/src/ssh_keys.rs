//! Customers' SSH public keys: parsed, not pattern-matched, so what reaches cloud-init and
//! Proxmox's `sshkeys` is one well-formed `authorized_keys` line of a key type OpenSSH accepts.

use ssh_key::{Algorithm, HashAlg, PublicKey};

/// The longest key line accepted: an RSA 16384-bit key is about 2.8 KB.
const MAX_LINE: usize = 8192;
/// RSA below this is refused by current OpenSSH (`RequiredRSASize`).
const MIN_RSA_BITS: usize = 2048;
/// The longest comment kept; it is only a label.
const MAX_COMMENT: usize = 200;

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// `ssh-ed25519 AAAA… comment`, re-encoded from the parsed key.
    pub line: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub kind: String,
}

/// Parses one `authorized_keys` line (`type base64 [comment]`), refusing options, DSA, short
/// RSA moduli and anything that is not exactly one line.
pub fn parse(text: &str) -> Result<SshKey, String> {
    let line = text.trim();
    if line.is_empty() {
        return Err("the SSH key is empty".into());
    }
    if line.len() > MAX_LINE || line.contains(['\n', '\r']) {
        return Err("an SSH key is one line of at most 8192 characters".into());
    }
    let key = PublicKey::from_openssh(line).map_err(|err| {
        format!("this is not an OpenSSH public key ({err}); paste the line from your .pub file")
    })?;
    check_algorithm(&key)?;
    if key.comment().chars().count() > MAX_COMMENT || key.comment().chars().any(char::is_control) {
        return Err("the SSH key's comment is too long or holds control characters".into());
    }
    let line = key
        .to_openssh()
        .map_err(|err| format!("the SSH key cannot be encoded again: {err}"))?;
    Ok(SshKey {
        line,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        kind: key.algorithm().as_str().to_owned(),
    })
}

fn check_algorithm(key: &PublicKey) -> Result<(), String> {
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => Ok(()),
        Algorithm::Ecdsa { .. } => Ok(()),
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .map(|rsa| rsa.n.as_positive_bytes().map_or(0, |n| n.len() * 8))
                .unwrap_or(0);
            if bits >= MIN_RSA_BITS {
                Ok(())
            } else {
                Err(format!(
                    "an RSA key needs at least {MIN_RSA_BITS} bits; this one has {bits}"
                ))
            }
        }
        Algorithm::Dsa => Err("DSA keys are no longer accepted by OpenSSH; use ed25519".into()),
        other => Err(format!("SSH key type {} is not accepted", other.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by `ssh-keygen -t ed25519 -C alice@laptop`; `ssh-keygen -lf` printed the fingerprint.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L alice@laptop";
    const ED25519_FINGERPRINT: &str = "SHA256:REm/g7o/gjZYl89e7UeMf0IOcuJImQEECEqcduwwUEg";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCzNGK6jsouhoH2WPIXu07BwM1orOSoMo1Y4dE8g6Bg7iP3t63Urf8U6gChWMpEuUn80+8N+LvjFbRiUpLG1+WU= e";
    // `ssh-keygen -t rsa -b 1024`
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDXAPhT3BJ6dWsqu8CLHZq5W3/6iwgV2s20D/g/y1zAsVAPMK8VykMImoeNxj61OkJHgsVhLcn+4CGoqNBeZAo50YJGv3ZzGg1DeEHEUw4dFVSb3pp7h5NJsAy/O5sXFW8lTcEPKKk0zb15D7EYi5CknlVpLDR9S2AttDsxch2r1Q== short";

    #[test]
    fn an_ed25519_key_is_read_and_fingerprinted_like_ssh_keygen() {
        let key = parse(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(key.kind, "ssh-ed25519");
        assert_eq!(key.line, ED25519);
        assert_eq!(key.fingerprint, ED25519_FINGERPRINT);
        assert_eq!(parse(ECDSA).unwrap().kind, "ecdsa-sha2-nistp256");
    }

    #[test]
    fn short_rsa_keys_are_refused_with_their_size() {
        let err = parse(RSA_1024).unwrap_err();
        assert!(err.contains("2048") && err.contains("1024"), "{err}");
    }

    #[test]
    fn things_that_only_look_like_keys_are_refused() {
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAA",
            "ssh-ed25519 not-base64!! me",
            // The blob names another type than the line.
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L x",
            "command=\"rm -rf /\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let two_lines = format!("{ED25519}\n{ED25519}");
        assert!(parse(&two_lines).is_err());
    }
}
