//! movescu as a pure C-MOVE SCU: the move destination is our own AE, served
//! by a separate storescp on the move port (see `storescp`), so movescu
//! itself listens nowhere. `-d`, because movescu 3.6.7 prints the
//! sub-operation counts only at DEBUG level; without its own storage SCP
//! that log stays small (a dozen lines per pending response). The exit
//! code is 0 even when the PACS aborted: the final response is the verdict.

use std::ffi::OsString;
use std::path::Path;

use super::{Endpoint, Problems, RetrieveLog, Suboperations, Timeouts, log_line, scu_args, words};

/// The arguments for a C-MOVE of the identifier in `query` (a file
/// `RetrieveKeys::write_query` wrote).
pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, query: &Path) -> Vec<OsString> {
    // The move destination is ourselves, by our calling AE title.
    let options = words(["-S", "-d", "-aem", calling]);
    scu_args(calling, peer, timeouts, options, vec![query.into()])
}

pub fn parse(log: &[String]) -> RetrieveLog {
    let mut parsed = RetrieveLog::default();
    let mut problems = Problems::new("PACS");
    // Inside the dump of the final response: its counts and status follow.
    let mut in_final = false;
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if let Some(rest) = text.strip_prefix("Received Final Move Response") {
            in_final = true;
            // At -v the status is on this line: "(Success)".
            if let Some(status) = rest.trim().strip_prefix('(') {
                parsed.final_status = Some(status.trim_end_matches(')').to_string());
            }
            continue;
        }
        if level == 'D' {
            if in_final {
                if parsed.counts.read(text) {
                    continue;
                }
                // "DIMSE Status : 0x0000: Success: Sub-operations complete - ..."
                if let Some(status) = text.strip_prefix("DIMSE Status").and_then(|s| s.split_once(':')) {
                    parsed.final_status = Some(status_words(status.1));
                } else if text.contains("END DIMSE MESSAGE") {
                    in_final = false;
                }
            }
            continue;
        }
        problems.read(level, text);
    }
    parsed.problem = problems.into_problem();
    parsed
}

/// " 0xc000: Failed: Unable to process" -> "Failed: Unable to process";
/// " 0x0000: Success: Sub-operations complete - ..." -> "Success".
fn status_words(text: &str) -> String {
    let words = text.trim().split_once(": ").map_or(text.trim(), |(_, rest)| rest);
    if words.starts_with("Success") { "Success".to_string() } else { words.to_string() }
}

/// Sub-operation counts as a sentence, for messages.
pub fn describe(counts: &Suboperations) -> String {
    let mut parts = Vec::new();
    for (name, value) in
        [("failed", counts.failed), ("remaining", counts.remaining), ("completed", counts.completed)]
    {
        if let Some(value) = value {
            parts.push(format!("{value} {name}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::{AssociationProblem, RetrieveKeys};

    use crate::dicom::recorded::out as recorded;

    #[test]
    fn the_final_response_and_its_counts() {
        let ok = parse(&recorded("movescu_ok_debug"));
        assert_eq!(ok.final_status.as_deref(), Some("Success"), "{ok:?}");
        assert_eq!(
            ok.counts,
            Suboperations { remaining: None, completed: Some(3), failed: Some(0), warning: Some(0) }
        );
        assert!(ok.succeeded());

        let failed = parse(&recorded("movescu_unknown_dest"));
        assert_eq!(failed.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!failed.succeeded());

        let down = parse(&recorded("movescu_down"));
        assert_eq!(down.problem, Some(AssociationProblem::Unreachable("connection refused".into())));
        assert_eq!(down.final_status, None);
    }

    #[test]
    fn remaining_or_failed_suboperations_fail_a_successful_status() {
        let log: Vec<String> = [
            "I: Received Final Move Response",
            "D: Remaining Suboperations       : 5",
            "D: Completed Suboperations       : 25",
            "D: Failed Suboperations          : 0",
            "D: Warning Suboperations         : 0",
            "D: DIMSE Status                  : 0x0000: Success: Sub-operations complete - No failures or warnings",
            "D: ======================= END DIMSE MESSAGE =======================",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let parsed = parse(&log);
        assert_eq!(parsed.final_status.as_deref(), Some("Success"));
        assert_eq!(parsed.counts.remaining, Some(5));
        assert!(!parsed.succeeded());
        assert_eq!(describe(&parsed.counts), "0 failed, 5 remaining, 25 completed");
    }

    #[test]
    fn keys_go_in_a_query_file_not_on_the_command_line() {
        use crate::dicom::part10::{self, tag};
        let dir = tempfile::tempdir().expect("dir");
        let uids = ["1.2".to_string(), "1.3".to_string()];
        let query = dir.path().join("q.dcm");
        RetrieveKeys::Studies(&uids).write_query(&query).expect("write");
        let read = part10::read(&query, true).expect("read").expect("data set");
        assert_eq!(read.ascii(tag::STUDY_INSTANCE_UID), "1.2\\1.3");
        assert_eq!(read.ascii(0x0008_0052), "STUDY");
        RetrieveKeys::AccessionModality("A1", "CT").write_query(&query).expect("write");
        let read = part10::read(&query, true).expect("read").expect("data set");
        assert_eq!(
            (read.ascii(tag::ACCESSION_NUMBER), read.ascii(tag::MODALITIES_IN_STUDY)),
            ("A1".into(), "CT".into())
        );
        let peer = Endpoint::parse("PACS@127.0.0.1:104").expect("peer");
        let args = args("ME", &peer, &Timeouts::from_secs([1, 2, 3, 4]), &query);
        assert!(!args.iter().any(|a| a.to_string_lossy().contains("A1")), "{args:?}");
        assert_eq!(args.last(), Some(&OsString::from(query.as_os_str())));
    }
}
