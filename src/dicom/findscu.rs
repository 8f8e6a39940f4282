//! findscu: one C-FIND (study root) at the STUDY, SERIES or IMAGE level.
//! The log decides completeness: only `Received Final Find Response
//! (Success)` means the answer is whole; an aborted association prints no
//! response at all and must not read as "no match".
//!
//! The answers are read from files, never from the log:
//! - STUDY level: each response as a DICOM file (`-X`) through the Part 10
//!   reader, which decodes names and ids by the response's
//!   SpecificCharacterSet — the same decoder reads the images' PatientID,
//!   so the two always compare alike;
//! - SERIES and IMAGE levels (UIDs, codes and counts only): all responses
//!   in one XML file (`-Xs`), read with quick-xml. `-X` would write one
//!   file per instance: 0.27 s of system time for a 300-image series,
//!   against 0.01 s for the one XML file. findscu writes the PACS's raw
//!   bytes there when the answer names no character set: bytes that are
//!   not valid UTF-8 are read as Latin-1, never dropped, and character
//!   references are decoded before control characters are removed.

use std::ffi::OsString;
use std::path::Path;

use quick_xml::events::Event;

use super::charset;
use super::part10::{self, tag};
use super::{AssociationProblem, Endpoint, Problems, Timeouts, log_line, scu_args, words};
use crate::patients::Demographics;

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
    /// The studies of an accession number, with whom they belong to.
    /// `issuer`: also ask IssuerOfPatientID, which some PACSs answer only
    /// by opening a stored file per study (Orthanc 1.10 keeps it out of
    /// its index), so a PACS that then fails is asked again without it.
    pub fn studies(accession: &str, issuer: bool) -> Query {
        let mut keys = vec![
            ("AccessionNumber", accession.to_string()),
            ("StudyInstanceUID", String::new()),
            ("PatientName", String::new()),
            ("PatientID", String::new()),
            ("PatientBirthDate", String::new()),
            ("StudyDate", String::new()),
            ("StudyDescription", String::new()),
            ("ModalitiesInStudy", String::new()),
            ("NumberOfStudyRelatedInstances", String::new()),
            ("SpecificCharacterSet", String::new()),
        ];
        if issuer {
            keys.insert(4, ("IssuerOfPatientID", String::new()));
        }
        Query { level: Level::Study, keys }
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
    /// the IMAGE level; strict PACSs refuse a study-wide query). Only the
    /// SOP Instance UID: SOPClassUID is not needed, some PACSs drop it,
    /// and others must open every file to answer it.
    pub fn instances(study: &str, series: &str) -> Query {
        Query {
            level: Level::Image,
            keys: vec![
                ("StudyInstanceUID", study.to_string()),
                ("SeriesInstanceUID", series.to_string()),
                ("SOPInstanceUID", String::new()),
                // What C-GET can take depends on it (see getscu).
                ("SOPClassUID", String::new()),
            ],
        }
    }

    /// How the answers are best taken: the STUDY level's names need the
    /// Part 10 reader's decoding; the other levels' UIDs and counts go
    /// faster as one XML file.
    pub fn extract(&self) -> Extract {
        if self.level == Level::Study { Extract::Files } else { Extract::Xml }
    }
}

/// How findscu hands over the answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extract {
    /// `-X`: each answer as a DICOM file, its bytes as the PACS sent them.
    Files,
    /// `-Xs`: all answers in one XML file, converted to UTF-8 by DCMTK,
    /// which drops an answer it cannot convert (ISO 2022 IR 87 with
    /// DCMTK 3.6.7's iconv): the caller checks the count.
    Xml,
}

/// The XML file's name inside the output folder (`-Xs` takes it relative
/// to `-od`).
const XML: &str = "responses.xml";

/// The matching keys a query file can hold: (keyword, tag, VR).
const MATCHING: [(&str, u32, &[u8; 2]); 3] = [
    ("AccessionNumber", tag::ACCESSION_NUMBER, b"SH"),
    ("StudyInstanceUID", tag::STUDY_INSTANCE_UID, b"UI"),
    ("SeriesInstanceUID", tag::SERIES_INSTANCE_UID, b"UI"),
];

