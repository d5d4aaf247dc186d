//! Which IP address the gateway binds, from `gateway.bind` and `gateway.customBindHost`.
//!
//! `tailnet` finds the Tailscale address by listing interfaces with `getifaddrs(3)` rather
//! than asking the `tailscale` CLI: no subprocess, no dependency on its output format, and
//! it works with any WireGuard/Headscale setup that uses the CGNAT range.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use super::{BindMode, ConfigError, GatewayConfig};

const TAILNET_NONE: &str = "bind mode tailnet: no interface address in 100.64.0.0/10 (is tailscale up?); use --bind loopback or set gateway.customBindHost with bind custom";

impl GatewayConfig {
    /// The IP to bind: loopback 127.0.0.1; lan 0.0.0.0; tailnet the first address in
    /// 100.64.0.0/10 on an interface that is up; custom `customBindHost` as an IP literal.
    ///
    /// Tailnet is looked up on every call, so a restart picks up an address that changed.
    pub fn bind_host(&self) -> Result<IpAddr, ConfigError> {
        match self.bind {
            BindMode::Loopback => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            BindMode::Lan => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            BindMode::Tailnet => match tailnet_ipv4() {
                Ok(Some(ip)) => Ok(IpAddr::V4(ip)),
                Ok(None) => Err(ConfigError::new(TAILNET_NONE)),
                Err(e) => Err(ConfigError::new(format!(
                    "bind mode tailnet: cannot list network interfaces: {e}; use --bind loopback or set gateway.customBindHost with bind custom"
                ))),
            },
            BindMode::Custom => parse_custom_host(self.custom_bind_host.as_deref()),
        }
    }

    /// Whether clients must authenticate: a token (inline, from a file, or from the env)
    /// or a password is configured. A `token_file` not yet read counts, so a config that
    /// was only parsed, not loaded, fails closed.
    pub fn auth_required(&self) -> bool {
        self.auth.token.is_some() || self.auth.token_file.is_some() || self.auth.password.is_some()
    }
}

/// `customBindHost` as an IP literal. Host names are refused: resolving them would make
/// the bind address depend on DNS at start-up, and a name can resolve to several families.
pub(super) fn parse_custom_host(host: Option<&str>) -> Result<IpAddr, ConfigError> {
    let Some(host) = host else {
        return Err(ConfigError::new(
            "gateway.bind is \"custom\" but gateway.customBindHost is not set: set it to an IP address such as 192.168.1.10, or use another bind mode",
        ));
    };
    host.parse().map_err(|_| {
        ConfigError::new(format!(
            "gateway.customBindHost: expected an IP address such as 192.168.1.10 or ::1 (no host names, no brackets), got {}",
            serde_json::Value::from(host)
        ))
    })
}

/// The first IPv4 address in 100.64.0.0/10 on an interface that is up, if any.
pub fn tailnet_ipv4() -> io::Result<Option<Ipv4Addr>> {
    Ok(first_tailnet(interface_ipv4s()?))
}

/// Tailscale hands out addresses from the CGNAT block 100.64.0.0/10.
fn is_tailnet(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (b & 0xC0) == 64
}

/// A down interface may still carry its old address; binding it would fail or, worse,
/// succeed on a link nobody can reach.
fn first_tailnet(addrs: impl IntoIterator<Item = (Ipv4Addr, bool)>) -> Option<Ipv4Addr> {
    addrs
        .into_iter()
        .find(|&(ip, up)| up && is_tailnet(ip))
        .map(|(ip, _)| ip)
}

