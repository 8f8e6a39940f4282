//! storescu (the legacy scripts' sender): `-nh` so one refused file does
//! not halt the rest, `-v` because without it a refused file prints
//! nothing. A file counts as sent only when its `Sending file:` line is
//! followed by a `Received Store Response (Success…)` or `(Warning…)`.
//! It cannot decompress JPEG for an uncompressed-only publisher.

use std::ffi::OsString;

use super::{Endpoint, FileOutcome, Problems, StoreLog, Timeouts, log_line, scu_args, words};

pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, files: &[String]) -> Vec<OsString> {
    scu_args(calling, peer, timeouts, words(["-nh", "-v"]), files.iter().map(OsString::from).collect())
}

/// storescu interleaves its transfer dots with log lines ("XMIT: .",
/// "XMIT: W: ...").
fn clean(line: &str) -> &str {
    let mut line = line;
    while let Some(rest) = line.strip_prefix("XMIT:") {
        line = rest.trim_start_matches([' ', '.']);
    }
    line
}

/// True for the log lines that close one file's store attempt.
pub fn is_file_done(line: &str) -> bool {
    let line = clean(line);
    line.starts_with("I: Received Store Response")
        || line.starts_with("E: No presentation context for")
        || line.starts_with("E: Store Failed")
        || line.starts_with("E: Bad DICOM file")
}

pub fn parse(log: &[String]) -> StoreLog {
    let mut parsed = StoreLog::default();
    // Index into parsed.files of the file being sent.
    let mut current: Option<usize> = None;
    let mut problems = Problems::new("publisher");
    for (level, text) in log.iter().filter_map(|line| log_line(clean(line))) {
        if let Some(file) = text.strip_prefix("Sending file: ") {
            parsed.files.push((file.to_string(), FileOutcome::Failed("no answer from the publisher".into())));
            current = Some(parsed.files.len() - 1);
            continue;
        }
        let verdict = if let Some(status) = text.strip_prefix("Received Store Response (") {
            let status = status.trim_end_matches(')');
            Some(if status.starts_with("Success") {
                FileOutcome::Stored
            } else if status.starts_with("Warning") {
                FileOutcome::StoredWithWarning(status.to_string())
            } else {
                FileOutcome::Failed(format!("refused by the publisher ({status})"))
            })
        } else if let Some(class) = text.strip_prefix("No presentation context for: (") {
            let class = class.split(')').next().unwrap_or(class);
            Some(FileOutcome::Failed(format!("the publisher accepts no {class} (no presentation context)")))
        } else if text.starts_with("Bad DICOM file") || text.starts_with("No SOP Class or Instance UID") {
            Some(FileOutcome::Failed("not a readable DICOM file".into()))
        } else {
            None
        };
        if let Some(verdict) = verdict {
            if let Some(index) = current.take() {
                parsed.files[index].1 = verdict;
            }
            continue;
        }
        if text.contains("unable to convert dataset") {
            if let Some(index) = current {
                parsed.files[index].1 = FileOutcome::Failed(
                    "storescu cannot convert it to a transfer syntax the publisher accepts".into(),
                );
            }
        } else if problems.read(level, text)
            && text.contains("DIMSE No data available")
            && let Some(index) = current.take()
        {
            parsed.files[index].1 = FileOutcome::Failed("no answer from the publisher (timeout)".into());
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

    fn stored(log: &StoreLog) -> usize {
        log.files.iter().filter(|(_, o)| o.stored()).count()
    }

    #[test]
    fn all_sent() {
        let log = recorded("storescu_ok");
        let parsed = parse(&log);
        assert_eq!((parsed.files.len(), stored(&parsed)), (5, 5));
        assert_eq!(parsed.problem, None);
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
    }

    #[test]
    fn no_presentation_context() {
        let log = recorded("storescu_partial");
        let parsed = parse(&log);
        assert_eq!((parsed.files.len(), stored(&parsed)), (5, 2));
        assert_eq!(
            parsed.files[4].1,
            FileOutcome::Failed("the publisher accepts no SC (no presentation context)".into())
        );
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
    }

    #[test]
    fn refused() {
        let parsed = parse(&recorded("storescu_refused"));
        assert_eq!((parsed.files.len(), stored(&parsed)), (2, 0));
        assert!(matches!(&parsed.files[0].1, FileOutcome::Failed(why) if why.contains("OutOfResources")));
    }

    #[test]
    fn unreachable_rejected_stalled() {
        assert_eq!(
            parse(&recorded("storescu_unreachable")).problem,
            Some(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(
            parse(&recorded("storescu_rejected")).problem,
            Some(AssociationProblem::Rejected("No Reason".into()))
        );
        let stalled = parse(&recorded("storescu_stalled"));
        assert_eq!(stalled.problem, Some(AssociationProblem::Stalled));
        assert_eq!((stalled.files.len(), stored(&stalled)), (5, 0));
    }

    #[test]
    fn jpeg_it_cannot_convert() {
        let parsed = parse(&recorded("storescu_jpeg_to_uncompressed"));
        assert_eq!((parsed.files.len(), stored(&parsed)), (1, 0));
        assert!(matches!(&parsed.files[0].1, FileOutcome::Failed(why) if why.contains("cannot convert")));
    }

    #[test]
    fn a_dicomdir_in_the_list() {
        let parsed = parse(&recorded("storescu_dicomdir"));
        assert_eq!(parsed.problem, None);
        assert!(parsed.files.iter().filter(|(_, o)| o.stored()).count() >= 1);
    }

    #[test]
    fn bad_dicom_input() {
        let parsed = parse(&recorded("storescu_nondicom"));
        assert_eq!(stored(&parsed), 3);
        assert!(parsed.files.iter().any(|(f, o)| f.ends_with("README.TXT") && !o.stored()));
    }
}