/// Writes one query file per query into `out` (their matching keys; the
/// level and the keys to return go on the command line, alike for all).
/// Several queries then go in one findscu run, one association: each run
/// costs a process and an association, about 20 ms.
pub fn write_queries(queries: &[Query], out: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::with_capacity(queries.len());
    for (index, query) in queries.iter().enumerate() {
        let mut elements = Vec::new();
        for (key, value) in query.keys.iter().filter(|(_, value)| !value.is_empty()) {
            let (_, tag, vr) = MATCHING
                .iter()
                .find(|(keyword, _, _)| keyword == key)
                .ok_or_else(|| std::io::Error::other(format!("{key} cannot go in a query file")))?;
            elements.push((*tag, *vr, value.as_str()));
        }
        let path = out.join(format!("query-{:04}.dcm", index + 1));
        part10::write_query(&path, &elements)?;
        files.push(path);
    }
    Ok(files)
}

/// The arguments for `queries` (of one level, asking for the same keys),
/// whose query files `write_queries` wrote.
pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    queries: &[Query],
    files: &[std::path::PathBuf],
    out: &Path,
    extract: Extract,
) -> Vec<OsString> {
    // -sr: the log holds no datasets (names in raw bytes), only statuses.
    let mut options = words(["-S", "-v", "-sr"]);
    let Some(first) = queries.first() else { return Vec::new() };
    if extract == Extract::Xml {
        options.extend(words(["-Xs", XML]));
    } else {
        options.push("-X".into());
    }
    options.push("-od".into());
    options.push(out.into());
    options.push("-k".into());
    options.push(format!("QueryRetrieveLevel={}", first.level.keyword()).into());
    for (key, _) in first.keys.iter().filter(|(_, value)| value.is_empty()) {
        options.push("-k".into());
        options.push((*key).into());
    }
    scu_args(calling, peer, timeouts, options, files.iter().map(OsString::from).collect())
}

/// How a C-FIND ended, from findscu's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The final response said Success: the answer is whole; `responses`
    /// pending responses came (what the files written must number).
    Complete { responses: usize },
    /// The PACS answered with a failure status (e.g. it does not support
    /// this level or these keys).
    Refused(String),
    /// The association failed.
    Failed(AssociationProblem),
}

/// How a run of `queries` queries ended: complete when each ended with a
/// final Success; refused when any was refused.
pub fn ending(log: &[String], queries: usize) -> Ending {
    let mut problems = Problems::new("PACS");
    let mut complete = 0;
    // With -X or -sr findscu says "Received Find Response 1 (Pending)",
    // without them "Find Response: 1 (Pending)": one line per response.
    let (mut received, mut shown) = (0, 0);
    let mut refused = None;
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        // Every line goes by the problem reader: an answer tells it the
        // association was accepted (an abort after one ends work midway).
        let _ = problems.read(level, text);
        if text.starts_with("Received Find Response ") {
            received += 1;
        } else if text.starts_with("Find Response: ") {
            shown += 1;
        } else if text.starts_with("Received Final Find Response (Success") {
            complete += 1;
        } else if let Some(status) = text.strip_prefix("Received Final Find Response (") {
            refused.get_or_insert_with(|| status.trim_end_matches(')').to_string());
        }
    }
    match (refused, problems.into_problem()) {
        (_, Some(problem)) => Ending::Failed(problem),
        (Some(status), None) => Ending::Refused(status),
        (None, None) if complete >= queries => Ending::Complete { responses: received.max(shown) },
        (None, None) => Ending::Failed(AssociationProblem::Aborted("no final C-FIND response".into())),
    }
}

/// One response: its attributes as text (decoded, trimmed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    values: Vec<(u32, charset::Text)>,
    /// Who the response says the patient is (STUDY level).
    patient: Demographics,
}

impl Response {
    pub fn get(&self, tag: u32) -> &str {
        self.values.iter().find(|(t, _)| *t == tag).map_or("", |(_, v)| v.text.as_str())
    }

    pub fn patient(&self) -> &Demographics {
        &self.patient
    }

