//! dcmsend (the default sender): one association, `-nh` so one refused
//! file does not stop the rest, lossless JPEG decompressed on the fly when
//! the publisher wants uncompressed data, and a per-instance report file
//! (`+crf`) that is the verdict. The log only tells association problems
//! and drives the progress count; the exit code is 0 even when every file
//! failed (DICOM-NOTES 3b).

use std::ffi::OsString;
use std::path::Path;

use super::{
    AssociationProblem, Endpoint, FileOutcome, Problems, StatusClass, StoreLog, Timeouts, log_line, scu_args,
    words,
};

/// Arguments for sending `files` (paths as the report will name them).
/// `-v` always: the verdict comes from the report, but a dcmsend killed by
/// a signal writes none, and then its per-file log lines are the only
/// account of what the publisher had accepted.
pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    report: &Path,
    files: &[String],
) -> Vec<OsString> {
    let mut options = words(["-nh", "-v", "+crf"]);
    options.push(report.into());
    scu_args(calling, peer, timeouts, options, files.iter().map(OsString::from).collect())
}

/// Files the publisher accepted (Success or Warning), from the log alone.
pub fn accepted_in_log(log: &[String]) -> usize {
    log.iter()
        .filter(|line| {
            line.strip_prefix("I: Received C-STORE Response (")
                .is_some_and(|status| status.starts_with("Success") || status.starts_with("Warning"))
        })
        .count()
}

/// True for the log lines that close one file's store attempt.
pub fn is_file_done(line: &str) -> bool {
    line.starts_with("I: Received C-STORE Response")
        || line.starts_with("E: No presentation context found")
        || line.starts_with("E: Failed receiving DIMSE response")
}

/// Reads the report (`+crf`) and the log into one account.
pub fn parse(report: &str, log: &[String]) -> StoreLog {
    StoreLog { files: parse_report(report), problem: parse_log(log) }
}

/// One entry per `Number :` block of the report.
pub fn parse_report(report: &str) -> Vec<(String, FileOutcome)> {
    let mut files = Vec::new();
    let mut filename: Option<String> = None;
    let mut sop_class = String::new();
    for line in report.lines() {
        let Some((key, value)) = line.split_once(" : ") else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Number" => {
                filename = None;
                sop_class.clear();
            }
            "Filename" => filename = Some(value.to_string()),
            "SOP Class" => {
                // "1.2.840.10008.5.1.4.1.1.4 = MRImageStorage": keep the name.
                sop_class = value.rsplit(" = ").next().unwrap_or(value).to_string();
            }
            "DIMSE Status" => {
                if let Some(name) = filename.take() {
                    files.push((name, outcome(value, &sop_class)));
                }
            }
            _ => {}
        }
    }
    files
}

/// "0x0000 (Success)", "0xa700 (Refused: OutOfResources)",
/// "<no acceptable presentation context>", "<not sent>".
fn outcome(status: &str, sop_class: &str) -> FileOutcome {
    if let Some(hex) = status.strip_prefix("0x") {
        let (code, text) = hex.split_once(' ').unwrap_or((hex, ""));
        let text = text.trim().trim_start_matches('(').trim_end_matches(')').to_string();
        return match u16::from_str_radix(code, 16).map(StatusClass::of) {
            Ok(StatusClass::Success) => FileOutcome::Stored,
            Ok(StatusClass::Warning) => FileOutcome::StoredWithWarning(text),
            _ => FileOutcome::Failed(format!("refused by the publisher (0x{code}: {text})")),
        };
    }
    match status.trim_start_matches('<').trim_end_matches('>') {
        "no acceptable presentation context" => {
            FileOutcome::Failed(format!("the publisher accepts no {sop_class} (no presentation context)"))
        }
        "not sent" => FileOutcome::Failed("not sent: the association ended first".into()),
        other => FileOutcome::Failed(other.to_string()),
    }
}

/// Association-level problems, from the `F:` and `E:` lines.
pub fn parse_log(log: &[String]) -> Option<AssociationProblem> {
    let mut problems = Problems::new("publisher");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if level == 'F' || level == 'E' {
            problems.read(level, text);
        }
    }
    problems.into_problem()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> (String, Vec<String>) {
        use crate::dicom::recorded;
        (recorded::text(&format!("{name}.report")), recorded::lines(&format!("{name}.out")))
    }

    fn stored(log: &StoreLog) -> usize {
        log.files.iter().filter(|(_, o)| o.stored()).count()
    }

    #[test]
    fn all_sent() {
        let (report, log) = recorded("dcmsend_ok");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.files.len(), 5);
        assert_eq!(stored(&parsed), 5);
        assert_eq!(parsed.files[0].0, "/DATA/CT1.dcm");
        assert_eq!(parsed.problem, None);
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
    }

    #[test]
    fn no_presentation_context_for_two_classes() {
        let (report, log) = recorded("dcmsend_partial");
        let parsed = parse(&report, &log);
        assert_eq!(stored(&parsed), 2);
        assert_eq!(
            parsed.files[2].1,
            FileOutcome::Failed("the publisher accepts no MRImageStorage (no presentation context)".into())
        );
        assert_eq!(parsed.problem, None);
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
    }

    #[test]
    fn refused_files() {
        let (report, log) = recorded("dcmsend_refused");
        let parsed = parse(&report, &log);
        assert_eq!(stored(&parsed), 0);
        assert_eq!(parsed.files.len(), 2);
        assert!(matches!(&parsed.files[0].1, FileOutcome::Failed(why) if why.contains("OutOfResources")));
    }

    #[test]
    fn jpeg_lossless_to_an_uncompressed_publisher() {
        let (report, log) = recorded("dcmsend_jpeg_to_uncompressed");
        let parsed = parse(&report, &log);
        assert!(!parsed.files.is_empty());
        assert_eq!(stored(&parsed), parsed.files.len());
    }

    #[test]
    fn unreachable_and_rejected() {
        let (report, log) = recorded("dcmsend_unreachable");
        assert_eq!(
            parse(&report, &log).problem,
            Some(AssociationProblem::Unreachable("connection refused".into()))
        );
        let (report, log) = recorded("dcmsend_rejected");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, Some(AssociationProblem::Rejected(String::new())));
        assert!(parsed.files.is_empty());
    }

    #[test]
    fn stalled_publisher() {
        let (report, log) = recorded("dcmsend_stalled");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, Some(AssociationProblem::Stalled));
        assert_eq!(stored(&parsed), 0);
        assert!(matches!(&parsed.files[0].1, FileOutcome::Failed(why) if why.starts_with("not sent")));
    }

    #[test]
    fn skipped_non_dicom_input_is_not_a_problem() {
        let (report, log) = recorded("dcmsend_nondicom");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, None);
        assert_eq!(stored(&parsed), 3);
    }

    #[test]
    fn a_dicomdir_in_the_list_is_left_out_by_dcmsend() {
        // pacs2cd never passes one (the scan skips it); were it passed,
        // dcmsend would leave it out of the report rather than fail it.
        let (report, log) = recorded("dcmsend_dicomdir");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, None);
        assert!(parsed.files.iter().all(|(name, outcome)| !name.ends_with("DICOMDIR") && outcome.stored()));
    }

    #[test]
    fn warning_status_counts_as_stored() {
        assert_eq!(
            outcome("0xb000 (Warning: CoercionOfDataElements)", "CT"),
            FileOutcome::StoredWithWarning("Warning: CoercionOfDataElements".into())
        );
        assert!(!outcome("0xc000 (Failed)", "CT").stored());
    }
}
