//! Host metrics from /proc and statvfs, named as node_exporter names them so existing node
//! dashboards work: `node_cpu_seconds_total{cpu,mode}`, `node_load1`, `node_memory_*_bytes`,
//! `node_disk_*`, `node_filesystem_*`, `node_network_*`, `node_boot_time_seconds`, …
//!
//! They go out as OTLP metrics with resource `service.name = "node"` and
//! `service.instance.id = <host>`, which the store (like Prometheus's OTLP receiver) turns
//! into `job="node", instance="<host>"`. Counters are cumulative monotonic sums already
//! named `…_total`, gauges keep their names: no unit suffix is added.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{number_data_point, NumberDataPoint};
use tokio::sync::watch;

use crate::otlp::{string_kv, MetricsBuilder};
use crate::spool::Spool;

/// Linux's USER_HZ: /proc/stat counts CPU time in these ticks.
const TICKS_PER_SECOND: f64 = 100.0;

/// Filesystem types node_exporter leaves out by default.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    "ramfs",
    "efivarfs",
];

/// One sample: name, labels, value, counter or gauge.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub counter: bool,
}

fn gauge(name: &str, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample {
        name: name.to_string(),
        labels,
        value,
        counter: false,
    }
}

fn counter(name: &str, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample {
        counter: true,
        ..gauge(name, labels, value)
    }
}

/// `/proc/stat`: per-CPU times by mode, boot time, context switches, forks, procs.
pub(crate) fn parse_stat(text: &str) -> Vec<Sample> {
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let nums: Vec<f64> = f.filter_map(|v| v.parse().ok()).collect();
        match key {
            k if k.starts_with("cpu") && k.len() > 3 => {
                let cpu = k[3..].to_string();
                for (mode, v) in MODES.iter().zip(&nums) {
                    out.push(counter(
                        "node_cpu_seconds_total",
                        vec![("cpu", cpu.clone()), ("mode", mode.to_string())],
                        v / TICKS_PER_SECOND,
                    ));
                }
            }
            "btime" => out.extend(nums.first().map(|v| gauge("node_boot_time_seconds", vec![], *v))),
            "ctxt" => out.extend(
                nums.first()
                    .map(|v| counter("node_context_switches_total", vec![], *v)),
            ),
            "processes" => out.extend(nums.first().map(|v| counter("node_forks_total", vec![], *v))),
            "intr" => out.extend(nums.first().map(|v| counter("node_intr_total", vec![], *v))),
            "procs_running" => out.extend(nums.first().map(|v| gauge("node_procs_running", vec![], *v))),
            "procs_blocked" => out.extend(nums.first().map(|v| gauge("node_procs_blocked", vec![], *v))),
            _ => {}
        }
    }
    out
}

/// `/proc/loadavg`.
pub(crate) fn parse_loadavg(text: &str) -> Vec<Sample> {
    ["node_load1", "node_load5", "node_load15"]
        .iter()
        .zip(text.split_whitespace())
        .filter_map(|(name, v)| Some(gauge(name, vec![], v.parse().ok()?)))
        .collect()
}

/// `/proc/meminfo`: every field as `node_memory_<Field>_bytes` (kB scaled to bytes;
/// `Active(anon)` becomes `Active_anon`), counts without a unit as `node_memory_<Field>`.
pub(crate) fn parse_meminfo(text: &str) -> Vec<Sample> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut f = rest.split_whitespace();
            let v: f64 = f.next()?.parse().ok()?;
            let key = key.replace('(', "_").replace(')', "");
            Some(match f.next() {
                Some("kB") => gauge(&format!("node_memory_{key}_bytes"), vec![], v * 1024.0),
                _ => gauge(&format!("node_memory_{key}"), vec![], v),
            })
        })
        .collect()
}

