//! `pacs2cd check`: one line per thing a job depends on, so a sysadmin can
//! see at a glance what is wrong before a technician meets it.

use std::time::Duration;

use serde::Serialize;

use crate::config::PatientSource;
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::dicom::{AeTitle, AssociationProblem, Endpoint, Timeouts, echoscu};
use crate::failure::{Class, Failure};
use crate::job::{self, Context};
use crate::staging;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct CheckItem {
    pub item: String,
    pub status: Status,
    pub detail: String,
    /// The error-table row a failure belongs to; it sets the exit code.
    #[serde(skip)]
    pub failed: Option<Class>,
}

impl CheckItem {
    fn ok(item: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { item: item.into(), status: Status::Ok, detail: detail.into(), failed: None }
    }
    fn skipped(item: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { item: item.into(), status: Status::Skipped, detail: detail.into(), failed: None }
    }
    fn failed(item: impl Into<String>, failure: Failure) -> CheckItem {
        CheckItem {
            item: item.into(),
            status: Status::Failed,
            detail: failure.detail,
            failed: Some(failure.class),
        }
    }
}

/// Runs every check; `loaded` is how loading the configuration went.
pub fn run(context: &Context, loaded: Result<(), Failure>) -> Result<Vec<CheckItem>, Failure> {
    let mut items = Vec::new();
    match loaded {
        Ok(()) => items.push(CheckItem::ok("config", context.origin.to_string())),
        Err(failure) => {
            // Nothing else can be checked against a configuration we cannot read.
            items.push(CheckItem::failed("config", failure));
            return Ok(items);
        }
    }
    for tool in Tool::ALL {
        items.push(match context.toolbox.path(tool) {
            Ok(path) => {
                let version = version(&path).unwrap_or_else(|| "version unknown".into());
                CheckItem::ok(tool.program(), format!("{} ({version})", path.display()))
            }
            Err(failure) => CheckItem::failed(tool.program(), failure),
        });
    }
    items.push(match crate::iso::find(context.config.tools.iso_tool) {
        Ok((path, _)) => CheckItem::ok("ISO tool", path.display().to_string()),
        Err(failure) => CheckItem::failed("ISO tool", failure),
    });
    items.push(echo_publisher(context)?);
    items.push(echo_pacs(context)?);
    items.push(patient_api_item(context));
    items.push(staging_item(context));
    Ok(items)
}

/// "$dcmtk: dcmsend v3.6.7 2022-04-22 $" -> "v3.6.7".
fn version(path: &std::path::Path) -> Option<String> {
    let mut command = Command::new(path, Duration::from_secs(10));
    command.arg("--version");
    let output = runner::run(&command, &mut |_| {}).ok()?;
    let first = output.lines.first()?;
    first
        .split_whitespace()
        .find(|word| word.starts_with('v') && word[1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
}

fn echo_publisher(context: &Context) -> Result<CheckItem, Failure> {
    const ITEM: &str = "C-ECHO CD publisher";
    let publisher = match job::configured_publisher(&context.config) {
        Ok(endpoint) => job::publisher(&context.config, Some(endpoint))?,
        Err(_) => {
            return Ok(CheckItem::skipped(ITEM, "not configured (cd_publisher.host)"));
        }
    };
    echo(
        context,
        ITEM,
        &publisher.calling_ae,
        &publisher.endpoint,
        &publisher.timeouts,
        Class::PublisherUnreachable,
    )
}

fn echo_pacs(context: &Context) -> Result<CheckItem, Failure> {
    const ITEM: &str = "C-ECHO PACS";
    if context.config.pacs.host.is_none() {
        return Ok(CheckItem::skipped(ITEM, "not configured (pacs.host)"));
    }
    let pacs = job::pacs(&context.config)?;
    let mut timeouts = pacs.timeouts;
    // An echo needs no job-long deadline.
    timeouts.total = timeouts.connect + timeouts.acse + timeouts.dimse;
    echo(context, ITEM, &pacs.calling_ae, &pacs.endpoint, &timeouts, Class::PacsUnreachable)
}

/// The patient API cannot be asked without an accession: this says what is
/// configured and whether its token is there.
fn patient_api_item(context: &Context) -> CheckItem {
    const ITEM: &str = "patient API";
    let patient = &context.config.patient;
    let Some(api) = patient.api.as_ref().filter(|_| patient.source == PatientSource::Api) else {
        return CheckItem::skipped(ITEM, "not used (patient.source = \"pacs\")");
    };
    match &api.token_env {
        Some(name) if std::env::var(name).map_or(true, |v| v.is_empty()) => {
            CheckItem::failed(ITEM, Failure::config(format!("{name} (patient.api.token_env) holds no token")))
        }
        _ => CheckItem::ok(ITEM, format!("{} (not queried: it needs an accession)", api.url)),
    }
}

fn echo(
    context: &Context,
    item: &str,
    calling: &AeTitle,
    peer: &Endpoint,
    timeouts: &Timeouts,
    class: Class,
) -> Result<CheckItem, Failure> {
    let program = match context.toolbox.path(Tool::Echoscu) {
        Ok(program) => program,
        Err(failure) => return Ok(CheckItem::failed(item, failure)),
    };
    let mut command = Command::new(&program, timeouts.total);
    command.args(echoscu::args(calling.as_str(), peer, timeouts));
    let output = runner::run(&command, &mut |_| {})?;
    let why = match echoscu::parse(&output.lines) {
        Ok(()) => {
            return Ok(CheckItem::ok(item, format!("{peer} answered (calling AE {calling})")));
        }
        Err(AssociationProblem::Unreachable(why)) => format!("unreachable: {why}"),
        Err(AssociationProblem::Rejected(reason)) => {
            format!(
                "association rejected ({reason}): is calling AE {calling} known to it, and its AE title right?"
            )
        }
        Err(AssociationProblem::Stalled) => "no answer within the timeout".into(),
        Err(AssociationProblem::Aborted(why)) => why,
    };
    let mut item = CheckItem::failed(item, Failure::config(format!("{peer} {why}")));
    item.failed = Some(class);
    Ok(item)
}

fn staging_item(context: &Context) -> CheckItem {
    const ITEM: &str = "staging folder";
    let root = &context.config.staging_dir;
    match staging::private_dir(root) {
        Ok(_probe) => match staging::free_bytes(root) {
            Ok(free) => {
                CheckItem::ok(ITEM, format!("{} writable, {:.1} GB free", root.display(), free as f64 / 1e9))
            }
            Err(err) => {
                CheckItem::ok(ITEM, format!("{} writable (free space unknown: {err})", root.display()))
            }
        },
        Err(failure) => CheckItem::failed(ITEM, failure),
    }
}
