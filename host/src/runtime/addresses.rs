//! Which addresses a plugin may reach by name: the address policy of
//! `outbound` (docs/plugins.md, "Outbound addresses").
//!
//! A plugin may reach public unicast addresses only. Everything in the IANA
//! special-purpose registries (private networks, shared CGNAT space,
//! loopback, link-local, documentation, benchmarking, reserved, multicast,
//! unique-local, …) is refused, and so is every IPv6 form that wraps such
//! an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4), because
//! the connection ends up at the wrapped address. Operators who run a forge
//! on a private network open exactly that network with
//! `KEYWARD_EGRESS_ALLOW`; cloud metadata services and link-local
//! addresses stay refused even then, since nothing legitimate lives there
//! and they hand out the machine's cloud credentials.
//!
//! Loopback *origins* (`http://127.0.0.1:…`, `localhost`) are not decided
//! here: `egress` lets them through before asking this module.
//!
//! (Over 500 lines: 200 of them are the unit tests of the address rules.)

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable: comma-separated CIDR blocks plugins may reach even
/// though they are special-purpose (e.g. `10.20.0.0/16,fd12:3456::/48`).
pub const EGRESS_ALLOW_VAR: &str = "KEYWARD_EGRESS_ALLOW";

/// A block of addresses, `ADDRESS/PREFIX` (a bare address is a block of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Net {
        Net {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(s: [u16; 8], prefix: u8) -> Net {
        Net {
            addr: IpAddr::V6(Ipv6Addr::new(
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            )),
            prefix,
        }
    }

    /// Whether `ip` lies in this block (an IPv4 block holds IPv4 addresses
    /// only; wrapped forms are unwrapped by the caller).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

impl FromStr for Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not an address block; write ADDRESS/PREFIX, e.g. 10.20.0.0/16")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        let net = Net { addr, prefix };
        // Host bits past the prefix usually mean a typo in the prefix.
        let bits = match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let host_bits = u32::from(max - prefix);
        if host_bits > 0 && bits & ((1u128 << host_bits) - 1) != 0 {
            return Err(format!(
                "{text:?} has address bits set past the /{prefix}; write the block's first address"
            ));
        }
        Ok(net)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why an address is special.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A cloud metadata or platform service (never reachable).
    Metadata,
    /// Link-local, where cloud metadata services answer (never reachable).
    LinkLocal,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1` (by name; loopback origins are allowed).
    Loopback,
    /// RFC 1918 private networks.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT).
    Shared,
    /// IPv6 unique-local `fc00::/7` and deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// Documentation and example blocks.
    Documentation,
    /// RFC 2544 benchmarking.
    Benchmarking,
    /// Protocol assignments, discard-only, translation and other blocks
    /// without a public host behind them.
    Protocol,
    /// Multicast.
    Multicast,
    /// Limited broadcast.
    Broadcast,
    /// Reserved or not allocated for unicast.
    Reserved,
}

impl Class {
    /// Whether the operator's allow list can open it. Metadata and
    /// link-local stay closed: no forge lives there, and the answer there is
    /// the machine's cloud credentials.
    pub fn allowable(self) -> bool {
        !matches!(self, Class::Metadata | Class::LinkLocal)
    }

    fn describe(self) -> &'static str {
        match self {
            Class::Metadata => "a cloud metadata service address",
            Class::LinkLocal => "a link-local address (where cloud metadata services answer)",
            Class::Unspecified => "an unspecified (\"this network\") address",
            Class::Loopback => "a loopback address",
            Class::Private => "a private-network address",
            Class::Shared => "a shared (carrier-grade NAT) address",
            Class::UniqueLocal => "an IPv6 unique-local or site-local address",
            Class::Documentation => "a documentation address",
            Class::Benchmarking => "a benchmarking address",
            Class::Protocol => "a special-purpose protocol address",
            Class::Multicast => "a multicast address",
            Class::Broadcast => "the broadcast address",
            Class::Reserved => "a reserved address",
        }
    }
}

/// The IPv4 special-purpose blocks, most specific first (IANA registry,
/// plus multicast and the metadata services that sit in public space).
const V4: &[(Net, Class)] = &[
    (Net::v4(100, 100, 100, 200, 32), Class::Metadata), // Alibaba Cloud
    (Net::v4(168, 63, 129, 16, 32), Class::Metadata),   // Azure WireServer
    (Net::v4(192, 0, 0, 192, 32), Class::Metadata),     // Oracle Cloud (legacy)
    (Net::v4(169, 254, 0, 0, 16), Class::LinkLocal),    // AWS, GCP, Azure, OpenStack…
    (Net::v4(0, 0, 0, 0, 8), Class::Unspecified),
    (Net::v4(10, 0, 0, 0, 8), Class::Private),
    (Net::v4(100, 64, 0, 0, 10), Class::Shared),
    (Net::v4(127, 0, 0, 0, 8), Class::Loopback),
    (Net::v4(172, 16, 0, 0, 12), Class::Private),
    (Net::v4(192, 0, 0, 0, 24), Class::Protocol),
    (Net::v4(192, 0, 2, 0, 24), Class::Documentation),
    (Net::v4(192, 88, 99, 0, 24), Class::Protocol), // 6to4 relay anycast
    (Net::v4(192, 168, 0, 0, 16), Class::Private),
    (Net::v4(198, 18, 0, 0, 15), Class::Benchmarking),
    (Net::v4(198, 51, 100, 0, 24), Class::Documentation),
    (Net::v4(203, 0, 113, 0, 24), Class::Documentation),
    (Net::v4(224, 0, 0, 0, 4), Class::Multicast),
    (Net::v4(255, 255, 255, 255, 32), Class::Broadcast),
    (Net::v4(240, 0, 0, 0, 4), Class::Reserved),
];

/// The IPv6 special-purpose blocks, most specific first. The forms that
/// wrap an IPv4 address are handled before this table.
const V6: &[(Net, Class)] = &[
    (
        Net::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0], 32),
        Class::Metadata,
    ), // AWS IMDS, DNS, NTP
    (
        Net::v6([0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254], 128),
        Class::Metadata,
    ), // GCP
    (Net::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Class::Unspecified),
    (Net::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Class::Loopback),
    (
        Net::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        Class::Protocol,
    ), // local-use NAT64
    (Net::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Class::Protocol), // discard-only
    (Net::v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), Class::Protocol), // dummy prefix
    (Net::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Class::Protocol), // incl. Teredo
    (
        Net::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        Class::Documentation,
    ),
    (
        Net::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        Class::Documentation,
    ),
    (
        Net::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        Class::UniqueLocal,
    ),
    (Net::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Class::LinkLocal),
    (
        Net::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        Class::UniqueLocal,
    ),
    (Net::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Class::Multicast),
];

/// Global unicast: the only IPv6 space allocated for public hosts.
const GLOBAL_UNICAST: Net = Net::v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// How an IPv6 address wraps an IPv4 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// `::a.b.c.d` (deprecated).
    Compatible,
    /// `64:ff9b::a.b.c.d` (RFC 6052 well-known NAT64 prefix).
    Nat64,
    /// `2002:AABB:CCDD::/48` (6to4).
    SixToFour,
}

impl Wrapper {
    fn describe(self) -> &'static str {
        match self {
            Wrapper::Mapped => "IPv4-mapped",
            Wrapper::Compatible => "IPv4-compatible",
            Wrapper::Nat64 => "NAT64",
            Wrapper::SixToFour => "6to4",
        }
    }
}

/// The IPv4 address an IPv6 address carries, and how.
pub fn unwrap_v4(ip: Ipv6Addr) -> Option<(Wrapper, Ipv4Addr)> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some((Wrapper::Mapped, v4));
    }
    if bits >> 32 == 0 && bits > 1 {
        return Some((Wrapper::Compatible, low));
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some((Wrapper::Nat64, low));
    }
    if bits >> 112 == 0x2002 {
        return Some((Wrapper::SixToFour, Ipv4Addr::from((bits >> 80) as u32)));
    }
    None
}

/// Why a plugin may not reach an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of address it is (for a wrapper: what it wraps).
    pub class: Class,
    /// The block it lies in (for a wrapper: the wrapped address's block).
    pub block: Option<Net>,
    /// The IPv4 address a wrapping IPv6 address leads to.
    pub wraps: Option<(Wrapper, Ipv4Addr)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((how, v4)) = self.wraps {
            write!(f, "an {} address of {v4}, which is ", how.describe())?;
        }
        f.write_str(self.class.describe())?;
        if let Some(block) = self.block {
            write!(f, " ({block})")?;
        }
        if self.class.allowable() {
            write!(
                f,
                "; an operator may open it with {EGRESS_ALLOW_VAR} (docs/plugins.md, \"Outbound addresses\")"
            )
        } else {
            f.write_str("; plugins may never reach it")
        }
    }
}

/// What a non-loopback origin may connect to: public addresses, and the
/// operator's allow list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    allow: Vec<Net>,
}

impl Policy {
    /// The policy with `allow` opened (metadata and link-local stay closed).
    pub fn new(allow: Vec<Net>) -> Policy {
        Policy { allow }
    }

    /// Parses a comma-separated list of blocks (`10.20.0.0/16,fd12::/48`);
    /// empty text opens nothing.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let allow = text
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Net>, String>>()
            .map_err(|e| format!("{EGRESS_ALLOW_VAR}: {e}"))?;
        Ok(Policy { allow })
    }

    /// Reads `KEYWARD_EGRESS_ALLOW`.
    pub fn from_env() -> Result<Policy, String> {
        match std::env::var(EGRESS_ALLOW_VAR) {
            Ok(text) => Policy::parse(&text),
            Err(std::env::VarError::NotPresent) => Ok(Policy::default()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{EGRESS_ALLOW_VAR} is not valid UTF-8"))
            }
        }
    }

    /// The blocks the operator opened.
    pub fn allowed(&self) -> &[Net] {
        &self.allow
    }

    /// Why `ip` may not be reached, or none when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        let refusal = classify(ip)?;
        let opened = refusal.class.allowable()
            && self.allow.iter().any(|net| {
                net.contains(ip) || refusal.wraps.is_some_and(|(_, v4)| net.contains(v4.into()))
            });
        (!opened).then_some(refusal)
    }
}

/// Why `ip` is not a public address, or none when it is one (whatever any
/// allow list says).
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    if let Some((how, v4)) = unwrap_v4(v6) {
        let inner = classify_v4(v4);
        // The deprecated compatible form has no legitimate use at all.
        let inner = match (how, inner) {
            (Wrapper::Compatible, None) => Some(Refusal {
                class: Class::Reserved,
                block: None,
                wraps: None,
            }),
            (_, inner) => inner,
        };
        return inner.map(|r| Refusal {
            wraps: Some((how, v4)),
            ..r
        });
    }
    let ip = IpAddr::V6(v6);
    if let Some((net, class)) = V6.iter().find(|(net, _)| net.contains(ip)) {
        return Some(Refusal {
            class: *class,
            block: Some(*net),
            wraps: None,
        });
    }
    (!GLOBAL_UNICAST.contains(ip)).then_some(Refusal {
        class: Class::Reserved,
        block: None,
        wraps: None,
    })
}

fn classify_v4(v4: Ipv4Addr) -> Option<Refusal> {
    let ip = IpAddr::V4(v4);
    V4.iter()
        .find(|(net, _)| net.contains(ip))
        .map(|(net, class)| Refusal {
            class: *class,
            block: Some(*net),
            wraps: None,
        })
}

/// The operator's policy, read from `KEYWARD_EGRESS_ALLOW` once per
/// process. Commands validate the variable at start (a malformed value is a
/// configuration error, exit 78), so the fallback to "open nothing" here
/// only fails closed.
pub fn operator() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "ignoring the egress allow list; plugins reach public addresses only");
            Policy::default()
        })
    })
}

/// Why a plugin may not reach `ip` under the operator's policy, if it may not.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    operator().refusal(ip)
}

/// Whether a non-loopback origin may not connect to `ip`.
pub fn forbidden(ip: IpAddr) -> bool {
    refusal(ip).is_some()
}

/// Why none of `ips` may be reached: the first refusal, or the rule when
/// none was refused here (no addresses; `localhost` off loopback).
pub fn explain(ips: &[IpAddr]) -> String {
    match ips.iter().find_map(|ip| refusal(*ip).map(|r| (ip, r))) {
        Some((ip, why)) => format!("{ip} is {why}"),
        None => "none is public, or loopback for `localhost`".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn class(text: &str) -> Option<Class> {
        classify(ip(text)).map(|r| r.class)
    }

    #[test]
    fn cloud_metadata_is_refused_in_every_form() {
        for (text, expected) in [
            ("169.254.169.254", Class::LinkLocal),
            ("169.254.170.2", Class::LinkLocal),
            ("fd00:ec2::254", Class::Metadata),
            ("fd00:ec2::23", Class::Metadata),
            ("fd20:ce::254", Class::Metadata),
            ("100.100.100.200", Class::Metadata),
            ("168.63.129.16", Class::Metadata),
            ("192.0.0.192", Class::Metadata),
            ("::ffff:169.254.169.254", Class::LinkLocal),
            ("::169.254.169.254", Class::LinkLocal),
            ("64:ff9b::169.254.169.254", Class::LinkLocal),
            ("2002:a9fe:a9fe::1", Class::LinkLocal),
            ("::ffff:100.100.100.200", Class::Metadata),
            ("fe80::1", Class::LinkLocal),
        ] {
            assert_eq!(class(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn ipv6_unique_local_and_site_local_are_refused() {
        for text in ["fc00::1", "fd12:3456:789a::1", "fdff:ffff::1", "fec0::1"] {
            assert_eq!(class(text), Some(Class::UniqueLocal), "{text}");
        }
    }

    #[test]
    fn cgnat_shared_space_is_refused() {
        for text in ["100.64.0.1", "100.127.255.254", "100.100.1.1"] {
            assert_eq!(class(text), Some(Class::Shared), "{text}");
        }
        assert_eq!(class("100.63.255.255"), None);
        assert_eq!(class("100.128.0.0"), None);
    }

    #[test]
    fn rfc1918_private_networks_are_refused() {
        for text in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
        ] {
            assert_eq!(class(text), Some(Class::Private), "{text}");
        }
        assert_eq!(class("172.32.0.1"), None);
        assert_eq!(class("172.15.255.255"), None);
    }

    #[test]
    fn nat64_and_6to4_are_judged_by_the_address_they_wrap() {
        let r = classify(ip("64:ff9b::10.1.2.3")).expect("refused");
        assert_eq!(r.class, Class::Private);
        assert_eq!(r.wraps, Some((Wrapper::Nat64, Ipv4Addr::new(10, 1, 2, 3))));
        let r = classify(ip("2002:c0a8:0101::1")).expect("refused");
        assert_eq!(r.class, Class::Private);
        assert_eq!(
            r.wraps,
            Some((Wrapper::SixToFour, Ipv4Addr::new(192, 168, 1, 1)))
        );
        assert_eq!(class("64:ff9b::127.0.0.1"), Some(Class::Loopback));
        assert_eq!(class("2002:6440:0001::"), Some(Class::Shared));
        // Wrapping a public address is a route to that address.
        assert_eq!(class("64:ff9b::140.82.112.3"), None);
        assert_eq!(class("2002:8c52:7003::1"), None);
        // The local-use NAT64 prefix is private by definition.
        assert_eq!(class("64:ff9b:1::8c52:7003"), Some(Class::Protocol));
    }

    #[test]
    fn ipv4_mapped_and_compatible_forms_are_unwrapped() {
        assert_eq!(class("::ffff:10.0.0.1"), Some(Class::Private));
        assert_eq!(class("::ffff:127.0.0.1"), Some(Class::Loopback));
        assert_eq!(class("::ffff:0.0.0.0"), Some(Class::Unspecified));
        assert_eq!(class("::10.0.0.1"), Some(Class::Private));
        // Mapped public is that public address; compatible is never used.
        assert_eq!(class("::ffff:140.82.112.3"), None);
        assert_eq!(class("::140.82.112.3"), Some(Class::Reserved));
    }

    #[test]
    fn the_rest_of_the_special_purpose_registry_is_refused() {
        for (text, expected) in [
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("127.0.0.1", Class::Loopback),
            ("127.8.9.10", Class::Loopback),
            ("192.0.0.9", Class::Protocol),
            ("192.0.2.1", Class::Documentation),
            ("192.88.99.1", Class::Protocol),
            ("198.18.0.1", Class::Benchmarking),
            ("198.19.255.255", Class::Benchmarking),
            ("198.51.100.7", Class::Documentation),
            ("203.0.113.7", Class::Documentation),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("240.0.0.1", Class::Reserved),
            ("255.255.255.255", Class::Broadcast),
            ("::", Class::Unspecified),
            ("::1", Class::Loopback),
            ("100::1", Class::Protocol),
            ("100:0:0:1::1", Class::Protocol),
            ("2001::1", Class::Protocol),
            ("2001:0:4136:e378::1", Class::Protocol),
            ("2001:db8::1", Class::Documentation),
            ("3fff::1", Class::Documentation),
            ("5f00::1", Class::Reserved),
            ("ff02::1", Class::Multicast),
            ("4000::1", Class::Reserved),
            ("::2:0:0:1", Class::Reserved),
        ] {
            assert_eq!(class(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn public_addresses_are_reachable() {
        for text in [
            "140.82.112.3",
            "1.1.1.1",
            "8.8.8.8",
            "192.0.3.1",
            "2606:4700::1111",
            "2a01:4f8::1",
            "2001:200::1",
        ] {
            assert_eq!(classify(ip(text)), None, "{text}");
        }
    }

    #[test]
    fn the_allow_list_opens_what_it_names_but_never_metadata() {
        let policy = Policy::parse(
            " 10.20.0.0/16, fd12:3456::/32,169.254.0.0/16,100.64.0.0/10,fd00::/8,127.0.0.0/8",
        )
        .expect("valid list");
        for open in [
            "10.20.1.2",
            "::ffff:10.20.1.2",
            "64:ff9b::10.20.1.2",
            "fd12:3456::1",
            "100.64.0.1",
            "127.0.0.1",
        ] {
            assert_eq!(policy.refusal(ip(open)), None, "{open}");
        }
        for closed in [
            "10.21.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
        ] {
            assert!(policy.refusal(ip(closed)).is_some(), "{closed}");
        }
        let text = policy
            .refusal(ip("fd00:ec2::254"))
            .expect("refused")
            .to_string();
        assert!(text.contains("never"), "{text}");
        let text = Policy::default()
            .refusal(ip("10.0.0.1"))
            .expect("refused")
            .to_string();
        assert!(text.contains(EGRESS_ALLOW_VAR), "{text}");
    }

    #[test]
    fn malformed_allow_lists_are_refused_with_the_rule() {
        assert_eq!(Policy::parse("").expect("empty"), Policy::default());
        assert_eq!(
            Policy::parse("10.0.0.7").expect("one address").allowed(),
            &[Net::v4(10, 0, 0, 7, 32)]
        );
        for bad in [
            "10.0.0.0/33",
            "10.1.0.0/8",
            "example.com",
            "10.0.0.0/x",
            "fd00::/129",
        ] {
            let e = Policy::parse(bad).expect_err(bad);
            assert!(e.starts_with(EGRESS_ALLOW_VAR), "{e}");
        }
    }
}
