//! The obs config file: one versioned TOML document for every role; each process reads the
//! sections it needs (`[store]`, `[collector]`, `[backup]`), whose types live in their crates.
//!
//! [`load`] reads and validates a file; every error names the file, line and column and shows
//! the offending line, so `obs config check` can point at it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use obs_backup::BackupConfig;
use obs_collector::CollectorConfig;
use obs_store::StoreConfig;
use serde::Deserialize;

/// The config format version this obs reads.
pub const VERSION: u32 = 1;

/// A whole obs config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: toml::Spanned<u32>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub collector: CollectorConfig,
    #[serde(default)]
    pub backup: BackupConfig,
}

/// A config that could not be read or is invalid.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub place: Option<(usize, usize)>,
    pub message: String,
    /// The offending line, for display.
    pub source_line: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)?,
            None => write!(f, "{}: {}", self.path.display(), self.message)?,
        }
        if let (Some(text), Some((line, col))) = (&self.source_line, self.place) {
            let gutter = line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {:>col$}",
                "", "", "^"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Embedded defaults: what `obs up` runs on without a file.
    pub fn embedded() -> Config {
        Config {
            version: toml::Spanned::new(0..0, VERSION),
            store: StoreConfig::default(),
            collector: CollectorConfig::default(),
            backup: BackupConfig::default(),
        }
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |span: Option<Range<usize>>, message: String| ConfigError::at(path, text, span, message);
        let cfg: Config = toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        if *cfg.version.get_ref() != VERSION {
            return Err(err(
                Some(cfg.version.span()),
                format!(
                    "unsupported config version {}: this obs reads version {VERSION}",
                    cfg.version.get_ref()
                ),
            ));
        }
        cfg.backup
            .validate()
            .map_err(|e| err(Some(e.span.clone()), e.to_string()))?;
        obs_collector::check_files(&cfg.collector.files).map_err(|e| err(None, e.to_string()))?;
        obs_collector::check_forwards(&cfg.collector.forward).map_err(|e| err(None, e))?;
        obs_collector::check_probes(&cfg.collector.probes).map_err(|e| err(None, e))?;
        Ok(cfg)
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        place: None,
        message: format!("cannot read config file: {e}"),
        source_line: None,
    })?;
    Config::parse(path, &text)
}

impl ConfigError {
    fn at(path: &Path, text: &str, span: Option<Range<usize>>, message: String) -> ConfigError {
        let (place, source_line) = match span {
            Some(span) => {
                let start = span.start.min(text.len());
                let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
                let line_no = text[..start].matches('\n').count() + 1;
                let col = text[line_start..start].chars().count() + 1;
                let line_text = text[line_start..].lines().next().unwrap_or("").to_string();
                (Some((line_no, col)), Some(line_text))
            }
            None => (None, None),
        };
        ConfigError {
            path: path.to_path_buf(),
            place,
            message,
            source_line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("obs.toml"), text)
    }

    #[test]
    fn the_version_is_required_and_checked() {
        let err = parse("[store]\n").unwrap_err();
        assert!(err.message.contains("missing field `version`"), "{err}");
        let err = parse("version = 2\n").unwrap_err();
        assert_eq!(err.place, Some((1, 11)));
        assert!(err.message.contains("unsupported config version 2"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = parse("version = 1\n\n[store]\nhttp_adr = \"127.0.0.1:1\"\n").unwrap_err();
        assert_eq!(err.place, Some((4, 1)));
        assert!(err.message.contains("unknown field `http_adr`"), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with("obs.toml:4:1: "), "{shown}");
        assert!(shown.contains("4 | http_adr"), "{shown}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let err = parse("version = 1\n[store]\nhttp_addr = \"localhost\"\n").unwrap_err();
        assert_eq!(err.place.map(|p| p.0), Some(3));
        assert!(err.message.contains("invalid socket address"), "{err}");
    }

    #[test]
    fn cross_field_errors_from_sections_get_a_line_too() {
        let text = "version = 1\n[[backup.jobs]]\nname = \"a\"\nrepository = \"nope\"\npaths = [\"/etc\"]\nschedule = \"0 0 3 * * *\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.place, Some((4, 14)));
        assert!(
            err.message
                .starts_with("backup.jobs[0].repository: no repository named \"nope\""),
            "{err}"
        );
    }
}
