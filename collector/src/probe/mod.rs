//! Probes: `[[collector.probes]]` checks a service from this node, as Prometheus's
//! blackbox_exporter and Gatus do, so every collector on the mesh is a vantage point.
//!
//! Data flow: one task per probe wakes every `interval_secs` (spread over the interval by a
//! hash of the name, so 200 probes do not fire at once), runs the check under
//! `timeout_secs` ([`run_once`]: http.rs, net.rs for TCP and ICMP, dns.rs), evaluates the
//! Gatus-style conditions (condition.rs) and appends the result to the spool (report.rs):
//! metrics under blackbox_exporter's names, and for a failure one log line saying what
//! failed. The spool ships them like every other signal, so a result taken while the store
//! is down arrives later with its own timestamp.
//!
//! A check times each phase; when the timeout cuts it short, the phase it was in names the
//! failure ("connect timeout after 10s").

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;

use crate::spool::Spool;

mod condition;
mod dns;
mod http;
mod net;
mod report;

pub(crate) use condition::Condition;

/// One `[[collector.probes]]`: what to check, how often, and what counts as up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The `probe` label, and the name `obs probe run` takes.
    pub name: String,
    /// An `http://` or `https://` URL to request.
    #[serde(default)]
    pub url: Option<String>,
    /// A `host:port` to connect to.
    #[serde(default)]
    pub tcp: Option<String>,
    /// A name to resolve.
    #[serde(default)]
    pub dns: Option<String>,
    /// A host to ping (unprivileged ICMP echo).
    #[serde(default)]
    pub icmp: Option<String>,
    /// DNS: the record type to ask for [default: A].
    #[serde(default)]
    pub record_type: Option<String>,
    /// DNS: the server, `ip` or `ip:port` [default: the first nameserver in /etc/resolv.conf].
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// HTTP method [default: GET].
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Status codes that count as up [default: 2xx]; not looked at when a condition
    /// tests `[STATUS]`.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Accept any certificate (its expiry is still reported).
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// A PEM CA certificate trusted besides the usual roots (a private CA on the mesh).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub ip_protocol: IpProtocol,
    /// Gatus-style conditions that must all hold: `[STATUS] == 200`, `[BODY].status == UP`.
    #[serde(default)]
    pub conditions: Vec<String>,
}

fn default_interval() -> u64 {
    60
}

fn default_timeout() -> u64 {
    10
}

fn yes() -> bool {
    true
}

/// Which address family to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpProtocol {
    /// The first address the resolver gives.
    #[default]
    Auto,
    Ip4,
    Ip6,
}

/// What a probe checks, validated.
#[derive(Debug, Clone)]
enum Target {
    Http(url::Url),
    Tcp(String, u16),
    Dns(dns::Query),
    Icmp(String),
}

