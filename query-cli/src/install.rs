//! `obs install store|collector|backup` and `obs uninstall`: a service on this machine as a
//! hardened systemd unit run by the `obs` system user, and `obs man` (pages from the clap tree,
//! for packages).
//!
//! Both build a [`Plan`] (the user, directories with owners and modes, files, commands) and
//! then print it (`--dry-run`) or carry it out, printing each step. Layout:
//!
//! ```text
//! /etc/obs/obs.toml                    config (0640 root:obs), kept if it exists
//! /etc/obs/tokens/*.token              secrets (0600 obs:obs)
//! /etc/obs/backup.password             the backup repository's password (0600 obs:obs)
//! /var/lib/obs/{store,collector,backup} data (0750 obs:obs), the unit's only writable path
//! /etc/systemd/system/obs-SERVICE.service
//! ```
//!
//! The store runs with no capabilities at all; the collector reads the journal and /var/log
//! through supplementary groups (`systemd-journal`, `adm`, and `docker` for container logs,
//! those that exist here) and may open raw ICMP sockets for probes (`CAP_NET_RAW`); the backup
//! scheduler reads what it backs up with `CAP_DAC_READ_SEARCH` rather than as root.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::cli::{InstallArgs, Service, UninstallArgs};

const ETC: &str = "/etc/obs";
const DATA: &str = "/var/lib/obs";
const UNITS: &str = "/etc/systemd/system";
const USER: &str = "obs";

/// Who owns a path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Root,
    /// root, group obs.
    RootObs,
    Obs,
}

impl Owner {
    fn text(self) -> &'static str {
        match self {
            Owner::Root => "root:root",
            Owner::RootObs => "root:obs",
            Owner::Obs => "obs:obs",
        }
    }
}

#[derive(Debug, Clone)]
enum Content {
    Text(String),
    /// A file copied from the operator's (shown by name: it may be secret).
    Copy(PathBuf),
}

#[derive(Debug, Clone)]
enum Step {
    User,
    Dir(PathBuf, u32, Owner),
    /// Path, mode, owner, content; `keep`: left alone if it exists.
    File(PathBuf, u32, Owner, Content, bool),
    Run(Vec<String>),
    Remove(PathBuf),
}

/// What an install or uninstall does, in order.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    steps: Vec<Step>,
}

fn unit_name(service: Service) -> &'static str {
    match service {
        Service::Store => "obs-store.service",
        Service::Collector => "obs-collector.service",
        Service::Backup => "obs-backup.service",
    }
}

fn dir_name(service: Service) -> &'static str {
    match service {
        Service::Store => "store",
        Service::Collector => "collector",
        Service::Backup => "backup",
    }
}

/// Groups that exist on this machine, from `/etc/group`.
fn existing_groups(wanted: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let have: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    wanted
        .iter()
        .filter(|g| have.contains(g))
        .map(|g| g.to_string())
        .collect()
}

/// The systemd unit of `service`, running `bin`.
pub(crate) fn unit(service: Service, bin: &Path, groups: &[String]) -> String {
    let data = format!("{DATA}/{}", dir_name(service));
    let bin = bin.display();
    let (description, exec, caps) = match service {
        Service::Store => (
            "obs store: ingest, storage and the Prometheus/Loki/Tempo query APIs",
            format!("{bin} store --config {ETC}/obs.toml --data-dir {data}"),
            "",
        ),
        Service::Collector => (
            "obs collector: this node's logs, metrics and probes, shipped to the store",
            format!("{bin} collector --config {ETC}/obs.toml --data-dir {data}"),
            "CAP_NET_RAW",
        ),
        Service::Backup => (
            "obs backup scheduler: this node's scheduled backups and restore drills",
            format!("{bin} backup schedule --config {ETC}/obs.toml --data-dir {data}"),
            "CAP_DAC_READ_SEARCH",
        ),
    };
    let mut u = format!(
        "# Written by `obs install {}`; `obs uninstall {}` removes it.\n\
         [Unit]\n\
         Description={description}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User={USER}\n\
         Group={USER}\n",
        dir_name(service),
        dir_name(service)
    );
    if !groups.is_empty() {
        let _ = writeln!(u, "SupplementaryGroups={}", groups.join(" "));
    }
    let _ = write!(
        u,
        "ExecStart={exec}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         TimeoutStopSec=60s\n\
         LimitNOFILE=65536\n\
         UMask=0027\n\
         # Hardening: the data directory is the only writable path.\n\
         ReadWritePaths={data}\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet={caps}\n\
         AmbientCapabilities={caps}\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6{}\n\
         SystemCallArchitectures=native\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        if service == Service::Collector {
            " AF_NETLINK"
        } else {
            ""
        }
    );
    u
}

