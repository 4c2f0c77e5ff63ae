//! Container log files: Docker's json-file driver and the CRI format Kubernetes (and Nomad
//! with containerd) write, read by the file tailer with `format = "docker"` or `"cri"`.
//!
//! - Docker: `/var/lib/docker/containers/<id>/<id>-json.log`, one JSON object per line,
//!   `{"log":"text\n","stream":"stdout","time":"RFC3339"}`; a line longer than 16 KiB is split
//!   into parts whose `log` lacks the final newline. Labels come from the container's
//!   `config.v2.json` beside it: `container_name`, `container_image`, and the compose
//!   project and service when present.
//! - CRI: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`, lines
//!   `<RFC3339> <stream> <P|F> <text>` where `P` marks a partial line. Labels come from the
//!   path: `k8s_namespace_name`, `k8s_pod_name`, `k8s_container_name`.
//!
//! Parts are joined before multiline rules and parsing apply; the record's time is the
//! runtime's, its stream an attribute.

use std::path::Path;

use serde::Deserialize;

use crate::config::Format;

/// One decoded line.
#[derive(Debug, PartialEq)]
pub(crate) struct Decoded {
    pub text: Vec<u8>,
    /// The rest of the line follows in the next one.
    pub partial: bool,
    pub time_ns: u64,
    pub stream: Option<&'static str>,
}

fn stream(s: &str) -> Option<&'static str> {
    match s {
        "stdout" => Some("stdout"),
        "stderr" => Some("stderr"),
        _ => None,
    }
}

fn time_ns(s: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map_or(0, |n| n.max(0) as u64)
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

/// Decodes a container runtime's line; `None` for plain files or a line that is not in the
/// format (kept as it is).
pub(crate) fn decode(format: Format, line: &[u8]) -> Option<Decoded> {
    match format {
        Format::Plain => None,
        Format::Docker => {
            let d: DockerLine = serde_json::from_slice(line).ok()?;
            let partial = !d.log.ends_with('\n');
            let mut text = d.log.into_bytes();
            if !partial {
                text.pop();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
            }
            Some(Decoded {
                text,
                partial,
                time_ns: time_ns(&d.time),
                stream: stream(&d.stream),
            })
        }
        Format::Cri => {
            let s = std::str::from_utf8(line).ok()?;
            let mut parts = s.splitn(4, ' ');
            let (time, st, tag) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Decoded {
                text: parts.next().unwrap_or("").as_bytes().to_vec(),
                partial: tag == "P",
                time_ns: time_ns(time),
                stream: stream(st),
            })
        }
    }
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Config", default)]
    config: DockerInner,
}

#[derive(Deserialize, Default)]
struct DockerInner {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Labels for a container's log file (empty for plain files or when nothing is known).
pub(crate) fn labels(format: Format, path: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match format {
        Format::Plain => {}
        Format::Docker => {
            let cfg = path
                .parent()
                .and_then(|d| std::fs::read(d.join("config.v2.json")).ok())
                .and_then(|b| serde_json::from_slice::<DockerConfig>(&b).ok())
                .unwrap_or_default();
            let name = cfg.name.trim_start_matches('/');
            if !name.is_empty() {
                out.push(("container_name".into(), name.to_string()));
            }
            if !cfg.id.is_empty() {
                out.push(("container_id".into(), cfg.id.chars().take(12).collect()));
            }
            if !cfg.config.image.is_empty() {
                out.push(("container_image".into(), cfg.config.image));
            }
            let labels = cfg.config.labels.unwrap_or_default();
            for (key, label) in [
                ("com.docker.compose.project", "compose_project"),
                ("com.docker.compose.service", "compose_service"),
            ] {
                if let Some(v) = labels.get(key) {
                    out.push((label.into(), v.clone()));
                }
            }
        }
        Format::Cri => {
            let container = path.parent();
            let pod_dir = container.and_then(Path::parent).and_then(Path::file_name);
            if let (Some(c), Some(p)) = (container.and_then(Path::file_name), pod_dir) {
                let p = p.to_string_lossy();
                let mut it = p.splitn(3, '_');
                if let (Some(ns), Some(pod)) = (it.next(), it.next()) {
                    out.push(("k8s_namespace_name".into(), ns.to_string()));
                    out.push(("k8s_pod_name".into(), pod.to_string()));
                }
                out.push(("k8s_container_name".into(), c.to_string_lossy().into_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_lines_and_parts() {
        let d = decode(
            Format::Docker,
            br#"{"log":"hello world\n","stream":"stderr","time":"2026-11-23T10:00:00.5Z"}"#,
        )
        .unwrap();
        assert_eq!(d.text, b"hello world");
        assert!(!d.partial);
        assert_eq!(d.stream, Some("stderr"));
        assert_eq!(d.time_ns, 1_795_428_000_500_000_000);
        let p = decode(Format::Docker, br#"{"log":"part","stream":"stdout","time":"x"}"#).unwrap();
        assert!(p.partial && p.time_ns == 0);
        assert_eq!(decode(Format::Docker, b"not json"), None);
    }

    #[test]
    fn cri_lines_and_pod_labels() {
        let d = decode(Format::Cri, b"2026-11-23T10:00:00Z stdout P first half").unwrap();
        assert_eq!((d.text.as_slice(), d.partial), (&b"first half"[..], true));
        let d = decode(Format::Cri, b"2026-11-23T10:00:00Z stdout F").unwrap();
        assert_eq!((d.text.as_slice(), d.partial), (&b""[..], false));
        let l = labels(
            Format::Cri,
            Path::new("/var/log/pods/shop_api-7d9f_1234-abcd/server/0.log"),
        );
        assert_eq!(
            l,
            [
                ("k8s_namespace_name".to_string(), "shop".to_string()),
                ("k8s_pod_name".into(), "api-7d9f".into()),
                ("k8s_container_name".into(), "server".into())
            ]
        );
    }
}
