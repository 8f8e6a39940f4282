//! The audit log: images leaving the PACS are a disclosure the hospital
//! must be able to account for. Two JSON lines per job, paired by a job id:
//! "started" (who asked, from where, for what), written and flushed to disk
//! before any DICOM or HTTP traffic — if it cannot be written, nothing
//! moves — and "finished" (whose images, where to, how many files the
//! publisher accepted, how it ended), for failed and interrupted jobs too.
//! A started line without a finished one is a job that was killed.
//!
//! Each line is one `O_APPEND` write, so lines of concurrent jobs never mix.

pub mod atna;
pub mod syslog;
pub mod trail;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::failure::Failure;
use crate::patients::Patient;
use crate::report::Report;

/// A job being recorded: its JSON lines (when `audit_log` is set); its
/// audit messages go by the `Trail` the job's context holds.
pub struct Recording {
    log: Option<(AuditLog, Started)>,
}

impl Recording {
    /// Opens the log and the trail and records the start, before any
    /// traffic: an error here means nothing runs.
    pub fn start(
        config: &crate::config::Config,
        request: &Request,
        requester: atna::Requester,
        web: bool,
    ) -> Result<(Recording, std::sync::Arc<trail::Trail>), Failure> {
        let job = job_id();
        let trail = trail::Trail::open(config, &job, requester, web)?;
        let mut log = config.audit_log.as_deref().map(AuditLog::open).transpose()?;
        let started = log.as_mut().map(|log| log.started(&job, request)).transpose()?;
        trail.started();
        Ok((Recording { log: log.zip(started) }, std::sync::Arc::new(trail)))
    }

    /// Records the end, whatever happened: the Export and Stop messages,
    /// then the finished line. Records that did not reach a destination
    /// join the report's warnings (and were said on stderr as they were
    /// lost): the job's outcome stays what it was.
    pub fn finish(
        self,
        trail: &std::sync::Arc<trail::Trail>,
        result: &mut Result<Report, Failure>,
        exports: &trail::Exports,
    ) -> Option<trail::Download> {
        let download = trail.finish(result, exports);
        let lost = trail.lost();
        if let Ok(report) = result {
            match report {
                Report::Print(printed) => printed.warnings.extend(lost),
                Report::Fetch(fetched) => fetched.warnings.extend(lost),
                Report::Plan(plan) => plan.warnings.extend(lost),
                Report::Relay { .. } | Report::Check(_) | Report::Probe => {}
            }
        }
        if let Some((mut log, started)) = self.log {
            let called_ae = exports.publisher.as_ref().and_then(|node| node.ae_title.as_deref());
            log.finished(&started, result.as_ref(), called_ae);
        }
        download
    }
}

/// The audit log, opened before the job starts.
pub struct AuditLog {
    file: File,
    path: PathBuf,
}

/// What was asked, known before the job runs.
#[derive(Clone, Debug)]
pub struct Request {
    pub command: &'static str,
    pub requester: String,
    pub accessions: Vec<String>,
    /// The folder `relay` sends, as given.
    pub folder: Option<String>,
}

/// A job whose started line is on disk.
pub struct Started {
    job: String,
    command: &'static str,
}

#[derive(Serialize)]
struct StartedLine<'a> {
    time: String,
    job: &'a str,
    event: &'static str,
    requester: &'a str,
    command: &'a str,
    accessions: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    folder: Option<&'a str>,
}

#[derive(Serialize)]
struct FinishedLine<'a> {
    time: String,
    job: &'a str,
    event: &'static str,
    command: &'a str,
    outcome: &'a str,
    patients: &'a [Patient],
    destination: Option<&'a str>,
    /// The publisher's AE title (print, relay).
    #[serde(skip_serializing_if = "Option::is_none")]
    called_ae: Option<&'a str>,
    /// Files the publisher accepted (print, relay) or written (fetch).
    files: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    /// Images the PACS lists that are not on the disc (a partial disc).
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<usize>,
    /// What the job said although it went on (an empty study, a refused
    /// connection to the move port, a name that could not be decoded).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

