//! node_exporter-like hosts for the metrics benches: 100 series per host (CPU modes ×
//! cores, memory, network, filesystem, disk, load) whose values move as a real host's do,
//! and the remote_write encoding they are sent in.

use obs_store::prompb::{Label, TimeSeries, WriteRequest};
use prost::Message;

use crate::Rng;

pub const SERIES_PER_HOST: usize = 100;
const CPU_MODES: [&str; 8] = [
    "user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice",
];

/// One node_exporter-like series: labels and how its value moves.
#[derive(Debug)]
pub struct SeriesDef {
    pub labels: Vec<Label>,
    pub counter: bool,
    /// Typical step (counters: increase per scrape; gauges: scale of the random walk).
    pub scale: f64,
    /// Values are multiples of this (bytes come in pages, load with 2 decimals).
    pub quantum: f64,
}

pub fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

pub fn host_series(host: usize) -> Vec<SeriesDef> {
    let instance = format!("host-{host:03}:9100");
    let mk = |name: &str, extra: &[(&str, String)], counter: bool, scale: f64, quantum: f64| {
        let mut labels = vec![
            label("__name__", name),
            label("instance", &instance),
            label("job", "node"),
        ];
        labels.extend(extra.iter().map(|(n, v)| label(n, v)));
        SeriesDef {
            labels,
            counter,
            scale,
            quantum,
        }
    };
    let mut out = Vec::with_capacity(SERIES_PER_HOST);
    for cpu in 0..8 {
        for mode in CPU_MODES {
            // Seconds per 15 s scrape, per CPU, of a lightly loaded server.
            let scale = match mode {
                "idle" => 14.0,
                "user" => 0.6,
                "system" => 0.2,
                "iowait" => 0.05,
                "softirq" => 0.02,
                _ => 0.0,
            };
            out.push(mk(
                "node_cpu_seconds_total",
                &[("cpu", cpu.to_string()), ("mode", mode.into())],
                true,
                scale,
                0.01,
            ));
        }
    }
    for (name, scale) in [
        ("node_memory_MemTotal_bytes", 0.0),
        ("node_memory_MemAvailable_bytes", 4096.0 * 200.0),
        ("node_memory_MemFree_bytes", 4096.0 * 100.0),
        ("node_memory_Cached_bytes", 4096.0 * 50.0),
        ("node_memory_Buffers_bytes", 4096.0 * 5.0),
        ("node_memory_SwapTotal_bytes", 0.0),
        ("node_memory_SwapFree_bytes", 0.0),
        ("node_memory_Active_bytes", 4096.0 * 80.0),
        ("node_memory_Inactive_bytes", 4096.0 * 40.0),
    ] {
        out.push(mk(name, &[], false, scale, 4096.0));
    }
    for device in ["eth0", "lo"] {
        for (name, scale) in [
            ("node_network_receive_bytes_total", 90_000.0),
            ("node_network_transmit_bytes_total", 40_000.0),
            ("node_network_receive_packets_total", 120.0),
            ("node_network_transmit_packets_total", 80.0),
            ("node_network_receive_errs_total", 0.0),
            ("node_network_transmit_drop_total", 0.0),
        ] {
            out.push(mk(name, &[("device", device.into())], true, scale, 1.0));
        }
    }
    for mount in ["/", "/home"] {
        for (name, scale) in [
            ("node_filesystem_size_bytes", 0.0),
            ("node_filesystem_avail_bytes", 4096.0 * 30.0),
            ("node_filesystem_files_free", 3.0),
        ] {
            out.push(mk(
                name,
                &[("mountpoint", mount.into()), ("fstype", "ext4".into())],
                false,
                scale,
                1.0,
            ));
        }
    }
    for (name, scale) in [("node_load1", 0.3), ("node_load5", 0.1), ("node_load15", 0.05)] {
        out.push(mk(name, &[], false, scale, 0.01));
    }
    for (name, scale) in [
        ("node_disk_read_bytes_total", 50_000.0),
        ("node_disk_written_bytes_total", 200_000.0),
        ("node_disk_reads_completed_total", 10.0),
        ("node_disk_writes_completed_total", 40.0),
        ("node_disk_io_time_seconds_total", 0.2),
    ] {
        out.push(mk(
            name,
            &[("device", "sda".into())],
            true,
            scale,
            if scale < 1.0 { 0.001 } else { 1.0 },
        ));
    }
    out.push(mk("node_boot_time_seconds", &[], false, 0.0, 1.0));
    assert_eq!(out.len(), SERIES_PER_HOST);
    out
}

/// Values of one host's series over time, advanced one scrape per call. Values are kept as
/// whole quanta and turned into floats the way a text parser would (`12345 / 100`), so they
/// are the same doubles a real scrape produces.
#[derive(Debug)]
pub struct HostState {
    pub defs: Vec<SeriesDef>,
    units: Vec<i64>,
    pub values: Vec<f64>,
    rng: Rng,
    /// Where in the scrape interval this host is scraped.
    pub offset_ms: i64,
}

fn to_value(units: i64, quantum: f64) -> f64 {
    if quantum < 1.0 {
        units as f64 / (1.0 / quantum).round()
    } else {
        units as f64 * quantum
    }
}

impl HostState {
    pub fn new(host: usize) -> Self {
        let defs = host_series(host);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (host as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let units: Vec<i64> = defs
            .iter()
            .map(|d| match d.labels[0].value.as_str() {
                "node_memory_MemTotal_bytes" => 16 * 1024 * 1024 * 1024 / 4096,
                "node_boot_time_seconds" => 1_700_000_000,
                n if n.starts_with("node_memory") || n.starts_with("node_filesystem") => {
                    (rng.next_u64() % 1_000_000) as i64
                }
                _ => (rng.next_u64() % 100_000) as i64,
            })
            .collect();
        let values = units
            .iter()
            .zip(&defs)
            .map(|(u, d)| to_value(*u, d.quantum))
            .collect();
        let offset_ms = (rng.next_u64() % 15_000) as i64;
        HostState {
            defs,
            units,
            values,
            rng,
            offset_ms,
        }
    }

    /// Advances every series by one scrape.
    pub fn step(&mut self) {
        for ((d, u), v) in self
            .defs
            .iter()
            .zip(self.units.iter_mut())
            .zip(self.values.iter_mut())
        {
            if d.scale == 0.0 {
                continue;
            }
            let r = (self.rng.next_u64() % 2001) as f64 / 1000.0 - 1.0; // -1..1
                                                                        // Counters grow at their rate ±30%; gauges move on one scrape in three.
            let delta = if d.counter {
                d.scale * (1.0 + 0.3 * r)
            } else if self.rng.next_u64().is_multiple_of(3) {
                d.scale * r
            } else {
                0.0
            };
            *u = (*u + (delta / d.quantum).round() as i64).max(0);
            *v = to_value(*u, d.quantum);
        }
    }
}

/// A snappy-compressed remote_write request.
pub fn encode(series: Vec<TimeSeries>) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}
