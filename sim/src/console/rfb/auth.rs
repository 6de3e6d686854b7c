//! VNC authentication (RFB security type 2): the client DES-encrypts the server's 16-byte
//! challenge with the password as key. VNC reverses the bits of every key byte (a quirk of the
//! original implementation), and only the first 8 bytes of the password count.

use des::Des;
use des::cipher::{BlockEncrypt as _, KeyInit as _, generic_array::GenericArray};

pub const CHALLENGE_LEN: usize = 16;

/// The response a client sends for `challenge` when it knows `password`.
pub fn vnc_response(password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    let mut key = [0u8; 8];
    for (k, byte) in key.iter_mut().zip(password) {
        *k = byte.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut response = *challenge;
    for block in response.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_matches_a_known_vector() {
        // DES-ECB of 16 zero bytes under the bit-reversed key of "password", as computed by
        // `openssl enc -des-ecb -K 0e86ceceeef64e26 -nopad` (an independent implementation).
        let response = vnc_response(b"password", &[0; 16]);
        assert_eq!(hex::encode(response), KNOWN_PASSWORD_ZERO_CHALLENGE);
    }

    #[test]
    fn only_the_first_eight_bytes_of_the_password_count() {
        let challenge = *b"0123456789abcdef";
        assert_eq!(
            vnc_response(b"PVEVNC:6789ABCD::long-signature", &challenge),
            vnc_response(b"PVEVNC:6", &challenge)
        );
        assert_ne!(
            vnc_response(b"secret", &challenge),
            vnc_response(b"secreT", &challenge)
        );
    }

    const KNOWN_PASSWORD_ZERO_CHALLENGE: &str = "ff97502e9422f089ff97502e9422f089";
}
