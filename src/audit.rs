//! The audit log: one JSON line per job that touches patients' images,
//! appended with a single write (O_APPEND), so lines from concurrent jobs
//! never interleave. Images leaving the PACS are a disclosure the hospital
//! must be able to account for: who asked, for which accessions and which
//! patient, where the images went, how many, and how it ended.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::failure::Failure;
use crate::report::Report;

/// The audit log, opened before the job starts so that a log that cannot
/// be written stops the job before any image moves.
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
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    requester: &'a str,
    command: &'a str,
    accessions: &'a [String],
    patient_id: Option<&'a str>,
    destination: Option<&'a str>,
    files: Option<usize>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, Failure> {
        let file = OpenOptions::new().append(true).create(true).mode(0o640).open(path).map_err(|err| {
            Failure::config(format!(
                "cannot open the audit log {}: {} (audit_log in the configuration)",
                path.display(),
                err.to_string().to_lowercase()
            ))
        })?;
        Ok(AuditLog { file, path: path.to_path_buf() })
    }

    /// Appends the line for one finished job. A failure to write is logged:
    /// the job has already happened and its result must still be reported.
    pub fn record(&mut self, request: &Request, result: Result<&Report, &Failure>) {
        let mut text = line(request, result, &now_rfc3339());
        text.push('\n');
        if let Err(err) = self.file.write_all(text.as_bytes()) {
            log::error!("cannot write the audit log {}: {err}", self.path.display());
        }
    }
}

fn line(request: &Request, result: Result<&Report, &Failure>, time: &str) -> String {
    let (patient_id, destination, files, outcome, detail) = match result {
        Ok(Report::Print(printed)) => (
            Some(printed.patient_id.as_str()),
            Some(printed.destination.as_str()),
            Some(printed.files_sent),
            "ok",
            None,
        ),
        Ok(Report::Plan(plan)) => (Some(plan.patient_id.as_str()), None, Some(0), "dry-run", None),
        Ok(Report::Fetch(fetched)) => {
            (Some(fetched.patient_id.as_str()), None, Some(fetched.files), "ok", None)
        }
        Ok(Report::Relay { relayed, .. }) => {
            (None, Some(relayed.destination.as_str()), Some(relayed.files_sent), "ok", None)
        }
        Ok(Report::Check(_) | Report::Probe) => (None, None, None, "ok", None),
        Err(failure) => (
            failure.patient_id.as_deref(),
            failure.destination.as_deref(),
            failure.relay.as_ref().map(|counts| counts.files_sent),
            failure.class.error_str(),
            Some(failure.detail.as_str()),
        ),
    };
    let line = Line {
        time: time.to_string(),
        requester: &request.requester,
        command: request.command,
        accessions: &request.accessions,
        patient_id,
        destination,
        files,
        outcome,
        detail,
    };
    serde_json::to_string(&line)
        .unwrap_or_else(|_| format!("{{\"time\":\"{time}\",\"outcome\":\"{outcome}\"}}"))
}

/// The user running the command: the login name of the real user id, and
/// who ran sudo when that is how it started.
pub fn local_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers
    // given, which outlive the call, and the name is read before they go.
    let uid = unsafe { libc::getuid() };
    let mut name = format!("uid {uid}");
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut passwd, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if rc == 0 && !found.is_null() && !passwd.pw_name.is_null() {
        name = unsafe { std::ffi::CStr::from_ptr(passwd.pw_name) }.to_string_lossy().into_owned();
    }
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() => format!("{name} (sudo by {by})"),
        _ => name,
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

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_816_245), "2026-11-27T21:50:45Z");
    }

    #[test]
    fn a_partial_relay_records_what_left() {
        let request =
            Request { command: "print", requester: "10.1.2.3".into(), accessions: vec!["A1".into()] };
        let counts = RelayCounts { files_sent: 40, files_failed: 2, failures: Vec::new() };
        let failure = Failure::partial_relay("172.16.0.120:104", "2 of 42 files were not accepted", counts)
            .for_patient("PID001");
        let text = line(&request, Err(&failure), "2026-11-27T21:50:45Z");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["requester"], "10.1.2.3");
        assert_eq!(json["patient_id"], "PID001");
        assert_eq!(json["destination"], "172.16.0.120:104");
        assert_eq!(json["files"], 40);
        assert_eq!(json["outcome"], "partial relay");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn appends_one_line_per_job() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        let request = Request { command: "print", requester: "me".into(), accessions: vec![] };
        for _ in 0..2 {
            AuditLog::open(&path).expect("open").record(&request, Err(&Failure::config("x")));
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read").lines().count(), 2);
        assert!(AuditLog::open(&dir.path().join("missing/audit.log")).is_err());
    }
}