impl AuditLog {
    /// Opens the log for appending; creates it group-writable (0660: in the
    /// shared model the web service and the technicians write one log, its
    /// folder's setgid bit gives it the group), never through a symlink.
    pub fn open(path: &Path) -> Result<AuditLog, Failure> {
        let refuse = |why: String| {
            Failure::config(format!(
                "cannot open the audit log {}: {why} (audit_log in the configuration); nothing was done",
                path.display()
            ))
        };
        let cannot = |err: std::io::Error| {
            refuse(match err.raw_os_error() {
                Some(libc::ELOOP) => "it is a symbolic link".to_string(),
                // A FIFO nobody reads: never wait for one.
                Some(libc::ENXIO) => "it is not a regular file".to_string(),
                _ => err.to_string().to_lowercase(),
            })
        };
        // Never through a symlink, never blocking (a FIFO planted there
        // would hold every job, deaf to signals), close-on-exec.
        let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        let file = match OpenOptions::new().append(true).custom_flags(flags).open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                private_folder(path).map_err(refuse)?;
                OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(cannot)?
            }
            Err(err) => return Err(cannot(err)),
        };
        let meta = file.metadata().map_err(cannot)?;
        if !meta.is_file() {
            return Err(refuse("it is not a regular file".into()));
        }
        // Whoever owns the log can rewrite it: root (the installer's) or
        // the user running the job, nobody else.
        let me = euid();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(refuse(format!(
                "it belongs to {}, who could rewrite it; it must be root's (the package makes it) or yours",
                crate::staging::user_name(meta.uid())
            )));
        }
        Ok(AuditLog { file, path: path.to_path_buf() })
    }
    /// Writes and flushes the started line. An error here means the job
    /// must not run.
    pub fn started(&mut self, job: &str, request: &Request) -> Result<Started, Failure> {
        let job = job.to_string();
        let line = StartedLine {
            time: now_rfc3339(),
            job: &job,
            event: "started",
            requester: &request.requester,
            command: request.command,
            accessions: &request.accessions,
            folder: request.folder.as_deref(),
        };
        self.append(&to_line(&line)).map_err(|err| {
            Failure::config(format!(
                "cannot write the audit log {}: {}; nothing was done",
                self.path.display(),
                err.to_string().to_lowercase()
            ))
        })?;
        Ok(Started { job, command: request.command })
    }

    /// Appends the finished line. A failure to write is a warning: the job
    /// has happened, and a non-zero answer after a complete send would make
    /// the HIS try again and burn a second disc. The started line without
    /// a finished one shows it.
    pub fn finished(
        &mut self,
        started: &Started,
        result: Result<&Report, &Failure>,
        called_ae: Option<&str>,
    ) {
        let text = finished_line(started, result, called_ae, &now_rfc3339());
        if let Err(err) = self.append(&text) {
            log::warn!(
                "cannot write the end of job {} to the audit log {}: {}",
                started.job,
                self.path.display(),
                err.to_string().to_lowercase()
            );
        }
    }

    fn append(&mut self, line: &str) -> std::io::Result<()> {
        let mut text = line.to_string();
        text.push('\n');
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }
}

fn finished_line(
    started: &Started,
    result: Result<&Report, &Failure>,
    called_ae: Option<&str>,
    time: &str,
) -> String {
    let missing = match result {
        Ok(Report::Print(printed)) => printed.missing,
        Ok(Report::Fetch(fetched)) => fetched.missing,
        _ => 0,
    };
    let warnings: &[String] = match result {
        Ok(Report::Print(printed)) => &printed.warnings,
        Ok(Report::Plan(plan)) => &plan.warnings,
        Ok(Report::Fetch(fetched)) => &fetched.warnings,
        _ => &[],
    };
    let (patients, destination, files, outcome, proof, detail): (&[Patient], _, _, _, _, _) = match result {
        Ok(Report::Print(printed)) => (
            &printed.patients,
            Some(printed.destination.as_str()),
            Some(printed.files_sent),
            if printed.partial { "partial disc" } else { "ok" },
            Some(printed.proof),
            None,
        ),
        Ok(Report::Plan(plan)) => (&plan.patients, None, Some(0), "dry-run", None, None),
        Ok(Report::Fetch(fetched)) => (
            &fetched.patients,
            None,
            Some(fetched.files),
            if fetched.partial { "partial disc" } else { "ok" },
            Some(fetched.proof),
            None,
        ),
        Ok(Report::Relay { relayed, .. }) => (
            &relayed.patients,
            Some(relayed.destination.as_str()),
            Some(relayed.files_sent),
            "ok",
            None,
            None,
        ),
        Ok(Report::Check(_) | Report::Probe) => (&[], None, None, "ok", None, None),
        Err(failure) => (
            &failure.patients,
            failure.destination.as_deref(),
            // Nothing was sent unless the failure says what was.
            Some(failure.relay.as_ref().map_or(0, |counts| counts.files_sent)),
            failure.class.error_str(),
            None,
            Some(failure.detail.as_str()),
        ),
    };
    to_line(&FinishedLine {
        time: time.to_string(),
        job: &started.job,
        event: "finished",
        command: started.command,
        outcome,
        patients,
        destination,
        called_ae: destination.and(called_ae),
        files,
        proof,
        detail,
        missing: (missing > 0).then_some(missing),
        warnings,
    })
}

fn to_line(line: &impl Serialize) -> String {
    // Plain strings and numbers always serialize.
    serde_json::to_string(line).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}

