//! The audit trail of one job: who asked, what was asked of the PACS, what
//! came from it, where it went, and how the job ended, as DICOM audit
//! messages (`atna`) sent by syslog (`syslog`) the moment each happens.
//!
//! One `Trail` per job, shared by the job's threads (the lookup runs beside
//! the publisher's C-ECHO). The records of a job, in order:
//! - Application Activity, Start: before any DICOM or HTTP traffic, naming
//!   who launched the job;
//! - Query: one per accession, once the C-FIND has answered (or failed);
//! - DICOM Instances Transferred: one per patient, once the retrieve has
//!   ended, with each study's SOP classes and instance counts as the files
//!   said (or, when it failed, the studies asked for);
//! - Security Alert: a connection to the move port from an address that
//!   is not the PACS's, one per address;
//! - Export: where the images went (the publisher, a folder, an image,
//!   a web download), when anything left;
//! - Application Activity, Stop: the outcome, with the error table's words.
//!
//! A repository that cannot be reached never stops a job (its outcome is
//! what the PACS and the publisher made it): the first record lost at a
//! destination is said at once, and the job's report ends with how many.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::atna::{self, AuditMessage, ExportTarget, Node, Outcome, Reporter, Requester, SourceType};
use super::syslog::{Destination, Receipt, Syslog};
use crate::config::Config;
use crate::dicom::Endpoint;
use crate::dicom::part10::Identity;
use crate::failure::Failure;

/// The job's audit trail. `Trail::off()` sends nothing (`check`, tests).
pub struct Trail {
    reporter: Reporter,
    requester: Requester,
    syslog: Mutex<Option<Syslog>>,
    lost: Mutex<Vec<Lost>>,
}

/// Records that did not reach one destination, or that it did not
/// confirm (`unconfirmed`: sent, and the repository kept the connection
/// open rather than close it after reading).
struct Lost {
    destination: String,
    records: usize,
    why: String,
    unconfirmed: bool,
}

impl Trail {
    pub fn off() -> Trail {
        Trail {
            reporter: Reporter {
                job: String::new(),
                host: String::new(),
                ae_title: None,
                source_type: SourceType::ApplicationServer,
                site: None,
            },
            requester: Requester::Local { login: String::new(), uid: 0, sudo_user: None },
            syslog: Mutex::new(None),
            lost: Mutex::new(Vec::new()),
        }
    }

