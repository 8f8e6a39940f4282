//! Epson Discproducer (PP-100, PP-50) through TD Bridge: a `.JDF` job file
//! of `KEY=value` lines, its state by extension (JDF -> RJD -> INP ->
//! DON/ERR/STP), `TDBStatus.txt` rewritten every few seconds, and a `.JCF`
//! file to cancel (../shared/ROBOTS.md).
//!
//! The status file as read here: a `[<JOB_ID>]` section per job with
//! `STATUS` (1 queued, 2 processing, 3 paused, 4 done, 5 abnormal end,
//! 6 not accepted, 99 unknown), `ERROR`, `COMPLETED_DISCS` and
//! `FAILED_DISCS`; a `[PUBLISHER…]` section per publisher with `NAME`,
//! `STATUS` (1 ready, 2 busy, 3 paused, 4 error, 5 offline) and `ERROR`.
//! Section and key names follow the Technical Reference's terms as
//! summarised in ROBOTS.md; the numeric error codes below are our reading
//! and are to be checked against a real TDBStatus.txt before a site relies
//! on the words (the verdict falls back to "error N").

use std::time::{Duration, SystemTime};

use super::Robot;
use super::hotfolder::{Job, Phase, Report, Vendor, sections, top_entries, value};
use crate::config::Medium;
use crate::failure::Failure;

pub struct TdBridge;

/// A status file older than this: TD Bridge is not running.
const STALE: Duration = Duration::from_secs(60);

/// A TD Bridge error code in words.
pub fn error_words(code: &str) -> Option<String> {
    let words = match code.trim() {
        "" | "0" => return None,
        "1" => "out of discs",
        "2" => "cover open",
        "3" => "ink low",
        "4" => "ink empty",
        "5" => "disc rejected (write or verify error)",
        "6" => "printer offline",
        "7" => "drive error",
        "8" => "cancelled",
        "9" => "disc stacker full",
        other => return Some(format!("error {other}")),
    };
    Some(words.to_string())
}

impl Vendor for TdBridge {
    fn software(&self) -> &'static str {
        "TD Bridge"
    }

    fn job_extension(&self) -> &'static str {
        "JDF"
    }

    fn phase(&self, extension: &str) -> Option<Phase> {
        Some(match extension {
            "JDF" => Phase::Placed,
            "RJD" => Phase::Taken,
            "INP" => Phase::Burning,
            "STP" => Phase::Paused,
            "DON" => Phase::Done,
            "ERR" => Phase::Failed,
            _ => return None,
        })
    }

    fn job_file(&self, robot: &Robot, job: &Job) -> String {
        let mut lines = vec![format!("JOB_ID={}", job.id)];
        if let Some(name) = &robot.robot_name {
            lines.push(format!("PUBLISHER={name}"));
        }
        lines.push(format!("COPIES={}", robot.copies));
        lines.push(format!("DISC_TYPE={}", job.medium.as_str()));
        // Joliet keeps a CD readable everywhere; UDF beyond a CD's size.
        lines.push(format!("FORMAT={}", if job.medium == Medium::Cd { "JOLIET" } else { "UDF102" }));
        lines.push(format!("VOLUME_LABEL={}", job.info.label));
        for entry in top_entries(&job.disc) {
            let source = robot.robot_spelling(&job.disc.join(&entry));
            lines.push(format!("DATA={source}\t\\"));
        }
        if let Some(label) = &robot.label {
            lines.push(format!("LABEL={label}"));
            if let Some(merge) = &job.merge_file {
                lines.push(format!("REPLACE_FIELD={}", robot.robot_spelling(merge)));
            }
        }
        // VERIFY: uncertain key (ROBOTS.md lists none for read-back).
        lines.push(format!("VERIFY={}", if robot.verify { "YES" } else { "NO" }));
        lines.push("CLOSE_DISC=YES".into());
        lines.push(String::new());
        lines.join("\r\n")
    }

    fn preflight(&self, robot: &Robot) -> Result<(), Failure> {
        let not_ready = |why: String| Failure::robot_not_ready(&robot.name, &why);
        let text = super::hotfolder::read_file(&robot.status).map_err(|err| {
            not_ready(format!(
                "cannot read its status file {} ({err}): is TD Bridge running?",
                robot.status.display()
            ))
        })?;
        let age = std::fs::metadata(&robot.status)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        if age > STALE {
            return Err(not_ready(format!(
                "its status file {} was last written {} s ago: TD Bridge is not running",
                robot.status.display(),
                age.as_secs()
            )));
        }
        publisher_ready(&text, robot.robot_name.as_deref()).map_err(not_ready)
    }

    fn report(&self, robot: &Robot, job_id: &str) -> Report {
        let text = super::hotfolder::read_file(&robot.status).unwrap_or_default();
        report_of(&text, job_id, robot.robot_name.as_deref())
    }

    fn cancel_file(&self, job_id: &str) -> (String, String) {
        (format!("{job_id}.JCF"), format!("[CANCEL]\r\nJOB_ID={job_id}\r\n"))
    }
}