/// `/proc/diskstats`, whole disks and partitions, without loop, ram and zram devices.
pub(crate) fn parse_diskstats(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 || ["loop", "ram", "zram"].iter().any(|p| f[2].starts_with(p)) {
            continue;
        }
        let n = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        let dev = || vec![("device", f[2].to_string())];
        out.push(counter("node_disk_reads_completed_total", dev(), n(3)));
        out.push(counter("node_disk_read_bytes_total", dev(), n(5) * 512.0));
        out.push(counter("node_disk_read_time_seconds_total", dev(), n(6) / 1000.0));
        out.push(counter("node_disk_writes_completed_total", dev(), n(7)));
        out.push(counter("node_disk_written_bytes_total", dev(), n(9) * 512.0));
        out.push(counter(
            "node_disk_write_time_seconds_total",
            dev(),
            n(10) / 1000.0,
        ));
        out.push(gauge("node_disk_io_now", dev(), n(11)));
        out.push(counter("node_disk_io_time_seconds_total", dev(), n(12) / 1000.0));
    }
    out
}

/// `/proc/net/dev`.
pub(crate) fn parse_netdev(text: &str) -> Vec<Sample> {
    const RX: [(usize, &str); 4] = [(0, "bytes"), (1, "packets"), (2, "errs"), (3, "drop")];
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<f64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() < 16 {
            continue;
        }
        let dev = dev.trim().to_string();
        for (i, what) in RX {
            let labels = vec![("device", dev.clone())];
            out.push(counter(
                &format!("node_network_receive_{what}_total"),
                labels.clone(),
                f[i],
            ));
            out.push(counter(
                &format!("node_network_transmit_{what}_total"),
                labels,
                f[8 + i],
            ));
        }
    }
    out
}

/// `/proc/mounts` + statvfs of each real filesystem.
fn filesystems(mounts: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || PSEUDO_FS.contains(&f[2]) || !seen.insert(f[1]) {
            continue;
        }
        let Ok(st) = nix::sys::statvfs::statvfs(f[1]) else {
            continue;
        };
        let frsize = st.fragment_size() as f64;
        let labels = || {
            vec![
                ("device", f[0].to_string()),
                ("mountpoint", f[1].replace("\\040", " ")),
                ("fstype", f[2].to_string()),
            ]
        };
        out.push(gauge(
            "node_filesystem_size_bytes",
            labels(),
            st.blocks() as f64 * frsize,
        ));
        out.push(gauge(
            "node_filesystem_free_bytes",
            labels(),
            st.blocks_free() as f64 * frsize,
        ));
        out.push(gauge(
            "node_filesystem_avail_bytes",
            labels(),
            st.blocks_available() as f64 * frsize,
        ));
        out.push(gauge("node_filesystem_files", labels(), st.files() as f64));
        out.push(gauge(
            "node_filesystem_files_free",
            labels(),
            st.files_free() as f64,
        ));
        let ro = st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
        out.push(gauge(
            "node_filesystem_readonly",
            labels(),
            f64::from(u8::from(ro)),
        ));
    }
    out
}

/// Everything this host exposes now; a file that cannot be read is skipped.
pub fn collect() -> Vec<Sample> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut out = parse_stat(&read("/proc/stat"));
    out.extend(parse_loadavg(&read("/proc/loadavg")));
    out.extend(parse_meminfo(&read("/proc/meminfo")));
    out.extend(parse_diskstats(&read("/proc/diskstats")));
    out.extend(parse_netdev(&read("/proc/net/dev")));
    out.extend(filesystems(&read("/proc/mounts")));
    out.push(gauge("node_time_seconds", vec![], crate::now_secs() as f64));
    out
}

/// Samples as one OTLP request from `service` on `host`; `start_ns` is the counters' start
/// (the collector's start).
pub(crate) fn to_otlp(
    samples: Vec<Sample>,
    service: &str,
    host: &str,
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let mut metrics = MetricsBuilder::default();
    for s in samples {
        let point = NumberDataPoint {
            attributes: s.labels.iter().map(|(k, v)| string_kv(k, v)).collect(),
            start_time_unix_nano: if s.counter { start_ns } else { 0 },
            time_unix_nano: now_ns,
            value: Some(number_data_point::Value::AsDouble(s.value)),
            ..Default::default()
        };
        metrics.push(s.name, s.counter, point);
    }
    metrics.request(vec![
        string_kv("service.name", service),
        string_kv("service.instance.id", host),
        string_kv("host.name", host),
    ])
}

