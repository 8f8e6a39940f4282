//! getscu: C-GET, the files come back on the same association (no port,
//! no move destination on the PACS). getscu has no accept-everything
//! option: `+xs` proposes JPEG lossless (what most PACSes store) and the
//! uncompressed syntaxes; anything else the PACS must convert, and when it
//! cannot, the failed sub-operations are counted and reported. getscu
//! prints the final sub-operation counts at `-v`.

use std::ffi::OsString;
use std::path::Path;

use super::{Endpoint, Problems, RECEIVE_PDU, RetrieveLog, Timeouts, log_line, scu_args, words};

pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, into: &Path, query: &Path) -> Vec<OsString> {
    let mut options = words(["-S", "-v", "+xs", "-pdu", RECEIVE_PDU, "-od"]);
    options.push(into.into());
    scu_args(calling, peer, timeouts, options, vec![query.into()])
}

pub fn parse(log: &[String]) -> RetrieveLog {
    let mut parsed = RetrieveLog { stored: Some(0), ..RetrieveLog::default() };
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text == "Sending C-STORE Response (Success)" {
            // getscu answers Success once the file is written.
            parsed.stored = parsed.stored.map(|n| n + 1);
        } else if let Some(status) = text.strip_prefix("Received C-GET Response (") {
            let status = status.trim_end_matches(')');
            if status != "Pending" {
                parsed.final_status = Some(status.to_string());
            }
        } else if !parsed.counts.read(text) {
            problems.read(level, text);
        }
    }
    parsed.problem = problems.into_problem();
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::AssociationProblem;

    use crate::dicom::recorded::out as recorded;

    #[test]
    fn recorded_cases() {
        let parsed = parse(&recorded("getscu_ok"));
        assert!(parsed.succeeded(), "{parsed:?}");
        assert_eq!(parsed.stored, Some(3));
        assert_eq!(
            (parsed.counts.failed, parsed.counts.completed, parsed.counts.remaining),
            (Some(0), Some(3), Some(0))
        );

        let none = parse(&recorded("getscu_nomatch"));
        assert_eq!(none.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!none.succeeded());

        let down = parse(&recorded("getscu_down"));
        assert_eq!(down.problem, Some(AssociationProblem::Unreachable("connection refused".into())));
    }

    #[test]
    fn failed_or_remaining_suboperations_fail_the_run() {
        let log = |lines: &[&str]| -> Vec<String> { lines.iter().map(|l| l.to_string()).collect() };
        let failed = parse(&log(&[
            "I: Received C-GET Response (Success)",
            "I:   Number of Completed Suboperations : 11",
            "I:   Number of Failed Suboperations    : 1",
        ]));
        assert_eq!(failed.counts.failed, Some(1));
        assert!(!failed.succeeded());
        // A PACS that ends with Success while announcing 5 more.
        let short = parse(&log(&[
            "I: Received C-GET Response (Success)",
            "I: Final status report from last C-GET message:",
            "I:   Number of Remaining Suboperations : 5",
            "I:   Number of Completed Suboperations : 25",
            "I:   Number of Failed Suboperations    : 0",
            "I:   Number of Warning Suboperations   : 0",
        ]));
        assert_eq!(short.counts.remaining, Some(5));
        assert!(!short.succeeded());
    }
}
