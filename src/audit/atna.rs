//! DICOM audit messages (PS3.15 A.5, the records IHE ATNA carries): what a
//! hospital's audit repository keeps of who made images leave the PACS,
//! whose, and where to. A pure model of the schema of A.5.1 (`AuditMessage`
//! and its parts), builders for the events pacs2cd reports (A.5.3:
//! Application Activity, Query,
//! DICOM Instances Transferred, Export, Security Alert, User Authentication)
//! and the XML writer. Nothing here does I/O; `syslog` carries the text.
//!
//! Choices the standard leaves open, made once for every message:
//! - The job id is the UserID of pacs2cd's own ActiveParticipant. A.5.2.1
//!   asks a process's UserID to be "one of the identifiers used in the
//!   internal system logs", so that audit records can be matched with them;
//!   the job id is that identifier (the JSON audit log, the log lines). Every
//!   message has this participant, User Authentication too, which has no
//!   participant object to carry a ParticipantObjectDetail, and the id stays
//!   plain text that grep finds (a detail's value is base64).
//! - Every text is escaped, and control characters become U+FFFD (XML 1.0
//!   cannot carry most C0 controls at all, even as `&#1;`, and relays may
//!   rewrite the others): a patient name from a PACS is not trusted. Tabs and line ends are written as
//!   character references, so the message stays one line and attribute
//!   values keep them. An audit record that does not parse is a lost record.
//! - The schema wants a ParticipantObjectName or a ParticipantObjectQuery in
//!   every participant object; a study is named by its description when the
//!   caller knows it, else the name is empty (a valid token, and no guess).

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::failure::{Class, Failure};

/// Study Root Query/Retrieve Information Model - FIND.
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Explicit VR Little Endian: how `Query::Dicom` encodes its identifier.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// A coded value: `csd-code`, `codeSystemName` and `originalText` (the code
/// meaning), all three required by the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    pub system: String,
    pub meaning: String,
}

impl Code {
    /// A code of the DICOM Controlled Terminology (PS3.16, "DCM").
    pub fn dcm(code: &str, meaning: &str) -> Code {
        Code { code: code.into(), system: "DCM".into(), meaning: meaning.into() }
    }

    /// One of the value sets of A.5.1.2 (inherited from RFC 3881).
    fn rfc3881(code: &str, meaning: &str) -> Code {
        Code { code: code.into(), system: "RFC-3881".into(), meaning: meaning.into() }
    }
}

/// EventActionCode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Execute,
}

impl Action {
    fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Execute => "E",
        }
    }
}

/// EventOutcomeIndicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Indicator {
    /// 0: success.
    Success,
    /// 4: minor failure; the action can be restarted (a wrong input, a busy port).
    MinorFailure,
    /// 8: serious failure; the action was terminated.
    SeriousFailure,
    /// 12: major failure; the action is unavailable until someone acts.
    MajorFailure,
}

impl Indicator {
    pub fn code(self) -> &'static str {
        match self {
            Indicator::Success => "0",
            Indicator::MinorFailure => "4",
            Indicator::SeriousFailure => "8",
            Indicator::MajorFailure => "12",
        }
    }

    /// A row of the error table as an outcome. Exhaustive, like the table's
    /// own mappings: a new row does not compile until it is answered here.
    pub fn of(class: Class) -> Indicator {
        match class {
            // The request can be made again, corrected or later.
            Class::MissingAccession
            | Class::InvalidAccession
            | Class::AccessionNotFound
            | Class::MixedPatients
            | Class::Busy
            | Class::DiscTooBig
            | Class::RobotNotReady
            | Class::Unauthorized
            | Class::MethodNotAllowed
            | Class::UnknownUrl => Indicator::MinorFailure,
            // The job was stopped.
            Class::PatientApiUnavailable
            | Class::PacsUnreachable
            | Class::NoDicomData
            | Class::FetchIncomplete
            | Class::PublisherUnreachable
            | Class::RelayFailed
            | Class::PartialRelay
            | Class::BurnFailed
            | Class::DiskFull
            | Class::Interrupted(_) => Indicator::SeriousFailure,
            // No job can run until an administrator mends the configuration.
            Class::Configuration => Indicator::MajorFailure,
        }
    }
}

/// How the event ended: the indicator and, for a failure, the error
/// table's words and the failure's detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub indicator: Indicator,
    pub description: Option<String>,
}

impl Outcome {
    pub fn success() -> Outcome {
        Outcome { indicator: Indicator::Success, description: None }
    }

    /// `partial relay: 2 of 42 files were not accepted`.
    pub fn failed(failure: &Failure) -> Outcome {
        let words = failure.class.error_str();
        let description = if failure.detail.is_empty() {
            words.to_string()
        } else {
            format!("{words}: {}", failure.detail)
        };
        Outcome { indicator: Indicator::of(failure.class), description: Some(description) }
    }

    pub fn of(result: Result<(), &Failure>) -> Outcome {
        result.map_or_else(Outcome::failed, |()| Outcome::success())
    }
}

/// EventIdentification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: Code,
    pub action: Action,
    pub time: SystemTime,
    pub outcome: Outcome,
    pub types: Vec<Code>,
}

/// ActiveParticipant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveParticipant {
    pub user_id: String,
    pub alternative_user_id: Option<String>,
    pub user_name: Option<String>,
    pub requestor: bool,
    pub roles: Vec<Code>,
    /// MediaIdentifier/MediaType, for the media of an export.
    pub media: Option<Code>,
    /// NetworkAccessPointID; its type code (1 name, 2 IP address) follows
    /// from the text.
    pub access_point: Option<String>,
}

/// AuditSourceTypeCode (A.5.1.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// 1: a technician at a terminal.
    EndUserInterface,
    /// 3: the CGI mode, behind nginx.
    WebServer,
    /// 4: jobs run from cron or scripts.
    ApplicationServer,
}

impl SourceType {
    fn code(self) -> &'static str {
        match self {
            SourceType::EndUserInterface => "1",
            SourceType::WebServer => "3",
            SourceType::ApplicationServer => "4",
        }
    }
}

/// AuditSourceIdentification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSource {
    pub id: String,
    pub site: Option<String>,
    pub source_type: SourceType,
}

/// ParticipantObjectTypeCode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Person,
    SystemObject,
}

/// ParticipantObjectTypeCodeRole (A.5.1.2.2), the roles pacs2cd uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectRole {
    Patient,
    Report,
    SecurityResource,
}

/// What names a participant object: the schema wants exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Naming {
    Name(String),
    /// ParticipantObjectQuery, written as base64.
    Query(Vec<u8>),
}

/// ParticipantObjectDetail: an implementation-defined type and a value
/// written as base64 (the schema's protection against text that is XML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    pub kind: String,
    pub value: Vec<u8>,
}

/// One SOPClass of a study's ParticipantObjectDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SopClass {
    /// None when the PACS gave counts but not classes.
    pub uid: Option<String>,
    pub instances: usize,
}

/// ParticipantObjectIdentification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantObject {
    pub id: String,
    pub object_type: ObjectType,
    pub role: Option<ObjectRole>,
    pub id_type: Code,
    pub naming: Naming,
    pub details: Vec<Detail>,
    /// Accession numbers and SOP classes (one ParticipantObjectDescription).
    pub accessions: Vec<String>,
    pub sop_classes: Vec<SopClass>,
}

/// One DICOM audit message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditMessage {
    pub event: Event,
    pub participants: Vec<ActiveParticipant>,
    pub source: AuditSource,
    pub objects: Vec<ParticipantObject>,
}

// ---------------------------------------------------------------------------
// What the builders are given.