/// Collects every `interval` into the spool until shutdown.
pub(crate) async fn run(
    spool: Arc<Spool>,
    host: String,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let start_ns = crate::now_ns();
    let mut ticker = crate::otlp::Ticker::new(interval, shutdown);
    while ticker.next().await {
        let samples = match tokio::task::spawn_blocking(collect).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "host metrics collection failed");
                continue;
            }
        };
        let req = to_otlp(samples, "node", &host, start_ns, crate::now_ns());
        crate::otlp::spool_metrics(&spool, vec![req], "host metrics").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(s: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        s.iter().find(|x| {
            x.name == name
                && labels
                    .iter()
                    .all(|(k, v)| x.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    #[test]
    fn proc_files_map_to_node_exporter_names() {
        let stat = "cpu  10 0 20 300 4 0 1 0 0 0\ncpu0 250 1 20 300 4 0 1 0 0 0\nctxt 999\nbtime 1700000000\nprocs_running 3\n";
        let s = parse_stat(stat);
        assert_eq!(
            find(&s, "node_cpu_seconds_total", &[("cpu", "0"), ("mode", "user")])
                .unwrap()
                .value,
            2.5
        );
        assert!(
            s.iter().all(|x| x.labels.iter().all(|(_, v)| !v.is_empty())),
            "the cpu total line is not a cpu"
        );
        assert_eq!(find(&s, "node_boot_time_seconds", &[]).unwrap().value, 1.7e9);
        assert!(find(&s, "node_context_switches_total", &[]).unwrap().counter);

        let m = parse_meminfo("MemTotal:       16384 kB\nActive(anon):  2 kB\nHugePages_Total:       0\n");
        assert_eq!(
            find(&m, "node_memory_MemTotal_bytes", &[]).unwrap().value,
            16384.0 * 1024.0
        );
        assert!(find(&m, "node_memory_Active_anon_bytes", &[]).is_some());
        assert!(find(&m, "node_memory_HugePages_Total", &[]).is_some());

        let d = parse_diskstats(
            "   8       0 sda 100 0 2048 50 200 0 4096 70 0 1500 120 0 0 0 0\n   7 0 loop0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0\n",
        );
        assert_eq!(
            find(&d, "node_disk_read_bytes_total", &[("device", "sda")])
                .unwrap()
                .value,
            2048.0 * 512.0
        );
        assert_eq!(
            find(&d, "node_disk_io_time_seconds_total", &[("device", "sda")])
                .unwrap()
                .value,
            1.5
        );
        assert!(find(&d, "node_disk_reads_completed_total", &[("device", "loop0")]).is_none());

        let n = parse_netdev(
            "Inter-|   Receive\n face |bytes\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 1 0 0 0 0 0\n",
        );
        assert_eq!(
            find(&n, "node_network_receive_bytes_total", &[("device", "eth0")])
                .unwrap()
                .value,
            1000.0
        );
        assert_eq!(
            find(&n, "node_network_transmit_errs_total", &[("device", "eth0")])
                .unwrap()
                .value,
            1.0
        );
        assert_eq!(parse_loadavg("0.50 0.25 0.10 1/100 42").len(), 3);
    }

    #[test]
    fn this_machine_reports_cpu_memory_and_a_filesystem() {
        let s = collect();
        assert!(find(&s, "node_cpu_seconds_total", &[("mode", "idle")]).is_some());
        assert!(find(&s, "node_memory_MemAvailable_bytes", &[]).is_some_and(|m| m.value > 0.0));
        assert!(
            find(&s, "node_filesystem_size_bytes", &[]).is_some_and(|m| m.value > 0.0),
            "{s:?}"
        );
        let req = to_otlp(s, "node", "box", 1, 2);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let cpu = metrics
            .iter()
            .find(|m| m.name == "node_cpu_seconds_total")
            .unwrap();
        assert!(
            matches!(&cpu.data, Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) if s.is_monotonic && s.data_points.len() >= 8)
        );
    }
}
