//! DNS probes: one query over UDP to the configured server (or the system's first
//! nameserver), built and parsed with hickory-proto. The response code is reported under
//! the names Gatus uses (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...), the answers as text, and
//! the first A/AAAA answer as `[IP]`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::op::{Message, Query as DnsQuery, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use super::{Outcome, Phases};

#[derive(Debug, Clone)]
pub(super) struct Query {
    name: Name,
    record_type: RecordType,
    /// None: read /etc/resolv.conf at each run (it may change).
    server: Option<SocketAddr>,
}

fn server_addr(s: &str) -> Option<SocketAddr> {
    s.parse()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

impl Query {
    pub(super) fn new(name: &str, record_type: Option<&str>, server: Option<&str>) -> Result<Query, String> {
        let name = Name::from_utf8(name).map_err(|e| format!("dns = {name:?} is not a domain name: {e}"))?;
        let rt = record_type.unwrap_or("A");
        let record_type = RecordType::from_str(&rt.to_ascii_uppercase())
            .ok()
            .filter(|t| !matches!(t, RecordType::Unknown(_)))
            .ok_or_else(|| {
                format!("record_type = {rt:?} is not a DNS record type (A, AAAA, MX, TXT, ...)")
            })?;
        let server = server
            .map(|s| {
                server_addr(s)
                    .ok_or_else(|| format!("server = {s:?} must be an IP address, optionally with :port"))
            })
            .transpose()?;
        Ok(Query {
            name,
            record_type,
            server,
        })
    }

    pub(super) async fn run(&self, o: &mut Outcome, ph: &mut Phases) -> Result<(), String> {
        let server = match self.server {
            Some(s) => s,
            None => system_nameserver().await?,
        };
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(DnsQuery::query(self.name.clone(), self.record_type));
        let id = msg.metadata.id;
        let bytes = msg
            .to_vec()
            .map_err(|e| format!("cannot encode the DNS query: {e}"))?;
        ph.enter("connect");
        let local: SocketAddr = match server.is_ipv6() {
            true => "[::]:0".parse().expect("literal"),
            false => "0.0.0.0:0".parse().expect("literal"),
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| format!("DNS socket: {e}"))?;
        sock.connect(server)
            .await
            .map_err(|e| format!("cannot reach DNS server {server}: {e}"))?;
        ph.enter("query");
        sock.send(&bytes)
            .await
            .map_err(|e| format!("cannot send the DNS query to {server}: {e}"))?;
        let mut buf = vec![0u8; 4096];
        let reply = loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("no DNS answer from {server}: {e}"))?;
            // Anything that is not the answer to this query (late, spoofed) is skipped.
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => break m,
                _ => continue,
            }
        };
        o.connected = true;
        o.dns_rcode = Some(rcode_name(reply.metadata.response_code));
        o.dns_answers = reply
            .answers
            .iter()
            .map(|r| format!("{} {}", r.record_type(), r.data))
            .collect();
        if let Some(ip) = reply.answers.iter().find_map(|r| r.data.ip_addr()) {
            o.ip = Some(ip);
        }
        Ok(())
    }
}

/// The first `nameserver` of /etc/resolv.conf.
async fn system_nameserver() -> Result<SocketAddr, String> {
    let conf = tokio::fs::read_to_string("/etc/resolv.conf")
        .await
        .map_err(|e| format!("no DNS server configured (server = ...) and /etc/resolv.conf: {e}"))?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|s| server_addr(s.trim()))
        .ok_or_else(|| "no DNS server configured (server = ...) and none in /etc/resolv.conf".into())
}

/// The RFC's mnemonic, as Gatus and dig print it.
fn rcode_name(r: ResponseCode) -> String {
    match u16::from(r) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_check_their_keys() {
        let q = Query::new("example.org", Some("aaaa"), Some("10.0.0.53")).unwrap();
        assert_eq!(q.record_type, RecordType::AAAA);
        assert_eq!(q.server, Some("10.0.0.53:53".parse().unwrap()));
        assert_eq!(
            Query::new("x", None, Some("[::1]:5353")).unwrap().server,
            Some("[::1]:5353".parse().unwrap())
        );
        assert!(Query::new("x", Some("BOGUS"), None)
            .unwrap_err()
            .contains("record_type"));
        assert!(Query::new("x", None, Some("dns.google"))
            .unwrap_err()
            .contains("IP address"));
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
    }
}
