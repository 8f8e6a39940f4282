//! The TOML configuration: its structs (unknown keys are errors) and their
//! defaults. `load` finds and reads the file and checks the values; `values`
//! holds the deserializers that say in words what a key expects.

mod load;
mod values;

use std::path::PathBuf;

use serde::Deserialize;

pub use load::{Discovery, Origin, is_within, load};

/// The longest any `*_secs` key may be: a day. Beyond it a value is a typo
/// (and a deadline that far away overflows the clock).
pub const MAX_SECS: u64 = 24 * 3600;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of the private per-job staging folders and the retrieve lock.
    pub staging_dir: PathBuf,
    /// The group that shares a staging root (technicians, the web service).
    pub staging_group: String,
    #[serde(deserialize_with = "values::seconds_or_zero")]
    pub lock_wait_secs: u64,
    /// Free space the staging root must have before a retrieve (MB).
    pub staging_min_free_mb: u64,
    /// `""` or unset: no audit log.
    #[serde(deserialize_with = "values::optional_path")]
    pub audit_log: Option<PathBuf>,
    /// Where the DICOM audit messages go: "local" (/dev/log), tcp://,
    /// tls://, udp:// repositories; [] for none.
    pub audit_syslog: Vec<crate::audit::syslog::Destination>,
    /// The CA and client certificate for tls:// repositories.
    pub audit_tls: crate::audit::syslog::AuditTls,
    pub pacs: Pacs,
    pub cd_publisher: CdPublisher,
    pub patient: Patient,
    pub tools: Tools,
    pub cgi: Cgi,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // Not /var/tmp: a folder every local user can write is where
            // someone else can plant a staging root first.
            staging_dir: PathBuf::from("/var/lib/pacs2cd/staging"),
            staging_group: "pacs2cd".into(),
            lock_wait_secs: 300,
            staging_min_free_mb: 500,
            audit_log: None,
            audit_syslog: crate::audit::syslog::default_destinations(),
            audit_tls: crate::audit::syslog::AuditTls::default(),
            pacs: Pacs::default(),
            cd_publisher: CdPublisher::default(),
            patient: Patient::default(),
            tools: Tools::default(),
            cgi: Cgi::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Retrieve {
    Move,
    Get,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Study,
    LegacyModalities,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pacs {
    pub host: Option<String>,
    #[serde(deserialize_with = "values::port")]
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    /// Unset: 11112 for C-MOVE; with C-GET, no C-MOVE at all (see
    /// `job::Pacs::move_fallback`).
    #[serde(deserialize_with = "values::optional_port")]
    pub move_port: Option<u16>,
    /// Further addresses (or host names) the PACS delivers C-MOVEs from
    /// (a cluster's other nodes); `host`'s addresses always may.
    pub move_from: Vec<String>,
    pub retrieve: Retrieve,
    pub strategy: Strategy,
    pub modalities: Vec<String>,
    /// Accept a retrieve that nothing can prove complete (a PACS that gives
    /// neither an instance list nor image counts).
    pub allow_unproven: bool,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_connect_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_acse_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_dimse_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_total_secs: u64,
}

/// The move port when `pacs.move_port` is not set.
pub const DEFAULT_MOVE_PORT: u16 = 11112;

/// The legacy script's list, kept in its order.
pub const LEGACY_MODALITIES: [&str; 14] =
    ["CR", "CT", "MR", "US", "XA", "DX", "MG", "NM", "PT", "RF", "OT", "SC", "ES", "DR"];

impl Default for Pacs {
    fn default() -> Pacs {
        Pacs {
            host: None,
            port: 104,
            called_ae: "ANY-SCP".into(),
            calling_ae: "PACS2CD".into(),
            move_port: None,
            move_from: Vec::new(),
            retrieve: Retrieve::Move,
            strategy: Strategy::Study,
            modalities: LEGACY_MODALITIES.iter().map(|m| m.to_string()).collect(),
            allow_unproven: false,
            timeout_connect_secs: 10,
            timeout_acse_secs: 30,
            timeout_dimse_secs: 60,
            timeout_total_secs: 1800,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    Dcmsend,
    Storescu,
}

/// How the robot takes a disc: DICOM images sent to a gateway, or a job
/// file dropped in a watched folder (docs: ../shared/ROBOTS.md).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PublisherKind {
    #[default]
    Dicom,
    /// Epson Discproducer through TD Bridge (`.JDF` job files).
    EpsonTdbridge,
    /// Primera Bravo through the PTBurn SDK (`.JRQ` job files).
    PrimeraPtburn,
}

impl PublisherKind {
    pub fn is_hot_folder(self) -> bool {
        self != PublisherKind::Dicom
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PublisherKind::Dicom => "dicom",
            PublisherKind::EpsonTdbridge => "epson-tdbridge",
            PublisherKind::PrimeraPtburn => "primera-ptburn",
        }
    }
}

/// A disc medium a hot-folder robot may burn, smallest first.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Medium {
    #[serde(rename = "CD")]
    Cd,
    #[serde(rename = "DVD")]
    Dvd,
    #[serde(rename = "DVD-DL")]
    DvdDl,
    #[serde(rename = "BD")]
    Bd,
}