/// A job id: 16 hex digits, random, so that lines of concurrent jobs pair.
pub fn job_id() -> String {
    let mut bytes = [0u8; 8];
    let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes = ((nanos as u64) ^ (u64::from(std::process::id()) << 40)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `check` says of the log: it opens as a job would open it (a
/// missing one is not created).
pub fn describe(path: &Path) -> Result<String, Failure> {
    if std::fs::symlink_metadata(path).is_err() {
        return private_folder(path)
            .map(|()| format!("{} does not exist yet: the first job creates it (0600)", path.display()))
            .map_err(|why| Failure::config(format!("the audit log {}: {why}", path.display())));
    }
    AuditLog::open(path).map(|_| format!("{} writable", path.display()))
}

/// A missing log is created only in a folder that is the running user's
/// alone (a single user's own log, 0600): in a shared folder, whoever ran
/// first would own everyone's log; there the installer makes it.
fn private_folder(path: &Path) -> Result<(), String> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let meta = std::fs::symlink_metadata(folder).map_err(|err| {
        format!("its folder {} cannot be read: {}", folder.display(), err.to_string().to_lowercase())
    })?;
    if !meta.is_dir() || meta.uid() != euid() || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it does not exist, and its folder {} is not yours alone; the administrator creates a shared log \
             (install -o root -g GROUP -m 0660 /dev/null {})",
            folder.display(),
            path.display()
        ));
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The user running the command: the login name of the real user id, and
/// who ran sudo when that is how it started (SUDO_USER is anyone's to set:
/// believed only when the real user is root, see `trail::local_requester`).
pub fn local_user() -> String {
    match trail::local_requester() {
        atna::Requester::Local { login, sudo_user: Some(by), .. } => format!("{login} (sudo by {by})"),
        atna::Requester::Local { login, .. } => login,
        atna::Requester::Web { client, .. } => client,
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn now_rfc3339() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(seconds)
}

fn rfc3339(unix: u64) -> String {
    let (days, rest) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{Failure, RelayCounts};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_816_245), "2026-11-27T21:50:45Z");
    }

    #[test]
    fn a_partial_relay_records_what_left_and_whose() {
        let started = Started { job: "0123456789abcdef".into(), command: "print" };
        let counts = RelayCounts { files_sent: 40, files_failed: 2, ..RelayCounts::default() };
        let patient = Patient {
            name: "DOE^JOHN".into(),
            id: "PID001".into(),
            accessions: vec!["A1".into()],
            ..Patient::default()
        };
        let failure = Failure::partial_relay("172.16.0.120:104", "2 of 42 files were not accepted", counts)
            .for_patients(&[patient]);
        let text = finished_line(&started, Err(&failure), Some("CDRECORD"), "2026-11-27T21:50:45Z");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["job"], "0123456789abcdef");
        assert_eq!(json["event"], "finished");
        assert_eq!(json["patients"][0]["id"], "PID001");
        assert_eq!(json["destination"], "172.16.0.120:104");
        assert_eq!(json["called_ae"], "CDRECORD");
        assert_eq!(json["files"], 40);
        assert_eq!(json["outcome"], "partial relay");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn two_lines_per_job_paired_by_id() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        let request =
            Request { command: "print", requester: "me".into(), accessions: vec!["A1".into()], folder: None };
        let mut log = AuditLog::open(&path).expect("open");
        let started = log.started("0123456789abcdef", &request).expect("started");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read").lines().count(),
            1,
            "on disk before the job"
        );
        log.finished(&started, Err(&Failure::config("x")), None);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(
            (lines[0]["event"].as_str(), lines[1]["event"].as_str()),
            (Some("started"), Some("finished"))
        );
        assert_eq!(lines[0]["job"], lines[1]["job"]);
        assert_eq!(path.metadata().expect("meta").mode() & 0o777, 0o600, "a private folder's log is private");
    }

    #[test]
    fn a_log_of_another_user_is_refused() {
        // Only root can hand a file to another user (CI runs as root).
        if euid() != 0 {
            assert!(std::env::var_os("CI").is_none(), "this test needs root under CI");
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").expect("write");
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
        let err = AuditLog::open(&path).err().expect("another's log");
        assert!(err.detail.contains("could rewrite it"), "{}", err.detail);
    }

    #[test]
    fn a_log_that_cannot_be_written_stops_the_job() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(AuditLog::open(&dir.path().join("missing/audit.log")).is_err());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join("link.log")).expect("symlink");
        let err = AuditLog::open(&dir.path().join("link.log")).err().expect("symlink refused");
        assert!(err.detail.contains("symbolic link"), "{}", err.detail);
        // Not a regular file (and every write fails): refused before any job.
        assert!(AuditLog::open(Path::new("/dev/full")).is_err());
        // A FIFO nobody reads is refused at once, not waited on.
        let fifo = dir.path().join("fifo.log");
        let c_fifo = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o666) }, 0);
        let started = std::time::Instant::now();
        let err = AuditLog::open(&fifo).err().expect("fifo refused");
        assert!(err.detail.contains("not a regular file"), "{}", err.detail);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Missing in a folder others may write: nobody creates it there.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o3770)).expect("chmod");
        let err = AuditLog::open(&shared.join("audit.log")).err().expect("not created");
        assert!(err.detail.contains("is not yours alone"), "{}", err.detail);
        assert!(!shared.join("audit.log").exists());
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious");
    }
}
