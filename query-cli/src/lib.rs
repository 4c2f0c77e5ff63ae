//! `obs`: the one binary. This crate parses arguments ([`cli`]), reads the config file
//! ([`config`]) and hands each command to the library that does the work: `obs-store`,
//! `obs-collector`, `obs-backup`. `obs up` ([`up`]) runs them together on one machine.
//!
//! Exit codes: 0 success, 1 the work failed, 2 bad usage or config.

mod backup;
pub mod cli;
mod client;
pub mod config;
mod errors;
mod grafana;
mod install;
mod probe;
mod query;
mod rules;
mod status;
mod token;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use cli::{BackupCommand, Cli, Command, ConfigCommand, GrafanaCommand, ProbeCommand};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Up(args) => report(up::up(args)),
        Command::Store(args) => report(up::store(args)),
        Command::Collector(args) => report(up::collector(args)),
        Command::Backup(BackupCommand::Schedule(args)) => report(up::schedule(args)),
        Command::Backup(cmd) => report(backup::run(cmd)),
        Command::Query(cmd) => report(query::run(cmd)),
        Command::Status(args) => report(status::run(args)),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Alerts(args) => report(rules::alerts(args)),
        Command::Errors(args) => report(errors::run(args)),
        Command::Install(args) => report(install::install(args)),
        Command::Uninstall(args) => report(install::uninstall(args)),
        Command::Token(cmd) => report(token::run(cmd)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "obs", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out } => report(install::man_pages(&out)),
        Command::Probe(ProbeCommand::Run(args)) => probe::run(args),
        Command::Config(ConfigCommand::Check { file }) => config_check(file),
        Command::Grafana(GrafanaCommand::Provision(args)) => report(grafana::provision(args)),
        Command::Version => {
            println!("obs {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// Exit code for bad usage or a bad config file.
pub const EXIT_USAGE: u8 = 2;

fn config_check(file: PathBuf) -> ExitCode {
    let checked = config::load(&file).map_err(|e| e.to_string()).and_then(|cfg| {
        let collector = cfg
            .collector
            .alerting
            .as_ref()
            .map_or(Ok(()), obs_collector::check_alerting);
        let store = obs_notify::validate(&cfg.store.alerting).map_err(|e| e.to_string());
        match store.and(collector) {
            Ok(()) => Ok(cfg),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    });
    match checked {
        Ok(cfg) => {
            println!(
                "{}: ok (config version {}; {} file source(s), {} backup repositor(ies), {} backup job(s))",
                file.display(),
                cfg.version.get_ref(),
                cfg.collector.files.len(),
                cfg.backup.repositories.len(),
                cfg.backup.jobs.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Prints a failed command's error chain on one line each and maps it to an exit code.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let usage = matches!(
                e.downcast_ref::<obs_backup::Error>(),
                Some(obs_backup::Error::Usage(_))
            );
            if usage || e.downcast_ref::<config::ConfigError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
