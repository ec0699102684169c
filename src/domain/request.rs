//! An analysis request once validated: which image, what to do with it, and
//! what the caller attached. The wire format and its parser are the worker's
//! (`worker::request`); this is what every stage after parsing works with.

use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Bytes carried in the message.
    Inline(Vec<u8>),
    /// Fetched over http(s) with a timeout and a byte limit.
    Url(String),
    /// A local file, when `worker.allow_local_paths` is set.
    Path(String),
}

impl ImageSource {
    /// What is logged, stored and published as the image's source: a URL
    /// without its credentials (`user:pass@`), query and fragment, where
    /// signatures and tokens travel (`X-Amz-Signature`, `sig=`).
    pub fn reference(&self) -> String {
        match self {
            ImageSource::Inline(_) => "inline".into(),
            ImageSource::Url(u) => redact_url(u),
            ImageSource::Path(p) => format!("file://{p}"),
        }
    }
}

/// `url` without userinfo, query and fragment. Text that does not parse as
/// a URL is cut the same way by hand, so nothing after `?` or `#`, and no
/// `…@` before the host, survives either way.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            // Cannot fail for a URL with a host.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        _ => {
            let end = url.find(['?', '#']).unwrap_or(url.len());
            let kept = &url[..end];
            let (scheme, rest) = kept.split_once("://").unwrap_or(("", kept));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if scheme.is_empty() {
                format!("{host}{path}")
            } else {
                format!("{scheme}://{host}{path}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Detection,
    Classification,
    Artifacts,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: Uuid,
    pub image: ImageSource,
    /// True when the caller asked for the artifact description explicitly.
    pub explain: bool,
    pub questions: Vec<String>,
    pub tenant: Option<String>,
    pub metadata: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(url: &str) -> String {
        ImageSource::Url(url.to_string()).reference()
    }

    #[test]
    fn a_url_reference_keeps_no_credentials_query_or_fragment() {
        let cases = [
            (
                "https://host/path?X-Amz-Signature=abc&X-Amz-Credential=k",
                "https://host/path",
            ),
            (
                "https://user:secret@host:8443/a/b.png",
                "https://host:8443/a/b.png",
            ),
            ("https://token@host/a.png#frag", "https://host/a.png"),
            (
                "HTTPS://User:Pw@Images.Example/a.png?sig=1#x",
                "https://images.example/a.png",
            ),
            ("https://host/plain.png", "https://host/plain.png"),
            ("https://host", "https://host/"),
            ("http://[::1]:80/a?b", "http://[::1]/a"),
        ];
        for (url, expected) in cases {
            assert_eq!(reference(url), expected, "{url}");
        }
    }

    #[test]
    fn text_that_is_no_url_is_cut_the_same_way() {
        let cases = [
            ("https://us:er@ho st/x?sig=1", "https://ho st/x"),
            ("https://a@b@[bad/x#f", "https://[bad/x"),
            ("https://:pw@/x?q", "https:///x"),
        ];
        for (url, expected) in cases {
            let got = reference(url);
            assert_eq!(got, expected, "{url}");
            for secret in ["sig", "pw", "er@", "#", "?"] {
                assert!(!got.contains(secret), "{secret} in {got}");
            }
        }
    }

    #[test]
    fn other_sources_are_unchanged() {
        assert_eq!(ImageSource::Inline(vec![1]).reference(), "inline");
        assert_eq!(
            ImageSource::Path("/data/x.jpg".into()).reference(),
            "file:///data/x.jpg"
        );
    }
}