/// A probe ready to run: its config checked, its conditions parsed, its TLS set up.
#[derive(Debug, Clone)]
pub struct Checked {
    probe: Probe,
    target: Target,
    conditions: Vec<Condition>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Checked {
    pub fn name(&self) -> &str {
        &self.probe.name
    }

    /// The `instance` label: the URL, `host:port`, name or host probed.
    pub fn target(&self) -> &str {
        let p = &self.probe;
        [&p.url, &p.tcp, &p.dns, &p.icmp]
            .into_iter()
            .find_map(|t| t.as_deref())
            .unwrap_or_default()
    }

    fn uses(&self, placeholder: &str) -> bool {
        self.conditions.iter().any(|c| c.uses(placeholder))
    }
}

impl Probe {
    /// Checks the probe and prepares it to run; the error names the probe and the key.
    pub fn check(&self) -> Result<Checked, String> {
        let bad = |why: String| format!("[[collector.probes]] {:?}: {why}", self.name);
        if self.name.is_empty() {
            return Err("a [[collector.probes]] entry needs a name".into());
        }
        if self.interval_secs == 0 || self.timeout_secs == 0 {
            return Err(bad("interval_secs and timeout_secs must be at least 1".into()));
        }
        let kinds = [&self.url, &self.tcp, &self.dns, &self.icmp];
        if kinds.iter().filter(|k| k.is_some()).count() != 1 {
            return Err(bad("needs exactly one of url, tcp, dns or icmp".into()));
        }
        let http_only = [
            ("method", self.method.is_some()),
            ("headers", !self.headers.is_empty()),
            ("body", self.body.is_some()),
            ("valid_status_codes", !self.valid_status_codes.is_empty()),
            ("tls_skip_verify", self.tls_skip_verify),
            ("ca_file", self.ca_file.is_some()),
        ];
        let dns_only = [
            ("record_type", self.record_type.is_some()),
            ("server", self.server.is_some()),
        ];
        let misplaced = |keys: &[(&str, bool)], kind: &str| {
            keys.iter()
                .find(|(_, set)| *set)
                .map(|(k, _)| bad(format!("{k} applies only to {kind} probes")))
        };
        let target = if let Some(u) = &self.url {
            if let Some(e) = misplaced(&dns_only, "dns") {
                return Err(e);
            }
            http::parse_headers(&self.headers).map_err(bad)?;
            Target::Http(http::parse_url(u).map_err(bad)?)
        } else {
            if let Some(e) = misplaced(&http_only, "url") {
                return Err(e);
            }
            if let Some(t) = &self.tcp {
                let (host, port) = split_host_port(t)
                    .ok_or_else(|| bad(format!("tcp = {t:?} must be host:port (e.g. \"db.mesh:5432\")")))?;
                Target::Tcp(host, port)
            } else if let Some(name) = &self.dns {
                Target::Dns(
                    dns::Query::new(name, self.record_type.as_deref(), self.server.as_deref())
                        .map_err(bad)?,
                )
            } else {
                if let Some(e) = misplaced(&dns_only, "dns") {
                    return Err(e);
                }
                Target::Icmp(self.icmp.clone().unwrap_or_default())
            }
        };
        let conditions = self
            .conditions
            .iter()
            .map(|c| Condition::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let tls = match &target {
            Target::Http(u) if u.scheme() == "https" => {
                Some(http::tls_config(self.tls_skip_verify, self.ca_file.as_deref()).map_err(bad)?)
            }
            _ => None,
        };
        let method = self.method.as_deref().unwrap_or("GET");
        ::http::Method::from_bytes(method.as_bytes())
            .map_err(|_| bad(format!("method {method:?} is not an HTTP method")))?;
        Ok(Checked {
            probe: self.clone(),
            target,
            conditions,
            tls,
        })
    }
}

/// Checks every probe and that their names are distinct.
pub fn check_probes(probes: &[Probe]) -> Result<Vec<Checked>, String> {
    let mut names = std::collections::HashSet::new();
    probes
        .iter()
        .map(|p| {
            if !names.insert(p.name.as_str()) {
                return Err(format!(
                    "two [[collector.probes]] are named {:?}; each needs its own name",
                    p.name
                ));
            }
            p.check()
        })
        .collect()
}

/// `host:port`, with `[v6]:port` too.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Some((host.to_string(), port.parse().ok()?)))?
}

/// One condition's verdict.
#[derive(Debug, Clone)]
pub struct ConditionResult {
    pub condition: String,
    pub success: bool,
    /// What its left side was.
    pub value: String,
}

/// What one run of a probe saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub success: bool,
    /// Why it failed, for the log line ("HTTP 503 from https://…").
    pub failure: Option<String>,
    pub duration: Duration,
    /// Time per phase (`resolve`, `connect`, `tls`, `processing`, `transfer`; `query` for
    /// DNS, `rtt` for ICMP), summed over redirects.
    pub phases: Vec<(&'static str, Duration)>,
    pub ip: Option<IpAddr>,
    pub connected: bool,
    pub status: Option<u16>,
    pub redirects: u32,
    /// The final response came over TLS.
    pub tls: bool,
    /// The earliest NotAfter of the peer's chain, Unix seconds.
    pub cert_not_after: Option<i64>,
    pub body: Vec<u8>,
    pub dns_rcode: Option<String>,
    pub dns_answers: Vec<String>,
    pub conditions: Vec<ConditionResult>,
}

/// Times the phases of one check; `enter` closes the current one.
#[derive(Debug)]
struct Phases {
    current: &'static str,
    since: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            current: "resolve",
            since: Instant::now(),
            done: Vec::new(),
        }
    }

    fn enter(&mut self, next: &'static str) {
        let now = Instant::now();
        let took = now - self.since;
        match self.done.iter_mut().find(|(p, _)| *p == self.current) {
            Some((_, d)) => *d += took,
            None => self.done.push((self.current, took)),
        }
        self.current = next;
        self.since = now;
    }
}

