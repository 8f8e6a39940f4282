//! DICOM vocabulary shared by the tool wrappers: AE titles, network peers,
//! timeouts and DIMSE status classes. One module per DCMTK tool holds its
//! argument vector and a pure parser of its output.

pub mod charset;
pub mod dcmmkdir;
pub mod dcmsend;
pub mod echoscu;
pub mod findscu;
pub mod getscu;
pub mod movescu;
pub mod negotiation;
pub mod part10;
pub mod refusal;
pub mod runner;
pub mod storescp;
pub mod storescu;
pub mod tools;

/// Real DCMTK outputs recorded on this kind of machine, for the parsers' tests.
#[cfg(test)]
pub mod recorded {
    /// A recorded file's text ("" when there is none, e.g. no report).
    pub fn text(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded").join(name);
        std::fs::read_to_string(path).unwrap_or_default()
    }

    pub fn lines(name: &str) -> Vec<String> {
        let lines: Vec<String> = text(name).lines().map(str::to_string).collect();
        assert!(!lines.is_empty(), "no recorded output {name}");
        lines
    }

    /// The lines a tool printed in case `name` (`name.out`).
    pub fn out(name: &str) -> Vec<String> {
        lines(&format!("{name}.out"))
    }

    /// Every recording feeds a test: a case (`NAME.out`, `NAME.files`,
    /// `NAME.rsp/`, ...) that no source file under src/, tests/ or
    /// benches/ names is evidence nothing reads, and goes (or gets a test).
    #[test]
    fn every_recording_is_read_by_a_test() {
        use std::path::{Path, PathBuf};
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let folder = root.join("tests/data/recorded");
        let mut stems: Vec<String> = std::fs::read_dir(&folder)
            .expect("tests/data/recorded")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            // The README, the recording scripts and the tool versions are
            // about the recordings, not recordings.
            .filter(|name| !matches!(name.as_str(), "README.md" | "gen" | "versions.txt"))
            .map(|name| name.split('.').next().unwrap_or_default().to_string())
            .collect();
        stems.sort();
        stems.dedup();
        assert!(stems.len() > 100, "{} recordings", stems.len());

        fn sources(dir: &Path, data: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("source folder") {
                let path = entry.expect("entry").path();
                if path.is_dir() && path != data {
                    sources(&path, data, found);
                } else if path.extension().is_some_and(|ext| ext == "rs" || ext == "py") {
                    found.push(path);
                }
            }
        }
        let mut files = Vec::new();
        for dir in ["src", "tests", "benches"] {
            sources(&root.join(dir), &root.join("tests/data"), &mut files);
        }
        let text: String = files.iter().map(|f| std::fs::read_to_string(f).expect("source") + "\n").collect();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let named = |stem: &str| {
            text.match_indices(stem).any(|(at, _)| {
                !word(text[..at].chars().next_back()) && !word(text[at + stem.len()..].chars().next())
            })
        };
        let unread: Vec<&String> = stems.iter().filter(|stem| !named(stem)).collect();
        assert!(unread.is_empty(), "recordings no test reads (test them or delete them): {unread:?}");
    }
}

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::sanitize::quoted;

/// An application entity title: 1-16 characters of the DICOM default
/// repertoire, no backslash (the multi-value separator), not all spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AeTitle(String);

impl AeTitle {
    pub fn parse(value: &str) -> Result<AeTitle, String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err("an AE title cannot be empty".into());
        }
        if trimmed.len() > 16 {
            return Err(format!("AE title {} is longer than 16 characters", quoted(trimmed)));
        }
        if trimmed.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || c == '\\') {
            return Err(format!(
                "AE title {} may hold only printable ASCII without backslash",
                quoted(trimmed)
            ));
        }
        Ok(AeTitle(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AeTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DICOM peer: its AE title and network address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ae: AeTitle,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `HOST:PORT`, the form the JSON `destination` field carries.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses `AE@HOST:PORT` (an IPv6 host goes in brackets).
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        let shape = || format!("{} is not of the form AE@HOST:PORT", quoted(value));
        let (ae, address) = value.split_once('@').ok_or_else(shape)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(shape)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        // A leading dash would read as an option to the DCMTK tools.
        if host.is_empty()
            || host.starts_with('-')
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(shape());
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{} is not a port number (1-65535)", quoted(port)))?;
        Ok(Endpoint { ae: AeTitle::parse(ae)?, host: host.to_string(), port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ae, self.address())
    }
}

/// The network timeouts of one peer, and a deadline for a whole tool run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub acse: Duration,
    /// DCMTK's default is "wait forever": always set.
    pub dimse: Duration,
    pub total: Duration,
}

