//! The SSRF guard: a delivery may only reach public addresses. A destination's host is
//! resolved here, every address is checked, and the connection goes to the addresses that
//! were checked (the HTTP client is given this resolver), so a DNS answer that changes between
//! the check and the connection (rebinding) cannot slip through. An operator allow-list admits
//! chosen networks (a receiver inside the platform; tests' local receivers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;

/// Networks no delivery may reach unless allow-listed.
static BLOCKED: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("0.0.0.0/8", "the unspecified network"),
        ("10.0.0.0/8", "a private network (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
        ("172.16.0.0/12", "a private network (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "a private network (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "the unspecified address"),
        ("::1/128", "loopback"),
        ("fc00::/7", "a unique local network (IPv6 ULA)"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "documentation"),
    ]
    .into_iter()
    .map(|(net, why)| (net.parse().expect("a valid built-in network"), why))
    .collect()
});

/// A destination refused by the guard; the worker dead-letters on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused destination {host} ({address}): {why}; an operator can allow-list it")]
pub struct Refused {
    /// The host as given.
    pub host: String,
    /// The address it resolved to.
    pub address: IpAddr,
    /// Which kind of network it is in.
    pub why: &'static str,
}

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy admitting the `allow` networks (CIDR, e.g. `127.0.0.1/32`) besides public ones.
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|net| {
                net.parse::<IpNet>()
                    .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|e| format!("allow-list entry {net:?} is not a network: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// Whether `address` may be reached; `host` names it in the error.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        let address = canonical(address);
        if self.allow.iter().any(|net| net.contains(&address)) {
            return Ok(());
        }
        match BLOCKED.iter().find(|(net, _)| net.contains(&address)) {
            Some((_, why)) => Err(Refused {
                host: host.to_owned(),
                address,
                why,
            }),
            None => Ok(()),
        }
    }
}

/// IPv4 addresses written as IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are
/// judged as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The resolver the webhook client connects through: it returns only checked addresses.
pub struct GuardedResolver {
    /// The policy addresses are checked against.
    pub policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                policy.check(&host, address.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

/// Finds a [`Refused`] in an error's chain of sources (the client wraps the resolver's error).
pub fn refused_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_unless_allow_listed() {
        let policy = AddressPolicy::default();
        for (address, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "RFC 1918"),
            ("172.20.1.1", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("169.254.169.254", "metadata"),
            ("100.64.0.1", "carrier-grade"),
            ("::1", "loopback"),
            ("fd00::1", "ULA"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("0.0.0.0", "unspecified"),
        ] {
            let error = policy
                .check("h", address.parse().unwrap())
                .expect_err(address);
            assert!(error.to_string().contains(kind), "{address}: {error}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(
                policy.check("h", public.parse().unwrap()).is_ok(),
                "{public}"
            );
        }
        let allowing = AddressPolicy::new(&["127.0.0.1/32".to_owned(), "::1".to_owned()]).unwrap();
        assert!(allowing.check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowing.check("h", "::1".parse().unwrap()).is_ok());
        assert!(allowing.check("h", "127.0.0.2".parse().unwrap()).is_err());
        assert!(AddressPolicy::new(&["nonsense".to_owned()]).is_err());
    }
}
