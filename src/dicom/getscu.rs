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

    /// Whole C-GETs from Orthanc and dcmqrscp: Success with counts 0 /
    /// N / 0 / 0, and one stored file per C-STORE getscu answered.
    #[test]
    fn whole_gets_succeed() {
        // (recording, images)
        let cases = [
            ("dcmqrscp_getscu_xs", 3),
            ("dcmqrscp_getscu_default", 3),
            ("getscu_two_studies", 5),
            // Orthanc decompresses the stored JPEG study, with or without +xs.
            ("getscu_jpeg_default", 1),
            ("getscu_jpeg_accept", 1),
            // The legacy loop's requests: neither PACS filters a C-GET by
            // ModalitiesInStudy, so the study comes for either modality.
            ("legacy_orthanc_get_absent", 3),
            ("legacy_orthanc_get_present", 3),
            ("legacy_dcmqrscp_get_absent", 3),
            ("legacy_dcmqrscp_get_present", 3),
        ];
        for (name, images) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some("Success"), "{name}: {parsed:?}");
            assert_eq!(
                (parsed.counts.remaining, parsed.counts.completed, parsed.counts.failed),
                (Some(0), Some(images), Some(0)),
                "{name}"
            );
            assert_eq!(parsed.stored, Some(images), "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert!(parsed.succeeded(), "{name}");
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            assert!(written == 0 || written == images, "{name}: {written} files");
        }
    }

    /// Finals with sub-operations failed or left, as getscu -v printed them
    /// with pacs2cd's arguments; `stored` must equal the files it wrote.
    #[test]
    fn failed_or_remaining_suboperations_fail_the_run() {
        // (recording, final status, (remaining, completed, failed))
        let cases = [
            // The fake PACS announces 3, sends 2 and ends Success, Remaining 1.
            ("fake_getscu_short", "Success", (1, 2, 0)),
            // dcmqrscp: the Parametric Map is not in getscu's proposal.
            (
                "dcmqrscp_getscu_unproposed_class",
                "Warning: SubOperationsCompleteOneOrMoreFailures",
                (0, 1, 1),
            ),
            // Orthanc: the same study; it stops at the failed one, the CT unsent.
            ("orthanc_getscu_unproposed_class", "Failed: UnableToProcess", (0, 0, 1)),
        ];
        for (name, status, (remaining, completed, failed)) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some(status), "{name}: {parsed:?}");
            assert_eq!(
                (parsed.counts.remaining, parsed.counts.completed, parsed.counts.failed),
                (Some(remaining), Some(completed), Some(failed)),
                "{name}"
            );
            assert_eq!(parsed.problem, None, "{name}");
            assert!(!parsed.succeeded(), "{name}");
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            assert_eq!(parsed.stored, Some(written), "{name}");
        }
        // dcmqrscp with a file deleted from its storage area: the release
        // fails afterwards ("DUL P-Data PDU arrived"), which is no problem of
        // the retrieve; the final Warning and its failed count decide.
        let missing = parse(&recorded("dcmqrscp_getscu_missing"));
        assert_eq!(missing.final_status.as_deref(), Some("Warning: SubOperationsCompleteOneOrMoreFailures"));
        assert_eq!(
            (missing.counts.completed, missing.counts.failed, missing.stored),
            (Some(2), Some(1), Some(2))
        );
        assert_eq!(missing.problem, None);
        assert!(!missing.succeeded());
    }
}
