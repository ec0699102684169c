//! The position of a page in a list ordered newest first by
//! (created_at DESC, request_id DESC): the last row served. Clients get it
//! as an opaque cursor (base64url of a version byte, the microseconds of
//! created_at, and the request id) and hand it back unchanged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

const VERSION: u8 = 1;
const LEN: usize = 1 + Keyset::BYTES;

/// The next page holds the rows strictly after this one in list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub created_at: DateTime<Utc>,
    pub request_id: Uuid,
}

/// A cursor this service did not make (or made by another version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of this API: pass `next_cursor` of the previous page unchanged")]
pub struct BadCursor;

impl Keyset {
    pub const BYTES: usize = 8 + 16;

    /// Postgres keeps microseconds: the cursor keeps all of them, so the
    /// row it names compares equal in the database.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(cursor: &str) -> Result<Keyset, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| BadCursor)?;
        if bytes.len() != LEN || bytes[0] != VERSION {
            return Err(BadCursor);
        }
        Keyset::from_bytes(&bytes[1..])
    }

    /// The microseconds of created_at (big-endian), then the request id:
    /// the part of every cursor that names a row.
    pub fn to_bytes(&self) -> [u8; Keyset::BYTES] {
        let mut out = [0u8; Keyset::BYTES];
        out[..8].copy_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        out[8..].copy_from_slice(self.request_id.as_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Keyset, BadCursor> {
        if bytes.len() != Keyset::BYTES {
            return Err(BadCursor);
        }
        let micros = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| BadCursor)?);
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(BadCursor)?;
        let request_id = Uuid::from_slice(&bytes[8..]).map_err(|_| BadCursor)?;
        Ok(Keyset {
            created_at,
            request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_to_the_microsecond() {
        let k = Keyset {
            created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            request_id: Uuid::new_v4(),
        };
        let c = k.encode();
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Keyset::decode(&c), Ok(k));
    }

    #[test]
    fn anything_else_is_a_bad_cursor() {
        let good = Keyset {
            created_at: Utc::now(),
            request_id: Uuid::nil(),
        }
        .encode();
        for bad in [
            "",
            "x",
            "!!!!",
            &good[..good.len() - 2],
            &format!("{good}AA"),
            "' OR '1'='1",
            &URL_SAFE_NO_PAD.encode([2u8; LEN]),
        ] {
            assert_eq!(Keyset::decode(bad), Err(BadCursor), "{bad:?}");
        }
        // A timestamp chrono cannot represent.
        let mut far = vec![VERSION];
        far.extend_from_slice(&i64::MAX.to_be_bytes());
        far.extend_from_slice(&[0; 16]);
        assert_eq!(Keyset::decode(&URL_SAFE_NO_PAD.encode(far)), Err(BadCursor));
    }
}
