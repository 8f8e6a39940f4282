//! The command line and the configuration resolved once into what a job
//! needs. Nothing below this module sees raw arguments or optional keys.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::accession::{self, Accession};
use crate::cli::{AllowArgs, Cli, Command};
use crate::config::{self, Config, Origin, Retrieve, Sender, Strategy};
use crate::dicom::tools::Toolbox;
use crate::dicom::{AeTitle, Endpoint, Timeouts};
use crate::failure::Failure;
use crate::pipeline::fetch::IsoTarget;
use crate::progress;

/// What every step may consult: the configuration, the tools, the output mode.
pub struct Context {
    pub config: Config,
    pub origin: Origin,
    pub toolbox: Toolbox,
    pub progress: progress::Mode,
    /// The job's audit records (off until the job is recorded).
    pub audit: std::sync::Arc<crate::audit::trail::Trail>,
}

/// The CD publisher (or `--to` receiver) and how to talk to it.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// What people call it (`cd_publisher.name`).
    pub name: String,
    pub endpoint: Endpoint,
    pub calling_ae: AeTitle,
    pub sender: Sender,
    pub timeouts: Timeouts,
}

impl Publisher {
    /// "Rimage 2000i RIMAGE@172.16.0.120:104": the name, then the address.
    pub fn display(&self) -> String {
        format!("{} {}", self.name, self.endpoint)
    }
}

/// The PACS and how to query and retrieve from it.
#[derive(Clone, Debug)]
pub struct Pacs {
    pub endpoint: Endpoint,
    pub calling_ae: AeTitle,
    /// `total` is the whole job's deadline (pacs.timeout_total_secs).
    pub timeouts: Timeouts,
    pub move_port: u16,
    /// C-GET with `pacs.move_port` set: a study holding objects getscu
    /// cannot take is retrieved by C-MOVE instead (the PACS knows us at
    /// that port).
    pub move_fallback: bool,
    /// Further addresses the PACS delivers from (`pacs.move_from`).
    pub move_from: Vec<String>,
    pub retrieve: Retrieve,
    pub strategy: Strategy,
    pub modalities: Vec<String>,
}

/// What a job may let pass that it refuses by default: the command
/// line's `--allow-*` switches, with the configuration's standing choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    /// Studies of several patients on one disc.
    pub mixed_patients: bool,
    /// A study without a PatientID among others.
    pub unidentified: bool,
    /// Known shortfalls (fewer files than the PACS lists, failed sub-operations).
    pub partial: bool,
    /// A PACS that gives nothing to prove completeness by.
    pub unproven: bool,
}

impl Allow {
    /// The switches given, and what the configuration allows always.
    pub fn of(args: AllowArgs, config: &Config) -> Allow {
        Allow {
            mixed_patients: args.allow_mixed_patients,
            unidentified: args.allow_unidentified || config.patient.allow_unidentified,
            partial: args.allow_partial,
            unproven: args.allow_unproven || config.pacs.allow_unproven,
        }
    }
}

/// `pacs2cd fetch`, resolved.
pub struct FetchJob {
    pub accessions: Vec<Accession>,
    pub output: Option<PathBuf>,
    pub iso: Option<IsoTarget>,
    pub force: bool,
    pub allow: Allow,
    pub pacs: Pacs,
}

/// `pacs2cd print` (and the CGI routes), resolved.
pub struct PrintJob {
    pub accessions: Vec<Accession>,
    pub dry_run: bool,
    pub allow: Allow,
    pub pacs: Pacs,
    pub publisher: Publisher,
    /// A hot-folder robot (`cd_publisher.kind`), unless `--to` names a
    /// DICOM receiver: the disc goes there instead of `publisher`.
    pub robot: Option<Box<crate::publisher::Robot>>,
}

/// The switches of a print request, from the command line or a CGI query.
#[derive(Debug, Default)]
pub struct PrintOptions {
    pub to: Option<Endpoint>,
    pub dry_run: bool,
    pub allow: AllowArgs,
}

pub enum Job {
    Relay { dir: PathBuf, publisher: Publisher },
    Fetch(FetchJob),
    Print(PrintJob),
}

impl Job {
    /// Where the job's images go over DICOM, when they do.
    pub fn publisher(&self) -> Option<&Publisher> {
        match self {
            Job::Relay { publisher, .. } => Some(publisher),
            Job::Print(print) if !print.dry_run && print.robot.is_none() => Some(&print.publisher),
            Job::Print(_) | Job::Fetch(_) => None,
        }
    }
}

/// How progress shows, from the global flags and the terminal.
pub fn progress_mode(cli: &Cli) -> progress::Mode {
    if cli.quiet {
        progress::Mode::Off
    } else if cli.no_progress || !std::io::stderr().is_terminal() {
        progress::Mode::Log
    } else {
        progress::Mode::Bar
    }
}

/// Finds and loads the configuration into a job's context.
pub fn load(cli: &Cli) -> Result<Context, Failure> {
    let (config, origin) = config::load(&config::Discovery::from_env(cli.config.as_deref()))?;
    Ok(context(config, origin, progress_mode(cli)))
}

/// The job a command asks for, checked against the configuration: nothing
/// reaches the network before the accessions are checked.
pub fn build(command: Command, config: &Config) -> Result<Job, Failure> {
    match command {
        Command::Relay { dir, to } => {
            Ok(Job::Relay { dir: absolute(&dir)?, publisher: publisher(config, to)? })
        }
        Command::Fetch { accessions, output, iso, force, allow } => {
            // `--iso` alone: the default name in the current folder.
            let iso = iso.map(|file| match file {
                Some(file) => IsoTarget::File(file),
                None => IsoTarget::DefaultIn(PathBuf::new()),
            });
            let options = FetchOptions { output, iso, force, allow };
            Ok(Job::Fetch(fetch_job(config, &accessions, options)?))
        }
        Command::Print { accessions, to, dry_run, allow } => {
            let options = PrintOptions { to, dry_run, allow };
            Ok(Job::Print(print_job(config, &accessions, options)?))
        }
        Command::Check { .. } | Command::Cgi => Err(Failure::config("check and cgi are not jobs")),
    }
}

