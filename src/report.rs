//! What a job prints: a human summary on stdout, or one JSON object; and a
//! failure as one line on stderr (plus the JSON object on stdout with
//! `--json`). The JSON keys of the legacy HIS contract come first, which is
//! why these are structs (serde keeps field order) and not maps.

use serde::Serialize;

use crate::check::{CheckItem, Status};
use crate::failure::{Class, Failure};
use crate::pipeline::fetch::Fetched;
use crate::pipeline::relay::{Relayed, Skipped};
use crate::sanitize::for_terminal;

pub enum Report {
    Relay { relayed: Relayed, skipped: Vec<Skipped> },
    Fetch(Fetched),
    Check(Vec<CheckItem>),
}

impl Report {
    /// A report can still fail the run (`check` with a failing item).
    pub fn failed_class(&self) -> Option<Class> {
        match self {
            Report::Relay { .. } | Report::Fetch(_) => None,
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
struct CheckJson<'a> {
    status: &'static str,
    checks: &'a [CheckItem],
}

pub fn print(report: &Report, json: bool) {
    if json {
        let value = match report {
            Report::Relay { relayed, skipped } => {
                serde_json::to_string(&RelayJson { status: "ok", relayed, skipped })
            }
            Report::Fetch(fetched) => serde_json::to_string(&FetchJson { status: "ok", fetched }),
            Report::Check(checks) => {
                let status = if report.failed_class().is_some() { "failed" } else { "ok" };
                serde_json::to_string(&CheckJson { status, checks })
            }
        };
        match value {
            Ok(text) => println!("{text}"),
            Err(err) => log::error!("cannot write the JSON result: {err}"),
        }
        return;
    }
    match report {
        Report::Relay { relayed, skipped } => {
            let skipped_note = if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped (not DICOM instances)", skipped.len())
            };
            println!(
                "sent {} files to the CD publisher {}@{} in {:.1} s{skipped_note}",
                relayed.files_sent, relayed.called_ae, relayed.destination, relayed.seconds
            );
            for (file, warning) in &relayed.warnings {
                println!("  stored with a warning: {}: {}", for_terminal(file), for_terminal(warning));
            }
        }
        Report::Fetch(fetched) => {
            println!(
                "fetched {} files ({:.1} MB) of {} ({}), {} {}, into {} in {:.1} s",
                fetched.files,
                fetched.bytes as f64 / 1e6,
                for_terminal(&fetched.patient_name),
                for_terminal(&fetched.patient_id),
                fetched.studies.len(),
                if fetched.studies.len() == 1 { "study" } else { "studies" },
                for_terminal(&fetched.folder),
                fetched.seconds
            );
            for study in &fetched.studies {
                println!(
                    "  {}: {} ({} files) {}",
                    for_terminal(&study.accession),
                    for_terminal(&study.modalities.join("/")),
                    study.files,
                    study.study_instance_uid
                );
            }
        }
        Report::Check(items) => {
            for item in items {
                let status = match item.status {
                    Status::Ok => "ok  ",
                    Status::Failed => "FAIL",
                    Status::Skipped => "--  ",
                };
                println!("{status}  {:<22} {}", item.item, for_terminal(&item.detail));
            }
        }
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
}

#[derive(Serialize)]
struct FailedFile<'a> {
    file: &'a str,
    reason: &'a str,
}

/// How many failed files a terminal is shown (JSON has them all).
const SHOWN_FAILURES: usize = 10;

pub fn print_failure(failure: &Failure, json: bool) {
    eprintln!("pacs2cd: {}", for_terminal(&failure.detail));
    if let Some(counts) = &failure.relay {
        for (file, reason) in counts.failures.iter().take(SHOWN_FAILURES) {
            eprintln!("  {}: {}", for_terminal(file), for_terminal(reason));
        }
        if counts.failures.len() > SHOWN_FAILURES {
            eprintln!("  ... and {} more", counts.failures.len() - SHOWN_FAILURES);
        }
    }
    if json {
        println!("{}", failure_json(failure));
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
        let counts =
            RelayCounts { files_sent: 2, files_failed: 1, failures: vec![("IM3".into(), "refused".into())] };
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