/// Runs `probe` once, now.
pub async fn run_once(probe: &Checked) -> Outcome {
    let start = Instant::now();
    let mut o = Outcome::default();
    let mut phases = Phases::new();
    let limit = Duration::from_secs(probe.probe.timeout_secs);
    let done = tokio::time::timeout(limit, check(probe, &mut o, &mut phases)).await;
    o.duration = start.elapsed();
    let error = match done {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("{} timeout after {}s", phases.current, limit.as_secs())),
    };
    phases.enter("");
    o.phases = phases.done;
    judge(probe, &mut o, error);
    o
}

async fn check(probe: &Checked, o: &mut Outcome, phases: &mut Phases) -> Result<(), String> {
    let ip = probe.probe.ip_protocol;
    match &probe.target {
        Target::Http(url) => http::check(probe, url, o, phases).await,
        Target::Tcp(host, port) => net::tcp(host, *port, ip, o, phases).await,
        Target::Dns(q) => q.run(o, phases).await,
        Target::Icmp(host) => net::icmp(host, ip, o, phases).await,
    }
}

/// Success and the failure message, from what the check saw and the conditions.
fn judge(probe: &Checked, o: &mut Outcome, error: Option<String>) {
    let now_ms = crate::now_ns() as f64 / 1e6;
    let observed = condition::Observed {
        status: o.status,
        response_time_ms: o.duration.as_secs_f64() * 1000.0,
        body: (!o.body.is_empty() || o.status.is_some()).then_some(&o.body[..]),
        connected: o.connected,
        cert_expiration_ms: o.cert_not_after.map(|t| t as f64 * 1000.0 - now_ms),
        dns_rcode: o.dns_rcode.as_deref(),
        ip: o.ip.map(|ip| ip.to_string()),
    };
    o.conditions = probe
        .conditions
        .iter()
        .map(|c| {
            let (success, value) = c.eval(&observed);
            ConditionResult {
                condition: c.text.clone(),
                success,
                value,
            }
        })
        .collect();
    let target = probe.target();
    // A condition on [CONNECTED] decides about connection failures itself.
    let mut failure = error.filter(|_| !probe.uses("[CONNECTED]"));
    if failure.is_none() {
        failure = match &probe.target {
            Target::Http(_) if !probe.uses("[STATUS]") => o.status.and_then(|s| {
                let valid = match probe.probe.valid_status_codes.as_slice() {
                    [] => (200..300).contains(&s),
                    codes => codes.contains(&s),
                };
                (!valid).then(|| format!("HTTP {s} from {target}"))
            }),
            Target::Dns(_) if !probe.uses("[DNS_RCODE]") => o
                .dns_rcode
                .as_deref()
                .filter(|r| *r != "NOERROR")
                .map(|r| format!("DNS {r} for {target}")),
            _ => None,
        };
    }
    if failure.is_none() {
        failure = o.conditions.iter().find(|c| !c.success).map(|c| {
            match (
                &o.cert_not_after,
                c.condition.contains("[CERTIFICATE_EXPIRATION]"),
            ) {
                (Some(t), true) => format!(
                    "TLS certificate of {target} expires {} ({})",
                    expires_in(*t - (now_ms / 1000.0) as i64),
                    c.condition
                ),
                _ => format!(
                    "condition {} failed on {target}: the value was {}",
                    c.condition, c.value
                ),
            }
        });
    }
    o.success = failure.is_none();
    o.failure = failure;
}

