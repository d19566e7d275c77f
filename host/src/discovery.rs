//! Finding directory servers with no configuration: DNS-SD over multicast
//! DNS (RFC 6762/6763), through the `mdns-sd` crate.
//!
//! A server announces one service instance of type [`SERVICE_TYPE`] for as
//! long as its [`Announcement`] lives, with the CRDP version in its TXT
//! record; dropping it sends the goodbye (a record with TTL 0), so browsers
//! forget the server at once. A client [`browse`]s for a moment and gets
//! every server that answered, each once however many interfaces or
//! addresses it was heard on.
//!
//! mDNS speaks to `224.0.0.251`/`ff02::fb` port 5353 on every interface with
//! multicast, loopback included: tests run it only inside a private network
//! namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

/// The DNS-SD service type a roomcast directory server announces.
pub const SERVICE_TYPE: &str = "_crdp._tcp.local.";

/// The TXT key that carries the directory protocol's version (`CRDP/1`).
pub const TXT_PROTOCOL: &str = "protocol";

/// The TXT key that carries the TXT record's own version (RFC 6763 §6.7).
pub const TXT_VERSION: &str = "txtvers";

/// How long dropping an [`Announcement`] waits for the goodbye to go out.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// The longest instance name announced (DNS labels hold 63 bytes).
const MAX_INSTANCE_NAME: usize = 63;

/// A server's announcement on the LAN; withdrawn when dropped.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
    /// The instance name others see, for the log.
    pub instance: String,
}

impl Announcement {
    /// Announces a directory server listening on `port` at `bind` (an
    /// unspecified address announces every address of this host, following
    /// changes; a loopback address is announced on loopback only).
    /// `protocol` goes in the TXT record.
    pub fn start(port: u16, bind: IpAddr, protocol: &str) -> Result<Announcement, String> {
        let daemon =
            ServiceDaemon::new().map_err(|e| format!("cannot start the mDNS responder: {e}"))?;
        if bind.is_loopback() {
            // Reachable from this machine only: announce it there only.
            daemon
                .disable_interface(IfKind::All)
                .and_then(|()| {
                    daemon.enable_interface(if bind.is_ipv4() {
                        IfKind::LoopbackV4
                    } else {
                        IfKind::LoopbackV6
                    })
                })
                .map_err(|e| format!("cannot limit mDNS to loopback: {e}"))?;
        }
        let host = this_host();
        let instance = instance_name(&host, port);
        let hostname = format!("{}.local.", dns_label(&host));
        let addresses: Vec<IpAddr> = if bind.is_unspecified() {
            Vec::new()
        } else {
            vec![bind]
        };
        let properties = [(TXT_VERSION, "1"), (TXT_PROTOCOL, protocol)];
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &hostname,
            &addresses[..],
            port,
            &properties[..],
        )
        .map_err(|e| format!("cannot describe the mDNS announcement: {e}"))?;
        if addresses.is_empty() {
            info = info.enable_addr_auto();
        }
        let fullname = info.get_fullname().to_owned();
        daemon
            .register(info)
            .map_err(|e| format!("cannot announce the server over mDNS: {e}"))?;
        Ok(Announcement {
            daemon,
            fullname,
            instance,
        })
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        // Unregistering sends the goodbye; wait for it (bounded) so browsers
        // forget this server now rather than when the record expires.
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
    }
}

/// A directory server found on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its instance name (the host's name, `lab-pc`), which `connect`
    /// accepts.
    pub name: String,
    /// Its addresses, IPv4 first, each once.
    pub addresses: Vec<IpAddr>,
    /// The TCP port of its directory.
    pub port: u16,
    /// The protocol version it announced, if any.
    pub protocol: Option<String>,
}

impl Found {
    /// The address to connect to: IPv4 first (link-local IPv6 needs a
    /// scope that a socket address loses in text).
    pub fn address(&self) -> Option<IpAddr> {
        self.addresses.first().copied()
    }
}

