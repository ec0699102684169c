//! The HTTP client's DNS resolver: resolves a host name once and hands the
//! client only addresses the policy allows, so the address checked is the
//! address connected to (a second lookup, as DNS rebinding relies on, never
//! happens). IP-literal hosts never reach a resolver: `policy::check_url`
//! checks those before the request is sent and on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::{FetchPolicy, Refusal};

/// Why a host name gave no address to connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed (no such name, resolver down): may pass.
    #[error("DNS lookup failed")]
    Lookup,
    /// The name resolved to addresses the policy refuses.
    #[error(transparent)]
    Refused(Refusal),
}

pub struct CheckingResolver {
    policy: Arc<FetchPolicy>,
}

impl CheckingResolver {
    pub fn new(policy: Arc<FetchPolicy>) -> CheckingResolver {
        CheckingResolver { policy }
    }
}

/// Resolves `host` (the system resolver, on Tokio's blocking pool) and
/// checks every address it gives.
pub async fn resolve_checked(
    policy: &FetchPolicy,
    host: &str,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| ResolveError::Lookup)?
        .collect();
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    policy
        .check_resolved(host, &ips)
        .map_err(ResolveError::Refused)?;
    Ok(addrs)
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_checked(&policy, &host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::fetch::policy::AddressClass;

    #[tokio::test]
    async fn localhost_is_refused_unless_allow_listed() {
        let refused = resolve_checked(&FetchPolicy::default(), "localhost").await;
        assert_eq!(
            refused,
            Err(ResolveError::Refused(Refusal::Address(
                AddressClass::Loopback
            )))
        );
        let listed = FetchPolicy::new(&["LOCALHOST".into()], false, false);
        let addrs = resolve_checked(&listed, "localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_lookup_failure() {
        let failed = resolve_checked(&FetchPolicy::default(), "no-such-host.invalid").await;
        assert_eq!(failed, Err(ResolveError::Lookup));
    }
}
