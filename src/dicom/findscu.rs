//! findscu: one C-FIND (study root) at the STUDY, SERIES or IMAGE level.
//! The responses are written as DICOM files (`-X`, rsp0001.dcm...) into a
//! folder of the job's and read by the Part 10 reader, which decodes names
//! and ids by the response's SpecificCharacterSet (and reads bytes that are
//! not valid UTF-8 as Latin-1 rather than dropping the answer). The log
//! decides completeness: only `Received Final Find Response (Success)`
//! means the answer is whole; an aborted association prints no response
//! at all and must not read as "no match".

use std::ffi::OsString;
use std::path::Path;

use super::part10::{self, DataSet};
use super::{AssociationProblem, Endpoint, Problems, Timeouts, log_line, scu_args, words};

/// The query levels of the study root information model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Study,
    Series,
    Image,
}

impl Level {
    fn keyword(self) -> &'static str {
        match self {
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }
}

/// One C-FIND: its level and its keys (`("AccessionNumber", "A1")`
/// matches, `("PatientName", "")` asks for a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub level: Level,
    pub keys: Vec<(&'static str, String)>,
}

impl Query {
    /// The studies of an accession number.
    pub fn studies(accession: &str) -> Query {
        Query {
            level: Level::Study,
            keys: vec![
                ("AccessionNumber", accession.to_string()),
                ("StudyInstanceUID", String::new()),
                ("PatientName", String::new()),
                ("PatientID", String::new()),
                ("ModalitiesInStudy", String::new()),
                ("NumberOfStudyRelatedInstances", String::new()),
                ("SpecificCharacterSet", String::new()),
            ],
        }
    }

    /// The series of a study.
    pub fn series(study: &str) -> Query {
        Query {
            level: Level::Series,
            keys: vec![
                ("StudyInstanceUID", study.to_string()),
                ("SeriesInstanceUID", String::new()),
                ("Modality", String::new()),
                ("SeriesNumber", String::new()),
                ("NumberOfSeriesRelatedInstances", String::new()),
            ],
        }
    }

    /// The instances of one series (the standard wants a single series at
    /// the IMAGE level; strict PACSs refuse a study-wide query).
    pub fn instances(study: &str, series: &str) -> Query {
        Query {
            level: Level::Image,
            keys: vec![
                ("StudyInstanceUID", study.to_string()),
                ("SeriesInstanceUID", series.to_string()),
                ("SOPInstanceUID", String::new()),
                ("SOPClassUID", String::new()),
            ],
        }
    }
}

pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, query: &Query, out: &Path) -> Vec<OsString> {
    // -X: each response as a DICOM file; -sr: the log holds no datasets
    // (names in raw bytes), only the responses' statuses.
    let mut options = words(["-S", "-v", "-sr", "-X", "-od"]);
    options.push(out.into());
    options.push("-k".into());
    options.push(format!("QueryRetrieveLevel={}", query.level.keyword()).into());
    for (key, value) in &query.keys {
        options.push("-k".into());
        options.push(if value.is_empty() { key.to_string() } else { format!("{key}={value}") }.into());
    }
    scu_args(calling, peer, timeouts, options, Vec::new())
}

/// How a C-FIND ended, from findscu's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The final response said Success: the answer is whole.
    Complete,
    /// The PACS answered with a failure status (e.g. it does not support
    /// this level or these keys).
    Refused(String),
    /// The association failed.
    Failed(AssociationProblem),
}

pub fn ending(log: &[String]) -> Ending {
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text.starts_with("Received Final Find Response (Success") {
            return Ending::Complete;
        }
        if let Some(status) = text.strip_prefix("Received Final Find Response (") {
            return Ending::Refused(status.trim_end_matches(')').to_string());
        }
        problems.read(level, text);
    }
    Ending::Failed(
        problems.into_problem().unwrap_or(AssociationProblem::Aborted("no final C-FIND response".into())),
    )
}

/// The response files findscu wrote into `out`, in response order. A file
/// this reader cannot read is an error: an unreadable answer is a PACS
/// problem, never "no match".
pub fn responses(out: &Path) -> std::io::Result<Vec<DataSet>> {
    let mut names: Vec<_> = std::fs::read_dir(out)?
        .filter_map(|entry| entry.ok().map(|e| e.file_name()))
        .filter(|name| name.to_string_lossy().starts_with("rsp"))
        .collect();
    names.sort();
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let path = out.join(&name);
        match part10::read(&path, false)? {
            Some(data) => responses.push(data),
            None => {
                return Err(std::io::Error::other(format!(
                    "response {} is not a data set this tool can read",
                    name.to_string_lossy()
                )));
            }
        }
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::lines;

    #[test]
    fn the_final_success_decides() {
        assert_eq!(ending(&lines("findscu_one.out")), Ending::Complete);
        assert_eq!(ending(&lines("findscu_nomatch.out")), Ending::Complete);
        assert_eq!(
            ending(&lines("findscu_down.out")),
            Ending::Failed(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(
            ending(&lines("findscu_unknown_ae.out")),
            Ending::Failed(AssociationProblem::Aborted("the PACS aborted the association".into()))
        );
        let refused: Vec<String> =
            vec!["I: Received Final Find Response (Failed: IdentifierDoesNotMatchSOPClass)".into()];
        assert_eq!(ending(&refused), Ending::Refused("Failed: IdentifierDoesNotMatchSOPClass".into()));
    }

    #[test]
    fn keys_become_arguments() {
        let peer = Endpoint::parse("PACS@127.0.0.1:104").expect("peer");
        let timeouts = Timeouts::from_secs([1, 2, 3, 4]);
        let args = args("ME", &peer, &timeouts, &Query::instances("1.2", "1.2.3"), Path::new("/w/q1"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("-S -v -sr -X -od /w/q1 -k QueryRetrieveLevel=IMAGE"), "{joined}");
        assert!(
            joined.contains(
                "-k StudyInstanceUID=1.2 -k SeriesInstanceUID=1.2.3 -k SOPInstanceUID -k SOPClassUID"
            )
        );
    }
}
