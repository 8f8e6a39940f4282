//! pacs2cd: parse the command line, start logging and the signal thread,
//! run the job, and turn its result into output and an exit code. No logic
//! lives here; `job` resolves, `pipeline` works, `report` prints.

mod accession;
mod audit;
mod cgi;
mod check;
mod cli;
mod config;
mod dicom;
mod failure;
#[cfg(test)]
mod generated;
mod iso;
mod job;
mod output;
mod patients;
mod pipeline;
mod progress;
mod publisher;
mod report;
mod sanitize;
mod signals;
mod staging;

use std::io::Write;
use std::process::ExitCode;

use crate::failure::Failure;
use crate::job::{Context, Job};
use crate::report::Report;

/// Exit code of a usage error (sysexits EX_USAGE), not clap's 2.
const USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { USAGE } else { 0 });
        }
    };
    // Everything this program creates is born private; outputs get their
    // modes explicitly (staging, disc folders, images, the audit log).
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
    // Under CGI stderr is nginx's error log: a request that went well
    // writes nothing there.
    let cgi = matches!(cli.command, cli::Command::Cgi);
    init_logging(cli.verbose, cli.quiet, cgi);
    if let Err(err) = signals::install() {
        log::warn!("cannot watch for signals, an interrupted job may leave files behind: {err}");
    }
    if let cli::Command::Cgi = cli.command {
        return cgi::serve(&cli);
    }
    let json = cli.json;
    match execute(cli) {
        Ok(report) => {
            report::print(&report, json);
            ExitCode::from(report.failed_class().map_or(0, |class| class.exit_code()))
        }
        Err(failure) => {
            report::print_failure(&failure, json);
            ExitCode::from(failure.class.exit_code())
        }
    }
}

/// Runs the command. Every job is recorded once the configuration is
/// loaded: its start is on disk (and sent to the audit repositories)
/// before any traffic (if the log cannot be written, nothing moves), its
/// end follows whatever happens, refused requests included.
fn execute(cli: cli::Cli) -> Result<Report, Failure> {
    if let cli::Command::Check { accession } = &cli.command {
        let probe = match accession {
            Some(accession) => accession::parse_list(std::slice::from_ref(accession), 1)?.into_iter().next(),
            None => None,
        };
        // check reports a configuration it cannot load as its first line.
        let progress = job::progress_mode(&cli);
        let discovery = config::Discovery::from_env(cli.config.as_deref());
        return Ok(Report::Check(match config::load(&discovery) {
            // The probe looks a patient's study up: recorded like a job's
            // query (the local log's line, the trail's Start, Query, Stop).
            Ok((config, origin)) if probe.is_some() => {
                let mut context = job::context(config, origin, progress);
                let request = audit::Request {
                    command: "check",
                    requester: audit::local_user(),
                    accessions: cli.command.accessions(),
                    folder: None,
                };
                let (recording, trail) = audit::Recording::start(
                    &context.config,
                    &request,
                    audit::trail::local_requester(),
                    false,
                )?;
                context.audit = trail;
                let mut result = check::run(&context, Ok(()), probe.as_ref()).map(Report::Check);
                let exports = audit::trail::Exports { publisher: None, download: None };
                let _ = recording.finish(&context.audit, &mut result, &exports);
                return result;
            }
            Ok((config, origin)) => check::run(&job::context(config, origin, progress), Ok(()), None)?,
            Err(failure) => {
                let defaults = job::context(config::Config::default(), config::Origin::Defaults, progress);
                check::run(&defaults, Err(failure), None)?
            }
        }));
    }
    let request = audit::Request {
        command: cli.command.name(),
        requester: audit::local_user(),
        accessions: cli.command.accessions(),
        folder: match &cli.command {
            cli::Command::Relay { dir, .. } => Some(dir.display().to_string()),
            _ => None,
        },
    };
    let mut context = job::load(&cli)?;
    let (recording, trail) =
        audit::Recording::start(&context.config, &request, audit::trail::local_requester(), false)?;
    context.audit = trail;
    let job = job::build(cli.command, &context.config);
    let exports = audit::trail::Exports {
        publisher: job.as_ref().ok().and_then(Job::publisher).map(|p| audit::trail::node(&p.endpoint)),
        download: None,
    };
    let mut result = job.and_then(|job| run(&context, job));
    // No download outside the CGI mode: nothing is left to record.
    let _ = recording.finish(&context.audit, &mut result, &exports);
    result
}

/// Runs a job (the CGI mode runs its print jobs here too).
pub(crate) fn run(context: &Context, job: Job) -> Result<Report, Failure> {
    match job {
        Job::Relay { dir, publisher } => {
            let (relayed, skipped) = pipeline::relay::run(context, &dir, &publisher)?;
            Ok(Report::Relay { relayed, skipped })
        }
        Job::Fetch(job) => pipeline::fetch::run(context, &job).map(Report::Fetch),
        Job::Print(job) => pipeline::print::run(context, &job).map(|outcome| match outcome {
            pipeline::print::Outcome::Printed(printed) => Report::Print(printed),
            pipeline::print::Outcome::Planned(plan) => Report::Plan(plan),
        }),
    }
}

fn init_logging(verbose: u8, quiet: bool, cgi: bool) {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) if cgi => log::LevelFilter::Warn,
        (false, 0) => log::LevelFilter::Info,
        (false, 1) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    // On a terminal, each line wrapped to its width.
    builder.filter_level(level).format(|buf, record| {
        let line = match record.level() {
            log::Level::Info => format!("pacs2cd: {}", record.args()),
            level => format!("pacs2cd: {}: {}", level.as_str().to_lowercase(), record.args()),
        };
        writeln!(buf, "{}", report::fit(&line, 2))
    });
    // nginx writes the request line, query and all, beside every line a
    // FastCGI program writes to stderr: with the token in the URL (what
    // window.open can send), the lines go to the system log instead.
    // Keys decoded as the request reader decodes them (`access%5Ftoken` is
    // `access_token` too); any query that might carry it counts.
    let token_in_url = std::env::var("QUERY_STRING").is_ok_and(|query| {
        query.to_ascii_lowercase().contains("token")
            || form_urlencoded::parse(query.as_bytes())
                .any(|(key, _)| key.to_ascii_lowercase().contains("token"))
    });
    if cgi && token_in_url {
        builder.target(env_logger::Target::Pipe(Box::new(SystemLog::default())));
    }
    builder.init();
}

/// Log lines to the system log (syslog(3), facility daemon), one message
/// a line.
#[derive(Default)]
struct SystemLog {
    line: Vec<u8>,
}

impl Write for SystemLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=end).filter(|&b| b != b'\n' && b != 0).collect();
            let text = std::ffi::CString::new(line).unwrap_or_default();
            // SAFETY: a constant format string and a NUL-terminated
            // argument; openlog's ident is a static string.
            unsafe {
                libc::openlog(c"pacs2cd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
                libc::syslog(libc::LOG_WARNING, c"%s".as_ptr(), text.as_ptr());
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
