//! Benchmarks live in `benches/` (criterion) and `scripts/` (side by side with peers). This
//! library holds fixtures they share.

/// The fullest example config shipped in `config/`.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/obs.toml");