/// The config written when none is given.
fn default_config(args: &InstallArgs) -> String {
    match args.service {
        Service::Store => format!(
            "version = 1\n\
             [store]\n\
             data_dir = \"{DATA}/store\"\n\
             # Collectors reach the store over the mesh: listen there (e.g. 0.0.0.0:9700 and\n\
             # 0.0.0.0:9701) once it has tokens: `obs token create NODE --role ingest`.\n\
             http_addr = \"127.0.0.1:9700\"\n\
             grpc_addr = \"127.0.0.1:9701\"\n\
             retention = \"30d\"\n"
        ),
        Service::Collector => {
            let mut c = format!(
                "version = 1\n\
                 [collector]\n\
                 store = \"{}\"\n\
                 data_dir = \"{DATA}/collector\"\n",
                args.store.as_deref().unwrap_or("http://127.0.0.1:9701")
            );
            if args.token_file.is_some() {
                let _ = writeln!(c, "token_file = \"{ETC}/tokens/collector.token\"");
            }
            c.push_str(
                "[collector.journald]\n\
                 [[collector.files]]\n\
                 paths = [\"/var/log/*.log\"]\n",
            );
            c
        }
        Service::Backup => format!(
            "version = 1\n\
             # Add [[backup.repositories]] (password_file = \"{ETC}/backup.password\") and\n\
             # [[backup.jobs]]; `obs config check {ETC}/obs.toml` checks them.\n\
             [backup]\n"
        ),
    }
}

/// The plan of `obs install`.
pub(crate) fn install_plan(args: &InstallArgs, bin: &Path, groups: &[String]) -> anyhow::Result<Plan> {
    if args.service == Service::Collector && args.store.is_none() && args.config.is_none() {
        bail!("say where the store is: --store https://STORE:9701 (or give --config)");
    }
    if args.token_file.is_some() && args.service != Service::Collector {
        bail!(
            "--token-file is the collector's ingest token; the store's tokens come from `obs token create`"
        );
    }
    let mut steps = vec![
        Step::User,
        Step::Dir(ETC.into(), 0o755, Owner::Root),
        Step::Dir(format!("{ETC}/tokens").into(), 0o750, Owner::RootObs),
        Step::Dir(DATA.into(), 0o755, Owner::Root),
        Step::Dir(
            format!("{DATA}/{}", dir_name(args.service)).into(),
            0o750,
            Owner::Obs,
        ),
    ];
    if let Some(t) = &args.token_file {
        let to = format!("{ETC}/tokens/collector.token");
        steps.push(Step::File(
            to.into(),
            0o600,
            Owner::Obs,
            Content::Copy(t.clone()),
            false,
        ));
    }
    if let Some(p) = &args.password_file {
        let to = format!("{ETC}/backup.password");
        steps.push(Step::File(
            to.into(),
            0o600,
            Owner::Obs,
            Content::Copy(p.clone()),
            false,
        ));
    }
    let config = match &args.config {
        Some(c) => Step::File(
            format!("{ETC}/obs.toml").into(),
            0o640,
            Owner::RootObs,
            Content::Copy(c.clone()),
            false,
        ),
        None => Step::File(
            format!("{ETC}/obs.toml").into(),
            0o640,
            Owner::RootObs,
            Content::Text(default_config(args)),
            true,
        ),
    };
    steps.push(config);
    let unit_path = format!("{UNITS}/{}", unit_name(args.service));
    let groups: &[String] = if args.service == Service::Collector {
        groups
    } else {
        &[]
    };
    steps.push(Step::File(
        unit_path.into(),
        0o644,
        Owner::Root,
        Content::Text(unit(args.service, bin, groups)),
        false,
    ));
    steps.push(Step::Run(vec!["systemctl".into(), "daemon-reload".into()]));
    steps.push(Step::Run(vec![
        "systemctl".into(),
        "enable".into(),
        "--now".into(),
        unit_name(args.service).into(),
    ]));
    Ok(Plan { steps })
}