impl Timeouts {
    /// From the four `timeout_*_secs` keys: connect, ACSE, DIMSE, total.
    pub fn from_secs([connect, acse, dimse, total]: [u64; 4]) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(connect),
            acse: Duration::from_secs(acse),
            dimse: Duration::from_secs(dimse),
            total: Duration::from_secs(total),
        }
    }

    /// `-to -ta -td`, understood by every DCMTK network tool.
    pub fn args(&self) -> Vec<String> {
        vec![
            "-to".into(),
            self.connect.as_secs().max(1).to_string(),
            "-ta".into(),
            self.acse.as_secs().max(1).to_string(),
            "-td".into(),
            self.dimse.as_secs().max(1).to_string(),
        ]
    }
}

/// `-pdu`: the largest PDU we take when images come to us (getscu, our
/// C-MOVE receiver), DCMTK's maximum. DCMTK's default of 16 KiB cuts a
/// 157 MB CT into some 10,000 PDUs: measured on loopback, getscu took
/// 0.26 s with 16 KiB, 0.19 s with 128 KiB, with a third less CPU (which
/// the PACS and the checks beside the transfer share on a small host).
/// A peer must never send more than this and may send less.
pub const RECEIVE_PDU: &str = "131072";

/// The argument vector of a DCMTK network tool: its own `options`, the AE
/// titles and timeouts they all take, the peer's host and port, then the
/// `operands` (files to send).
pub fn scu_args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    options: Vec<OsString>,
    operands: Vec<OsString>,
) -> Vec<OsString> {
    let mut args = options;
    args.extend(["-aet", calling, "-aec", peer.ae.as_str()].into_iter().map(OsString::from));
    args.extend(timeouts.args().into_iter().map(OsString::from));
    args.push(peer.host.clone().into());
    args.push(peer.port.to_string().into());
    args.extend(operands);
    args
}

/// Command-line words as an argument vector.
pub fn words<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<OsString> {
    words.into_iter().map(OsString::from).collect()
}

/// What a DIMSE status code means for the file it answers (PS3.7 Annex C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Warning,
    Failure,
}

impl StatusClass {
    pub fn of(code: u16) -> StatusClass {
        match code {
            0x0000 => StatusClass::Success,
            // 0x0001 and 0xB0xx are warnings: the instance was stored.
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
            _ => StatusClass::Failure,
        }
    }
}

/// What a sender said about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    Stored,
    /// Stored, with the peer's warning (e.g. coercion of data elements).
    StoredWithWarning(String),
    Failed(refusal::Refusal),
}

impl FileOutcome {
    #[cfg(test)]
    pub fn stored(&self) -> bool {
        matches!(self, FileOutcome::Stored | FileOutcome::StoredWithWarning(_))
    }
}

/// Why an association did not carry the files, when it did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssociationProblem {
    /// No TCP connection (refused, timed out, no route): the reason in words.
    Unreachable(String),
    /// The peer said no to the association (wrong AE title, refusing all).
    Rejected(String),
    /// The peer stopped answering within the DIMSE or ACSE timeout.
    Stalled,
    /// The association ended before it was accepted, some other way than
    /// a rejection (many PACSs abort an AE title they do not know).
    Aborted(String),
    /// The association was accepted, then ended in the middle of the work
    /// (a peer that crashed or aborted).
    Ended(String),
}

/// A sender's account of one run, from its output alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreLog {
    /// Per file, keyed by the path exactly as it was passed to the sender.
    pub files: Vec<(String, FileOutcome)>,
    pub problem: Option<AssociationProblem>,
}

/// What the query keys of one C-MOVE or C-GET select.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetrieveKeys<'a> {
    /// Whole studies by StudyInstanceUID (several in one request).
    Studies(&'a [String]),
    /// The legacy loop's request: one accession, one modality.
    AccessionModality(&'a str, &'a str),
}

