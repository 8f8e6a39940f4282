//! findscu: the STUDY-level C-FIND by AccessionNumber. Responses are read
//! from the XML file of `-Xs`, which DCMTK writes in UTF-8 whatever
//! SpecificCharacterSet the PACS answered in (its log holds raw Latin-1
//! bytes). The log decides completeness: only `Received Final Find
//! Response (Success)` means the answer is whole; an aborted association
//! prints no response at all and must not read as "no match".

use std::ffi::OsString;
use std::path::Path;

use super::{AssociationProblem, Endpoint, Problems, Timeouts, log_line, scu_args, words};

/// One study as the PACS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundStudy {
    pub accession: String,
    pub study_instance_uid: String,
    pub patient_name: String,
    pub patient_id: String,
    pub modalities: Vec<String>,
    /// NumberOfStudyRelatedInstances, when the PACS gives it.
    pub instances: Option<usize>,
}

pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    accession: &str,
    xml: &Path,
) -> Vec<OsString> {
    let mut options = words(["-S", "-v", "-Xs"]);
    options.push(xml.into());
    for key in [
        "QueryRetrieveLevel=STUDY".to_string(),
        format!("AccessionNumber={accession}"),
        "StudyInstanceUID".into(),
        "PatientName".into(),
        "PatientID".into(),
        "ModalitiesInStudy".into(),
        "NumberOfStudyRelatedInstances".into(),
        "SpecificCharacterSet".into(),
    ] {
        options.push("-k".into());
        options.push(key.into());
    }
    scu_args(calling, peer, timeouts, options, Vec::new())
}

/// `Ok` when the log shows the final success response.
pub fn completed(log: &[String]) -> Result<(), AssociationProblem> {
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text.starts_with("Received Final Find Response (Success") {
            return Ok(());
        }
        if let Some(status) = text.strip_prefix("Received Final Find Response (") {
            let status = status.trim_end_matches(')');
            return Err(AssociationProblem::Aborted(format!("the PACS answered the query with {status}")));
        }
        problems.read(level, text);
    }
    Err(problems.into_problem().unwrap_or(AssociationProblem::Aborted("no final C-FIND response".into())))
}

/// Reads the studies from the `-Xs` XML file.
pub fn parse_xml(xml: &str) -> Vec<FoundStudy> {
    let mut studies = Vec::new();
    for data_set in xml.split("<data-set").skip(1) {
        let mut study = FoundStudy::default();
        let mut rest = data_set;
        while let Some(start) = rest.find("<element tag=\"") {
            rest = &rest[start + 14..];
            let Some(tag) = rest.get(..9) else { break };
            let Some(open_end) = rest.find('>') else { break };
            // A self-closing element has no value.
            if rest[..open_end].ends_with('/') {
                rest = &rest[open_end + 1..];
                continue;
            }
            let Some(close) = rest.find("</element>") else { break };
            let value = unescape(rest[open_end + 1..close].trim());
            rest = &rest[close..];
            match tag.to_ascii_lowercase().as_str() {
                "0008,0050" => study.accession = value,
                "0020,000d" => study.study_instance_uid = value,
                "0010,0010" => study.patient_name = value,
                "0010,0020" => study.patient_id = value,
                "0008,0061" => {
                    study.modalities = value
                        .split('\\')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "0020,1208" => study.instances = value.trim().parse().ok(),
                _ => {}
            }
        }
        if !study.study_instance_uid.is_empty() {
            studies.push(study);
        }
    }
    studies
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::{lines, text as recorded};

    #[test]
    fn latin1_names_arrive_as_utf8_through_xml() {
        let studies = parse_xml(&recorded("findscu_latin1.xml"));
        assert_eq!(studies.len(), 1);
        let study = &studies[0];
        assert_eq!(study.patient_name, "MÜLLER^JOSÉ");
        assert_eq!(study.patient_id, "PID002");
        assert_eq!(study.accession, "ACC003");
        assert_eq!(study.modalities, vec!["CR".to_string()]);
        assert_eq!(study.instances, Some(1));
        assert_eq!(study.study_instance_uid, "2.25.200000000000000000000000000000003");
    }

    #[test]
    fn escaped_and_multi_valued() {
        let xml = "<responses><data-set xfer=\"x\">\
            <element tag=\"0010,0010\" vr=\"PN\" vm=\"1\" len=\"5\" name=\"PatientName\">A&lt;B&amp;</element>\
            <element tag=\"0008,0061\" vr=\"CS\" vm=\"2\" len=\"5\" name=\"ModalitiesInStudy\">CT\\SR</element>\
            <element tag=\"0020,1208\" vr=\"IS\" vm=\"0\" len=\"0\" name=\"NumberOfStudyRelatedInstances\"/>\
            <element tag=\"0020,000d\" vr=\"UI\" vm=\"1\" len=\"3\" name=\"StudyInstanceUID\">1.2</element>\
            </data-set></responses>";
        let studies = parse_xml(xml);
        assert_eq!(studies[0].patient_name, "A<B&");
        assert_eq!(studies[0].modalities, vec!["CT".to_string(), "SR".to_string()]);
        assert_eq!(studies[0].instances, None);
    }

    #[test]
    fn completion_needs_the_final_success() {
        assert_eq!(completed(&lines("findscu_one.out")), Ok(()));
        assert_eq!(completed(&lines("findscu_nomatch.out")), Ok(()));
        assert_eq!(
            completed(&lines("findscu_down.out")),
            Err(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(
            completed(&lines("findscu_unknown_ae.out")),
            Err(AssociationProblem::Aborted("the PACS aborted the association".into()))
        );
    }
}