/// The plan of `obs uninstall`.
pub(crate) fn uninstall_plan(args: &UninstallArgs) -> Plan {
    let unit = unit_name(args.service);
    let mut steps = vec![
        Step::Run(vec![
            "systemctl".into(),
            "disable".into(),
            "--now".into(),
            unit.into(),
        ]),
        Step::Remove(format!("{UNITS}/{unit}").into()),
        Step::Run(vec!["systemctl".into(), "daemon-reload".into()]),
    ];
    if args.purge {
        steps.push(Step::Remove(format!("{DATA}/{}", dir_name(args.service)).into()));
    }
    Plan { steps }
}

impl Plan {
    /// The plan as text: what `--dry-run` prints.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                Step::User => {
                    let _ = writeln!(
                        out,
                        "user {USER}: a system user and group, home {DATA}, no login shell"
                    );
                }
                Step::Dir(p, mode, owner) => {
                    let _ = writeln!(out, "dir  {} {mode:04o} {}", p.display(), owner.text());
                }
                Step::File(p, mode, owner, content, keep) => {
                    let keep = if *keep { " (kept if it exists)" } else { "" };
                    let _ = writeln!(out, "file {} {mode:04o} {}{keep}", p.display(), owner.text());
                    match content {
                        Content::Text(t) => {
                            for line in t.lines() {
                                let _ = writeln!(out, "     | {line}");
                            }
                        }
                        Content::Copy(from) => {
                            let _ = writeln!(out, "     | (a copy of {})", from.display());
                        }
                    }
                }
                Step::Run(cmd) => {
                    let _ = writeln!(out, "run  {}", cmd.join(" "));
                }
                Step::Remove(p) => {
                    let _ = writeln!(out, "rm   {}", p.display());
                }
            }
        }
        out
    }

    /// Carries the plan out under `root` ("/" normally); with another root there is no user
    /// to create, nothing to chown and no systemd to call.
    fn apply(&self, root: &Path) -> anyhow::Result<()> {
        let live = root == Path::new("/");
        let at = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        let ids = |owner: Owner| -> anyhow::Result<Option<(u32, u32)>> {
            if !live {
                return Ok(None);
            }
            Ok(Some(match owner {
                Owner::Root => (0, 0),
                Owner::RootObs => (0, id("-g")?),
                Owner::Obs => (id("-u")?, id("-g")?),
            }))
        };
        for step in &self.steps {
            match step {
                Step::User if !live => println!("skipped user {USER} (not installing into /)"),
                Step::User => {
                    if id("-u").is_err() {
                        run(&[
                            "useradd",
                            "--system",
                            "--user-group",
                            "--home-dir",
                            DATA,
                            "--no-create-home",
                            "--shell",
                            "/usr/sbin/nologin",
                            USER,
                        ])?;
                        println!("created user {USER}");
                    }
                }
                Step::Dir(p, mode, owner) => {
                    let path = at(p);
                    std::fs::create_dir_all(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    set_mode_owner(&path, *mode, ids(*owner)?)?;
                    println!("dir  {} {mode:04o} {}", path.display(), owner.text());
                }
                Step::File(p, mode, owner, content, keep) => {
                    let path = at(p);
                    if *keep && path.exists() {
                        println!("kept {} (it exists)", path.display());
                        continue;
                    }
                    let bytes = match content {
                        Content::Text(t) => t.clone().into_bytes(),
                        Content::Copy(from) => {
                            std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?
                        }
                    };
                    // Created with no access for anyone, then opened up: a secret is never
                    // readable by others, not even for a moment.
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create {}", parent.display()))?;
                    }
                    let tmp = path.with_extension("obs-install.tmp");
                    std::fs::write(&tmp, &bytes)
                        .with_context(|| format!("cannot write {}", tmp.display()))?;
                    set_mode_owner(&tmp, *mode, ids(*owner)?)?;
                    std::fs::rename(&tmp, &path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("file {} {mode:04o} {}", path.display(), owner.text());
                }
                Step::Run(cmd) if !live => println!("skipped `{}` (not installing into /)", cmd.join(" ")),
                Step::Run(cmd) => {
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    run(&args)?;
                    println!("ran  {}", cmd.join(" "));
                }
                Step::Remove(p) => {
                    let path = at(p);
                    let result = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    match result {
                        Ok(()) => println!("rm   {}", path.display()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            println!("gone {}", path.display())
                        }
                        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Fails unless running as root, saying how to go on.
fn require_root(what: &str) -> anyhow::Result<()> {
    let out = Command::new("id").arg("-u").output().context("cannot run `id`")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("`obs {what}` changes /etc and systemd: run it as root (sudo), or add --dry-run to see what it would do");
    }
    Ok(())
}

/// `id -u obs` / `id -g obs`.
fn id(flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id")
        .args([flag, USER])
        .output()
        .context("cannot run `id`")?;
    if !out.status.success() {
        bail!("there is no user {USER}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn set_mode_owner(path: &Path, mode: u32, ids: Option<(u32, u32)>) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {} (run as root)", path.display()))?;
    }
    Ok(())
}

fn run(cmd: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .with_context(|| format!("cannot run `{}` (is it installed?)", cmd.join(" ")))?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd.join(" "));
    }
    Ok(())
}

pub(crate) fn install(args: InstallArgs) -> anyhow::Result<()> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.canonicalize()?,
    };
    let groups = existing_groups(&["systemd-journal", "adm", "docker"]);
    let plan = install_plan(&args, &bin, &groups)?;
    if args.dry_run {
        println!(
            "# obs install {} --dry-run: nothing is changed",
            dir_name(args.service)
        );
        print!("{}", plan.render());
        return Ok(());
    }
    if let Some(c) = &args.config {
        crate::config::load(c)?;
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if root == Path::new("/") {
        require_root("install")?;
    }
    plan.apply(&root)?;
    println!(
        "installed {}: `systemctl status {}`, logs: `journalctl -u {}`",
        dir_name(args.service),
        unit_name(args.service),
        unit_name(args.service)
    );
    Ok(())
}

pub(crate) fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let plan = uninstall_plan(&args);
    if args.dry_run {
        println!(
            "# obs uninstall {} --dry-run: nothing is changed",
            dir_name(args.service)
        );
        print!("{}", plan.render());
        return Ok(());
    }
    require_root("uninstall")?;
    plan.apply(Path::new("/"))?;
    if !args.purge {
        println!(
            "the data in {DATA}/{} and the config in {ETC} are left; --purge deletes the data",
            dir_name(args.service)
        );
    }
    Ok(())
}

/// `obs man --out DIR`: `obs.1` and one page per subcommand (`obs-store.1`, ...).
pub(crate) fn man_pages(out: &Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let cmd = crate::cli::Cli::command();
    let mut written = 0;
    let mut write_page = |cmd: clap::Command, name: String| -> anyhow::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.name(name.clone())).render(&mut buf)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
        Ok(())
    };
    for sub in cmd.get_subcommands() {
        write_page(sub.clone(), format!("obs-{}", sub.get_name()))?;
    }
    write_page(cmd, "obs".into())?;
    println!("wrote {written} man pages to {}", out.display());
    Ok(())
}
