//! Which image URLs the fetcher may reach: pure rules on schemes, host names
//! and addresses, applied to the request's URL, to every redirect hop and to
//! every address a host name resolves to (`resolve`).
//!
//! Default-deny of internal address space, as egress proxies built for this
//! do it (Stripe's Smokescreen, Vector's and Kafka Connect's HTTP sources
//! leave it to such a proxy): the address is checked after resolution, and
//! the connection goes to the checked address, never to a second lookup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::settings::WorkerSettings;

/// What kind of address space an IP address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the internet: always allowed.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16 (cloud metadata services live here), fe80::/10.
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT),
    /// fc00::/7 (unique local), fec0::/10 (old site-local).
    Private,
    /// 0.0.0.0/8, ::. Connecting to 0.0.0.0 reaches the local host.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Anything else not meant to be reached: 240/4, 192.0.0/24, 198.18/15,
    /// IPv4-compatible IPv6 (::a.b.c.d), 100::/64.
    Reserved,
}

impl AddressClass {
    fn name(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Private => "private",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Multicast => "multicast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        }
    }

    /// Opened by `worker.fetch_allow_private`. Link-local is not: it holds
    /// the cloud metadata services (169.254.169.254), which only an
    /// allow-listed IP literal opens; nor are the others, never a server
    /// worth reaching.
    fn is_internal(self) -> bool {
        matches!(self, AddressClass::Loopback | AddressClass::Private)
    }
}

/// Why a URL or an address was refused. Says which rule refused it, never
/// the address a host name resolved to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid URL")]
    InvalidUrl,
    #[error("scheme `{0}` is not fetched (https only unless worker.fetch_allow_http)")]
    Scheme(String),
    #[error("the host is {} address (open with worker.fetch_allow_hosts)", article(*.0))]
    Address(AddressClass),
    #[error("the host has no address")]
    NoAddress,
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("redirect refused: {0}")]
    Redirect(Box<Refusal>),
}

fn article(class: AddressClass) -> String {
    let name = class.name();
    let a = if matches!(class, AddressClass::Unspecified) {
        "an"
    } else {
        "a"
    };
    format!("{a} {name}")
}

/// The class of `ip`. IPv6 addresses that carry an IPv4 address (mapped
/// ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) take the class of
/// the IPv4 address they lead to.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([100, 64, 0, 0], 10, Private),
        ([192, 0, 2, 0], 24, Documentation),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([192, 0, 0, 0], 24, Reserved),
        ([198, 18, 0, 0], 15, Reserved),
        ([255, 255, 255, 255], 32, Broadcast),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    const TABLE: &[([u16; 8], u32, AddressClass)] = &[
        // IPv4-compatible (deprecated): nothing routes them.
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, Reserved),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        // AWS's IPv6 instance metadata service, inside fc00::/7: classed
        // with 169.254.169.254, so fetch_allow_private does not open it.
        ([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], 128, LinkLocal),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

/// The IPv4 address an IPv6 address leads to, for the forms that embed one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return Some(low32);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// A `worker.fetch_allow_hosts` entry: a host name (compared without case
/// or trailing dot) or an IP literal (brackets optional for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    Name(String),
    Ip(IpAddr),
}

impl AllowedHost {
    fn parse(entry: &str) -> Option<AllowedHost> {
        let entry = entry.trim();
        let bare = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .unwrap_or(entry);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(AllowedHost::Ip(ip));
        }
        let name = normalise_name(entry);
        (!name.is_empty()).then_some(AllowedHost::Name(name))
    }
}

fn normalise_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The fetcher's rules, from `worker.fetch_allow_{hosts,private,http}`.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    allow_hosts: Vec<AllowedHost>,
    allow_private: bool,
    allow_http: bool,
}

impl FetchPolicy {
    pub fn new(allow_hosts: &[String], allow_private: bool, allow_http: bool) -> FetchPolicy {
        FetchPolicy {
            allow_hosts: allow_hosts
                .iter()
                .filter_map(|h| AllowedHost::parse(h))
                .collect(),
            allow_private,
            allow_http,
        }
    }

    pub fn from_settings(w: &WorkerSettings) -> FetchPolicy {
        FetchPolicy::new(
            &w.fetch_allow_hosts,
            w.fetch_allow_private,
            w.fetch_allow_http,
        )
    }

    /// `https`, and `http` only when allowed.
    pub fn check_scheme(&self, scheme: &str) -> Result<(), Refusal> {
        match scheme {
            "https" => Ok(()),
            "http" if self.allow_http => Ok(()),
            other => Err(Refusal::Scheme(other.to_string())),
        }
    }

    /// Whether `name` (a host name as written in a URL) is allow-listed.
    pub fn name_allowed(&self, name: &str) -> bool {
        let name = normalise_name(name);
        self.allow_hosts
            .iter()
            .any(|h| matches!(h, AllowedHost::Name(n) if *n == name))
    }

    /// An address may be reached when it is public, allow-listed, or
    /// internal with `fetch_allow_private`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical_ip(ip);
        if self
            .allow_hosts
            .iter()
            .any(|h| matches!(h, AllowedHost::Ip(a) if canonical_ip(*a) == ip))
        {
            return Ok(());
        }
        match classify(ip) {
            AddressClass::Public => Ok(()),
            class if class.is_internal() && self.allow_private => Ok(()),
            class => Err(Refusal::Address(class)),
        }
    }

    /// What can be checked of a URL before connecting: its scheme, and its
    /// host when that is an IP literal (those are never resolved, so the
    /// resolver's check does not see them). Host names are checked by the
    /// resolver on every connection.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        self.check_scheme(url.scheme())?;
        match url.host() {
            None => Err(Refusal::InvalidUrl),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
        }
    }

    /// The addresses `name` resolved to: all allowed when the name is
    /// allow-listed; otherwise every one must pass `check_ip` (a name that
    /// resolves to a public and an internal address is refused whole).
    pub fn check_resolved(&self, name: &str, addrs: &[IpAddr]) -> Result<(), Refusal> {
        if addrs.is_empty() {
            return Err(Refusal::NoAddress);
        }
        if self.name_allowed(name) {
            return Ok(());
        }
        addrs.iter().try_for_each(|ip| self.check_ip(*ip))
    }
}

/// IPv4-mapped IPv6 compared as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
