//! movescu: C-MOVE with its own storage SCP on the fixed move port (`+P`),
//! accepting every transfer syntax (`+xa`). The exit code is 0 even when
//! the PACS aborted; the final move response is the verdict, and the
//! caller counts files on disk (Orthanc reports all counts 0 on failure).

use std::ffi::OsString;
use std::path::Path;

use super::{Endpoint, Problems, RetrieveKeys, RetrieveLog, Timeouts, log_line, scu_args, words};

pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    move_port: u16,
    into: &Path,
    keys: &RetrieveKeys,
) -> Vec<OsString> {
    let port = move_port.to_string();
    // The move destination is ourselves, by our calling AE title.
    let mut options = words(["-S", "-v", "-aem", calling, "+P", &port, "+xa", "-od"]);
    options.push(into.into());
    options.extend(keys.args().into_iter().map(OsString::from));
    scu_args(calling, peer, timeouts, options, Vec::new())
}

/// True for the line that announces one received instance.
pub fn is_file_received(line: &str) -> bool {
    line.starts_with("I: Received Store Request")
}

pub fn parse(log: &[String]) -> RetrieveLog {
    let mut parsed = RetrieveLog::default();
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if let Some(status) = text.strip_prefix("Received Final Move Response (") {
            parsed.final_status = Some(status.trim_end_matches(')').to_string());
        } else if text.starts_with("cannot create network") && text.contains("Address already in use") {
            parsed.port_in_use = true;
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
        let ok = recorded("movescu_ok");
        assert!(parse(&ok).succeeded());
        assert_eq!(ok.iter().filter(|l| is_file_received(l)).count(), 3);
        let two = recorded("movescu_two_studies");
        assert!(parse(&two).succeeded());
        assert_eq!(two.iter().filter(|l| is_file_received(l)).count(), 5);

        let failed = parse(&recorded("movescu_unknown_dest"));
        assert_eq!(failed.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!failed.succeeded());

        let busy = parse(&recorded("movescu_port_in_use"));
        assert!(busy.port_in_use);
        assert_eq!(busy.problem, None);

        let down = parse(&recorded("movescu_down"));
        assert_eq!(down.problem, Some(AssociationProblem::Unreachable("connection refused".into())));
        assert_eq!(down.final_status, None);
    }

    #[test]
    fn keys() {
        let uids = ["1.2".to_string(), "1.3".to_string()];
        assert_eq!(
            RetrieveKeys::Studies(&uids).args(),
            ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2\\1.3"]
        );
        assert_eq!(
            RetrieveKeys::AccessionModality("A1", "CT").args(),
            ["-k", "QueryRetrieveLevel=STUDY", "-k", "AccessionNumber=A1", "-k", "ModalitiesInStudy=CT"]
        );
    }
}
