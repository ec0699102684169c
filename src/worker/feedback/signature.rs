//! Which feedback a worker accepts, by its `dfa-signature` header
//! (`domain::signature`): the policy of `[feedback]`, pure.
//!
//! | `signing_key` | `require_signature` | no header | right signature | wrong or garbled one |
//! |---|---|---|---|---|
//! | unset | unset / false | accepted | accepted | accepted (nothing to check with) |
//! | set | unset / true | `unsigned` | accepted | `unsigned` |
//! | set | false | accepted | accepted | `unsigned` |
//!
//! `require_signature = false` with a key is for a migration (producers
//! that do not sign yet): it lets unsigned feedback through, but a signature
//! that is present and wrong is still refused, since nothing legitimate
//! produces one. A header value that is not UTF-8 is no signature at all.

use crate::domain::signature::{verify, SignatureError};
use crate::settings::FeedbackSettings;

/// The dead-letter kind of feedback refused for its signature.
pub const UNSIGNED: &str = "unsigned";

/// Whether feedback with `payload` and this `dfa-signature` header value
/// may be processed; the error's message is the dead letter's reason.
pub fn check_signature(
    settings: &FeedbackSettings,
    payload: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.map(str::as_bytes);
    match (settings.key(), settings.requires_signature()) {
        (Some(key), true) => verify(key, payload, header),
        (Some(key), false) => match header {
            None => Ok(()),
            Some(_) => verify(key, payload, header),
        },
        (None, false) => Ok(()),
        // Settings validation refuses a required signature without a key;
        // should one get here anyway, nothing can be verified: refuse.
        (None, true) => Err(match header {
            None => SignatureError::Missing,
            Some(_) => SignatureError::Mismatch,
        }),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::domain::signature::sign;

    const KEY: &str = "a signing key of at least 32 bytes";
    const PAYLOAD: &[u8] = br#"{"request_id":"6f1c3a52-9a4e-4c9b-8d0e-2b7f9d1e4a10"}"#;

    fn settings(key: &str, require: Option<bool>) -> FeedbackSettings {
        FeedbackSettings {
            signing_key: SecretString::from(key.to_string()),
            require_signature: require,
        }
    }

    /// The outcome for: no header, the right signature, another key's,
    /// the right one over another payload, a garbled one.
    fn outcomes(s: &FeedbackSettings) -> [Result<(), SignatureError>; 5] {
        let right = sign(KEY.as_bytes(), PAYLOAD);
        let other_key = sign(b"another key, also 32 bytes long..", PAYLOAD);
        let other_payload = sign(KEY.as_bytes(), b"{}");
        [
            check_signature(s, PAYLOAD, None),
            check_signature(s, PAYLOAD, Some(&right)),
            check_signature(s, PAYLOAD, Some(&other_key)),
            check_signature(s, PAYLOAD, Some(&other_payload)),
            check_signature(s, PAYLOAD, Some("v1=zz")),
        ]
    }

    #[test]
    fn with_a_key_only_the_right_signature_passes() {
        use SignatureError::*;
        for s in [settings(KEY, None), settings(KEY, Some(true))] {
            assert!(s.requires_signature());
            assert_eq!(
                outcomes(&s),
                [
                    Err(Missing),
                    Ok(()),
                    Err(Mismatch),
                    Err(Mismatch),
                    Err(Malformed)
                ]
            );
        }
    }

    #[test]
    fn a_key_without_require_signature_passes_unsigned_but_refuses_forged() {
        use SignatureError::*;
        let s = settings(KEY, Some(false));
        assert_eq!(
            outcomes(&s),
            [Ok(()), Ok(()), Err(Mismatch), Err(Mismatch), Err(Malformed)]
        );
    }

    #[test]
    fn without_a_key_nothing_is_checked() {
        for s in [settings("", None), settings("", Some(false))] {
            assert!(outcomes(&s).iter().all(Result::is_ok));
        }
        // Refused by settings validation; refused here too should it pass.
        let s = settings("", Some(true));
        assert!(outcomes(&s).iter().all(Result::is_err));
    }

    #[test]
    fn the_reason_names_the_header_and_the_setting() {
        let s = settings(KEY, None);
        let reason = check_signature(&s, PAYLOAD, None).unwrap_err().to_string();
        assert!(reason.contains("dfa-signature"), "{reason}");
        assert!(reason.contains("feedback.require_signature"), "{reason}");
    }
}
