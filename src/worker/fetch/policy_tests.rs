//! The policy's rules, range by range.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_internal_and_special_range_is_classified() {
    use AddressClass::*;
    let cases = [
        ("127.0.0.1", Loopback),
        ("127.255.1.2", Loopback),
        ("::1", Loopback),
        ("169.254.169.254", LinkLocal),
        ("169.254.0.1", LinkLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("172.16.0.1", Private),
        ("172.31.255.254", Private),
        ("192.168.1.1", Private),
        ("100.64.0.1", Private),
        ("100.127.255.255", Private),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fec0::1", Private),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("::", Unspecified),
        ("255.255.255.255", Broadcast),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("ff02::1", Multicast),
        ("192.0.2.7", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.7", Documentation),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("240.0.0.1", Reserved),
        ("198.18.0.1", Reserved),
        ("192.0.0.8", Reserved),
        ("::7f00:1", Reserved),
        ("100::1", Reserved),
    ];
    for (addr, class) in cases {
        assert_eq!(classify(ip(addr)), class, "{addr}");
    }
}

#[test]
fn the_neighbours_of_each_range_are_public() {
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "11.0.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.167.255.255",
        "192.169.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "fbff::1",
        "fe00::1",
    ] {
        assert_eq!(classify(ip(addr)), AddressClass::Public, "{addr}");
    }
}

#[test]
fn ipv6_forms_of_an_ipv4_address_take_its_class() {
    use AddressClass::*;
    let cases = [
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:10.1.2.3", Private),
        ("::ffff:192.168.0.1", Private),
        ("::ffff:0.0.0.0", Unspecified),
        ("64:ff9b::a9fe:a9fe", LinkLocal),
        ("64:ff9b::7f00:1", Loopback),
        ("2002:7f00:1::", Loopback),
        ("2002:0a00:0001::1", Private),
        ("::ffff:8.8.8.8", Public),
        ("64:ff9b::808:808", Public),
    ];
    for (addr, class) in cases {
        assert_eq!(classify(ip(addr)), class, "{addr}");
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn by_default_only_https_to_public_addresses() {
    let p = FetchPolicy::default();
    assert_eq!(p.check_url(&url("https://8.8.8.8/x.png")), Ok(()));
    assert_eq!(p.check_url(&url("https://images.example/x.png")), Ok(()));
    assert_eq!(
        p.check_url(&url("http://images.example/x.png")),
        Err(Refusal::Scheme("http".into()))
    );
    assert_eq!(
        p.check_url(&url("ftp://images.example/x.png")),
        Err(Refusal::Scheme("ftp".into()))
    );
    for (u, class) in [
        ("https://127.0.0.1/", AddressClass::Loopback),
        ("https://[::1]:8443/", AddressClass::Loopback),
        (
            "https://169.254.169.254/latest/meta-data/",
            AddressClass::LinkLocal,
        ),
        ("https://[::ffff:169.254.169.254]/", AddressClass::LinkLocal),
        ("https://[::ffff:7f00:1]/", AddressClass::Loopback),
        ("https://10.0.0.8/", AddressClass::Private),
        ("https://0.0.0.0/", AddressClass::Unspecified),
        // The URL parser reads these spellings as 127.0.0.1.
        ("https://2130706433/", AddressClass::Loopback),
        ("https://0x7f.1/", AddressClass::Loopback),
        ("https://127.1/", AddressClass::Loopback),
    ] {
        assert_eq!(p.check_url(&url(u)), Err(Refusal::Address(class)), "{u}");
    }
}

#[test]
fn allow_private_opens_internal_ranges_only() {
    let p = FetchPolicy::new(&[], true, false);
    for a in ["127.0.0.1", "10.0.0.1", "fd00::1", "::ffff:192.168.0.1"] {
        assert_eq!(p.check_ip(ip(a)), Ok(()), "{a}");
    }
    for (a, class) in [
        // The cloud metadata service stays closed: only an allow-listed
        // IP literal opens it.
        ("169.254.169.254", AddressClass::LinkLocal),
        ("fe80::1", AddressClass::LinkLocal),
        ("fd00:ec2::254", AddressClass::LinkLocal),
        ("0.0.0.0", AddressClass::Unspecified),
        ("255.255.255.255", AddressClass::Broadcast),
        ("224.0.0.1", AddressClass::Multicast),
        ("192.0.2.1", AddressClass::Documentation),
    ] {
        assert_eq!(p.check_ip(ip(a)), Err(Refusal::Address(class)), "{a}");
    }
}

#[test]
fn allow_http_opens_the_scheme_not_the_address() {
    let p = FetchPolicy::new(&[], false, true);
    assert_eq!(p.check_url(&url("http://images.example/")), Ok(()));
    assert_eq!(
        p.check_url(&url("http://127.0.0.1:8080/")),
        Err(Refusal::Address(AddressClass::Loopback))
    );
}

#[test]
fn allow_listed_hosts_pass_even_when_internal() {
    let hosts = [
        "127.0.0.2".to_string(),
        "[::1]".into(),
        " Images.Internal. ".into(),
        "".into(),
    ];
    let p = FetchPolicy::new(&hosts, false, false);
    assert_eq!(p.check_url(&url("https://127.0.0.2:9000/x")), Ok(()));
    assert_eq!(p.check_url(&url("https://[::1]/x")), Ok(()));
    assert_eq!(
        p.check_ip(ip("::ffff:127.0.0.2")),
        Ok(()),
        "mapped form of an allowed IP"
    );
    assert_eq!(
        p.check_url(&url("https://127.0.0.1/x")),
        Err(Refusal::Address(AddressClass::Loopback)),
        "only the listed address"
    );
    let internal = [ip("10.1.1.1")];
    assert_eq!(p.check_resolved("images.internal", &internal), Ok(()));
    assert_eq!(p.check_resolved("IMAGES.internal.", &internal), Ok(()));
    assert_eq!(
        p.check_resolved("other.internal", &internal),
        Err(Refusal::Address(AddressClass::Private))
    );
    assert!(!p.name_allowed("images.internal.evil.example"));
    assert!(!p.name_allowed("evil-images.internal"));
}

#[test]
fn a_name_resolving_to_any_internal_address_is_refused() {
    let p = FetchPolicy::default();
    assert_eq!(
        p.check_resolved("a.example", &[ip("93.184.215.14")]),
        Ok(())
    );
    assert_eq!(
        p.check_resolved("a.example", &[ip("93.184.215.14"), ip("169.254.169.254")]),
        Err(Refusal::Address(AddressClass::LinkLocal))
    );
    assert_eq!(p.check_resolved("a.example", &[]), Err(Refusal::NoAddress));
}

#[test]
fn refusals_name_the_rule_not_the_address() {
    let r = Refusal::Redirect(Box::new(Refusal::Address(AddressClass::LinkLocal)));
    let text = r.to_string();
    assert_eq!(
        text,
        "redirect refused: the host is a link-local address (open with worker.fetch_allow_hosts)"
    );
    assert_eq!(
        Refusal::Address(AddressClass::Unspecified).to_string(),
        "the host is an unspecified address (open with worker.fetch_allow_hosts)"
    );
}