/// `path` from the current folder.
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path).map_err(|err| {
        Failure::config(format!("cannot resolve {}: {}", path.display(), err.to_string().to_lowercase()))
    })
}

/// The context of a job from a loaded configuration.
pub fn context(config: Config, origin: Origin, progress: progress::Mode) -> Context {
    let toolbox = Toolbox::new(config.tools.dcmtk_dir.clone());
    Context {
        config,
        origin,
        toolbox,
        progress,
        audit: std::sync::Arc::new(crate::audit::trail::Trail::off()),
    }
}

/// The switches of a fetch request.
#[derive(Debug, Default)]
pub struct FetchOptions {
    pub output: Option<PathBuf>,
    pub iso: Option<IsoTarget>,
    pub force: bool,
    pub allow: AllowArgs,
}

/// A fetch job: accessions checked first, then the PACS and the viewer.
pub fn fetch_job(config: &Config, accessions: &[String], options: FetchOptions) -> Result<FetchJob, Failure> {
    let accessions = accession::parse_list(accessions, config.cgi.max_accessions)?;
    let pacs = pacs(config)?;
    if let Some(viewer) = &config.tools.viewer_dir {
        crate::pipeline::disc::check_viewer(viewer)?;
    }
    Ok(FetchJob {
        accessions,
        output: options.output,
        iso: options.iso,
        force: options.force,
        allow: Allow::of(options.allow, config),
        pacs,
    })
}

/// A print job: accessions checked first (nothing reaches the network
/// before them), then the PACS and the publisher.
pub fn print_job(config: &Config, accessions: &[String], options: PrintOptions) -> Result<PrintJob, Failure> {
    let accessions = accession::parse_list(accessions, config.cgi.max_accessions)?;
    let robot = match options.to {
        Some(_) => None,
        None => crate::publisher::Robot::of(&config.cd_publisher)?.map(Box::new),
    };
    // A fresh installation has neither host: name both keys at once.
    if config.pacs.host.is_none()
        && config.cd_publisher.host.is_none()
        && options.to.is_none()
        && robot.is_none()
    {
        return Err(Failure::config(
            "no PACS and no CD publisher configured: set pacs.host and cd_publisher.host in the configuration",
        ));
    }
    let pacs = pacs(config)?;
    // A robot has no DICOM address: the section's titles stand in, never
    // used (`Job::publisher` is `None` for it).
    let to = match (&robot, options.to) {
        (Some(_), _) => Some(Endpoint {
            ae: AeTitle::parse(&config.cd_publisher.called_ae).map_err(Failure::config)?,
            host: "localhost".into(),
            port: config.cd_publisher.port,
        }),
        (None, to) => to,
    };
    let publisher = publisher(config, to)?;
    Ok(PrintJob {
        accessions,
        dry_run: options.dry_run,
        allow: Allow::of(options.allow, config),
        pacs,
        publisher,
        robot,
    })
}

/// The configured PACS; its host has no default.
pub fn pacs(config: &Config) -> Result<Pacs, Failure> {
    let section = &config.pacs;
    let host = section
        .host
        .clone()
        .ok_or_else(|| Failure::config("no PACS configured: set pacs.host in the configuration"))?;
    Ok(Pacs {
        endpoint: Endpoint {
            ae: AeTitle::parse(&section.called_ae).map_err(Failure::config)?,
            host,
            port: section.port,
        },
        calling_ae: AeTitle::parse(&section.calling_ae).map_err(Failure::config)?,
        timeouts: Timeouts::from_secs([
            section.timeout_connect_secs,
            section.timeout_acse_secs,
            section.timeout_dimse_secs,
            section.timeout_total_secs,
        ]),
        move_port: section.move_port.unwrap_or(crate::config::DEFAULT_MOVE_PORT),
        move_fallback: section.retrieve == Retrieve::Get && section.move_port.is_some(),
        move_from: section.move_from.clone(),
        retrieve: section.retrieve,
        strategy: section.strategy,
        modalities: section.modalities.clone(),
    })
}

/// The configured CD publisher, or the `--to` override.
pub fn publisher(config: &Config, to: Option<Endpoint>) -> Result<Publisher, Failure> {
    let section = &config.cd_publisher;
    let endpoint = match to {
        Some(endpoint) => endpoint,
        None => configured_publisher(config)?,
    };
    Ok(Publisher {
        name: section.name.trim().to_string(),
        endpoint,
        // Checked when the configuration was parsed.
        calling_ae: AeTitle::parse(&section.calling_ae).map_err(Failure::config)?,
        sender: section.sender,
        timeouts: Timeouts::from_secs([
            section.timeout_connect_secs,
            section.timeout_acse_secs,
            section.timeout_dimse_secs,
            section.timeout_total_secs,
        ]),
    })
}

/// The `[cd_publisher]` endpoint; its host has no default.
pub fn configured_publisher(config: &Config) -> Result<Endpoint, Failure> {
    let section = &config.cd_publisher;
    let host = section.host.clone().ok_or_else(|| {
        Failure::config("no CD publisher configured: set cd_publisher.host in the configuration, or use --to")
    })?;
    Ok(Endpoint {
        ae: AeTitle::parse(&section.called_ae).map_err(Failure::config)?,
        host,
        port: section.port,
    })
}