/// Who reports: this host and this job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reporter {
    /// The job id (see the module comment).
    pub job: String,
    /// This host as the repository should know it: the AuditSourceID and
    /// pacs2cd's NetworkAccessPointID. One name for every message (A.5.2.4).
    pub host: String,
    /// pacs2cd's AE title where it acts as a DICOM application.
    pub ae_title: Option<String>,
    pub source_type: SourceType,
    /// AuditEnterpriseSiteID, when the hospital names its sites.
    pub site: Option<String>,
}

/// Who asked for the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// A user of this host: the real uid and its login name. SUDO_USER is
    /// any process's to set, so it is only a note beside them.
    Local { login: String, uid: u32, sudo_user: Option<String> },
    /// The CGI mode: the HIS client's address and the label of the token it
    /// presented (None when anonymous access is allowed).
    Web { client: String, token_label: Option<String> },
}

/// A peer of the job: the PACS, the CD publisher, the patient API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// None for a peer that is not a DICOM application (the patient API).
    pub ae_title: Option<String>,
    pub host: String,
    pub port: u16,
}

/// A patient as the audit names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    pub id: String,
    /// IssuerOfPatientID, when the PACS or the HIS gives one.
    pub issuer: Option<String>,
    /// PatientName as DICOM writes it (`DOE^JOHN`).
    pub name: String,
}

/// A study as the audit names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Study {
    pub uid: String,
    /// StudyDescription, when known (it becomes the object's name).
    pub description: Option<String>,
    pub accessions: Vec<String>,
    /// The instances by SOP class; empty when nothing was counted.
    pub sop_classes: Vec<SopClass>,
}

/// One key of a C-FIND identifier: its tag (`0x0008_0050`), VR and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryKey {
    pub tag: u32,
    pub vr: String,
    pub value: String,
}

impl QueryKey {
    pub fn new(tag: u32, vr: &str, value: &str) -> QueryKey {
        QueryKey { tag, vr: vr.into(), value: value.into() }
    }
}

/// What was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A C-FIND: its SOP class and identifier.
    Dicom { sop_class: String, keys: Vec<QueryKey> },
    /// An HTTP GET to the patient API (never with its token).
    Http { url: String },
}

/// The disc a publisher writes, when pacs2cd knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disc {
    // A hot-folder robot's job file names the disc (ROBOTS.md); a DICOM
    // publisher chooses it itself.
    #[allow(dead_code)]
    Cd,
    #[allow(dead_code)]
    Dvd,
    /// The publisher chooses by size.
    CdOrDvd,
}

/// Where an export went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// A CD/DVD publisher that is a DICOM Storage SCP, or a hot-folder robot
    /// (its host names the machine, `ae_title` None).
    Publisher { node: Node, disc: Disc },
    /// A disc layout in a folder of this host.
    Folder(std::path::PathBuf),
    /// An ISO 9660 image on this host.
    Iso(std::path::PathBuf),
    /// A web download to the HIS client; `url` as far as pacs2cd knows it.
    Download { client: String, url: Option<String> },
}

// ---------------------------------------------------------------------------
// The builders.

/// Query (A.5.3.10): pacs2cd asks the PACS (or the patient API).
pub fn query(
    reporter: &Reporter,
    requester: &Requester,
    responder: &Node,
    query: &Query,
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let object = match query {
        Query::Dicom { sop_class, keys } => ParticipantObject {
            id: sop_class.clone(),
            object_type: ObjectType::SystemObject,
            role: Some(ObjectRole::Report),
            id_type: Code::dcm("110181", "SOP Class UID"),
            naming: Naming::Query(encode_identifier(keys)),
            // A.5.3.10: the transfer syntax of the query, as a detail.
            details: vec![Detail {
                kind: "TransferSyntax".into(),
                value: EXPLICIT_VR_LITTLE_ENDIAN.as_bytes().to_vec(),
            }],
            accessions: Vec::new(),
            sop_classes: Vec::new(),
        },
        // "Otherwise, it shall be the query in the format of the protocol used."
        Query::Http { url } => ParticipantObject {
            id: url.clone(),
            object_type: ObjectType::SystemObject,
            role: Some(ObjectRole::Report),
            id_type: Code::rfc3881("12", "URI"),
            naming: Naming::Query(format!("GET {url}").into_bytes()),
            details: Vec::new(),
            accessions: Vec::new(),
            sop_classes: Vec::new(),
        },
    };
    AuditMessage {
        event: event("110112", "Query", Action::Execute, outcome, time),
        participants: vec![
            ourselves(reporter, &[source_role()]),
            peer(responder, &[destination_role()]),
            person(reporter, requester, &[]),
        ],
        source: audit_source(reporter),
        objects: vec![object],
    }
}

/// DICOM Instances Transferred (A.5.3.7): the retrieve, the PACS as source
/// and pacs2cd (its move SCP) as destination. One patient per message, as
/// the standard asks; the caller sends one message per patient.
pub fn retrieve(
    reporter: &Reporter,
    requester: &Requester,
    pacs: &Node,
    patient: &Patient,
    studies: &[Study],
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let mut objects: Vec<ParticipantObject> = studies.iter().map(study_object).collect();
    objects.push(patient_object(patient));
    AuditMessage {
        // Create: the receiver held no copies (a new private staging folder).
        event: event("110104", "DICOM Instances Transferred", Action::Create, outcome, time),
        participants: vec![
            peer(pacs, &[source_role()]),
            ourselves(reporter, &[destination_role()]),
            person(reporter, requester, &[]),
        ],
        source: audit_source(reporter),
        objects,
    }
}

/// Export (A.5.3.4): the studies left for a disc, a folder, an image or a
/// web download. Many patients may be in one message.
pub fn export(
    reporter: &Reporter,
    requester: &Requester,
    target: &ExportTarget,
    patients: &[Patient],
    studies: &[Study],
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let mut participants = Vec::new();
    // "Remote users and processes receiving the data" (0..n).
    match target {
        ExportTarget::Publisher { node, .. } => participants.push(peer(node, &[destination_role()])),
        ExportTarget::Download { client, .. } => match requester {
            // The HIS client asked and receives: one participant, both roles
            // (one requestor per message, A.5.2).
            Requester::Web { client: asking, .. } if asking == client => {}
            _ => participants.push(ActiveParticipant {
                user_id: client.clone(),
                alternative_user_id: None,
                user_name: Some(format!("web client at {client}")),
                requestor: false,
                roles: vec![destination_role()],
                media: None,
                access_point: Some(client.clone()),
            }),
        },
        ExportTarget::Folder(_) | ExportTarget::Iso(_) => {}
    }
    // "User or process exporting the data": both, when both are known.
    participants.push(ourselves(reporter, &[source_role()]));
    let asking_client_receives = matches!(
        (target, requester),
        (ExportTarget::Download { client, .. }, Requester::Web { client: asking, .. }) if asking == client
    );
    let roles = if asking_client_receives { vec![destination_role()] } else { vec![source_role()] };
    participants.push(person(reporter, requester, &roles));
    participants.push(media(target));
    let mut objects: Vec<ParticipantObject> = studies.iter().map(study_object).collect();
    objects.extend(patients.iter().map(patient_object));
    AuditMessage {
        event: event("110106", "Export", Action::Read, outcome, time),
        participants,
        source: audit_source(reporter),
        objects,
    }
}

/// Security Alert (A.5.3.11), Node Authentication: a connection to the move
/// port from an address that is not the PACS's, refused. `description` says
/// what happened (and how many like it went unreported, when rate-limited).
pub fn refused_connection(
    reporter: &Reporter,
    peer_address: &str,
    description: &str,
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let mut event = event("110113", "Security Alert", Action::Execute, outcome, time);
    event.types.push(Code::dcm("110126", "Node Authentication"));
    AuditMessage {
        event,
        participants: vec![
            ourselves(reporter, &[]),
            // The performing node; "UserIsRequestor shall be FALSE".
            ActiveParticipant {
                user_id: peer_address.to_string(),
                alternative_user_id: None,
                user_name: None,
                requestor: false,
                roles: Vec::new(),
                media: None,
                access_point: Some(peer_address.to_string()),
            },
        ],
        source: audit_source(reporter),
        objects: vec![ParticipantObject {
            id: peer_address.to_string(),
            object_type: ObjectType::SystemObject,
            role: Some(ObjectRole::SecurityResource),
            id_type: Code::dcm("110182", "Node ID"),
            naming: Naming::Name(peer_address.to_string()),
            // Required by A.5.3.11, with this type.
            details: vec![Detail {
                kind: "Alert Description".into(),
                value: description.as_bytes().to_vec(),
            }],
            accessions: Vec::new(),
            sop_classes: Vec::new(),
        }],
    }
}