impl RetrieveKeys<'_> {
    /// Writes the request's identifier as a query file for movescu or
    /// getscu: the UIDs and accessions stay out of the command line, which
    /// every local user can read in /proc.
    pub fn write_query(&self, path: &std::path::Path) -> std::io::Result<()> {
        let joined;
        let mut elements: Vec<(u32, &[u8; 2], &str)> = vec![(0x0008_0052, b"CS", "STUDY")];
        match self {
            RetrieveKeys::Studies(uids) => {
                joined = uids.join("\\");
                elements.push((part10::tag::STUDY_INSTANCE_UID, b"UI", &joined));
            }
            RetrieveKeys::AccessionModality(accession, modality) => {
                elements.push((part10::tag::ACCESSION_NUMBER, b"SH", accession));
                elements.push((part10::tag::MODALITIES_IN_STUDY, b"CS", modality));
            }
        }
        part10::write_query(path, &elements)
    }
}

/// The sub-operation counts of a C-MOVE or C-GET response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Suboperations {
    /// `None` where the tool prints "none" (a final response has no
    /// remaining count) or printed no such line.
    pub remaining: Option<usize>,
    pub completed: Option<usize>,
    pub failed: Option<usize>,
    pub warning: Option<usize>,
}

impl Suboperations {
    /// Reads one "Number of Failed Suboperations : 3" / "Failed Suboperations
    /// : 3" line into the counts; false when it is not such a line.
    pub fn read(&mut self, text: &str) -> bool {
        let text = text.trim().trim_start_matches("Number of ").trim_start();
        let Some((name, value)) = text.split_once(':') else { return false };
        let slot = match name.trim() {
            "Remaining Suboperations" => &mut self.remaining,
            "Completed Suboperations" => &mut self.completed,
            "Failed Suboperations" => &mut self.failed,
            "Warning Suboperations" => &mut self.warning,
            _ => return false,
        };
        *slot = value.trim().parse().ok();
        true
    }
}

/// A C-MOVE or C-GET run as its log tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetrieveLog {
    /// The final response status ("Success", "Failed: UnableToProcess").
    pub final_status: Option<String>,
    /// The final response's sub-operation counts, when the tool prints them.
    pub counts: Suboperations,
    pub problem: Option<AssociationProblem>,
    /// Files the tool says it wrote (getscu: one per C-STORE it answered
    /// with Success), repeats included; `None` when it does not say.
    pub stored: Option<usize>,
}

impl RetrieveLog {
    /// The final status is Success (or a warning whose counts show every
    /// sub-operation done, none failed) and no sub-operation failed or was
    /// left. A warning final (0xB000, "one or more failures or warnings")
    /// without a Failed count is no success: movescu prints the counts
    /// only at `-d`, and at `-v` the Warning line is all there is.
    pub fn succeeded(&self) -> bool {
        let none_left = self.counts.failed.unwrap_or(0) == 0 && self.counts.remaining.unwrap_or(0) == 0;
        match self.final_status.as_deref() {
            Some(status) if status.starts_with("Success") => none_left,
            Some(status) if status.starts_with("Warning") => self.counts.failed == Some(0) && none_left,
            _ => false,
        }
    }
}

/// Reads the association-level lines every DCMTK network tool prints the
/// same way: connection errors, rejections (with their reason on a later
/// line), timeouts and aborts. The first problem is the cause; later lines
/// are its echoes.
pub struct Problems {
    /// "PACS" or "publisher", for the words of an abort.
    peer: &'static str,
    problem: Option<AssociationProblem>,
    rejected: bool,
    /// The peer has answered: what ends the association now ends it midway.
    accepted: bool,
}

impl Problems {
    pub fn new(peer: &'static str) -> Problems {
        Problems { peer, problem: None, rejected: false, accepted: false }
    }

