//! What a job prints: a human summary on stdout, or one JSON object; and a
//! failure as one line on stderr (plus the JSON object on stdout with
//! `--json`). The JSON keys of the legacy HIS contract come first, which is
//! why these are structs (serde keeps field order) and not maps.

use serde::Serialize;

/// `println!` without its panic when stdout is closed (a pipe to `head`,
/// a cron job whose mail failed): the exit code must still be the table's.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::check::{CheckItem, Status};
use crate::failure::{Class, Failure};
use crate::patients::Patient;
use crate::pipeline::StudySummary;
use crate::pipeline::fetch::Fetched;
use crate::pipeline::manifest::Proof;
use crate::pipeline::print::{Plan, Printed};
use crate::pipeline::relay::{Relayed, Skipped};
use crate::sanitize::for_terminal;

pub enum Report {
    Relay {
        relayed: Relayed,
        skipped: Vec<Skipped>,
    },
    Fetch(Fetched),
    Print(Printed),
    Plan(Plan),
    Check(Vec<CheckItem>),
    /// A CGI HEAD request: checked, nothing done.
    Probe,
}

impl Report {
    /// A report can still fail the run (`check` with a failing item).
    pub fn failed_class(&self) -> Option<Class> {
        match self {
            Report::Relay { .. } | Report::Fetch(_) | Report::Print(_) | Report::Plan(_) | Report::Probe => {
                None
            }
            Report::Check(items) => items.iter().find_map(|item| item.failed),
        }
    }
}

#[derive(Serialize)]
struct RelayJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    relayed: &'a Relayed,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    skipped: &'a [Skipped],
}

#[derive(Serialize)]
struct FetchJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    fetched: &'a Fetched,
}

#[derive(Serialize)]
struct PrintJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    printed: &'a Printed,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    plan: &'a Plan,
}

#[derive(Serialize)]
struct CheckJson<'a> {
    status: &'static str,
    checks: &'a [CheckItem],
}

/// The JSON object of a result (`status` first).
pub fn json(report: &Report) -> String {
    let value = match report {
        Report::Relay { relayed, skipped } => {
            serde_json::to_string(&RelayJson { status: "ok", relayed, skipped })
        }
        Report::Fetch(fetched) => serde_json::to_string(&FetchJson { status: "ok", fetched }),
        Report::Print(printed) => serde_json::to_string(&PrintJson { status: "ok", printed }),
        Report::Plan(plan) => serde_json::to_string(&PlanJson { status: "dry-run", plan }),
        Report::Probe => Ok("{\"status\":\"ok\"}".to_string()),
        Report::Check(checks) => {
            let status = if report.failed_class().is_some() { "failed" } else { "ok" };
            serde_json::to_string(&CheckJson { status, checks })
        }
    };
    // Plain strings and numbers always serialize; keep stdout valid JSON anyway.
    value.unwrap_or_else(|err| format!("{{\"status\":\"ok\",\"warning\":\"{err}\"}}"))
}

pub fn print(report: &Report, json: bool) {
    if json {
        outln!("{}", self::json(report));
        return;
    }
    match report {
        Report::Relay { relayed, skipped } => {
            let skipped_note = if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped (not DICOM instances)", skipped.len())
            };
            outln!(
                "sent {} files to the CD publisher {}@{} in {:.1} s{skipped_note}",
                relayed.files_sent,
                relayed.called_ae,
                relayed.destination,
                relayed.seconds
            );
            for (file, warning) in &relayed.warnings {
                outln!("  stored with a warning: {}: {}", for_terminal(file), for_terminal(warning));
            }
        }
        Report::Fetch(fetched) => {
            let into = match (&fetched.folder, &fetched.iso) {
                (Some(folder), Some(iso)) => {
                    format!("into {} and the image {}", for_terminal(folder), for_terminal(iso))
                }
                (Some(folder), None) => format!("into {}", for_terminal(folder)),
                (None, Some(iso)) => format!("into the image {}", for_terminal(iso)),
                (None, None) => String::new(),
            };
            outln!(
                "fetched {} files ({:.1} MB) of {}, {} {}, {into} in {:.1} s",
                fetched.files,
                fetched.bytes as f64 / 1e6,
                patients_phrase(&fetched.patients),
                fetched.studies.len(),
                if fetched.studies.len() == 1 { "study" } else { "studies" },
                fetched.seconds
            );
            outln!("  {}", proof_words(fetched.proof));
            if let Some(bytes) = fetched.iso_bytes {
                outln!("  disc image: {:.1} MB", bytes as f64 / 1e6);
            }
            print_studies(&fetched.studies);
        }
        Report::Print(printed) => {
            outln!(
                "sent {} files of {} to the {} ({}@{}) in {:.1} s",
                printed.files_sent,
                patients_phrase(&printed.patients),
                for_terminal(&printed.publisher),
                printed.called_ae,
                printed.destination,
                printed.seconds
            );
            outln!("  {}", proof_words(printed.proof));
            print_studies(&printed.studies);
        }
        Report::Plan(plan) => {
            let files = plan.files_expected.map_or("an unknown number of".to_string(), |n| n.to_string());
            outln!(
                "dry run: would send {files} files of {} to the {} at {}; nothing was retrieved or sent",
                patients_phrase(&plan.patients),
                for_terminal(&plan.publisher),
                plan.destination
            );
            outln!("  {}", proof_words(plan.proof));
            print_studies(&plan.studies);
        }
        Report::Probe => outln!("ok"),
        Report::Check(items) => {
            for item in items {
                let status = match item.status {
                    Status::Ok => "ok  ",
                    Status::Failed => "FAIL",
                    Status::Skipped => "--  ",
                };
                outln!("{status}  {:<22} {}", item.item, for_terminal(&item.detail));
            }
        }
    }
}