    /// The trail of job `job` to `audit_syslog`'s destinations. A broken
    /// `[audit_tls]` is a configuration error (found before any job runs);
    /// a repository that is down is not.
    pub fn open(config: &Config, job: &str, requester: Requester, web: bool) -> Result<Trail, Failure> {
        let syslog = if config.audit_syslog.is_empty() {
            None
        } else {
            Some(Syslog::new(&config.audit_syslog, &config.audit_tls)?)
        };
        let source_type = if web {
            SourceType::WebServer
        } else if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            SourceType::EndUserInterface
        } else {
            SourceType::ApplicationServer
        };
        let ae_title =
            (!config.pacs.calling_ae.trim().is_empty()).then(|| config.pacs.calling_ae.trim().to_string());
        Ok(Trail {
            reporter: Reporter {
                job: job.to_string(),
                host: super::syslog::hostname(),
                ae_title,
                source_type,
                site: None,
            },
            requester,
            syslog: Mutex::new(syslog),
            lost: Mutex::new(Vec::new()),
        })
    }

    /// Application Start: before any traffic of the job.
    pub fn started(&self) {
        self.send(atna::application(&self.reporter, &self.requester, true, Outcome::success(), now()));
    }

    /// One Query record per accession of the job's C-FIND.
    pub fn queried(&self, pacs: &Endpoint, accessions: &[&str], result: Result<(), &Failure>) {
        let responder = node(pacs);
        for accession in accessions {
            let keys = vec![
                atna::QueryKey::new(0x0008_0052, "CS", "STUDY"),
                atna::QueryKey::new(0x0008_0050, "SH", accession),
            ];
            let query = atna::Query::Dicom { sop_class: atna::STUDY_ROOT_FIND.into(), keys };
            self.send(atna::query(
                &self.reporter,
                &self.requester,
                &responder,
                &query,
                Outcome::of(result),
                now(),
            ));
        }
    }

    /// A Query record of the patient API's lookup of one accession (the
    /// URL carries it; the token, in a header, is never recorded).
    pub fn queried_api(&self, url: &str, result: Result<(), &Failure>) {
        let uri = url.parse::<ureq::http::Uri>().ok();
        let host = uri.as_ref().and_then(|u| u.host()).unwrap_or("").to_string();
        let https = uri.as_ref().and_then(|u| u.scheme_str()) == Some("https");
        let port = uri.as_ref().and_then(|u| u.port_u16()).unwrap_or(if https { 443 } else { 80 });
        let responder = Node { ae_title: None, host, port };
        let query = atna::Query::Http { url: url.to_string() };
        self.send(atna::query(
            &self.reporter,
            &self.requester,
            &responder,
            &query,
            Outcome::of(result),
            now(),
        ));
    }

    /// DICOM Instances Transferred, one record per patient: what arrived
    /// (`objects`), or when the retrieve failed, what was asked for.
    pub fn retrieved(&self, pacs: &Endpoint, objects: &Objects, outcome: Outcome) {
        let pacs = node(pacs);
        for (index, patient) in objects.patients.iter().enumerate() {
            let studies = objects.studies_of(index);
            self.send(atna::retrieve(
                &self.reporter,
                &self.requester,
                &pacs,
                patient,
                &studies,
                outcome.clone(),
                now(),
            ));
        }
    }

    /// Security Alert, one per address refused at the move port (the
    /// receiver keeps the first few distinct ones), saying how many were
    /// refused in all: a scan of the port costs a handful of records.
    pub fn refused_connections(&self, port: u16, refused: &[(String, String)], total: usize) {
        for (peer, why) in refused {
            let description = format!(
                "connection to the move port {port} from {peer} refused: {why} ({total} refused in this job)"
            );
            let outcome =
                Outcome { indicator: atna::Indicator::MinorFailure, description: Some(description.clone()) };
            self.send(atna::refused_connection(&self.reporter, peer, &description, outcome, now()));
        }
    }

    /// Export: where the images went.
    pub fn exported(&self, target: &ExportTarget, objects: &Objects, outcome: Outcome) {
        let studies: Vec<atna::Study> = objects.studies.iter().map(|(_, study)| study.clone()).collect();
        self.send(atna::export(
            &self.reporter,
            &self.requester,
            target,
            &objects.patients,
            &studies,
            outcome,
            now(),
        ));
    }

    /// User Authentication, failed: a web request whose token was missing
    /// or wrong (`held_back`: refusals of this client not recorded since
    /// the last record, see `TokenRefusals`).
    pub fn refused_token(&self, client: &str, held_back: u32) {
        let mut description = "the request's bearer token was missing or wrong; refused".to_string();
        if held_back > 0 {
            description += &format!(" ({held_back} earlier refusal(s) of this client were not recorded)");
        }
        let outcome = Outcome { indicator: atna::Indicator::MinorFailure, description: Some(description) };
        self.send(atna::refused_token(&self.reporter, client, None, outcome, now()));
    }

    /// Export, failed: a send to the publisher that ended before every
    /// file was accepted, when some were, or may have been (they may be
    /// on a disc). `objects`: what the send was to carry.
    pub fn send_failed(&self, publisher: &Endpoint, objects: &Objects, failure: &Failure) {
        let left = failure.relay.as_ref().is_some_and(|c| c.files_sent + c.files_in_doubt > 0);
        if left {
            let target = ExportTarget::Publisher { node: node(publisher), disc: atna::Disc::CdOrDvd };
            self.exported(&target, objects, Outcome::failed(failure));
        }
    }

    /// Application Stop, with the job's outcome.
    pub fn stopped(&self, outcome: Outcome) {
        self.send(atna::application(&self.reporter, &self.requester, false, outcome, now()));
    }

    /// What the job's report says of records lost, one line per
    /// destination that missed any.
    pub fn lost(&self) -> Vec<String> {
        let lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.iter()
            .map(|lost| match lost.unconfirmed {
                false => format!(
                    "{} audit record(s) of this job did not reach {}: {}; they are lost there",
                    lost.records, lost.destination, lost.why
                ),
                true => format!(
                    "{} audit record(s) of this job were sent to {} but not confirmed: {}",
                    lost.records, lost.destination, lost.why
                ),
            })
            .collect()
    }

    fn send(&self, message: AuditMessage) {
        let mut syslog = self.syslog.lock().unwrap_or_else(|p| p.into_inner());
        let Some(syslog) = syslog.as_mut() else {
            return;
        };
        let deliveries = syslog.send(message.severity(), message.event.time, &message.to_xml());
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        for delivery in deliveries {
            let stream = matches!(delivery.destination, Destination::Tcp(_) | Destination::Tls(_));
            let (why, unconfirmed) = match delivery.result {
                Ok(Receipt::Delivered) => continue,
                // UDP never confirms (said by check and the README).
                Ok(Receipt::Unconfirmed) if !stream => continue,
                Ok(Receipt::Unconfirmed) => (
                    "the repository did not close the connection after reading, so nothing confirms it kept them"
                        .to_string(),
                    true,
                ),
                Err(why) => (why, false),
            };
            let destination = delivery.destination.to_string();
            match lost.iter_mut().find(|l| l.destination == destination && l.unconfirmed == unconfirmed) {
                Some(earlier) => earlier.records += 1,
                None => {
                    let what = if unconfirmed { "was not confirmed by" } else { "did not reach" };
                    log::warn!(
                        "an audit record of job {} {what} {destination}: {why}; the job goes on",
                        self.reporter.job
                    );
                    lost.push(Lost { destination, records: 1, why, unconfirmed });
                }
            }
        }
    }
}

