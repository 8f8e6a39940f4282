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

    /// The finals with sub-operations failed or left, as movescu -d printed
    /// them (recorded with pacs2cd's own arguments and query files).
    #[test]
    fn remaining_or_failed_suboperations_fail_the_run() {
        let counts = |remaining, completed, failed| Suboperations {
            remaining,
            completed: Some(completed),
            failed: Some(failed),
            warning: Some(0),
        };
        // (recording, final status, counts)
        let cases = [
            // The fake PACS announces 3, sends 2 and ends Success, Remaining 1.
            ("fake_movescu_short_debug", "Success", counts(Some(1), 2, 0)),
            // dcmqrscp with a file deleted from its storage area.
            (
                "dcmqrscp_movescu_missing_debug",
                "Warning: Sub-operations complete - One or more failures or warnings",
                counts(None, 2, 1),
            ),
            // dcmqrscp, nothing listening on the move port.
            (
                "dcmqrscp_movescu_dest_down_debug",
                "Refused: Out of resources - Unable to perform sub-operations",
                counts(None, 0, 3),
            ),
            // dcmqrscp cancelled after the first pending response: Remaining 1.
            (
                "dcmqrscp_movescu_cancel_debug",
                "Cancel: Sub-operations terminated due to Cancel Indication",
                counts(Some(1), 2, 0),
            ),
            // Orthanc, 3 CT delivered, then an MR the receiver refused: all 0;
            // the same for the legacy loop's request (2 CT, then the MR).
            ("orthanc_movescu_ctonly_debug", "Failed: Unable to process", counts(None, 0, 0)),
            ("orthanc_movescu_legacy_ctonly_debug", "Failed: Unable to process", counts(None, 0, 0)),
            // dcmqrscp does not know the move destination's AE title.
            ("dcmqrscp_movescu_unknown_dest_debug", "Refused: Move Destination unknown", counts(None, 0, 0)),
            // The fake PACS refuses a move naming two studies the same way.
            ("fake_movescu_no_multi_study_debug", "Refused: Move Destination unknown", counts(Some(0), 0, 0)),
        ];
        for (name, status, expected) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some(status), "{name}: {parsed:?}");
            assert_eq!(parsed.counts, expected, "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert!(!parsed.succeeded(), "{name}");
        }
        let short = parse(&recorded("fake_movescu_short_debug"));
        assert_eq!(describe(&short.counts), "0 failed, 1 remaining, 2 completed");
        let missing = parse(&recorded("dcmqrscp_movescu_missing_debug"));
        assert_eq!(describe(&missing.counts), "1 failed, 2 completed");
    }

    /// A move that matched nothing: dcmqrscp says Success with all counts
    /// 0, the fake PACS (as Orthanc) 0xC000 with all counts 0.
    #[test]
    fn no_match() {
        let success = parse(&recorded("dcmqrscp_movescu_nomatch_debug"));
        assert_eq!(success.final_status.as_deref(), Some("Success"));
        assert_eq!(success.counts.completed, Some(0));
        assert!(success.succeeded());
        let failed = parse(&recorded("fake_movescu_legacy_nomatch_debug"));
        assert_eq!(failed.final_status.as_deref(), Some("Failed: Unable to process"));
        assert_eq!(
            failed.counts,
            Suboperations { remaining: Some(0), completed: Some(0), failed: Some(0), warning: Some(0) }
        );
        assert!(!failed.succeeded());
    }

    /// Whole moves from Orthanc and dcmqrscp: at `-d` (pacs2cd's level)
    /// the counts of the final dump, at `-v` (the status on the final's
    /// line, no counts) only the status; some recorded with movescu's own
    /// storage SCP (`+P`), whose store lines the parser passes over.
    #[test]
    fn whole_moves_succeed() {
        // (recording, completed count at -d)
        let cases = [
            ("movescu_to_receiver_debug", Some(3)),
            ("dcmqrscp_movescu_debug", Some(3)),
            // The legacy loop's request with a modality the study has.
            ("legacy_orthanc_move_present", Some(3)),
            ("legacy_dcmqrscp_move_present", Some(3)),
            ("movescu_to_receiver", None),
            ("dcmqrscp_movescu", None),
            ("movescu_ok", None),
            ("movescu_two_studies", None),
            ("movescu_accession", None),
        ];
        for (name, completed) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some("Success"), "{name}: {parsed:?}");
            assert_eq!(parsed.counts.completed, completed, "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert!(parsed.succeeded(), "{name}");
        }
    }

    /// Finals that are no success however the files went.
    #[test]
    fn failed_moves_fail() {
        let counts = |remaining, completed| Suboperations {
            remaining,
            completed: Some(completed),
            failed: Some(0),
            warning: Some(0),
        };
        // (recording, final status, counts)
        let cases = [
            // Orthanc with a C-CANCEL after the first pending response: it
            // had sent all 3 already, and still ends Cancel (Remaining 0).
            (
                "orthanc_movescu_cancel_debug",
                "Cancel: Sub-operations terminated due to Cancel Indication",
                counts(Some(0), 3),
            ),
            // Orthanc, nothing listening on the move port: 0xC000, all 0
            // (dcmqrscp says Refused with Failed 3; see above).
            ("orthanc_movescu_dest_down_debug", "Failed: Unable to process", counts(None, 0)),
            // Orthanc, an MR to a receiver that takes CT only.
            ("movescu_to_receiver_subop_fail_debug", "Failed: Unable to process", counts(None, 0)),
        ];
        for (name, status, expected) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some(status), "{name}: {parsed:?}");
            assert_eq!(parsed.counts, expected, "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert!(!parsed.succeeded(), "{name}");
        }
        // At -v: Orthanc's no match; dcmqrscp's Warning for a file missing
        // from its storage area, whose line carries no counts at all: a
        // Warning final is a success only when its counts show none failed.
        let nomatch = parse(&recorded("movescu_nomatch"));
        assert_eq!(nomatch.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!nomatch.succeeded());
        let missing = parse(&recorded("dcmqrscp_movescu_missing"));
        assert_eq!(missing.final_status.as_deref(), Some("Warning: SubOperationsCompleteOneOrMoreFailures"));
        assert_eq!(missing.counts, Suboperations::default());
        assert!(!missing.succeeded(), "{missing:?}");
        // movescu's own storage SCP (+P, which pacs2cd never asks for) on a
        // port held by another program: it fails before connecting.
        let busy = parse(&recorded("movescu_port_in_use"));
        assert_eq!(busy.final_status, None);
        assert!(busy.problem.is_some() && !busy.succeeded(), "{busy:?}");
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