    /// Reads one log line; true when it spoke of the association.
    pub fn read(&mut self, level: char, text: &str) -> bool {
        // Accepted and answered: an abort now ends work under way (a PACS
        // that crashed). Orthanc accepts an AE title it does not know and
        // aborts at the first request, so acceptance alone does not tell.
        if text.starts_with("Received ") && (text.contains("Response") || text.contains("Request")) {
            self.accepted = true;
            return false;
        }
        let found = if text.contains("Attempt to connect to unknown host") {
            // DCMTK 0006:0320: the name does not resolve.
            AssociationProblem::Unreachable("the host name does not resolve".into())
        } else if let Some(why) = text.split("TCP Initialization Error: ").nth(1) {
            AssociationProblem::Unreachable(why.trim().to_lowercase())
        } else if text.contains("Association Rejected") {
            self.rejected = true;
            AssociationProblem::Rejected(String::new())
        } else if let Some(reason) = text.strip_prefix("Reason: ").filter(|_| self.rejected) {
            // The reason refines the rejection seen just before.
            self.problem = Some(AssociationProblem::Rejected(reason.trim().to_string()));
            return true;
        } else if text.contains("DIMSE No data available") || text.contains("network read timeout") {
            AssociationProblem::Stalled
        } else if text.contains("Peer aborted Association") && self.accepted {
            AssociationProblem::Ended(format!("the {} aborted the association", self.peer))
        } else if text.contains("Peer aborted Association") {
            AssociationProblem::Aborted(format!("the {} aborted the association", self.peer))
        } else if level == 'F' && !text.trim_end().ends_with(':') && self.accepted {
            AssociationProblem::Ended(text.to_string())
        } else if level == 'F' && !text.trim_end().ends_with(':') {
            // "F: Association Request Failed:" only announces the next line.
            AssociationProblem::Aborted(text.to_string())
        } else {
            return false;
        };
        self.problem.get_or_insert(found);
        true
    }

    pub fn into_problem(self) -> Option<AssociationProblem> {
        self.problem
    }
}

/// Reads a DCMTK tool's output line "I: ..." / "E: ..." as (level, text).
pub fn log_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let level = chars.next()?;
    let rest = chars.as_str().strip_prefix(": ")?;
    matches!(level, 'T' | 'D' | 'I' | 'W' | 'E' | 'F').then_some((level, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles() {
        assert!(AeTitle::parse("CDRECORD").is_ok());
        assert_eq!(AeTitle::parse(" PACS ").map(|a| a.0), Ok("PACS".to_string()));
        assert!(AeTitle::parse("").is_err());
        assert!(AeTitle::parse("ABCDEFGHIJKLMNOPQ").is_err());
        assert!(AeTitle::parse("A\\B").is_err());
        assert!(AeTitle::parse("A\u{7}").is_err());
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("CDPUB@127.0.0.1:24104").expect("endpoint");
        assert_eq!(e.ae.as_str(), "CDPUB");
        assert_eq!(e.address(), "127.0.0.1:24104");
        assert_eq!(e.to_string(), "CDPUB@127.0.0.1:24104");
        let v6 = Endpoint::parse("X@[::1]:104").expect("v6");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.address(), "[::1]:104");
        for bad in ["127.0.0.1:104", "X@127.0.0.1", "X@:104", "X@h:0", "X@h:99999", "@h:104", "X@-h:104"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scu_args_put_the_peer_after_the_options() {
        let peer = Endpoint::parse("CDPUB@127.0.0.1:104").expect("endpoint");
        let timeouts = Timeouts::from_secs([1, 2, 3, 4]);
        let args = scu_args("ME", &peer, &timeouts, words(["-v"]), words(["./a"]));
        let expected = [
            "-v",
            "-aet",
            "ME",
            "-aec",
            "CDPUB",
            "-to",
            "1",
            "-ta",
            "2",
            "-td",
            "3",
            "127.0.0.1",
            "104",
            "./a",
        ];
        assert_eq!(args, words(expected));
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(0x0000), StatusClass::Success);
        assert_eq!(StatusClass::of(0xB000), StatusClass::Warning);
        assert_eq!(StatusClass::of(0x0001), StatusClass::Warning);
        assert_eq!(StatusClass::of(0xA700), StatusClass::Failure);
        assert_eq!(StatusClass::of(0xC000), StatusClass::Failure);
        assert_eq!(StatusClass::of(0x0110), StatusClass::Failure);
    }

    #[test]
    fn log_lines() {
        assert_eq!(log_line("I: Sending file: /a"), Some(('I', "Sending file: /a")));
        assert_eq!(log_line("garbage"), None);
        assert_eq!(log_line("X: no"), None);
    }
}
