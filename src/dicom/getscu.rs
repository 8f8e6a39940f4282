//! getscu: C-GET, the files come back on the same association (no port,
//! no move destination on the PACS). getscu has no accept-everything
//! option: `+xs` proposes JPEG lossless (what most PACSes store) and the
//! uncompressed syntaxes; anything else the PACS must convert, and when it
//! cannot, the failed sub-operations are counted and reported.

use std::ffi::OsString;
use std::path::Path;

use super::{Endpoint, Problems, RetrieveKeys, RetrieveLog, Timeouts, log_line, scu_args, words};

pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    into: &Path,
    keys: &RetrieveKeys,
) -> Vec<OsString> {
    let mut options = words(["-S", "-v", "+xs", "-od"]);
    options.push(into.into());
    options.extend(keys.args().into_iter().map(OsString::from));
    scu_args(calling, peer, timeouts, options, Vec::new())
}

/// True for the line that announces one received instance.
pub fn is_file_received(line: &str) -> bool {
    line.starts_with("I: Received C-STORE Request")
}

pub fn parse(log: &[String]) -> RetrieveLog {
    let mut parsed = RetrieveLog::default();
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if let Some(status) = text.strip_prefix("Received C-GET Response (") {
            let status = status.trim_end_matches(')');
            if status != "Pending" {
                parsed.final_status = Some(status.to_string());
            }
        } else if let Some(count) = text.trim().strip_prefix("Number of Failed Suboperations") {
            parsed.failed_suboperations = count.trim_start_matches([' ', ':']).trim().parse().ok();
        } else {
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
        let ok = recorded("getscu_ok");
        let parsed = parse(&ok);
        assert!(parsed.succeeded(), "{parsed:?}");
        assert_eq!(parsed.failed_suboperations, Some(0));
        assert_eq!(ok.iter().filter(|l| is_file_received(l)).count(), 3);

        let none = parse(&recorded("getscu_nomatch"));
        assert_eq!(none.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!none.succeeded());

        let down = parse(&recorded("getscu_down"));
        assert_eq!(down.problem, Some(AssociationProblem::Unreachable("connection refused".into())));
    }

    #[test]
    fn failed_suboperations_fail_the_run() {
        let log: Vec<String> = [
            "I: Received C-GET Response (Success)",
            "I:   Number of Completed Suboperations : 11",
            "I:   Number of Failed Suboperations    : 1",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let parsed = parse(&log);
        assert_eq!(parsed.failed_suboperations, Some(1));
        assert!(!parsed.succeeded());
    }
}
