//! The SPEC error table: every way a job can fail, and what each one means
//! as an exit code, an HTTP status and a JSON `error` string.
//!
//! `Class` has the SPEC's rows, plus three that only the CGI mode raises
//! (the SPEC's CGI section asks for 401, 404 and 405 answers but its table
//! has no row for them). The three mappings are exhaustive
//! matches without a catch-all, so a new row does not compile until all
//! three are answered. Steps build a `Failure` with a named constructor at
//! their boundary; nothing classifies errors by downcasting at the top.

use std::fmt;

use crate::patients::Patient;

/// One row of the SPEC error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    MissingAccession,
    InvalidAccession,
    AccessionNotFound,
    MixedPatients,
    PatientApiUnavailable,
    PacsUnreachable,
    NoDicomData,
    FetchIncomplete,
    PublisherUnreachable,
    RelayFailed,
    PartialRelay,
    Busy,
    Configuration,
    /// A hot-folder robot that cannot take a disc now: off, out of discs,
    /// cover open, in error, or its software not taking jobs.
    RobotNotReady,
    /// The robot ended the job with an error (or refused it).
    BurnFailed,
    /// The disc is larger than the largest medium the robot has.
    DiscTooBig,
    /// The staging folder's file system is (or would be) full: not a PACS
    /// or publisher fault, and no retry helps until space is freed.
    DiskFull,
    /// Ended by a signal; carries the signal number (2, 15, 1).
    Interrupted(i32),
    /// CGI: a bearer token was required and missing or wrong.
    Unauthorized,
    /// CGI: a method other than GET or HEAD.
    MethodNotAllowed,
    /// CGI: a path this program does not serve.
    UnknownUrl,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::MissingAccession
            | Class::InvalidAccession
            | Class::MethodNotAllowed
            | Class::UnknownUrl => 64,
            // sysexits EX_NOPERM.
            Class::Unauthorized => 77,
            Class::AccessionNotFound | Class::MixedPatients | Class::DiscTooBig => 65,
            Class::NoDicomData => 66,
            Class::PatientApiUnavailable
            | Class::PacsUnreachable
            | Class::PublisherUnreachable
            | Class::RobotNotReady => 69,
            Class::FetchIncomplete | Class::PartialRelay | Class::Busy => 75,
            Class::RelayFailed | Class::BurnFailed => 76,
            Class::Configuration => 78,
            // sysexits EX_IOERR.
            Class::DiskFull => 74,
            // The shell convention: 128 + signal number (130 SIGINT, 143 SIGTERM).
            Class::Interrupted(signal) => 128u8.saturating_add(signal.clamp(0, 127) as u8),
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Class::MissingAccession | Class::InvalidAccession => 400,
            Class::Unauthorized => 401,
            Class::AccessionNotFound | Class::UnknownUrl => 404,
            Class::MethodNotAllowed => 405,
            Class::MixedPatients => 409,
            Class::PatientApiUnavailable
            | Class::PacsUnreachable
            | Class::NoDicomData
            | Class::FetchIncomplete
            | Class::PublisherUnreachable
            | Class::RelayFailed
            | Class::PartialRelay
            | Class::BurnFailed => 502,
            Class::Busy | Class::RobotNotReady => 503,
            // Content Too Large: the request asks for more than one disc.
            Class::DiscTooBig => 413,
            Class::Configuration => 500,
            // Insufficient Storage (RFC 4918).
            Class::DiskFull => 507,
            // SPEC gives no status: a CGI run killed by a signal rarely gets
            // to answer; when it does, "try again later" is the truth.
            Class::Interrupted(_) => 503,
        }
    }

    pub fn error_str(self) -> &'static str {
        match self {
            Class::MissingAccession => "missing accession_number",
            Class::InvalidAccession => "invalid accession_number",
            Class::AccessionNotFound => "accession_number not found",
            Class::MixedPatients => "accessions belong to different patients",
            Class::PatientApiUnavailable => "patient API unavailable",
            Class::PacsUnreachable => "PACS unreachable",
            Class::NoDicomData => "no DICOM data for accession_number",
            Class::FetchIncomplete => "DICOM fetch incomplete",
            Class::PublisherUnreachable => "CD Publisher unreachable",
            Class::RelayFailed => "DICOM relay failed",
            Class::PartialRelay => "partial relay",
            Class::Busy => "busy",
            Class::Configuration => "configuration error",
            Class::RobotNotReady => "CD robot not ready",
            Class::BurnFailed => "burn failed",
            Class::DiscTooBig => "too big for one disc",
            Class::DiskFull => "staging disk full",
            Class::Interrupted(_) => "interrupted",
            Class::Unauthorized => "unauthorized",
            Class::MethodNotAllowed => "method not allowed",
            Class::UnknownUrl => "unknown URL",
        }
    }
}