/// Whether a publisher can burn now, from TDBStatus.txt; the reason in words.
pub fn publisher_ready(text: &str, name: Option<&str>) -> Result<(), String> {
    let all = sections(text);
    let publishers: Vec<_> = all
        .iter()
        .filter(|(section, _)| section.to_ascii_uppercase().starts_with("PUBLISHER"))
        .filter(|(_, pairs)| name.is_none_or(|n| value(pairs, "NAME") == Some(n)))
        .collect();
    if publishers.is_empty() {
        return Err(match name {
            Some(name) => {
                format!("TD Bridge lists no publisher named {name}: is it switched on and connected?")
            }
            None => "TD Bridge lists no publisher: is it switched on and connected?".into(),
        });
    }
    let mut reasons = Vec::new();
    for (_, pairs) in &publishers {
        let error = value(pairs, "ERROR").and_then(error_words);
        let status = value(pairs, "STATUS").unwrap_or("");
        match (status, &error) {
            // Ink low is a warning, not a stop.
            ("1" | "2", None) => return Ok(()),
            ("1" | "2", Some(words)) if words == "ink low" => return Ok(()),
            ("5", _) => reasons.push("off or not connected".to_string()),
            (_, Some(words)) => reasons.push(words.clone()),
            ("3", None) => reasons.push("paused".to_string()),
            (other, None) => reasons.push(format!("in error (status {other})")),
        }
    }
    Err(reasons.join("; "))
}

/// What TDBStatus.txt says of a job.
pub fn report_of(text: &str, job_id: &str, name: Option<&str>) -> Report {
    let all = sections(text);
    let mut report = Report::default();
    if let Some((_, pairs)) = all.iter().find(|(section, _)| section == job_id) {
        report.discs_done = value(pairs, "COMPLETED_DISCS").and_then(|v| v.parse().ok());
        report.discs_failed = value(pairs, "FAILED_DISCS").and_then(|v| v.parse().ok());
        let status = value(pairs, "STATUS").unwrap_or("");
        report.job_error = value(pairs, "ERROR").and_then(error_words).or(match status {
            "5" => Some("abnormal end".to_string()),
            "6" => Some("the robot did not accept the job".to_string()),
            _ => None,
        });
        if status == "6"
            && let Some(words) = &report.job_error
            && !words.contains("did not accept")
        {
            report.job_error = Some(format!("the robot did not accept the job: {words}"));
        }
    }
    report.robot_error = publisher_ready(text, name).err();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "[JOB_LIST]\r\nACTIVE=J1\r\n[J1]\r\nSTATUS=2\r\nERROR=0\r\nCOMPLETED_DISCS=1\r\n\
                          FAILED_DISCS=0\r\n[PUBLISHER1]\r\nNAME=PP-100\r\nSTATUS=2\r\nERROR=0\r\n";

    #[test]
    fn a_busy_publisher_is_ready_and_counts_discs() {
        assert_eq!(publisher_ready(STATUS, None), Ok(()));
        assert_eq!(publisher_ready(STATUS, Some("PP-100")), Ok(()));
        assert!(publisher_ready(STATUS, Some("PP-50")).is_err_and(|e| e.contains("named PP-50")));
        let report = report_of(STATUS, "J1", None);
        assert_eq!((report.discs_done, report.job_error, report.robot_error), (Some(1), None, None));
    }

    #[test]
    fn troubles_are_said_in_words() {
        let out = STATUS.replace("NAME=PP-100\r\nSTATUS=2\r\nERROR=0", "NAME=PP-100\r\nSTATUS=4\r\nERROR=1");
        assert_eq!(publisher_ready(&out, None), Err("out of discs".into()));
        let off = STATUS.replace("NAME=PP-100\r\nSTATUS=2", "NAME=PP-100\r\nSTATUS=5");
        assert_eq!(publisher_ready(&off, None), Err("off or not connected".into()));
        let ink = STATUS.replace("NAME=PP-100\r\nSTATUS=2\r\nERROR=0", "NAME=PP-100\r\nSTATUS=1\r\nERROR=3");
        assert_eq!(publisher_ready(&ink, None), Ok(()));
        let refused = STATUS.replace("STATUS=2\r\nERROR=0\r\nCOMPLETED", "STATUS=6\r\nERROR=0\r\nCOMPLETED");
        assert_eq!(
            report_of(&refused, "J1", None).job_error.as_deref(),
            Some("the robot did not accept the job")
        );
        let rejected = STATUS.replace("STATUS=2\r\nERROR=0\r\nCOMPLETED", "STATUS=5\r\nERROR=5\r\nCOMPLETED");
        assert_eq!(
            report_of(&rejected, "J1", None).job_error.as_deref(),
            Some("disc rejected (write or verify error)")
        );
        assert_eq!(error_words("42").as_deref(), Some("error 42"));
        assert!(publisher_ready("", None).is_err());
    }
}