/// "DOE, JOHN (PID001)", or every patient of a mixed job:
/// "DOE, JOHN (PID001: ACC001) and ROE, JANE (PID002: ACC004)".
fn patients_phrase(patients: &[Patient]) -> String {
    let one = |p: &Patient, with_accessions: bool| {
        let label = for_terminal(&p.label());
        if with_accessions { format!("{label} [{}]", p.accessions.join(", ")) } else { label }
    };
    match patients {
        [] => "no patient".to_string(),
        [patient] => one(patient, false),
        many => {
            let all: Vec<String> = many.iter().map(|p| one(p, true)).collect();
            format!("{} patients: {}", many.len(), all.join(" and "))
        }
    }
}

/// How the disc was proven whole, in words.
pub fn proof_words(proof: &str) -> &'static str {
    match proof {
        "instance-list" => Proof::InstanceList.describe(),
        "series-counts" => Proof::SeriesCounts.describe(),
        "study-count" => Proof::StudyCount.describe(),
        _ => Proof::Unproven.describe(),
    }
}

fn print_studies(studies: &[StudySummary]) {
    for study in studies {
        outln!(
            "  {}: {} ({} files) {}",
            for_terminal(&study.accession),
            for_terminal(&study.modalities.join("/")),
            study.files,
            study.study_instance_uid
        );
    }
}

#[derive(Serialize)]
struct FailureJson<'a> {
    error: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_sent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_failed: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failures: Vec<FailedFile<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<FailedFile<'a>>,
}

#[derive(Serialize)]
struct FailedFile<'a> {
    file: &'a str,
    reason: &'a str,
}

/// How many failed files a terminal is shown (JSON has them all).
const SHOWN_FAILURES: usize = 10;

pub fn print_failure(failure: &Failure, json: bool) {
    // "busy" is the word a technician acts on (wait, try again); the
    // detail says what holds the port.
    let class = if failure.class == Class::Busy { "busy: " } else { "" };
    eprintln!("pacs2cd: {class}{}", for_terminal(&failure.detail));
    if let Some(counts) = &failure.relay {
        for (file, reason) in counts.failures.iter().take(SHOWN_FAILURES) {
            eprintln!("  {}: {}", for_terminal(file), for_terminal(reason));
        }
        if counts.failures.len() > SHOWN_FAILURES {
            eprintln!("  ... and {} more", counts.failures.len() - SHOWN_FAILURES);
        }
    }
    if json {
        outln!("{}", failure_json(failure));
    }
}

/// The SPEC error object: `{"error":…, "detail":…, "destination":…}`.
pub fn failure_json(failure: &Failure) -> String {
    let counts = failure.relay.as_ref();
    let object = FailureJson {
        error: failure.class.error_str(),
        detail: &failure.detail,
        destination: failure.destination.as_deref(),
        files_sent: counts.map(|c| c.files_sent),
        files_failed: counts.map(|c| c.files_failed),
        failures: counts
            .map(|c| c.failures.iter().map(|(file, reason)| FailedFile { file, reason }).collect())
            .unwrap_or_default(),
        skipped: counts
            .map(|c| c.skipped.iter().map(|(file, reason)| FailedFile { file, reason }).collect())
            .unwrap_or_default(),
    };
    // Serializing plain strings and numbers cannot fail; keep a valid
    // object on stdout all the same.
    serde_json::to_string(&object)
        .unwrap_or_else(|_| format!("{{\"error\":\"{}\"}}", failure.class.error_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::RelayCounts;

    #[test]
    fn failure_json_shape() {
        let counts = RelayCounts {
            files_sent: 2,
            files_failed: 1,
            failures: vec![("IM3".into(), "refused".into())],
            ..RelayCounts::default()
        };
        let failure = Failure::partial_relay("127.0.0.1:104", "1 of 3 files were not accepted", counts);
        let value: serde_json::Value = serde_json::from_str(&failure_json(&failure)).expect("json");
        assert_eq!(value["error"], "partial relay");
        assert_eq!(value["destination"], "127.0.0.1:104");
        assert_eq!(value["files_sent"], 2);
        assert_eq!(value["files_failed"], 1);
        assert_eq!(value["failures"][0]["file"], "IM3");
        let text = failure_json(&Failure::config("x"));
        assert!(text.starts_with("{\"error\":\"configuration error\",\"detail\":\"x\"}"), "{text}");
    }
}