/// "in 3 days", "in 5 hours", "2 days ago".
fn expires_in(secs: i64) -> String {
    let (n, unit) = match secs.abs() {
        s if s >= 2 * 86400 => (s / 86400, "days"),
        s if s >= 2 * 3600 => (s / 3600, "hours"),
        s => (s / 60, "minutes"),
    };
    match secs < 0 {
        true => format!("{n} {unit} ago"),
        false => format!("in {n} {unit}"),
    }
}

/// Resolves `host` to one address of the wanted family.
async fn resolve(host: &str, port: u16, ip: IpProtocol) -> Result<SocketAddr, String> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut addrs = addrs.filter(|a| match ip {
        IpProtocol::Auto => true,
        IpProtocol::Ip4 => a.is_ipv4(),
        IpProtocol::Ip6 => a.is_ipv6(),
    });
    addrs.next().ok_or_else(|| match ip {
        IpProtocol::Auto => format!("{host} has no address"),
        IpProtocol::Ip4 => format!("{host} has no IPv4 address (ip_protocol = \"ip4\")"),
        IpProtocol::Ip6 => format!("{host} has no IPv6 address (ip_protocol = \"ip6\")"),
    })
}

/// Runs every probe on its interval until shutdown.
pub(crate) fn spawn(
    probes: Vec<Checked>,
    host: String,
    spool: Arc<Spool>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    probes
        .into_iter()
        .map(|p| tokio::spawn(run(p, host.clone(), spool.clone(), shutdown.clone())))
        .collect()
}

async fn run(probe: Checked, host: String, spool: Arc<Spool>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_secs(probe.probe.interval_secs);
    // Spread the probes over their interval, the same way on every start.
    let fnv = probe.name().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let offset = fnv % every.as_millis().max(1) as u64;
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_millis(offset), every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let at_ns = crate::now_ns();
        let outcome = tokio::select! {
            o = run_once(&probe) => o,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        report::spool(&probe, &outcome, &host, at_ns, &spool).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(toml_text: &str) -> Result<Checked, String> {
        let p: Probe = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        p.check()
    }

    #[test]
    fn config_errors_name_the_probe_and_key() {
        let e = probe("name = \"a\"").unwrap_err();
        assert!(
            e.contains("\"a\"") && e.contains("exactly one of url, tcp, dns or icmp"),
            "{e}"
        );
        let e = probe("name = \"a\"\nurl = \"x\"\ntcp = \"h:1\"").unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = probe("name = \"a\"\ntcp = \"db\"").unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let e = probe("name = \"a\"\ntcp = \"db:1\"\nmethod = \"GET\"").unwrap_err();
        assert!(e.contains("method applies only to url probes"), "{e}");
        let e = probe("name = \"a\"\nurl = \"ftp://x\"").unwrap_err();
        assert!(e.contains("http:// or https://"), "{e}");
        let e = probe("name = \"a\"\nurl = \"http://x\"\nconditions = [\"[STATUS] 200\"]").unwrap_err();
        assert!(e.contains("no operator"), "{e}");
        let e = probe("name = \"a\"\ndns = \"x.\"\nrecord_type = \"NOPE\"").unwrap_err();
        assert!(e.contains("record_type"), "{e}");
        assert!(probe("name = \"a\"\nicmp = \"h\"\nbogus = 1").is_err());
        let ok = probe("name = \"web\"\nurl = \"https://example.org/health\"").unwrap();
        assert_eq!((ok.name(), ok.target()), ("web", "https://example.org/health"));
        let twice: Vec<Probe> = ["a", "a"]
            .iter()
            .map(|n| toml::from_str(&format!("name = {n:?}\ntcp = \"h:1\"")).unwrap())
            .collect();
        assert!(check_probes(&twice)
            .unwrap_err()
            .contains("two [[collector.probes]]"));
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("db:5432"), Some(("db".into(), 5432)));
        assert_eq!(split_host_port("[::1]:53"), Some(("::1".into(), 53)));
        assert_eq!(split_host_port("db"), None);
        assert_eq!(split_host_port(":1"), None);
    }

    #[test]
    fn expiry_in_words() {
        assert_eq!(expires_in(3 * 86400 + 5), "in 3 days");
        assert_eq!(expires_in(5 * 3600), "in 5 hours");
        assert_eq!(expires_in(-2 * 86400), "2 days ago");
    }
}
