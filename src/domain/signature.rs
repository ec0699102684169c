//! Signed feedback: `dfa serve` puts an HMAC-SHA256 of each correction's
//! payload in a header, and workers refuse feedback whose signature is
//! missing or wrong, so producing to the topic is not enough to retrain the
//! model.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Kafka header that carries the signature.
pub const SIGNATURE_HEADER: &str = "dfa-signature";
/// The header value is `v1=<hex of HMAC-SHA256(key, payload)>`.
const SCHEME: &str = "v1=";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The header value for `payload`.
pub fn sign(key: &[u8], payload: &[u8]) -> String {
    let mut m = mac(key);
    m.update(payload);
    format!("{SCHEME}{}", hex::encode(m.finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no {SIGNATURE_HEADER} header: feedback must be signed (feedback.require_signature)")]
    Missing,
    #[error("the {SIGNATURE_HEADER} header is not `v1=<64 hex digits>`")]
    Malformed,
    #[error("the {SIGNATURE_HEADER} header does not match the payload (forged, or signed with another key)")]
    Mismatch,
}

/// Checks a header value against `payload` in constant time.
pub fn verify(key: &[u8], payload: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let text = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let digest = text
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
        .filter(|d| d.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let mut m = mac(key);
    m.update(payload);
    m.verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_payload_verifies() {
        let sig = sign(KEY, b"{\"a\":1}");
        assert!(sig.starts_with("v1="));
        assert_eq!(verify(KEY, b"{\"a\":1}", Some(sig.as_bytes())), Ok(()));
    }

    #[test]
    fn changed_payload_other_key_missing_or_garbled_header_are_refused() {
        let sig = sign(KEY, b"payload");
        assert_eq!(
            verify(KEY, b"payload!", Some(sig.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"another key, also 32 bytes long..", b"payload");
        assert_eq!(
            verify(KEY, b"payload", Some(other.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(KEY, b"payload", None), Err(SignatureError::Missing));
        for bad in ["", "v1=", "v1=zz", "v2=00", &sig[3..]] {
            assert_eq!(
                verify(KEY, b"payload", Some(bad.as_bytes())),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