/// Where a job's images went, as its report says: the publisher (`print`,
/// `relay`; `publisher` is the job's), the folder and the image of
/// `fetch`, or the web client that downloads the image (`download`: its
/// Export and the Stop wait until the image is written, see `Download`).
pub struct Exports {
    pub publisher: Option<Node>,
    pub download: Option<String>,
}

/// A web download's last records, sent once the image has been written to
/// the web server (or failed to be): that is when it left.
pub struct Download {
    trail: std::sync::Arc<Trail>,
    client: String,
    objects: Objects,
    missing: usize,
}

impl Download {
    pub fn written(self, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) if self.missing > 0 => Outcome {
                indicator: atna::Indicator::MinorFailure,
                description: Some(format!(
                    "partial disc: {} image(s) the PACS lists are not on it",
                    self.missing
                )),
            },
            Ok(()) => Outcome::success(),
            Err(why) => Outcome {
                indicator: atna::Indicator::SeriousFailure,
                description: Some(format!("the image was not written whole to the web client: {why}")),
            },
        };
        let target = ExportTarget::Download { client: self.client, url: None };
        self.trail.exported(&target, &self.objects, outcome.clone());
        self.trail.stopped(outcome);
    }
}

impl Trail {
    /// The end of a job: its Export records (when anything left: a failed
    /// send that delivered some files too), then Application Stop.
    /// A web download's Export and Stop are left to the `Download`
    /// returned.
    pub fn finish(
        self: &std::sync::Arc<Self>,
        result: &Result<crate::report::Report, Failure>,
        exports: &Exports,
    ) -> Option<Download> {
        use crate::report::Report;
        if let (Ok(Report::Fetch(fetched)), Some(client)) = (result, &exports.download) {
            return Some(Download {
                trail: self.clone(),
                client: client.clone(),
                objects: fetched.objects.clone(),
                missing: fetched.missing,
            });
        }
        let publisher = |node: &Option<Node>| {
            node.clone().map(|node| ExportTarget::Publisher { node, disc: atna::Disc::CdOrDvd })
        };
        let partial = |missing: usize| Outcome {
            indicator: atna::Indicator::MinorFailure,
            description: Some(format!("partial disc: {missing} image(s) the PACS lists are not on it")),
        };
        let complete = |missing: usize| if missing > 0 { partial(missing) } else { Outcome::success() };
        match result {
            Ok(Report::Print(printed)) => {
                if let Some(target) = publisher(&exports.publisher) {
                    self.exported(&target, &printed.objects, complete(printed.missing));
                }
                // A hot-folder robot: the folder its disc was placed in.
                if let Some(burn) = &printed.burn {
                    let target = ExportTarget::Folder(burn.placed_in.clone());
                    self.exported(&target, &printed.objects, complete(printed.missing));
                }
            }
            Ok(Report::Relay { relayed, .. }) => {
                if let Some(target) = publisher(&exports.publisher) {
                    self.exported(&target, &relayed.objects, Outcome::success());
                }
            }
            Ok(Report::Fetch(fetched)) => {
                for target in &fetched.exported_to {
                    self.exported(target, &fetched.objects, complete(fetched.missing));
                }
            }
            Ok(Report::Plan(_) | Report::Check(_) | Report::Probe) => {}
            // A send that failed after files left was recorded where it
            // failed, with its studies (`send_failed`).
            Err(_) => {}
        }
        let outcome = match result {
            Ok(Report::Print(printed)) => complete(printed.missing),
            Ok(Report::Fetch(fetched)) => complete(fetched.missing),
            Ok(_) => Outcome::success(),
            Err(failure) => Outcome::failed(failure),
        };
        self.stopped(outcome);
        None
    }
}