/// User Authentication (A.5.3.12), Login: a web request whose bearer token
/// was refused. `claimed` is the label the token would have had, when it is
/// known; the outcome description says why it was refused.
pub fn refused_token(
    reporter: &Reporter,
    client: &str,
    claimed: Option<&str>,
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let mut event = event("110114", "User Authentication", Action::Execute, outcome, time);
    event.types.push(Code::dcm("110122", "Login"));
    AuditMessage {
        event,
        participants: vec![
            // The one authenticated or claimed: NetworkAccessPoint mandatory.
            ActiveParticipant {
                user_id: claimed.unwrap_or("unknown").to_string(),
                alternative_user_id: None,
                user_name: Some(format!("web client at {client}")),
                requestor: true,
                roles: Vec::new(),
                media: None,
                access_point: Some(client.to_string()),
            },
            // The node performing the authentication.
            ourselves(reporter, &[]),
        ],
        source: audit_source(reporter),
        objects: Vec::new(),
    }
}

/// Application Activity (A.5.3.1): a job starting and stopping. The
/// start is sent before any traffic of the job, naming who launched it;
/// the stop carries how the job ended, interrupted jobs too. A job's
/// records between the two share its id (pacs2cd's UserID).
pub fn application(
    reporter: &Reporter,
    requester: &Requester,
    start: bool,
    outcome: Outcome,
    time: SystemTime,
) -> AuditMessage {
    let mut event = event("110100", "Application Activity", Action::Execute, outcome, time);
    event.types.push(if start {
        Code::dcm("110120", "Application Start")
    } else {
        Code::dcm("110121", "Application Stop")
    });
    AuditMessage {
        event,
        participants: vec![
            ourselves(reporter, &[Code::dcm("110150", "Application")]),
            person(reporter, requester, &[Code::dcm("110151", "Application Launcher")]),
        ],
        source: audit_source(reporter),
        objects: Vec::new(),
    }
}

fn event(code: &str, meaning: &str, action: Action, outcome: Outcome, time: SystemTime) -> Event {
    Event { id: Code::dcm(code, meaning), action, time, outcome, types: Vec::new() }
}

fn source_role() -> Code {
    Code::dcm("110153", "Source Role ID")
}

fn destination_role() -> Code {
    Code::dcm("110152", "Destination Role ID")
}

fn audit_source(reporter: &Reporter) -> AuditSource {
    AuditSource { id: reporter.host.clone(), site: reporter.site.clone(), source_type: reporter.source_type }
}

/// pacs2cd itself: UserID the job id, UserName the process name (A.5.2.3),
/// AlternativeUserID its AE title where it is a DICOM application (A.5.2.2).
fn ourselves(reporter: &Reporter, roles: &[Code]) -> ActiveParticipant {
    ActiveParticipant {
        user_id: reporter.job.clone(),
        alternative_user_id: reporter.ae_title.as_ref().map(|ae| format!("AETITLES={ae}")),
        user_name: Some("pacs2cd".into()),
        requestor: false,
        roles: roles.to_vec(),
        media: None,
        access_point: Some(reporter.host.clone()),
    }
}

/// A DICOM application (or another server) the job talked to.
fn peer(node: &Node, roles: &[Code]) -> ActiveParticipant {
    let user_id = node.ae_title.clone().unwrap_or_else(|| host_port(&node.host, node.port));
    ActiveParticipant {
        user_id,
        alternative_user_id: node.ae_title.as_ref().map(|ae| format!("AETITLES={ae}")),
        user_name: Some(host_port(&node.host, node.port)),
        requestor: false,
        roles: roles.to_vec(),
        media: None,
        access_point: Some(node.host.clone()),
    }
}

/// The one who asked: the requestor of every message about a job.
fn person(reporter: &Reporter, requester: &Requester, roles: &[Code]) -> ActiveParticipant {
    match requester {
        Requester::Local { login, uid, sudo_user } => {
            let mut name = format!("{login} (uid {uid}");
            if let Some(by) = sudo_user {
                let _ = write!(name, "; SUDO_USER={by}");
            }
            name.push(')');
            ActiveParticipant {
                // A.5.2.1: loginName@domain-name.
                user_id: format!("{login}@{}", reporter.host),
                alternative_user_id: None,
                user_name: Some(name),
                requestor: true,
                roles: roles.to_vec(),
                media: None,
                access_point: None,
            }
        }
        Requester::Web { client, token_label } => ActiveParticipant {
            user_id: token_label.clone().unwrap_or_else(|| "anonymous".into()),
            alternative_user_id: None,
            user_name: Some(match token_label {
                Some(label) => format!("web client at {client}, token {label}"),
                None => format!("web client at {client}, no token"),
            }),
            requestor: true,
            roles: roles.to_vec(),
            media: None,
            access_point: Some(client.clone()),
        },
    }
}

/// The export's "Destination Media" participant. A.5.2.1: its UserID is a
/// URI where there is one, else the media type and where it is made.
fn media(target: &ExportTarget) -> ActiveParticipant {
    let (user_id, media, access_point) = match target {
        ExportTarget::Publisher { node, disc } => {
            let (code, words) = match disc {
                Disc::Cd => (Code::dcm("110032", "CD"), "CD"),
                Disc::Dvd => (Code::dcm("110033", "DVD"), "DVD"),
                // CID 405 has no "CD or DVD": a private code (the "99"
                // prefix is DICOM's for local coding schemes) says no more
                // than pacs2cd knows.
                Disc::CdOrDvd => (
                    Code { code: "CDDVD".into(), system: "99PACS2CD".into(), meaning: "CD or DVD".into() },
                    "CD or DVD",
                ),
            };
            let by = match &node.ae_title {
                Some(ae) => format!("{ae} at {}", host_port(&node.host, node.port)),
                None => node.host.clone(),
            };
            (format!("{words} written by the publisher {by}"), code, Some(node.host.clone()))
        }
        ExportTarget::Folder(path) | ExportTarget::Iso(path) => {
            (file_uri(path), Code::dcm("110037", "URI"), None)
        }
        // Exported to a network destination: the access point is required.
        ExportTarget::Download { client, url } => (
            url.clone().unwrap_or_else(|| format!("download by {client}")),
            Code::dcm("110037", "URI"),
            Some(client.clone()),
        ),
    };
    ActiveParticipant {
        user_id,
        alternative_user_id: None,
        user_name: None,
        requestor: false,
        roles: vec![Code::dcm("110154", "Destination Media")],
        media: Some(media),
        access_point,
    }
}

fn study_object(study: &Study) -> ParticipantObject {
    ParticipantObject {
        id: study.uid.clone(),
        object_type: ObjectType::SystemObject,
        role: Some(ObjectRole::Report),
        id_type: Code::dcm("110180", "Study Instance UID"),
        naming: Naming::Name(study.description.clone().unwrap_or_default()),
        details: Vec::new(),
        accessions: study.accessions.clone(),
        sop_classes: study.sop_classes.clone(),
    }
}

fn patient_object(patient: &Patient) -> ParticipantObject {
    ParticipantObject {
        id: patient_cx(patient),
        object_type: ObjectType::Person,
        role: Some(ObjectRole::Patient),
        id_type: Code::rfc3881("2", "Patient Number"),
        naming: Naming::Name(patient.name.clone()),
        details: Vec::new(),
        accessions: Vec::new(),
        sop_classes: Vec::new(),
    }
}