/// Counts carried by a relay failure, so a technician sees how much got out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayCounts {
    pub files_sent: usize,
    pub files_failed: usize,
    /// Files sent and not answered when the send was cut short (0 or 1):
    /// the publisher may hold them or not, and nothing can tell.
    pub files_in_doubt: usize,
    /// (file, reason) for each file that did not arrive, in send order.
    pub failures: Vec<(String, String)>,
    /// (file, reason) for each file left out of the relay (not DICOM).
    pub skipped: Vec<(String, String)>,
}

/// A failed job: its class, a short human sentence, and the peer involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    /// One line, lower case, naming the object and the peer; never a tool dump.
    pub detail: String,
    /// `HOST:PORT` of the CD publisher when it is involved.
    pub destination: Option<String>,
    /// Boxed: most failures have none, and a small `Failure` keeps every
    /// `Result` small.
    pub relay: Option<Box<RelayCounts>>,
    /// The patients whose images were involved, once known (audit log).
    pub patients: Vec<Patient>,
    /// The detail for a web answer when `detail` is not for the web: it
    /// names a patient (the audit log has the whole detail) or advises a
    /// command-line flag.
    pub public_detail: Option<String>,
}

impl Failure {
    pub(crate) fn new(class: Class, detail: impl Into<String>) -> Failure {
        Failure {
            class,
            detail: detail.into(),
            destination: None,
            relay: None,
            patients: Vec::new(),
            public_detail: None,
        }
    }

    /// Records whose images the failed job was handling.
    pub fn for_patients(mut self, patients: &[Patient]) -> Failure {
        if self.patients.is_empty() {
            self.patients = patients.to_vec();
        }
        self
    }

    /// What the web says instead of `detail` (which names a patient, or
    /// advises a command-line flag the HIS user has no use for).
    pub fn for_the_web(mut self, public: impl Into<String>) -> Failure {
        self.public_detail = Some(public.into());
        self
    }

    /// The detail a web answer may carry.
    pub fn web_detail(&self) -> &str {
        self.public_detail.as_deref().unwrap_or(&self.detail)
    }

    pub fn unauthorized() -> Failure {
        Failure::new(Class::Unauthorized, "a valid bearer token is required (cgi.token_env)")
    }

    pub fn method_not_allowed(method: &str) -> Failure {
        Failure::new(Class::MethodNotAllowed, format!("method {method} is not allowed: use GET or HEAD"))
    }

    pub fn unknown_url(path: &str) -> Failure {
        Failure::new(Class::UnknownUrl, format!("no such URL: {path}"))
    }

    pub fn with_destination(mut self, destination: impl Into<String>) -> Failure {
        self.destination = Some(destination.into());
        self
    }

    pub fn config(detail: impl Into<String>) -> Failure {
        Failure::new(Class::Configuration, detail)
    }

    pub fn missing_tool(tool: &str, searched: &str) -> Failure {
        Failure::config(format!(
            "{tool} not found in {searched}: install the Debian package dcmtk (apt-get install dcmtk) or set tools.dcmtk_dir"
        ))
    }

    pub fn missing_accession() -> Failure {
        Failure::new(Class::MissingAccession, "no accession number given")
    }

    pub fn invalid_accession(why: impl Into<String>) -> Failure {
        Failure::new(Class::InvalidAccession, why)
    }

    pub fn accession_not_found(detail: &str) -> Failure {
        Failure::new(Class::AccessionNotFound, detail)
    }

    pub fn patient_api_unavailable(detail: &str) -> Failure {
        Failure::new(Class::PatientApiUnavailable, detail)
    }

    pub fn mixed_patients(detail: &str) -> Failure {
        Failure::new(Class::MixedPatients, detail)
    }

    pub fn pacs_unreachable(detail: &str) -> Failure {
        Failure::new(Class::PacsUnreachable, detail)
    }

    pub fn no_data_for(accession: &str, pacs: &str) -> Failure {
        Failure::new(
            Class::NoDicomData,
            format!("the PACS {pacs} has no study with accession number {accession}"),
        )
    }

    pub fn no_dicom_data(detail: &str) -> Failure {
        Failure::new(Class::NoDicomData, detail)
    }

    pub fn fetch_incomplete(detail: &str) -> Failure {
        Failure::new(Class::FetchIncomplete, detail)
    }

    pub fn disk_full(detail: &str) -> Failure {
        Failure::new(Class::DiskFull, detail)
    }

    pub fn busy(detail: &str) -> Failure {
        Failure::new(Class::Busy, detail)
    }

    pub fn interrupted(signal: i32) -> Failure {
        let name = match signal {
            libc::SIGINT => "SIGINT (Ctrl-C)",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        };
        Failure::new(Class::Interrupted(signal), format!("interrupted by {name}"))
    }

