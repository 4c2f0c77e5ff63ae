//! `obs token create|list|revoke`: the store's `[[store.tokens]]`, edited in its config file
//! with `toml_edit` (comments and layout kept), each secret in a file of its own (mode 0600).
//! A running store reads its tokens again every 2 s, so a new token works and a revoked one is
//! refused without a restart.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::RngCore;

use crate::cli::{Output, TokenCommand, TokenRole};
use crate::config;

pub(crate) fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            store_config,
            dir,
            dir_in_store,
            print,
        } => {
            let dirs = (dir.as_deref(), dir_in_store.as_deref());
            let (file, secret) = create(&store_config, &name, role, dirs)?;
            println!(
                "created token {name:?} ({}) in {}; the store accepts it within 2 s",
                role_name(role),
                file.display()
            );
            if role == TokenRole::Ingest {
                println!(
                    "on the node: copy the file there, then `obs install collector --store https://STORE:9701 --token-file FILE`"
                );
            }
            if print {
                println!("{secret}");
            }
            Ok(())
        }
        TokenCommand::List { store_config, output } => {
            let cfg = config::load(&store_config)?;
            let rows: Vec<serde_json::Value> = cfg
                .store
                .tokens
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name,
                        "role": format!("{:?}", t.role).to_lowercase(),
                        "token_file": t.token_file.as_ref().map(|f| f.display().to_string()),
                    })
                })
                .collect();
            match output {
                Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&rows)?),
                Output::Human if rows.is_empty() => {
                    println!("no tokens: the store accepts anything, on loopback only")
                }
                Output::Human => {
                    println!("{:<24} {:<7} FILE", "NAME", "ROLE");
                    for r in &rows {
                        println!(
                            "{:<24} {:<7} {}",
                            r["name"].as_str().unwrap_or(""),
                            r["role"].as_str().unwrap_or(""),
                            r["token_file"].as_str().unwrap_or("(inline in the config)")
                        );
                    }
                }
            }
            Ok(())
        }
        TokenCommand::Revoke { name, store_config } => {
            let file = revoke(&store_config, &name)?;
            match file {
                Some(f) => println!(
                    "revoked token {name:?} and deleted {}; the store refuses it within 2 s",
                    f.display()
                ),
                None => println!("revoked token {name:?}; the store refuses it within 2 s"),
            }
            Ok(())
        }
    }
}

fn role_name(role: TokenRole) -> &'static str {
    match role {
        TokenRole::Ingest => "ingest",
        TokenRole::Query => "query",
        TokenRole::Admin => "admin",
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The config's text, checked to be a valid obs config.
fn read(path: &Path) -> anyhow::Result<toml_edit::DocumentMut> {
    config::load(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.parse()?)
}

/// Writes `doc` over `path` through a temporary file (same mode), after checking that it is
/// still a valid config.
fn write(path: &Path, doc: &toml_edit::DocumentMut) -> anyhow::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o640);
    std::fs::write(&tmp, doc.to_string()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    if let Err(e) = config::load(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "the edited config would not load ({e}); {} is unchanged",
            path.display()
        );
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The `[[store.tokens]]` array, created if missing.
fn tokens(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<&mut toml_edit::ArrayOfTables> {
    let store = doc
        .entry("store")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .context("[store] is not a table")?;
    store
        .entry("tokens")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .context("store.tokens is not an array of tables ([[store.tokens]])")
}

/// Creates token `name`: a random secret in `<dir>/<name>.token` (0600), added to the config
/// (as `<dir_in_store>/<name>.token` when the store sees the directory elsewhere).
pub(crate) fn create(
    config_path: &Path,
    name: &str,
    role: TokenRole,
    (dir, dir_in_store): (Option<&Path>, Option<&Path>),
) -> anyhow::Result<(PathBuf, String)> {
    if !valid_name(name) {
        bail!("token name {name:?}: use 1-64 letters, digits, '.', '-' or '_'");
    }
    let mut doc = read(config_path)?;
    let list = tokens(&mut doc)?;
    if list
        .iter()
        .any(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
    {
        bail!("a token named {name:?} exists; revoke it first or pick another name");
    }
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("tokens"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let file = dir.join(format!("{name}.token"));
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("cannot create {} (does it exist already?)", file.display()))?;
    writeln!(f, "{secret}")?;
    f.sync_all()?;
    let mut entry = toml_edit::Table::new();
    entry["name"] = toml_edit::value(name);
    entry["role"] = toml_edit::value(role_name(role));
    let seen = dir_in_store.map_or_else(|| file.clone(), |d| d.join(format!("{name}.token")));
    entry["token_file"] = toml_edit::value(seen.display().to_string());
    list.push(entry);
    if let Err(e) = write(config_path, &doc) {
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    Ok((file, secret))
}

/// Removes token `name` from the config and deletes its file; returns the file deleted.
pub(crate) fn revoke(config_path: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let mut doc = read(config_path)?;
    let list = tokens(&mut doc)?;
    let Some(at) = list
        .iter()
        .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
    else {
        bail!(
            "no token named {name:?} in {} (see `obs token list`)",
            config_path.display()
        );
    };
    let file = list
        .get(at)
        .and_then(|t| t.get("token_file"))
        .and_then(|f| f.as_str())
        .map(PathBuf::from);
    list.remove(at);
    if list.is_empty() {
        if let Some(store) = doc.get_mut("store").and_then(|s| s.as_table_mut()) {
            store.remove("tokens");
        }
    }
    write(config_path, &doc)?;
    if let Some(f) = &file {
        std::fs::remove_file(f).with_context(|| format!("revoked, but cannot delete {}", f.display()))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_added_and_removed_keeping_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("obs.toml");
        let text = "version = 1\n# the store\n[store]\nretention = \"30d\" # a month\n";
        std::fs::write(&cfg, text).unwrap();
        let (file, secret) = create(&cfg, "node-a", TokenRole::Ingest, (None, None)).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret);
        assert_eq!(secret.len(), 64);
        let loaded = config::load(&cfg).unwrap();
        assert_eq!(loaded.store.tokens.len(), 1);
        assert_eq!(loaded.store.tokens[0].name, "node-a");
        let edited = std::fs::read_to_string(&cfg).unwrap();
        assert!(edited.starts_with(text), "comments and layout kept: {edited}");
        create(&cfg, "grafana", TokenRole::Query, (None, None)).unwrap();
        assert!(
            create(&cfg, "node-a", TokenRole::Admin, (None, None)).is_err(),
            "names are unique"
        );
        assert!(create(&cfg, "../x", TokenRole::Admin, (None, None)).is_err());
        assert_eq!(revoke(&cfg, "node-a").unwrap(), Some(file.clone()));
        assert!(!file.exists());
        let names: Vec<String> = config::load(&cfg)
            .unwrap()
            .store
            .tokens
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["grafana"]);
        assert!(revoke(&cfg, "node-a").is_err());
        revoke(&cfg, "grafana").unwrap();
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            text,
            "back to the original"
        );
    }
}