/// The PACS or a publisher as the records name it.
pub fn node(endpoint: &Endpoint) -> Node {
    Node {
        ae_title: Some(endpoint.ae.as_str().to_string()),
        host: endpoint.host.clone(),
        port: endpoint.port,
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// Who runs this process: the real uid and its login name, never the
/// environment's word for it. SUDO_USER is any process's to set; only
/// when the real uid is root did sudo (or root) set it, and even then it is
/// a note beside the uid.
pub fn local_requester() -> Requester {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let sudo_user = std::env::var("SUDO_USER").ok().filter(|by| uid == 0 && !by.is_empty());
    Requester::Local { login: crate::staging::user_name(uid), uid, sudo_user }
}

/// The patients and studies of a job's files, as the records name them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub patients: Vec<atna::Patient>,
    /// Each study, with its patient (an index in `patients`).
    pub studies: Vec<(usize, atna::Study)>,
}

impl Objects {
    /// Counts one file: its patient, its study, its SOP class.
    pub fn add(&mut self, identity: &Identity) {
        let patient = atna::Patient {
            id: identity.patient.id.clone(),
            issuer: Some(identity.patient.issuer.clone()).filter(|i| !i.trim().is_empty()),
            name: identity.patient.name.clone(),
        };
        let index = self.patients.iter().position(|p| *p == patient).unwrap_or_else(|| {
            self.patients.push(patient);
            self.patients.len() - 1
        });
        let uid = &identity.study_instance_uid;
        let position = self.studies.iter().position(|(p, s)| *p == index && s.uid == *uid);
        let study = match position {
            Some(position) => &mut self.studies[position].1,
            None => {
                self.studies.push((
                    index,
                    atna::Study {
                        uid: uid.clone(),
                        description: None,
                        accessions: Vec::new(),
                        sop_classes: Vec::new(),
                    },
                ));
                &mut self.studies.last_mut().expect("just pushed").1
            }
        };
        let class = Some(identity.sop_class_uid.clone()).filter(|c| !c.is_empty());
        match study.sop_classes.iter_mut().find(|c| c.uid == class) {
            Some(counted) => counted.instances += 1,
            None => study.sop_classes.push(atna::SopClass { uid: class, instances: 1 }),
        }
    }

    /// The patients as a job's report names them.
    pub fn patients(&self) -> Vec<crate::patients::Patient> {
        self.patients
            .iter()
            .map(|p| crate::patients::Patient {
                name: p.name.clone(),
                id: p.id.clone(),
                issuer: p.issuer.clone().unwrap_or_default(),
                ..crate::patients::Patient::default()
            })
            .collect()
    }

    /// The studies asked for, without counts: what a failed retrieve names.
    pub fn asked(found: &crate::pipeline::lookup::Found) -> Objects {
        let mut objects =
            Objects { patients: found.patients.iter().map(patient).collect(), studies: Vec::new() };
        for (study, &patient) in found.studies.iter().zip(&found.patient_of) {
            objects.studies.push((
                patient,
                atna::Study {
                    uid: study.study_instance_uid.clone(),
                    description: None,
                    accessions: Vec::new(),
                    sop_classes: Vec::new(),
                },
            ));
        }
        objects.name_studies(found);
        objects
    }

    /// Adds the accession numbers and descriptions the lookup found.
    pub fn name_studies(&mut self, found: &crate::pipeline::lookup::Found) {
        for (_, study) in &mut self.studies {
            for asked in found.studies.iter().filter(|s| s.study_instance_uid == study.uid) {
                if !asked.accession.is_empty() && !study.accessions.contains(&asked.accession) {
                    study.accessions.push(asked.accession.clone());
                }
                if study.description.is_none() && !asked.description.trim().is_empty() {
                    study.description = Some(asked.description.trim().to_string());
                }
            }
        }
    }

    fn studies_of(&self, patient: usize) -> Vec<atna::Study> {
        self.studies.iter().filter(|(p, _)| *p == patient).map(|(_, s)| s.clone()).collect()
    }
}

fn patient(patient: &crate::patients::Patient) -> atna::Patient {
    atna::Patient {
        id: patient.id.clone(),
        issuer: Some(patient.issuer.clone()).filter(|i| !i.trim().is_empty()),
        name: patient.name.clone(),
    }
}

/// User Authentication records of refused web tokens, at most `BURST` per
/// client address in each `WINDOW`, across the CGI mode's processes (one
/// per request): the counts live in a small file of the staging root,
/// locked while read and rewritten. What is held back is counted, and the
/// next record sent for that client says how many were.
pub struct TokenRefusals;

impl TokenRefusals {
    pub const BURST: u32 = 5;
    pub const WINDOW: Duration = Duration::from_secs(600);
    const FILE: &'static str = "refused-tokens";

    /// Whether to send a record for `client` now, and how many were held
    /// back before it. Without the file (a staging root this user cannot
    /// write), every refusal is sent.
    pub fn check(staging_root: &Path, client: &str) -> Option<u32> {
        match Self::update(&staging_root.join(Self::FILE), client, SystemTime::now()) {
            Ok(verdict) => verdict,
            // Recording every refusal is the safe side (a member who made
            // the file in the shared root can only make more records, never
            // fewer); the error log says why the limit is off.
            Err(err) => {
                log::warn!(
                    "cannot count refused tokens in {}: {err}; every refusal is recorded (remove that file if \
                     the web service user did not make it)",
                    staging_root.join(Self::FILE).display()
                );
                Some(0)
            }
        }
    }

    fn update(path: &Path, client: &str, now: SystemTime) -> std::io::Result<Option<u32>> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        // SAFETY: geteuid cannot fail.
        if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
            return Err(std::io::Error::other("not this user's regular file"));
        }
        // SAFETY: flock on a descriptor we own; released when it closes.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut text = String::new();
        (&mut file).take(1 << 20).read_to_string(&mut text)?;
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        // client -> (window start, sent, held back); windows over and done
        // are forgotten, so the file stays small.
        let mut windows: HashMap<String, (u64, u32, u32)> = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if let [key, start, sent, held] = fields[..]
                && let (Ok(start), Ok(sent), Ok(held)) = (start.parse::<u64>(), sent.parse(), held.parse())
                && (now_secs.saturating_sub(start) < Self::WINDOW.as_secs() || held > 0)
            {
                windows.insert(key.to_string(), (start, sent, held));
            }
        }
        let key: String = client.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
        let window = windows.entry(key).or_insert((now_secs, 0, 0));
        if now_secs.saturating_sub(window.0) >= Self::WINDOW.as_secs() {
            *window = (now_secs, 0, window.2);
        }
        let verdict = if window.1 < Self::BURST {
            window.1 += 1;
            Some(std::mem::take(&mut window.2))
        } else {
            window.2 = window.2.saturating_add(1);
            None
        };
        let mut out = String::new();
        for (key, (start, sent, held)) in &windows {
            out.push_str(&format!("{key} {start} {sent} {held}\n"));
        }
        file.rewind()?;
        file.set_len(0)?;
        file.write_all(out.as_bytes())?;
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patients::Demographics;

    fn identity(patient: &str, study: &str, class: &str) -> Identity {
        Identity {
            sop_class_uid: class.into(),
            sop_instance_uid: format!("{study}.{class}"),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            patient: Demographics {
                id: patient.into(),
                name: format!("NAME^{patient}"),
                ..Demographics::default()
            },
            study_instance_uid: study.into(),
            series_instance_uid: format!("{study}.1"),
            modality: "CT".into(),
            instance_number: None,
            data_offset: 0,
        }
    }

    #[test]
    fn objects_count_each_studys_classes_under_its_patient() {
        let mut objects = Objects::default();
        for (patient, study, class) in [
            ("P1", "1.1", "1.2.840.10008.5.1.4.1.1.2"),
            ("P1", "1.1", "1.2.840.10008.5.1.4.1.1.2"),
            ("P1", "1.1", "1.2.840.10008.5.1.4.1.1.7"),
            ("P2", "2.1", "1.2.840.10008.5.1.4.1.1.4"),
        ] {
            objects.add(&identity(patient, study, class));
        }
        assert_eq!(objects.patients.len(), 2);
        assert_eq!(objects.patients[0].issuer, None);
        let first = objects.studies_of(0);
        assert_eq!(first.len(), 1);
        let counts: Vec<usize> = first[0].sop_classes.iter().map(|c| c.instances).collect();
        assert_eq!(counts, [2, 1]);
        assert_eq!(objects.studies_of(1)[0].uid, "2.1");
    }

    #[test]
    fn refused_tokens_are_limited_per_client_across_processes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("refused-tokens");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for _ in 0..TokenRefusals::BURST {
            assert_eq!(TokenRefusals::update(&path, "10.1.2.3", t0).expect("update"), Some(0));
        }
        assert_eq!(TokenRefusals::update(&path, "10.1.2.3", t0).expect("update"), None);
        assert_eq!(TokenRefusals::update(&path, "10.1.2.3", t0).expect("update"), None);
        // Another client has its own window.
        assert_eq!(TokenRefusals::update(&path, "10.9.9.9", t0).expect("update"), Some(0));
        // A window later, the next record says how many were held back.
        let later = t0 + TokenRefusals::WINDOW;
        assert_eq!(TokenRefusals::update(&path, "10.1.2.3", later).expect("update"), Some(2));
        assert_eq!(TokenRefusals::update(&path, "10.1.2.3", later).expect("update"), Some(0));
        assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        // A symlink planted in its place is not followed.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("mkdir");
        std::os::unix::fs::symlink("/etc/passwd", other.join("refused-tokens")).expect("symlink");
        assert!(TokenRefusals::update(&other.join("refused-tokens"), "x", t0).is_err());
    }
}