/// The patient ID in HL7 v2 CX form, as IHE profiles it: `ID^^^ISSUER`
/// (the issuer as the assigning authority's namespace), HL7's delimiters
/// escaped in both, so an ID holding `^` cannot forge an issuer.
pub fn patient_cx(patient: &Patient) -> String {
    let id = hl7_escape(&patient.id);
    match patient.issuer.as_deref().map(str::trim) {
        Some(issuer) if !issuer.is_empty() => format!("{id}^^^{}", hl7_escape(issuer)),
        _ => id,
    }
}

fn hl7_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '|' => out.push_str("\\F\\"),
            c => out.push(c),
        }
    }
    out
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `file:///srv/discs/DOE%20JOHN.iso`: RFC 3986 percent-encoding of every
/// byte outside the unreserved set and `/`.
fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file://");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri
}

/// A C-FIND identifier as DICOM encodes it (Explicit VR Little Endian),
/// for ParticipantObjectQuery: "the Dataset of the DICOM query". Keys go
/// in tag order; a value that is not ASCII adds SpecificCharacterSet
/// ISO_IR 192 (UTF-8), the way the value is held. A value too long for its
/// VR's 16-bit length is written as UN, which has 32 bits: nothing is cut.
pub fn encode_identifier(keys: &[QueryKey]) -> Vec<u8> {
    const CHARSET: u32 = 0x0008_0005;
    let mut keys: Vec<QueryKey> = keys.to_vec();
    if keys.iter().any(|k| !k.value.is_ascii()) && !keys.iter().any(|k| k.tag == CHARSET) {
        keys.push(QueryKey::new(CHARSET, "CS", "ISO_IR 192"));
    }
    keys.sort_by_key(|k| k.tag);
    let mut out = Vec::new();
    for key in &keys {
        let mut value = key.value.as_bytes().to_vec();
        let mut vr = key.vr.as_bytes().to_vec();
        if vr.len() != 2 || !vr.iter().all(u8::is_ascii_uppercase) {
            vr = b"UN".to_vec();
        }
        if value.len() % 2 == 1 {
            // UI pads with NUL, every other string VR with a space.
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        let long_vr = |vr: &[u8]| {
            matches!(
                vr,
                b"OB"
                    | b"OD"
                    | b"OF"
                    | b"OL"
                    | b"OV"
                    | b"OW"
                    | b"SQ"
                    | b"SV"
                    | b"UC"
                    | b"UN"
                    | b"UR"
                    | b"UT"
                    | b"UV"
            )
        };
        if !long_vr(&vr) && value.len() > 0xFFFE {
            vr = b"UN".to_vec();
        }
        out.extend_from_slice(&((key.tag >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&(key.tag as u16).to_le_bytes());
        out.extend_from_slice(&vr);
        if long_vr(&vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        } else {
            out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
        }
        out.extend_from_slice(&value);
    }
    out
}

// ---------------------------------------------------------------------------
// The XML.

impl AuditMessage {
    /// The syslog severity of this record: notice for a success, warning
    /// for any failure (see `syslog`).
    pub fn severity(&self) -> super::syslog::Severity {
        match self.event.outcome.indicator {
            Indicator::Success => super::syslog::Severity::Notice,
            Indicator::MinorFailure | Indicator::SeriousFailure | Indicator::MajorFailure => {
                super::syslog::Severity::Warning
            }
        }
    }

    /// The message as one line of XML (UTF-8, no namespace, as A.5.1).
    pub fn to_xml(&self) -> String {
        let mut xml = Xml::default();
        xml.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        xml.open("AuditMessage", &[]);
        self.event.write(&mut xml);
        for participant in &self.participants {
            participant.write(&mut xml);
        }
        self.source.write(&mut xml);
        for object in &self.objects {
            object.write(&mut xml);
        }
        xml.close("AuditMessage");
        xml.out
    }
}

impl Event {
    fn write(&self, xml: &mut Xml) {
        let time = super::syslog::timestamp(self.time);
        xml.open(
            "EventIdentification",
            &[
                ("EventActionCode", Some(self.action.code())),
                ("EventDateTime", Some(&time)),
                ("EventOutcomeIndicator", Some(self.outcome.indicator.code())),
            ],
        );
        xml.code("EventID", &self.id);
        for kind in &self.types {
            xml.code("EventTypeCode", kind);
        }
        if let Some(description) = &self.outcome.description {
            xml.open("EventOutcomeDescription", &[]);
            xml.text(description);
            xml.close("EventOutcomeDescription");
        }
        xml.close("EventIdentification");
    }
}

impl ActiveParticipant {
    fn write(&self, xml: &mut Xml) {
        let access_type = self.access_point.as_deref().map(access_point_type);
        let attributes = [
            ("UserID", Some(self.user_id.as_str())),
            ("AlternativeUserID", self.alternative_user_id.as_deref()),
            ("UserName", self.user_name.as_deref()),
            ("UserIsRequestor", Some(if self.requestor { "true" } else { "false" })),
            ("NetworkAccessPointID", self.access_point.as_deref()),
            ("NetworkAccessPointTypeCode", access_type),
        ];
        if self.roles.is_empty() && self.media.is_none() {
            xml.empty("ActiveParticipant", &attributes);
            return;
        }
        xml.open("ActiveParticipant", &attributes);
        for role in &self.roles {
            xml.code("RoleIDCode", role);
        }
        if let Some(media) = &self.media {
            xml.open("MediaIdentifier", &[]);
            xml.code("MediaType", media);
            xml.close("MediaIdentifier");
        }
        xml.close("ActiveParticipant");
    }
}

/// NetworkAccessPointTypeCode: 2 for an IP address, 1 for a machine name.
fn access_point_type(point: &str) -> &'static str {
    if point.parse::<std::net::IpAddr>().is_ok() { "2" } else { "1" }
}

impl AuditSource {
    fn write(&self, xml: &mut Xml) {
        xml.open(
            "AuditSourceIdentification",
            &[("AuditEnterpriseSiteID", self.site.as_deref()), ("AuditSourceID", Some(&self.id))],
        );
        xml.empty("AuditSourceTypeCode", &[("csd-code", Some(self.source_type.code()))]);
        xml.close("AuditSourceIdentification");
    }
}

impl ParticipantObject {
    fn write(&self, xml: &mut Xml) {
        let object_type = match self.object_type {
            ObjectType::Person => "1",
            ObjectType::SystemObject => "2",
        };
        let role = self.role.map(|role| match role {
            ObjectRole::Patient => "1",
            ObjectRole::Report => "3",
            ObjectRole::SecurityResource => "13",
        });
        xml.open(
            "ParticipantObjectIdentification",
            &[
                ("ParticipantObjectID", Some(&self.id)),
                ("ParticipantObjectTypeCode", Some(object_type)),
                ("ParticipantObjectTypeCodeRole", role),
            ],
        );
        xml.code("ParticipantObjectIDTypeCode", &self.id_type);
        match &self.naming {
            Naming::Name(name) => {
                xml.open("ParticipantObjectName", &[]);
                xml.text(name);
                xml.close("ParticipantObjectName");
            }
            Naming::Query(query) => {
                xml.open("ParticipantObjectQuery", &[]);
                xml.text(&BASE64.encode(query));
                xml.close("ParticipantObjectQuery");
            }
        }
        for detail in &self.details {
            let value = BASE64.encode(&detail.value);
            xml.empty("ParticipantObjectDetail", &[("type", Some(&detail.kind)), ("value", Some(&value))]);
        }
        if !self.accessions.is_empty() || !self.sop_classes.is_empty() {
            xml.open("ParticipantObjectDescription", &[]);
            for accession in &self.accessions {
                xml.empty("Accession", &[("Number", Some(accession))]);
            }
            for class in &self.sop_classes {
                let count = class.instances.to_string();
                xml.empty("SOPClass", &[("UID", class.uid.as_deref()), ("NumberOfInstances", Some(&count))]);
            }
            xml.close("ParticipantObjectDescription");
        }
        xml.close("ParticipantObjectIdentification");
    }
}

/// A minimal XML writer: elements, attributes and text, every value escaped.
#[derive(Default)]
struct Xml {
    out: String,
}

impl Xml {
    fn start(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            if let Some(value) = value {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape(&mut self.out, value, true);
                self.out.push('"');
            }
        }
    }

    fn open(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.start(name, attributes);
        self.out.push('>');
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.start(name, attributes);
        self.out.push_str("/>");
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn text(&mut self, text: &str) {
        escape(&mut self.out, text, false);
    }

    fn code(&mut self, name: &str, code: &Code) {
        self.empty(
            name,
            &[
                ("csd-code", Some(&code.code)),
                ("codeSystemName", Some(&code.system)),
                ("originalText", Some(&code.meaning)),
            ],
        );
    }
}

/// Escapes `text` for XML 1.0 content (`attribute` false) or a double-quoted
/// attribute value. Characters XML 1.0 forbids everywhere become U+FFFD;
/// tab, line feed and carriage return become character references, which
/// keeps the message on one line and keeps them in attribute values (a
/// parser turns a literal one into a space there).
/// Texts longer than this many characters are cut, saying how much was
/// left out: a PACS's 70,000-character patient name must not make a
/// record that a repository truncates into XML that does not parse.
const MOST_CHARACTERS: usize = 1024;

fn escape(out: &mut String, text: &str, attribute: bool) {
    let total = text.chars().count();
    let text: String = if total > MOST_CHARACTERS {
        let kept: String = text.chars().take(MOST_CHARACTERS).collect();
        format!("{kept}... ({} more characters)", total - MOST_CHARACTERS)
    } else {
        text.to_string()
    };
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // Always: `]]>` may not appear in content.
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// XML 1.0's Char production, less tab, LF and CR (escaped above) and
/// less DEL and the C1 controls: XML 1.0 allows those but discourages them,
/// and a syslog relay may rewrite them (rsyslog escapes DEL on receipt),
/// which would change the record on its way.
fn allowed_in_xml(c: char) -> bool {
    !c.is_control()
        && matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use quick_xml::events::Event as XmlEvent;

    use super::*;
    use crate::failure::RelayCounts;

    /// An element as the tests read it back.
    #[derive(Debug, Default)]
    struct Element {
        name: String,
        attributes: BTreeMap<String, String>,
        text: String,
        children: Vec<Element>,
    }

    impl Element {
        fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }
        fn one(&self, name: &str) -> &Element {
            let found: Vec<&Element> = self.children.iter().filter(|c| c.name == name).collect();
            assert_eq!(found.len(), 1, "one {name} in {}", self.name);
            found[0]
        }
        fn attr(&self, name: &str) -> &str {
            self.attributes.get(name).map_or_else(|| panic!("{} has no {name}", self.name), String::as_str)
        }
        fn code(&self) -> (&str, &str, &str) {
            (self.attr("csd-code"), self.attr("codeSystemName"), self.attr("originalText"))
        }
        fn roles(&self) -> Vec<&str> {
            self.all("RoleIDCode").map(|r| r.attr("csd-code")).collect()
        }
    }

    /// Reads the XML back with quick-xml, references resolved.
    fn parse(xml: &str) -> Element {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack = vec![Element::default()];
        let element = |start: &quick_xml::events::BytesStart| Element {
            name: start.name().as_ref().to_string(),
            attributes: start
                .attributes()
                .map(|a| {
                    let a = a.expect("attribute");
                    let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0).expect("value");
                    (a.key.as_ref().to_string(), value.into_owned())
                })
                .collect(),
            ..Element::default()
        };
        loop {
            match reader.read_event().expect("well-formed XML") {
                XmlEvent::Start(start) => stack.push(element(&start)),
                XmlEvent::Empty(start) => {
                    let done = element(&start);
                    stack.last_mut().expect("parent").children.push(done);
                }
                XmlEvent::Text(text) => stack.last_mut().expect("open").text.push_str(&text.xml10_content()),
                XmlEvent::GeneralRef(reference) => {
                    let c = match reference.resolve_char_ref().expect("char ref") {
                        Some(c) => c.to_string(),
                        None => match &*reference {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "quot" => "\"".into(),
                            other => panic!("entity {other}"),
                        },
                    };
                    stack.last_mut().expect("open").text.push_str(&c);
                }
                XmlEvent::End(_) => {
                    let done = stack.pop().expect("open");
                    stack.last_mut().expect("parent").children.push(done);
                }
                XmlEvent::Eof => break,
                _ => {}
            }
        }
        let mut document = stack.pop().expect("document");
        assert_eq!(document.children.len(), 1, "one root");
        document.children.remove(0)
    }

    fn time() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_795_816_245_123_456)
    }

    fn reporter() -> Reporter {
        Reporter {
            job: "0123456789abcdef".into(),
            host: "ws1.radiology.example".into(),
            ae_title: Some("PACS2CD".into()),
            source_type: SourceType::ApplicationServer,
            site: None,
        }
    }

    fn technician() -> Requester {
        Requester::Local { login: "alice".into(), uid: 1001, sudo_user: Some("bob".into()) }
    }

    fn his_client() -> Requester {
        Requester::Web { client: "10.1.2.3".into(), token_label: Some("his".into()) }
    }

    fn pacs() -> Node {
        Node { ae_title: Some("ORTHANC".into()), host: "10.0.0.5".into(), port: 4242 }
    }

    fn publisher() -> Node {
        Node { ae_title: Some("CDRECORD".into()), host: "172.16.0.120".into(), port: 104 }
    }

    /// Every character a name can bring: markup, quotes, line ends, tab,
    /// C0 and C1 controls, ESC of ISO 2022, non-Latin scripts, an emoji.
    const NASTY: &str = "O'Brien <&> \"Dr\"\t\r\n\u{1}\u{1b}$B\u{7f}\u{85}^山田^Ærø 😀 ]]>";

    fn patient() -> Patient {
        Patient { id: "PID^001&x".into(), issuer: Some("HOSP~A".into()), name: NASTY.into() }
    }

    fn study() -> Study {
        Study {
            uid: "1.2.840.113619.2.55.3.604688119.969.1268071029.320".into(),
            description: Some("CT <chest> & abdomen".into()),
            accessions: vec!["ACC001".into()],
            sop_classes: vec![
                SopClass { uid: Some("1.2.840.10008.5.1.4.1.1.2".into()), instances: 40 },
                SopClass { uid: Some("1.2.840.10008.5.1.4.1.1.7".into()), instances: 2 },
            ],
        }
    }

    fn find_keys() -> Vec<QueryKey> {
        vec![
            QueryKey::new(0x0020_000D, "UI", ""),
            QueryKey::new(0x0008_0052, "CS", "STUDY"),
            QueryKey::new(0x0008_0050, "SH", "ACC001"),
            QueryKey::new(0x0010_0010, "PN", ""),
        ]
    }

    /// One of each kind of message pacs2cd writes, with hostile text.
    fn every_kind() -> Vec<(&'static str, AuditMessage)> {
        let failure = Failure::partial_relay(
            "172.16.0.120:104",
            "2 of 42 files were not accepted",
            RelayCounts::default(),
        );
        vec![
            ("application start", application(&reporter(), &technician(), true, Outcome::success(), time())),
            (
                "application stop",
                application(&reporter(), &his_client(), false, Outcome::failed(&failure), time()),
            ),
            (
                "query",
                query(
                    &reporter(),
                    &technician(),
                    &pacs(),
                    &Query::Dicom { sop_class: STUDY_ROOT_FIND.into(), keys: find_keys() },
                    Outcome::success(),
                    time(),
                ),
            ),
            (
                "query over http",
                query(
                    &reporter(),
                    &his_client(),
                    &Node { ae_title: None, host: "his.example".into(), port: 443 },
                    &Query::Http { url: "https://his.example/api/patient?accession=ACC001&x=<1>".into() },
                    Outcome::success(),
                    time(),
                ),
            ),
            (
                "retrieve",
                retrieve(
                    &reporter(),
                    &technician(),
                    &pacs(),
                    &patient(),
                    &[study()],
                    Outcome::success(),
                    time(),
                ),
            ),
            (
                "export to the publisher",
                export(
                    &reporter(),
                    &technician(),
                    &ExportTarget::Publisher { node: publisher(), disc: Disc::CdOrDvd },
                    &[patient()],
                    &[study()],
                    Outcome::failed(&failure),
                    time(),
                ),
            ),
            (
                "export to an ISO image",
                export(
                    &reporter(),
                    &technician(),
                    &ExportTarget::Iso("/srv/discs/DOE JOHN-ACC001.iso".into()),
                    &[patient()],
                    &[study()],
                    Outcome::success(),
                    time(),
                ),
            ),
            (
                "export as a download",
                export(
                    &Reporter { source_type: SourceType::WebServer, ae_title: None, ..reporter() },
                    &his_client(),
                    &ExportTarget::Download { client: "10.1.2.3".into(), url: None },
                    &[patient()],
                    &[Study { description: None, sop_classes: Vec::new(), ..study() }],
                    Outcome::success(),
                    time(),
                ),
            ),
            (
                "refused connection",
                refused_connection(
                    &reporter(),
                    "10.9.9.9",
                    "connection to the move port refused: not the PACS's address; 3 more not reported",
                    Outcome { indicator: Indicator::MinorFailure, description: Some("refused".into()) },
                    time(),
                ),
            ),
            (
                "refused token",
                refused_token(
                    &Reporter { source_type: SourceType::WebServer, ae_title: None, ..reporter() },
                    "10.1.2.3",
                    None,
                    Outcome::failed(&Failure::unauthorized()),
                    time(),
                ),
            ),
        ]
    }

    /// The schema of PS3.15 A.5.1 (tests/data/audit/README.md says whence).
    fn schema() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audit/dicom-audit-message.rng")
    }

    #[test]
    fn every_kind_of_message_is_valid_against_the_standards_schema() {
        let Ok(xmllint) = which::which("xmllint") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "xmllint is not installed: apt-get install libxml2-utils (scripts/deps --test)"
            );
            eprintln!("skipped: xmllint is not installed (apt-get install libxml2-utils)");
            return;
        };
        let dir = tempfile::tempdir().expect("dir");
        for (kind, message) in every_kind() {
            let file = dir.path().join(format!("{}.xml", kind.replace(' ', "-")));
            std::fs::write(&file, message.to_xml()).expect("write");
            let out = std::process::Command::new(&xmllint)
                .arg("--noout")
                .arg("--relaxng")
                .arg(schema())
                .arg(&file)
                .output()
                .expect("xmllint runs");
            assert!(
                out.status.success(),
                "{kind}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                message.to_xml()
            );
        }
        // And the schema does refuse: a message without its source.
        let mut broken = every_kind().remove(0).1.to_xml();
        let start = broken.find("<AuditSourceIdentification").expect("source");
        let end =
            broken.find("</AuditSourceIdentification>").expect("end") + "</AuditSourceIdentification>".len();
        broken.replace_range(start..end, "");
        let file = dir.path().join("broken.xml");
        std::fs::write(&file, broken).expect("write");
        let out = std::process::Command::new(&xmllint)
            .arg("--noout")
            .arg("--relaxng")
            .arg(schema())
            .arg(&file)
            .output()
            .expect("xmllint runs");
        assert!(!out.status.success(), "a message without AuditSourceIdentification passed the schema");
    }

    #[test]
    fn any_text_stays_well_formed_on_one_line() {
        for (kind, message) in every_kind() {
            let xml = message.to_xml();
            assert!(!xml.contains(['\n', '\r', '\t']), "{kind}: one line");
            assert!(!xml.chars().any(|c| c.is_control()), "{kind}: no raw control character");
            parse(&xml);
        }
        let xml =
            retrieve(&reporter(), &technician(), &pacs(), &patient(), &[study()], Outcome::success(), time())
                .to_xml();
        let read = parse(&xml);
        let patient = read.all("ParticipantObjectIdentification").last().expect("patient");
        // What XML can carry comes back as it was (tab and line ends too);
        // control characters (ESC, DEL, C1) come back as U+FFFD.
        let expected = NASTY.replace(['\u{1}', '\u{1b}', '\u{7f}', '\u{85}'], "\u{FFFD}");
        assert_eq!(patient.one("ParticipantObjectName").text, expected);
        let escaped = escape_for_test("a\"b\tc\nd");
        assert_eq!(escaped, "a&quot;b&#9;c&#10;d");
        let user = parse(
            &refused_token(&reporter(), "10.1.2.3", Some("a\"b\tc\nd<"), Outcome::success(), time()).to_xml(),
        );
        // A tab or line end in an attribute survives as itself (a literal
        // one would be read back as a space).
        assert_eq!(user.all("ActiveParticipant").next().expect("user").attr("UserID"), "a\"b\tc\nd<");
    }

    fn escape_for_test(text: &str) -> String {
        let mut out = String::new();
        escape(&mut out, text, true);
        out
    }

    #[test]
    fn a_huge_name_is_cut_and_says_so() {
        let name = format!("{}^B", "A".repeat(70_000));
        let cut = escape_for_test(&name);
        assert_eq!(cut.len(), MOST_CHARACTERS + "... (68978 more characters)".len(), "{}", &cut[1000..]);
        assert!(cut.ends_with("... (68978 more characters)"));
        assert_eq!(escape_for_test("DOE^JOHN"), "DOE^JOHN");
    }

    #[test]
    fn the_event_says_what_when_and_how_it_ended() {
        let failure = Failure::partial_relay(
            "172.16.0.120:104",
            "2 of 42 files were not accepted",
            RelayCounts::default(),
        );
        let message = export(
            &reporter(),
            &technician(),
            &ExportTarget::Publisher { node: publisher(), disc: Disc::Cd },
            &[patient()],
            &[study()],
            Outcome::failed(&failure),
            time(),
        );
        let read = parse(&message.to_xml());
        assert_eq!(read.name, "AuditMessage");
        let event = read.one("EventIdentification");
        assert_eq!(event.one("EventID").code(), ("110106", "DCM", "Export"));
        assert_eq!(event.attr("EventActionCode"), "R");
        assert_eq!(event.attr("EventDateTime"), "2026-11-27T21:50:45.123456Z");
        assert_eq!(event.attr("EventOutcomeIndicator"), "8");
        assert_eq!(
            event.one("EventOutcomeDescription").text,
            "partial relay: 2 of 42 files were not accepted",
            "the error table's words, then the detail"
        );
        let source = read.one("AuditSourceIdentification");
        assert_eq!(source.attr("AuditSourceID"), "ws1.radiology.example");
        assert_eq!(source.one("AuditSourceTypeCode").attr("csd-code"), "4");
    }

    #[test]
    fn outcomes_follow_the_error_table() {
        assert_eq!(Outcome::success(), Outcome { indicator: Indicator::Success, description: None });
        assert_eq!(Indicator::of(Class::InvalidAccession), Indicator::MinorFailure);
        assert_eq!(Indicator::of(Class::Busy), Indicator::MinorFailure);
        assert_eq!(Indicator::of(Class::PacsUnreachable), Indicator::SeriousFailure);
        assert_eq!(Indicator::of(Class::PartialRelay), Indicator::SeriousFailure);
        assert_eq!(Indicator::of(Class::Interrupted(15)), Indicator::SeriousFailure);
        assert_eq!(Indicator::of(Class::Configuration), Indicator::MajorFailure);
        let codes: Vec<&str> =
            [Indicator::Success, Indicator::MinorFailure, Indicator::SeriousFailure, Indicator::MajorFailure]
                .iter()
                .map(|i| i.code())
                .collect();
        assert_eq!(codes, ["0", "4", "8", "12"]);
        let kinds = every_kind();
        let severities: Vec<super::super::syslog::Severity> =
            kinds.iter().map(|(_, m)| m.severity()).collect();
        use super::super::syslog::Severity::{Notice, Warning};
        assert_eq!(
            severities,
            [Notice, Warning, Notice, Notice, Notice, Warning, Notice, Notice, Warning, Warning]
        );
        let outcome =
            Outcome::of(Err(&Failure::pacs_unreachable("PACS 10.0.0.5:4242 refused the association")));
        assert_eq!(
            outcome.description.as_deref(),
            Some("PACS unreachable: PACS 10.0.0.5:4242 refused the association")
        );
    }

    #[test]
    fn a_query_holds_the_c_find_identifier_and_its_transfer_syntax() {
        let message = query(
            &reporter(),
            &technician(),
            &pacs(),
            &Query::Dicom { sop_class: STUDY_ROOT_FIND.into(), keys: find_keys() },
            Outcome::success(),
            time(),
        );
        let read = parse(&message.to_xml());
        let event = read.one("EventIdentification");
        assert_eq!(event.one("EventID").code(), ("110112", "DCM", "Query"));
        assert_eq!(event.attr("EventActionCode"), "E");
        let participants: Vec<&Element> = read.all("ActiveParticipant").collect();
        assert_eq!(participants.len(), 3);
        // pacs2cd asks (Source), the PACS answers (Destination), the
        // technician is the one requestor.
        assert_eq!(participants[0].attr("UserID"), "0123456789abcdef", "the job id");
        assert_eq!(participants[0].attr("UserName"), "pacs2cd");
        assert_eq!(participants[0].attr("AlternativeUserID"), "AETITLES=PACS2CD");
        assert_eq!(participants[0].roles(), ["110153"]);
        assert_eq!(participants[1].attr("UserID"), "ORTHANC");
        assert_eq!(participants[1].attr("NetworkAccessPointID"), "10.0.0.5");
        assert_eq!(participants[1].attr("NetworkAccessPointTypeCode"), "2");
        assert_eq!(participants[1].roles(), ["110152"]);
        assert_eq!(participants[2].attr("UserID"), "alice@ws1.radiology.example");
        assert_eq!(participants[2].attr("UserName"), "alice (uid 1001; SUDO_USER=bob)");
        let requestors: Vec<&str> = participants.iter().map(|p| p.attr("UserIsRequestor")).collect();
        assert_eq!(requestors, ["false", "false", "true"]);
        let object = read.one("ParticipantObjectIdentification");
        assert_eq!(object.attr("ParticipantObjectID"), STUDY_ROOT_FIND);
        assert_eq!(object.attr("ParticipantObjectTypeCode"), "2");
        assert_eq!(object.attr("ParticipantObjectTypeCodeRole"), "3");
        assert_eq!(object.one("ParticipantObjectIDTypeCode").code(), ("110181", "DCM", "SOP Class UID"));
        let query = BASE64.decode(&object.one("ParticipantObjectQuery").text).expect("base64");
        assert_eq!(query, encode_identifier(&find_keys()));
        let detail = object.one("ParticipantObjectDetail");
        assert_eq!(detail.attr("type"), "TransferSyntax");
        assert_eq!(
            BASE64.decode(detail.attr("value")).expect("base64"),
            EXPLICIT_VR_LITTLE_ENDIAN.as_bytes()
        );
    }

    #[test]
    fn identifiers_are_encoded_as_dicom_writes_them() {
        let bytes = encode_identifier(&find_keys());
        let expected: Vec<u8> = [
            // (0008,0050) SH "ACC001"
            &[0x08, 0x00, 0x50, 0x00, b'S', b'H', 6, 0][..],
            b"ACC001",
            // (0008,0052) CS "STUDY " (padded to even with a space)
            &[0x08, 0x00, 0x52, 0x00, b'C', b'S', 6, 0],
            b"STUDY ",
            // (0010,0010) PN, empty: a return key
            &[0x10, 0x00, 0x10, 0x00, b'P', b'N', 0, 0],
            // (0020,000D) UI, empty
            &[0x20, 0x00, 0x0D, 0x00, b'U', b'I', 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
        // A UID pads with NUL; a value that is not ASCII brings its
        // character set; one too long for 16 bits becomes UN, whole.
        let uid = encode_identifier(&[QueryKey::new(0x0020_000D, "UI", "1.2.3")]);
        assert_eq!(&uid[8..], b"1.2.3\0");
        let named = encode_identifier(&[QueryKey::new(0x0010_0010, "PN", "MÜLLER")]);
        assert_eq!(&named[..8], &[0x08, 0x00, 0x05, 0x00, b'C', b'S', 10, 0]);
        assert_eq!(&named[8..18], b"ISO_IR 192");
        let long = "x".repeat(70_000);
        let un = encode_identifier(&[QueryKey::new(0x0008_1030, "LO", &long)]);
        assert_eq!(&un[4..8], b"UN\0\0");
        assert_eq!(u32::from_le_bytes([un[8], un[9], un[10], un[11]]), 70_000);
        assert_eq!(un.len(), 12 + 70_000);
    }

    #[test]
    fn a_retrieve_names_the_pacs_as_source_and_this_host_as_destination() {
        let message =
            retrieve(&reporter(), &technician(), &pacs(), &patient(), &[study()], Outcome::success(), time());
        let read = parse(&message.to_xml());
        assert_eq!(
            read.one("EventIdentification").one("EventID").code(),
            ("110104", "DCM", "DICOM Instances Transferred")
        );
        assert_eq!(read.one("EventIdentification").attr("EventActionCode"), "C");
        let participants: Vec<&Element> = read.all("ActiveParticipant").collect();
        assert_eq!((participants[0].attr("UserID"), participants[0].roles()), ("ORTHANC", vec!["110153"]));
        assert_eq!(participants[0].attr("AlternativeUserID"), "AETITLES=ORTHANC");
        assert_eq!(
            (participants[1].attr("UserID"), participants[1].roles()),
            ("0123456789abcdef", vec!["110152"])
        );
        assert_eq!(participants[1].attr("NetworkAccessPointID"), "ws1.radiology.example");
        assert_eq!(participants[1].attr("NetworkAccessPointTypeCode"), "1");
        assert_eq!(participants[2].attr("UserIsRequestor"), "true");
        let objects: Vec<&Element> = read.all("ParticipantObjectIdentification").collect();
        assert_eq!(objects.len(), 2);
        let study = objects[0];
        assert_eq!(study.attr("ParticipantObjectID"), "1.2.840.113619.2.55.3.604688119.969.1268071029.320");
        assert_eq!(
            (study.attr("ParticipantObjectTypeCode"), study.attr("ParticipantObjectTypeCodeRole")),
            ("2", "3")
        );
        assert_eq!(study.one("ParticipantObjectIDTypeCode").code(), ("110180", "DCM", "Study Instance UID"));
        assert_eq!(study.one("ParticipantObjectName").text, "CT <chest> & abdomen");
        let description = study.one("ParticipantObjectDescription");
        assert_eq!(description.one("Accession").attr("Number"), "ACC001");
        let classes: Vec<(&str, &str)> =
            description.all("SOPClass").map(|c| (c.attr("UID"), c.attr("NumberOfInstances"))).collect();
        assert_eq!(classes, [("1.2.840.10008.5.1.4.1.1.2", "40"), ("1.2.840.10008.5.1.4.1.1.7", "2")]);
        let patient = objects[1];
        assert_eq!(
            (patient.attr("ParticipantObjectTypeCode"), patient.attr("ParticipantObjectTypeCodeRole")),
            ("1", "1")
        );
        assert_eq!(patient.one("ParticipantObjectIDTypeCode").code(), ("2", "RFC-3881", "Patient Number"));
        assert_eq!(patient.attr("ParticipantObjectID"), "PID\\S\\001\\T\\x^^^HOSP\\R\\A");
    }

    #[test]
    fn patient_ids_are_hl7_cx_with_their_issuer() {
        let cx = |id: &str, issuer: Option<&str>| {
            patient_cx(&Patient { id: id.into(), issuer: issuer.map(Into::into), name: String::new() })
        };
        assert_eq!(cx("PID001", Some("HOSP")), "PID001^^^HOSP");
        assert_eq!(cx("PID001", None), "PID001");
        assert_eq!(cx("PID001", Some("  ")), "PID001");
        // An ID cannot forge an issuer, nor a component of one.
        assert_eq!(cx("A^^^EVIL", None), "A\\S\\\\S\\\\S\\EVIL");
        assert_eq!(cx("a\\b|c", Some("x&y")), "a\\E\\b\\F\\c^^^x\\T\\y");
    }

    #[test]
    fn an_export_to_the_publisher_names_the_disc_and_its_maker() {
        let message = export(
            &reporter(),
            &technician(),
            &ExportTarget::Publisher { node: publisher(), disc: Disc::Dvd },
            &[patient(), Patient { id: "PID002".into(), issuer: None, name: "ROE^JANE".into() }],
            &[study()],
            Outcome::success(),
            time(),
        );
        let read = parse(&message.to_xml());
        let participants: Vec<&Element> = read.all("ActiveParticipant").collect();
        assert_eq!(participants.len(), 4);
        let publisher = participants[0];
        assert_eq!((publisher.attr("UserID"), publisher.roles()), ("CDRECORD", vec!["110152"]));
        assert_eq!(publisher.attr("NetworkAccessPointID"), "172.16.0.120");
        assert_eq!(participants[1].roles(), ["110153"], "pacs2cd exports");
        assert_eq!(
            (participants[2].roles(), participants[2].attr("UserIsRequestor")),
            (vec!["110153"], "true")
        );
        let media = participants[3];
        assert_eq!(media.roles(), ["110154"]);
        assert_eq!(media.attr("UserIsRequestor"), "false");
        assert_eq!(media.attr("UserID"), "DVD written by the publisher CDRECORD at 172.16.0.120:104");
        assert_eq!(media.one("MediaIdentifier").one("MediaType").code(), ("110033", "DCM", "DVD"));
        let ids: Vec<&str> = read
            .all("ParticipantObjectIdentification")
            .map(|o| o.attr("ParticipantObjectTypeCodeRole"))
            .collect();
        assert_eq!(ids, ["3", "1", "1"], "the study, then both patients");
        assert_eq!(
            message.participants.iter().filter(|p| p.requestor).count(),
            1,
            "one requestor per message"
        );
    }

    #[test]
    fn exports_to_files_and_downloads_name_their_media() {
        let read = parse(
            &export(
                &reporter(),
                &technician(),
                &ExportTarget::Iso("/srv/discs/DOE JOHN+1.iso".into()),
                &[patient()],
                &[],
                Outcome::success(),
                time(),
            )
            .to_xml(),
        );
        let media = read.all("ActiveParticipant").last().expect("media");
        assert_eq!(media.attr("UserID"), "file:///srv/discs/DOE%20JOHN%2B1.iso");
        assert_eq!(media.one("MediaIdentifier").one("MediaType").code(), ("110037", "DCM", "URI"));
        assert!(
            !read.all("ActiveParticipant").any(|p| p.roles() == ["110152"]),
            "nobody remote receives a file"
        );

        let message = export(
            &Reporter { source_type: SourceType::WebServer, ..reporter() },
            &his_client(),
            &ExportTarget::Download {
                client: "10.1.2.3".into(),
                url: Some("https://pacs2cd.example/api/iso/print?accession_number=ACC001".into()),
            },
            &[patient()],
            &[study()],
            Outcome::success(),
            time(),
        );
        let read = parse(&message.to_xml());
        let participants: Vec<&Element> = read.all("ActiveParticipant").collect();
        assert_eq!(participants.len(), 3, "pacs2cd, the HIS client (asks and receives), the media");
        let client = participants[1];
        assert_eq!(client.attr("UserID"), "his", "the token's label");
        assert_eq!(client.attr("UserName"), "web client at 10.1.2.3, token his");
        assert_eq!(client.attr("NetworkAccessPointID"), "10.1.2.3");
        assert_eq!((client.roles(), client.attr("UserIsRequestor")), (vec!["110152"], "true"));
        let media = participants[2];
        assert_eq!(media.attr("NetworkAccessPointID"), "10.1.2.3", "required for a network destination");
        assert_eq!(read.one("AuditSourceIdentification").one("AuditSourceTypeCode").attr("csd-code"), "3");
    }

    #[test]
    fn refusals_are_security_alerts_and_failed_logins() {
        let alert = parse(
            &refused_connection(
                &reporter(),
                "10.9.9.9",
                "connection to the move port refused",
                Outcome { indicator: Indicator::MinorFailure, description: None },
                time(),
            )
            .to_xml(),
        );
        let event = alert.one("EventIdentification");
        assert_eq!(event.one("EventID").code(), ("110113", "DCM", "Security Alert"));
        assert_eq!(event.one("EventTypeCode").code(), ("110126", "DCM", "Node Authentication"));
        assert_eq!((event.attr("EventActionCode"), event.attr("EventOutcomeIndicator")), ("E", "4"));
        assert!(alert.all("ActiveParticipant").all(|p| p.attr("UserIsRequestor") == "false"));
        assert_eq!(alert.all("ActiveParticipant").next().expect("us").attr("UserID"), "0123456789abcdef");
        let subject = alert.one("ParticipantObjectIdentification");
        assert_eq!(subject.one("ParticipantObjectIDTypeCode").code(), ("110182", "DCM", "Node ID"));
        assert_eq!(subject.attr("ParticipantObjectID"), "10.9.9.9");
        let detail = subject.one("ParticipantObjectDetail");
        assert_eq!(detail.attr("type"), "Alert Description");
        assert_eq!(
            BASE64.decode(detail.attr("value")).expect("base64"),
            b"connection to the move port refused"
        );

        let login = parse(
            &refused_token(&reporter(), "10.1.2.3", None, Outcome::failed(&Failure::unauthorized()), time())
                .to_xml(),
        );
        let event = login.one("EventIdentification");
        assert_eq!(event.one("EventID").code(), ("110114", "DCM", "User Authentication"));
        assert_eq!(event.one("EventTypeCode").code(), ("110122", "DCM", "Login"));
        assert_eq!(event.attr("EventOutcomeIndicator"), "4");
        assert!(event.one("EventOutcomeDescription").text.starts_with("unauthorized"));
        let participants: Vec<&Element> = login.all("ActiveParticipant").collect();
        assert_eq!(participants[0].attr("UserID"), "unknown");
        assert_eq!(participants[0].attr("NetworkAccessPointID"), "10.1.2.3");
        assert_eq!(participants[0].attr("NetworkAccessPointTypeCode"), "2");
        assert_eq!(participants[1].attr("UserID"), "0123456789abcdef", "the job id, also here");
        assert_eq!(login.all("ParticipantObjectIdentification").count(), 0);
    }

    #[test]
    fn file_uris_escape_what_a_uri_cannot_hold() {
        assert_eq!(file_uri(Path::new("/a b/ü?#%.iso")), "file:///a%20b/%C3%BC%3F%23%25.iso");
    }
}