/// Every IPv4 interface address, with whether its interface is up, in kernel order.
fn interface_ipv4s() -> io::Result<Vec<(Ipv4Addr, bool)>> {
    /// Frees the list however we leave the function.
    struct List(*mut libc::ifaddrs);
    impl Drop for List {
        fn drop(&mut self) {
            // SAFETY: the pointer came from a successful getifaddrs and is freed once.
            unsafe { libc::freeifaddrs(self.0) }
        }
    }

    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs only writes the list head through the valid pointer we pass.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let list = List(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list, which stays valid until `list` drops.
        let ifa = unsafe { &*cur };
        let addr = ifa.ifa_addr;
        // SAFETY: a non-null ifa_addr points to at least a sockaddr header.
        if !addr.is_null() && i32::from(unsafe { (*addr).sa_family }) == libc::AF_INET {
            // SAFETY: the family says it is a sockaddr_in; read_unaligned avoids assuming
            // the kernel-provided buffer is aligned for the larger struct.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            out.push((ip, up));
        }
        cur = ifa.ifa_next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, Secret};

    fn gw(bind: BindMode, host: Option<&str>) -> GatewayConfig {
        GatewayConfig {
            bind,
            custom_bind_host: host.map(String::from),
            ..GatewayConfig::default()
        }
    }

    #[test]
    fn fixed_modes() {
        assert_eq!(
            gw(BindMode::Loopback, None).bind_host().unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            gw(BindMode::Lan, None).bind_host().unwrap(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn custom_host() {
        assert_eq!(
            gw(BindMode::Custom, Some("10.1.2.3")).bind_host().unwrap(),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            gw(BindMode::Custom, Some("::1")).bind_host().unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        let e = gw(BindMode::Custom, None).bind_host().unwrap_err();
        assert!(e.message().contains("gateway.customBindHost is not set"), "{e}");
        let e = gw(BindMode::Custom, Some("[::1]")).bind_host().unwrap_err();
        assert!(
            e.message()
                .starts_with("gateway.customBindHost: expected an IP address"),
            "{e}"
        );
        // customBindHost is ignored by the other modes.
        assert_eq!(
            gw(BindMode::Loopback, Some("10.1.2.3")).bind_host().unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn tailnet_range() {
        assert!(is_tailnet(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(is_tailnet(Ipv4Addr::new(100, 101, 102, 103)));
        assert!(is_tailnet(Ipv4Addr::new(100, 127, 255, 255)));
        assert!(!is_tailnet(Ipv4Addr::new(100, 63, 255, 255)));
        assert!(!is_tailnet(Ipv4Addr::new(100, 128, 0, 0)));
        assert!(!is_tailnet(Ipv4Addr::new(10, 64, 0, 1)));
    }

    #[test]
    fn first_tailnet_skips_down_and_other_addresses() {
        let addrs = [
            (Ipv4Addr::LOCALHOST, true),
            (Ipv4Addr::new(100, 70, 0, 1), false),
            (Ipv4Addr::new(192, 168, 1, 2), true),
            (Ipv4Addr::new(100, 80, 0, 2), true),
            (Ipv4Addr::new(100, 90, 0, 3), true),
        ];
        assert_eq!(first_tailnet(addrs), Some(Ipv4Addr::new(100, 80, 0, 2)));
        assert_eq!(first_tailnet([(Ipv4Addr::LOCALHOST, true)]), None);
    }

    #[test]
    fn interfaces_can_be_listed() {
        // Whatever this machine has, the call must succeed and agree with bind_host.
        let list = interface_ipv4s().unwrap();
        let expected = first_tailnet(list.iter().copied());
        match gw(BindMode::Tailnet, None).bind_host() {
            Ok(ip) => assert_eq!(Some(ip), expected.map(IpAddr::V4)),
            Err(e) => {
                assert_eq!(expected, None);
                assert_eq!(e.message(), TAILNET_NONE);
            }
        }
    }

    #[test]
    fn auth_required_by_any_credential() {
        let mut g = GatewayConfig::default();
        assert!(!g.auth_required());
        g.auth = AuthConfig {
            token: Some(Secret::new("t".into())),
            ..AuthConfig::default()
        };
        assert!(g.auth_required());
        g.auth = AuthConfig {
            password: Some(Secret::new("p".into())),
            ..AuthConfig::default()
        };
        assert!(g.auth_required());
        g.auth = AuthConfig {
            token_file: Some("t".into()),
            ..AuthConfig::default()
        };
        assert!(g.auth_required());
    }
}