/// Looks for directory servers for `wait` and returns the ones that
/// answered, sorted by name. A server heard on several interfaces or
/// addresses is listed once, with all of its addresses.
pub fn browse(wait: Duration) -> Result<Vec<Found>, String> {
    let daemon = ServiceDaemon::new().map_err(|e| format!("cannot start the mDNS browser: {e}"))?;
    let events = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| format!("cannot browse for servers over mDNS: {e}"))?;
    let deadline = Instant::now() + wait;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                // Whatever the LAN announces, what is shown and typed is
                // one safe word: no escape sequence reaches the terminal.
                let name = one_word(&instance_of(&service.fullname));
                let entry = found
                    .entry(service.fullname.clone())
                    .or_insert_with(|| Found {
                        name,
                        addresses: Vec::new(),
                        port: service.port,
                        protocol: None,
                    });
                entry.port = service.port;
                entry.protocol = service
                    .txt_properties
                    .get_property_val_str(TXT_PROTOCOL)
                    .map(str::to_owned);
                for ip in &service.addresses {
                    let ip = ip.to_ip_addr();
                    if !entry.addresses.contains(&ip) {
                        entry.addresses.push(ip);
                    }
                }
                entry.addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_timeout(GOODBYE_WAIT);
    }
    let mut found: Vec<Found> = found
        .into_values()
        .filter(|f| !f.addresses.is_empty())
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    distinct_names(&mut found);
    Ok(found)
}

/// Gives servers whose names became the same word (`a.b` and `a-b`) each a
/// name of its own, `-2`, `-3`... after the first, so `connect NAME` picks
/// one.
fn distinct_names(found: &mut [Found]) {
    for i in 1..found.len() {
        let mut n = 2;
        while found[..i].iter().any(|f| f.name == found[i].name) {
            let base = found[i]
                .name
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            found[i].name = format!("{base}-{n}");
            n += 1;
        }
    }
}

/// `name` as one word a person can see safely and type: letters, digits
/// and `-` (anything else becomes `-`), at most [`MAX_INSTANCE_NAME`] bytes.
fn one_word(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_INSTANCE_NAME)
        .collect();
    if word.is_empty() {
        "server".to_owned()
    } else {
        word
    }
}

/// This host's name, as the system knows it.
fn this_host() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The instance name announced for a server on `host` listening on `port`:
/// the host's name as one word, so that a client can type `connect NAME`,
/// with the port after a `-` unless it is the default one, so that two
/// servers on one host have two names.
fn instance_name(host: &str, port: u16) -> String {
    let label = dns_label(host);
    if port == crate::DEFAULT_PORT {
        return label;
    }
    let suffix = format!("-{port}");
    let keep = MAX_INSTANCE_NAME - suffix.len();
    format!("{}{suffix}", &label[..label.len().min(keep)])
}

/// `host` made a DNS label: letters, digits and `-`, at most 63 bytes.
fn dns_label(host: &str) -> String {
    let label: String = host
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_INSTANCE_NAME)
        .collect();
    if label.is_empty() {
        "roomcast".to_owned()
    } else {
        label
    }
}

/// The instance part of a full service name (`a\.b._crdp._tcp.local.`),
/// with DNS-SD's escapes undone.
fn instance_of(fullname: &str) -> String {
    let instance = fullname
        .strip_suffix(&format!(".{SERVICE_TYPE}"))
        .unwrap_or(fullname);
    let mut out = String::with_capacity(instance.len());
    let mut chars = instance.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_bounded_and_unescaped() {
        let long = "h".repeat(200);
        assert_eq!(instance_name(&long, 5577).len(), MAX_INSTANCE_NAME);
        assert_eq!(instance_name(&long, 7301).len(), MAX_INSTANCE_NAME);
        assert!(instance_name(&long, 7301).ends_with("hhh-7301"));
        assert_eq!(instance_name("lab.example.org", 5577), "lab");
        assert_eq!(instance_name("lab.example.org", 7301), "lab-7301");
        assert_eq!(instance_of("lab\\.pc._crdp._tcp.local."), "lab.pc");
        assert_eq!(instance_of("odd"), "odd");
    }

    #[test]
    fn hostile_instance_names_become_one_safe_word() {
        let evil = "\u{1b}]0;PWNED\u{7}\u{1b}[31mEVIL \u{202e}olleh (2)";
        let word = one_word(evil);
        assert!(
            word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{word:?}"
        );
        assert_eq!(one_word("vm (2)"), "vm--2-");
        assert_eq!(one_word(""), "server");
        let found = |name: &str| Found {
            name: name.to_owned(),
            addresses: Vec::new(),
            port: 1,
            protocol: None,
        };
        let mut list = [found("a-b"), found("a-b"), found("a-b"), found("c")];
        distinct_names(&mut list);
        let names: Vec<&str> = list.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a-b", "a-b-2", "a-b-3", "c"]);
    }

    #[test]
    fn host_names_become_dns_labels() {
        assert_eq!(dns_label("lab-pc.example.org"), "lab-pc");
        assert_eq!(dns_label("my_pc"), "my-pc");
        assert_eq!(dns_label(""), "roomcast");
        assert_eq!(dns_label(&"x".repeat(100)).len(), 63);
    }
}