    /// An IS/US count, when present and readable.
    pub fn number(&self, tag: u32) -> Option<usize> {
        self.get(tag).trim().parse().ok()
    }

    /// A multi-valued CS (`CT\SR`).
    pub fn codes(&self, tag: u32) -> Vec<String> {
        self.get(tag).split('\\').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect()
    }
}

/// The responses findscu wrote into `out`, in order. A file this reader
/// cannot read is an error: an unreadable answer is a PACS problem, never
/// "no match".
pub fn responses(out: &Path, extract: Extract) -> std::io::Result<Vec<Response>> {
    if extract == Extract::Xml {
        return match std::fs::read(out.join(XML)) {
            Ok(bytes) => parse_xml(&bytes),
            // No response at all: findscu writes no file.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        };
    }
    let mut names: Vec<_> = std::fs::read_dir(out)?
        .filter_map(|entry| entry.ok().map(|e| e.file_name()))
        .filter(|name| name.to_string_lossy().starts_with("rsp"))
        .collect();
    names.sort();
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        match part10::read(&out.join(&name), false)? {
            Some(data) => responses.push(Response { values: data.decoded(), patient: data.demographics() }),
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

/// Reads the `<responses>` of findscu's `-Xs` file: one `<data-set>` per
/// response, one `<element tag="gggg,eeee">value</element>` per attribute.
fn parse_xml(bytes: &[u8]) -> std::io::Result<Vec<Response>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect::<String>()),
    };
    let bad = |why: String| std::io::Error::other(format!("the C-FIND answer is not readable XML: {why}"));
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut responses = Vec::new();
    let mut current: Option<Response> = None;
    // The element being read: its tag and the text so far.
    let mut element: Option<(u32, String)> = None;
    loop {
        match reader.read_event().map_err(|err| bad(err.to_string()))? {
            Event::Start(start) => match start.name().as_ref() {
                "data-set" => current = Some(Response::default()),
                "element" => {
                    let tag = start
                        .try_get_attribute("tag")
                        .map_err(|err| bad(err.to_string()))?
                        .and_then(|attribute| parse_tag(&attribute.value));
                    element = tag.map(|tag| (tag, String::new()));
                }
                _ => {}
            },
            Event::Text(chunk) => {
                if let Some((_, value)) = &mut element {
                    value.push_str(&chunk.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                if let Some((_, value)) = &mut element {
                    let resolved = match reference.resolve_char_ref().map_err(|err| bad(err.to_string()))? {
                        Some(c) => c.to_string(),
                        None => match &*reference {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "apos" => "'".into(),
                            "quot" => "\"".into(),
                            other => return Err(bad(format!("unknown entity &{other};"))),
                        },
                    };
                    value.push_str(&resolved);
                }
            }
            Event::End(end) => match end.name().as_ref() {
                "element" => {
                    if let (Some((tag, value)), Some(response)) = (element.take(), &mut current) {
                        // Control characters (a CR/LF in a name) go after
                        // the references are decoded.
                        let value: String = value.chars().filter(|c| !c.is_control()).collect();
                        let text = value.trim_matches([' ', '\0']).to_string();
                        response.values.push((tag, charset::Text { text, exact: true }));
                    }
                }
                "data-set" => responses.extend(current.take()),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(responses)
}

/// "0020,000e" -> 0x0020000E.
fn parse_tag(text: &str) -> Option<u32> {
    let (group, element) = text.split_once(',')?;
    Some(
        (u32::from(u16::from_str_radix(group, 16).ok()?) << 16)
            | u32::from(u16::from_str_radix(element, 16).ok()?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::{lines, text};

    #[test]
    fn the_final_success_decides() {
        assert_eq!(ending(&lines("findscu_one.out"), 1), Ending::Complete { responses: 1 });
        assert_eq!(ending(&lines("findscu_nomatch.out"), 1), Ending::Complete { responses: 0 });
        assert_eq!(
            ending(&lines("findscu_down.out"), 1),
            Ending::Failed(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(
            ending(&lines("findscu_unknown_ae.out"), 1),
            Ending::Failed(AssociationProblem::Aborted("the PACS aborted the association".into()))
        );
        // The fake PACS refuses the IMAGE level with 0xA900 (the manifest's
        // query, as pacs2cd asks it); dcmqrscp an IMAGE query without the
        // SeriesInstanceUID key.
        assert_eq!(
            ending(&lines("fake_findscu_refuse_image.out"), 1),
            Ending::Refused("Error: DataSetDoesNotMatchSOPClass".into())
        );
        assert_eq!(
            ending(&lines("findscu_dcmqrscp_image_noseries.out"), 1),
            Ending::Refused("Failed: UnableToProcess".into())
        );
        // Aborted after two answers (findscu wrote both as files): never a
        // whole answer.
        assert!(matches!(ending(&lines("findscu_aborted.out"), 1), Ending::Failed(_)));
        // Two queries in one run: both must end.
        assert!(matches!(ending(&lines("findscu_one.out"), 2), Ending::Failed(_)));
        assert_eq!(ending(&lines("findscu_multi_X.out"), 2), Ending::Complete { responses: 4 });
    }

    /// Whole answers of Orthanc and dcmqrscp at each level (the log's
    /// response count is what the files written must number), and of the
    /// legacy loop's query, which Orthanc matches on ModalitiesInStudy and
    /// dcmqrscp does not.
    #[test]
    fn whole_answers_are_counted() {
        // (recording, queries in the run, responses)
        let cases = [
            ("findscu_orthanc_study", 1, 1),
            ("findscu_orthanc_series", 1, 2),
            ("findscu_orthanc_image", 1, 2),
            ("findscu_orthanc_image_anyseries", 1, 3),
            ("findscu_orthanc_image_noseries", 1, 3),
            ("findscu_dcmqrscp_study", 1, 1),
            ("findscu_dcmqrscp_series", 1, 2),
            ("findscu_dcmqrscp_image", 1, 2),
            ("findscu_dcmqrscp_image_anyseries", 1, 3),
            ("legacy_orthanc_find_absent", 1, 0),
            ("legacy_orthanc_find_present", 1, 1),
            ("legacy_dcmqrscp_find_absent", 1, 1),
            ("legacy_dcmqrscp_find_present", 1, 1),
            // -Xs: the responses are not logged, only counted.
            ("findscu_latin1_xml", 1, 1),
            // Two query files in one association: both finals count.
            ("findscu_multi_X_dcmqrscp", 2, 3),
            ("findscu_multi_Xs", 2, 4),
        ];
        for (name, queries, responses) in cases {
            assert_eq!(
                ending(&lines(&format!("{name}.out")), queries),
                Ending::Complete { responses },
                "{name}"
            );
        }
        // A run of two queries whose log holds one final is not whole.
        assert!(matches!(ending(&lines("findscu_multi_Xs.out"), 3), Ending::Failed(_)));
        // -Xs puts both queries' answers in one list.
        let xml = parse_xml(text("findscu_multi_Xs.xml").as_bytes()).expect("xml");
        assert_eq!(xml.len(), 4);
    }

    #[test]
    fn keys_become_arguments() {
        let peer = Endpoint::parse("PACS@127.0.0.1:104").expect("peer");
        let timeouts = Timeouts::from_secs([1, 2, 3, 4]);
        let dir = tempfile::tempdir().expect("dir");
        let queries = [Query::instances("1.2", "1.2.3"), Query::instances("1.2", "1.2.4")];
        let files = write_queries(&queries, dir.path()).expect("query files");
        let image = args("ME", &peer, &timeouts, &queries, &files, Path::new("/w/q1"), queries[0].extract());
        let joined = image.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
        assert!(
            joined.starts_with(
                "-S -v -sr -Xs responses.xml -od /w/q1 -k QueryRetrieveLevel=IMAGE -k SOPInstanceUID -k SOPClassUID \
                 -aet ME"
            ),
            "{joined}"
        );
        assert!(joined.contains("query-0001.dcm") && joined.ends_with("query-0002.dcm"), "{joined}");
        let written = part10::read(&files[1], true).expect("read").expect("query");
        assert_eq!(written.ascii(tag::SERIES_INSTANCE_UID), "1.2.4");
        let studies = [Query::studies("A1", true)];
        let study = args("ME", &peer, &timeouts, &studies, &[], Path::new("/w/q2"), studies[0].extract());
        assert!(study.contains(&OsString::from("-X")));
    }

    /// A PACS that aborts after some answers has accepted the association
    /// and answered: the association ended midway, which pacs_failure words
    /// as "in the middle of the work; try again", not as "ended before
    /// accepting it: is AE X known to it?".
    #[test]
    fn an_abort_after_answers_ends_the_association_midway() {
        assert_eq!(
            ending(&lines("findscu_aborted.out"), 1),
            Ending::Failed(AssociationProblem::Ended("the PACS aborted the association".into()))
        );
    }

    fn recorded_path(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded").join(name)
    }

    #[test]
    fn xml_answers_read_as_written() {
        // DCMTK converts to UTF-8 when a character set is named.
        let utf8 = parse_xml(text("findscu_latin1.xml").as_bytes()).expect("xml");
        assert_eq!(utf8[0].get(tag::PATIENT_NAME), "MÜLLER^JOSÉ");
        assert_eq!(utf8[0].number(tag::NUMBER_OF_STUDY_RELATED_INSTANCES), Some(1));
        // Without one (the fake PACS's latin1 behaviour) it writes the raw
        // Latin-1 bytes, not UTF-8, and the name's CR/LF as references: read
        // as Latin-1, the CR/LF removed after decoding, `&lt;` resolved.
        let bytes = std::fs::read(recorded_path("fake_findscu_latin1_xs.xml")).expect("recorded xml");
        assert!(std::str::from_utf8(&bytes).is_err(), "the recording holds raw Latin-1");
        let read = parse_xml(&bytes).expect("latin-1 xml");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].get(tag::PATIENT_NAME), "MÜLLER^J<");
        assert_eq!(read[0].codes(tag::MODALITIES_IN_STUDY), ["CT", "SR"]);
        assert_eq!(read[0].number(tag::NUMBER_OF_STUDY_RELATED_INSTANCES), Some(2));
        // dcmqrscp returns empty values (vm 0) and drops the counts.
        let empty = parse_xml(text("dcmqrscp_findscu_ir87_Xs.xml").as_bytes()).expect("xml");
        assert_eq!(empty[0].get(tag::STUDY_DESCRIPTION), "");
        assert_eq!(empty[0].number(tag::NUMBER_OF_STUDY_RELATED_INSTANCES), None);
        // A recorded answer with an entity XML does not define: an error,
        // never a silently shorter name.
        let bogus = text("findscu_latin1.xml").replacen("JOS", "&bogus;", 1);
        assert_ne!(bogus, text("findscu_latin1.xml"));
        assert!(parse_xml(bogus.as_bytes()).is_err());
    }

    /// Answers in ISO 2022 IR 87 (dcmqrscp serving the standard's H31
    /// example among 3 other studies): `-X` keeps them with their
    /// character set; `-Xs` loses that answer (DCMTK's iconv cannot convert
    /// it) while the log still counts it, so the count must be checked.
    #[test]
    fn iso_2022_ir_87_answers() {
        let folder = recorded_path("dcmqrscp_findscu_ir87_X.rsp");
        let read = responses(&folder, Extract::Files).expect("rsp files");
        assert_eq!(ending(&lines("dcmqrscp_findscu_ir87_X.out"), 1), Ending::Complete { responses: 4 });
        assert_eq!(read.len(), 4);
        let h31 = &read[2];
        assert_eq!(h31.get(tag::PATIENT_ID), "H31EXAMPLE");
        assert_eq!(h31.patient().name, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert!(h31.patient().name_exact);
        assert_eq!(read[0].patient().name, "DOE^JOHN");

        assert_eq!(ending(&lines("dcmqrscp_findscu_ir87_Xs.out"), 1), Ending::Complete { responses: 4 });
        let xml = parse_xml(text("dcmqrscp_findscu_ir87_Xs.xml").as_bytes()).expect("xml");
        assert_eq!(xml.len(), 3);
        assert!(!xml.iter().any(|r| r.get(tag::PATIENT_ID) == "H31EXAMPLE"));
    }
}