    /// Interrupted during the send: what the publisher had accepted by then.
    pub fn interrupted_sending(
        signal: i32,
        destination: &str,
        detail: String,
        counts: RelayCounts,
    ) -> Failure {
        let mut failure = Failure::interrupted(signal).with_destination(destination);
        failure.detail = detail;
        failure.relay = Some(Box::new(counts));
        failure
    }

    pub fn no_dicom_files(dir: &str) -> Failure {
        Failure::new(Class::NoDicomData, format!("no DICOM file under {dir}"))
    }

    pub fn publisher_unreachable(destination: &str, why: &str) -> Failure {
        Failure::new(Class::PublisherUnreachable, format!("CD Publisher unreachable at {destination}: {why}"))
            .with_destination(destination)
    }

    pub fn relay_failed(destination: &str, why: &str, counts: RelayCounts) -> Failure {
        let mut failure = Failure::new(Class::RelayFailed, why).with_destination(destination);
        failure.relay = Some(Box::new(counts));
        failure
    }

    /// The relay could not start on our side (an unreadable file): nothing sent.
    pub fn relay_failed_locally(why: &str) -> Failure {
        Failure::new(Class::RelayFailed, format!("nothing was sent: {why}"))
    }

    /// A hot-folder robot that cannot take the job; `robot` names it.
    pub fn robot_not_ready(robot: &str, why: &str) -> Failure {
        Failure::new(Class::RobotNotReady, format!("the {robot} is not ready: {why}")).with_destination(robot)
    }

    /// The robot ended the job with an error, `why` in its words.
    pub fn burn_failed(robot: &str, why: &str) -> Failure {
        Failure::new(Class::BurnFailed, format!("the {robot} did not burn the disc: {why}"))
            .with_destination(robot)
    }

    /// `bytes` of disc content, more than the largest medium holds.
    pub fn disc_too_big(bytes: u64, largest: &str, capacity: u64) -> Failure {
        Failure::new(
            Class::DiscTooBig,
            format!(
                "the disc would hold {:.0} MB, more than the largest medium the robot has ({largest}, {:.0} MB): \
                 request fewer accession numbers per disc",
                bytes as f64 / 1e6,
                capacity as f64 / 1e6
            ),
        )
    }

    pub fn partial_relay(destination: &str, why: &str, counts: RelayCounts) -> Failure {
        let mut failure = Failure::new(Class::PartialRelay, why).with_destination(destination);
        failure.relay = Some(Box::new(counts));
        failure
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.error_str(), self.detail)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPEC table, restated row by row.
    #[test]
    fn spec_table() {
        let rows = [
            (Class::MissingAccession, 400, 64, "missing accession_number"),
            (Class::InvalidAccession, 400, 64, "invalid accession_number"),
            (Class::AccessionNotFound, 404, 65, "accession_number not found"),
            (Class::MixedPatients, 409, 65, "accessions belong to different patients"),
            (Class::PatientApiUnavailable, 502, 69, "patient API unavailable"),
            (Class::PacsUnreachable, 502, 69, "PACS unreachable"),
            (Class::NoDicomData, 502, 66, "no DICOM data for accession_number"),
            (Class::FetchIncomplete, 502, 75, "DICOM fetch incomplete"),
            (Class::PublisherUnreachable, 502, 69, "CD Publisher unreachable"),
            (Class::RelayFailed, 502, 76, "DICOM relay failed"),
            (Class::PartialRelay, 502, 75, "partial relay"),
            (Class::Busy, 503, 75, "busy"),
            (Class::Configuration, 500, 78, "configuration error"),
            (Class::DiskFull, 507, 74, "staging disk full"),
            (Class::RobotNotReady, 503, 69, "CD robot not ready"),
            (Class::BurnFailed, 502, 76, "burn failed"),
            (Class::DiscTooBig, 413, 65, "too big for one disc"),
        ];
        for (class, http, exit, error) in rows {
            assert_eq!(class.http_status(), http, "{class:?}");
            assert_eq!(class.exit_code(), exit, "{class:?}");
            assert_eq!(class.error_str(), error, "{class:?}");
        }
        for (class, http, exit, error) in [
            (Class::Unauthorized, 401, 77, "unauthorized"),
            (Class::MethodNotAllowed, 405, 64, "method not allowed"),
            (Class::UnknownUrl, 404, 64, "unknown URL"),
        ] {
            assert_eq!((class.http_status(), class.exit_code(), class.error_str()), (http, exit, error));
        }
        assert_eq!(Class::Interrupted(2).exit_code(), 130);
        assert_eq!(Class::Interrupted(15).exit_code(), 143);
        assert_eq!(Class::Interrupted(1).exit_code(), 129);
    }

    #[test]
    fn missing_tool_names_the_package() {
        let failure = Failure::missing_tool("dcmsend", "/opt/empty");
        assert_eq!(failure.class, Class::Configuration);
        assert!(failure.detail.contains("dcmtk"), "{}", failure.detail);
        assert!(failure.detail.contains("dcmsend"), "{}", failure.detail);
    }
}