impl Medium {
    /// The robots' own word for it (TD Bridge `DISC_TYPE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Cd => "CD",
            Medium::Dvd => "DVD",
            Medium::DvdDl => "DVD-DL",
            Medium::Bd => "BD",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdPublisher {
    /// "dicom" (the default), "epson-tdbridge" or "primera-ptburn".
    pub kind: PublisherKind,
    /// What technicians and HIS users call the robot ("Rimage 2000i").
    pub name: String,
    /// No default: a publisher is a site's own machine, and a default
    /// address would send patients' images somewhere nobody chose.
    pub host: Option<String>,
    #[serde(deserialize_with = "values::port")]
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub sender: Sender,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_connect_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_acse_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_dimse_secs: u64,
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_total_secs: u64,
    /// Hot-folder kinds: the folder the robot's software watches for job files.
    #[serde(deserialize_with = "values::optional_path")]
    pub hot_folder: Option<PathBuf>,
    /// Hot-folder kinds: where pacs2cd places each job's disc content
    /// (on the same share as hot_folder).
    #[serde(deserialize_with = "values::optional_path")]
    pub data_folder: Option<PathBuf>,
    /// How the robot's PC spells data_folder (`\\PACSHOST\discs`); unset
    /// when it is the same path.
    #[serde(deserialize_with = "values::optional_text")]
    pub robot_path: Option<String>,
    /// TD Bridge: the TDBStatus.txt file; PTBurn: the Status folder.
    #[serde(deserialize_with = "values::optional_path")]
    pub status: Option<PathBuf>,
    /// How long a job is followed at the robot; 0: until the robot took it.
    #[serde(deserialize_with = "values::seconds_or_zero")]
    pub wait_secs: u64,
    #[serde(deserialize_with = "values::copies")]
    pub copies: u32,
    /// The media the robot has loaded; the smallest that holds a disc is chosen.
    pub media: Vec<Medium>,
    /// What a CD holds here, in MB (650 or 700 by the blanks bought).
    #[serde(deserialize_with = "values::cd_mb")]
    pub cd_mb: u64,
    /// The robot's name for the publisher (TD Bridge PUBLISHER, PTBurn
    /// RobotName); unset: whichever the robot's software chooses.
    #[serde(deserialize_with = "values::optional_text")]
    pub robot_name: Option<String>,
    /// The label design file, as the robot's PC spells it; unset: no print.
    #[serde(deserialize_with = "values::optional_text")]
    pub label: Option<String>,
    /// Read the disc back after burning.
    pub verify: bool,
    /// Who makes the discs, on the label and in README.TXT.
    pub institution: String,
    /// The account the robot's share writes as, when it owns the hot and
    /// data folders (the robot renames its job files: in a sticky folder
    /// only the folder's owner, a file's owner or root may); unset: the
    /// folders are root's or this account's.
    #[serde(deserialize_with = "values::optional_text")]
    pub robot_user: Option<String>,
}

impl Default for CdPublisher {
    fn default() -> CdPublisher {
        CdPublisher {
            kind: PublisherKind::Dicom,
            name: "CD publisher".into(),
            host: None,
            port: 104,
            // What the legacy dcmsend call proposed (DCMTK's default).
            called_ae: "ANY-SCP".into(),
            calling_ae: "CDRECORD".into(),
            sender: Sender::Dcmsend,
            timeout_connect_secs: 10,
            timeout_acse_secs: 30,
            timeout_dimse_secs: 60,
            timeout_total_secs: 3600,
            hot_folder: None,
            data_folder: None,
            robot_path: None,
            status: None,
            wait_secs: 600,
            copies: 1,
            media: vec![Medium::Cd, Medium::Dvd],
            cd_mb: 650,
            robot_name: None,
            label: None,
            verify: true,
            institution: String::new(),
            robot_user: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatientSource {
    #[default]
    Pacs,
    Api,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Patient {
    pub source: PatientSource,
    /// Accept a study without a PatientID among other studies of a job
    /// (`--allow-unidentified` every time): nothing tells whose it is.
    pub allow_unidentified: bool,
    pub api: Option<PatientApi>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientApi {
    /// URL template; `{accession}` is replaced by the URL-encoded accession.
    pub url: String,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default = "default_name_pointer")]
    pub name_pointer: String,
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    #[serde(default = "default_api_timeout", deserialize_with = "values::seconds")]
    pub timeout_secs: u64,
    /// The HIS's patient id must equal the PACS's PatientID of the
    /// accession's studies (off only where the two use different ids).
    #[serde(default = "default_true")]
    pub same_id_as_pacs: bool,
    /// An HTTP proxy to reach the API through. Proxy environment variables
    /// are never read: under CGI a client's `Proxy:` header becomes
    /// HTTP_PROXY ("httpoxy"), and the token would go to that proxy.
    #[serde(default, deserialize_with = "values::optional_text")]
    pub proxy: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_name_pointer() -> String {
    "/patient_name".into()
}
fn default_id_pointer() -> String {
    "/patient_id".into()
}
fn default_api_timeout() -> u64 {
    10
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    /// Folder holding the DCMTK programs; PATH is searched when unset.
    #[serde(deserialize_with = "values::optional_path")]
    pub dcmtk_dir: Option<PathBuf>,
    /// Viewer files copied to the root of a disc layout; `""`: no viewer.
    #[serde(deserialize_with = "values::optional_path")]
    pub viewer_dir: Option<PathBuf>,
    /// The viewer program (a path inside viewer_dir) an AUTORUN.INF starts.
    pub viewer_autorun: Option<String>,
    /// Which program builds ISO images.
    pub iso_tool: IsoTool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IsoTool {
    /// The first of genisoimage, xorriso, mkisofs found on PATH.
    #[default]
    Auto,
    Genisoimage,
    Xorriso,
    Mkisofs,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cgi {
    pub token_env: Option<String>,
    /// What the audit records call whoever presents the token ("HIS").
    pub token_label: String,
    /// Answer requests without a token: only where nginx lets the HIS
    /// host alone in (allow/deny), chosen on purpose.
    pub allow_anonymous: bool,
    #[serde(deserialize_with = "values::count")]
    pub max_accessions: usize,
    /// A CGI job's whole deadline: below nginx's fastcgi_read_timeout,
    /// since fcgiwrap never kills a hung program.
    #[serde(deserialize_with = "values::seconds")]
    pub timeout_secs: u64,
}

impl Default for Cgi {
    fn default() -> Cgi {
        // The token is required by default; its variable has a name of its
        // own, which the packaged nginx snippet sets.
        Cgi {
            token_env: Some("PACS2CD_CGI_TOKEN".into()),
            token_label: "HIS".into(),
            allow_anonymous: false,
            max_accessions: 20,
            timeout_secs: 290,
        }
    }
}
