//! What the hot-folder robots share. The disc content goes into
//! `data_folder/<JOB_ID>/disc` whole (built aside, renamed in), the job
//! file is written outside the watched folder and renamed into it (the
//! vendors warn against writing in place), then the job is followed by its
//! file's extension and the robot's status file until it is done, failed,
//! or `wait_secs` have passed. A signal after placing cancels the job the
//! vendor's way. The data folder goes once the robot is done with the job
//! (DON or ERR), never before: a robot still reading it would burn half.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::Robot;
use crate::config::Medium;
use crate::failure::Failure;
use crate::pipeline::pdi::{DiscInfo, date_words};
use crate::progress::{Mode, Stage};

/// Where a job file stands, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// In the hot folder, not yet taken.
    Placed,
    /// Taken, being prepared (TD Bridge RJD, PTBurn QRJ).
    Taken,
    Burning,
    /// Paused by the robot: a person must act (STP).
    Paused,
    Done,
    Failed,
}

/// What the robot's status file says of a job and of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub discs_done: Option<u32>,
    pub discs_failed: Option<u32>,
    /// The job's error in words, when it has one.
    pub job_error: Option<String>,
    /// The robot's own trouble in words (out of discs, cover open), if any.
    pub robot_error: Option<String>,
}

/// One vendor's files.
pub trait Vendor: Sync {
    /// "TD Bridge": what a technician knows the robot's software as.
    fn software(&self) -> &'static str;
    /// The job file's extension as placed (JDF, JRQ).
    fn job_extension(&self) -> &'static str;
    /// The phase an extension means; `None` for others.
    fn phase(&self, extension: &str) -> Option<Phase>;
    /// The job file's text.
    fn job_file(&self, robot: &Robot, job: &Job) -> String;
    /// The robot's state before the retrieve: `Err` when it cannot burn.
    fn preflight(&self, robot: &Robot) -> Result<(), Failure>;
    /// What the status file says of `job_id` now.
    fn report(&self, robot: &Robot, job_id: &str) -> Report;
    /// The cancel (abort) file: its name in the hot folder and its text.
    fn cancel_file(&self, job_id: &str) -> (String, String);
}

/// A job being placed: its id, folders and what its disc holds.
pub struct Job {
    pub id: String,
    /// `data_folder/<id>`.
    pub dir: PathBuf,
    /// The disc content (`dir/disc`).
    pub disc: PathBuf,
    /// The label's merge data (`dir/LABEL.TXT`), when a label prints.
    pub merge_file: Option<PathBuf>,
    pub medium: Medium,
    pub info: DiscInfo,
}

/// How far the job went.
#[derive(Clone, Debug, Serialize)]
pub struct Burn {
    pub robot: &'static str,
    pub job_id: String,
    pub medium: &'static str,
    pub copies: u32,
    pub phase: Phase,
    /// Discs the robot reports burned.
    pub discs: u32,
    /// The data folder is left for the robot (it still reads it).
    pub data_left: bool,
    /// Where the disc was placed (the audit records').
    #[serde(skip)]
    pub placed_in: PathBuf,
}

/// A job id the robots accept (TD Bridge: at most 40 of `A-Z a-z 0-9 - _`).
pub fn job_id(now: SystemTime) -> String {
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("PACS2CD-{}-{}-{:03}", since.as_secs(), std::process::id(), since.subsec_millis())
}

/// The label's merge fields, in the label's order.
pub fn merge_fields(info: &DiscInfo, institution: &str) -> Vec<(&'static str, String)> {
    let first = info.patients.first();
    let field = |f: &dyn Fn(&crate::patients::Patient) -> String| first.map(f).unwrap_or_default();
    let study = info.studies.first();
    vec![
        ("PATIENT_NAME", field(&|p| crate::patients::for_people(&p.name))),
        ("PATIENT_ID", field(&|p| p.id.clone())),
        ("BIRTH_DATE", field(&|p| date_words(&p.birth_date))),
        ("STUDY_DATE", study.map(|s| date_words(&s.date)).unwrap_or_default()),
        ("STUDY_DESCRIPTION", study.map(|s| s.description.clone()).unwrap_or_default()),
        ("ACCESSIONS", info.accessions().join(" ")),
        ("MODALITIES", info.modalities().join(" ")),
        ("INSTITUTION", institution.to_string()),
    ]
    .into_iter()
    // A merge file is one value a line.
    .map(|(key, value)| (key, value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()))
    .collect()
}

fn io_failure(what: &str, path: &Path, err: std::io::Error) -> Failure {
    Failure::config(format!("cannot {what} {}: {}", path.display(), err.to_string().to_lowercase()))
}

/// The names at the root of the disc folder, sorted: one DATA line each.
pub fn top_entries(disc: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(disc)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Removes the data folders of jobs the robot has finished (their job file
/// is DON or ERR), left by a job that stopped following early.
pub fn sweep(robot: &Robot, vendor: &dyn Vendor) {
    let Ok(entries) = std::fs::read_dir(&robot.data_folder) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("PACS2CD-") {
            continue;
        }
        let finished = ["DON", "ERR"].iter().any(|ext| {
            vendor.phase(ext).is_some() && robot.hot_folder.join(format!("{name}.{ext}")).exists()
        });
        if finished {
            log::info!("removing the data folder of finished job {name}");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Places the disc built in `built` and its job file; returns the job as
/// placed (its job file in the hot folder).
pub fn place(
    robot: &Robot,
    vendor: &dyn Vendor,
    built: &Path,
    info: DiscInfo,
    medium: Medium,
    institution: &str,
) -> Result<Job, Failure> {
    sweep(robot, vendor);
    let id = job_id(SystemTime::now());
    let part = robot.data_folder.join(format!(".{id}.part"));
    crate::pipeline::disc::create_folder(&part)?;
    let placed = (|| {
        let disc = part.join("disc");
        move_tree(built, &disc)?;
        if robot.label.is_some() {
            let text: String = merge_fields(&info, institution)
                .iter()
                .map(|(key, value)| format!("{key}={value}\r\n"))
                .collect();
            let merge = part.join("LABEL.TXT");
            std::fs::write(&merge, text).map_err(|err| io_failure("write", &merge, err))?;
        }
        if shared(&robot.data_folder) {
            share_tree(&part)?;
        }
        let dir = robot.data_folder.join(&id);
        std::fs::rename(&part, &dir).map_err(|err| io_failure("place", &dir, err))?;
        Ok(dir)
    })();
    let dir = match placed {
        Ok(dir) => dir,
        Err(failure) => {
            let _ = std::fs::remove_dir_all(&part);
            return Err(failure);
        }
    };
    let merge_file = robot.label.is_some().then(|| dir.join("LABEL.TXT"));
    let job = Job { id: id.clone(), disc: dir.join("disc"), dir, merge_file, medium, info };
    let text = vendor.job_file(robot, &job);
    let target = robot.hot_folder.join(format!("{id}.{}", vendor.job_extension()));
    if let Err(failure) = put_whole(&job.dir.join("JOB.part"), &robot.hot_folder, &target, &text) {
        let _ = std::fs::remove_dir_all(&job.dir);
        return Err(failure);
    }
    log::info!("placed job {id} in {}", robot.hot_folder.display());
    Ok(job)
}

/// Writes `text` at `aside` and renames it to `target` in one step; where
/// the two are on different file systems, a hidden name in `folder` the
/// robot does not read is the aside.
fn put_whole(aside: &Path, folder: &Path, target: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(aside, text).map_err(|err| io_failure("write", aside, err))?;
    if shared(folder) {
        set_mode(aside, SHARED_FILE)?;
    }
    if std::fs::rename(aside, target).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_file(aside);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let hidden = folder.join(format!(".{name}.tmp"));
    std::fs::write(&hidden, text).map_err(|err| io_failure("write", &hidden, err))?;
    std::fs::rename(&hidden, target).map_err(|err| {
        let _ = std::fs::remove_file(&hidden);
        io_failure("place the job file", target, err)
    })
}

/// A folder of a group (setgid): the web service's and the technicians'
/// jobs share it, and the robot's share user reads it as a member.
fn shared(folder: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(folder).is_ok_and(|m| m.permissions().mode() & 0o2000 != 0)
}

/// In a shared folder: members read the disc and remove a finished job's
/// folder (the next job's sweep may be another user's).
const SHARED_FOLDER: u32 = 0o2770;
const SHARED_FILE: u32 = 0o640;

fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|err| io_failure("set the mode of", path, err))
}

/// Opens a job's folder to the group (this process's umask made it private).
fn share_tree(folder: &Path) -> Result<(), Failure> {
    set_mode(folder, SHARED_FOLDER)?;
    let entries = std::fs::read_dir(folder).map_err(|err| io_failure("read", folder, err))?;
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => share_tree(&path)?,
            Ok(kind) if kind.is_file() => set_mode(&path, SHARED_FILE)?,
            // No symlinks are made in a disc; none is followed.
            _ => {}
        }
    }
    Ok(())
}

/// Moves a folder (renamed, or copied across file systems).
fn move_tree(from: &Path, to: &Path) -> Result<(), Failure> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    copy_tree(from, to)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Failure> {
    crate::pipeline::disc::create_folder(to)?;
    let entries = std::fs::read_dir(from).map_err(|err| io_failure("read", from, err))?;
    for entry in entries.flatten() {
        crate::signals::check()?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|err| io_failure("read", &source, err))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(|err| io_failure("write", &target, err))?;
        }
    }
    Ok(())
}

/// The job file's phase now, by which of its names exists.
pub fn phase(robot: &Robot, vendor: &dyn Vendor, id: &str) -> Option<Phase> {
    let entries = std::fs::read_dir(&robot.hot_folder).ok()?;
    let prefix = format!("{id}.");
    let mut found = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(extension) = name.strip_prefix(&prefix)
            && let Some(phase) = vendor.phase(&extension.to_ascii_uppercase())
        {
            // Two names at once (a rename seen halfway): the later phase.
            found = Some(found.map_or(phase, |f: Phase| if rank(phase) > rank(f) { phase } else { f }));
        }
    }
    found
}

fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Placed => 0,
        Phase::Taken => 1,
        Phase::Burning | Phase::Paused => 2,
        Phase::Done | Phase::Failed => 3,
    }
}

/// Takes the job file back out of the hot folder before the robot took
/// it: true when it was still there (the robot never saw it whole).
fn withdraw(robot: &Robot, vendor: &dyn Vendor, job: &Job) -> bool {
    let placed = robot.hot_folder.join(format!("{}.{}", job.id, vendor.job_extension()));
    std::fs::rename(&placed, job.dir.join("JOB.withdrawn")).is_ok()
}

/// Removes the job's data folder (the robot is done with it).
fn remove_data(job: &Job) {
    if let Err(err) = std::fs::remove_dir_all(&job.dir) {
        log::warn!("cannot remove the data folder {}: {err}", job.dir.display());
    }
}

/// How often the job file is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long a robot that was never told to wait is given to take the job.
const TAKE_WAIT: Duration = Duration::from_secs(60);
/// How long a cancel is given to be confirmed.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// Follows the job until done, failed or `robot.wait`; a signal cancels it.
pub fn follow(robot: &Robot, vendor: &dyn Vendor, job: &Job, progress: &Mode) -> Result<Burn, Failure> {
    let started = Instant::now();
    let wait = if robot.wait.is_zero() { TAKE_WAIT } else { robot.wait };
    let mut last_shown = None;
    let burn = |phase: Phase, discs: u32, data_left: bool| Burn {
        robot: robot.kind.as_str(),
        job_id: job.id.clone(),
        medium: job.medium.as_str(),
        copies: robot.copies,
        phase,
        discs,
        data_left,
        placed_in: job.dir.clone(),
    };
    loop {
        if let Some(signal) = crate::signals::pending() {
            return Err(cancel(robot, vendor, job, signal));
        }
        let phase = phase(robot, vendor, &job.id);
        let report = vendor.report(robot, &job.id);
        let done = report.discs_done.unwrap_or(0);
        match phase {
            Some(Phase::Done) => {
                remove_data(job);
                let discs = report.discs_done.unwrap_or(robot.copies);
                show(progress, discs, robot.copies);
                return Ok(burn(Phase::Done, discs, false));
            }
            Some(Phase::Failed) => {
                remove_data(job);
                let why = report
                    .job_error
                    .or(report.robot_error)
                    .unwrap_or_else(|| "the robot ended the job with an error".into());
                return Err(Failure::burn_failed(&robot.name, &format!("job {}: {why}", job.id)));
            }
            // The job file vanished: finished files move to a log folder.
            None if started.elapsed() > POLL * 4 => {
                return Err(Failure::burn_failed(
                    &robot.name,
                    &format!(
                        "the job file of job {} disappeared from {}",
                        job.id,
                        robot.hot_folder.display()
                    ),
                ));
            }
            Some(Phase::Taken | Phase::Burning) if robot.wait.is_zero() => {
                return Ok(burn(phase.unwrap_or(Phase::Taken), done, true));
            }
            _ => {}
        }
        if phase == Some(Phase::Burning) && last_shown != Some(done) {
            show(progress, done, robot.copies);
            last_shown = Some(done);
        }
        if started.elapsed() >= wait {
            return match phase {
                Some(Phase::Placed) | None if withdraw(robot, vendor, job) => {
                    remove_data(job);
                    Err(Failure::robot_not_ready(
                        &robot.name,
                        &format!(
                            "{} did not take the job within {} s (is it running and watching {}?); nothing was burned",
                            vendor.software(),
                            wait.as_secs(),
                            robot.hot_folder.display()
                        ),
                    ))
                }
                Some(Phase::Paused) => {
                    let why = report.robot_error.or(report.job_error).unwrap_or_else(|| "paused".into());
                    Err(Failure::robot_not_ready(
                        &robot.name,
                        &format!("job {} waits at the robot: {why}; it goes on once that is mended", job.id),
                    ))
                }
                other => Ok(burn(other.unwrap_or(Phase::Taken), done, true)),
            };
        }
        std::thread::sleep(POLL);
    }
}

/// The live page's "Burning: disc N of M" (and a log line elsewhere).
fn show(progress: &Mode, done: u32, copies: u32) {
    let current = (done + 1).min(copies);
    match progress {
        Mode::Listener(listener) => {
            listener.update(Stage::Burn, u64::from(done), Some(u64::from(copies)), &[])
        }
        Mode::Bar | Mode::Log => log::info!("burning: disc {current} of {copies}"),
        Mode::Off => {}
    }
}

/// Cancels a placed job the vendor's way and says whether the robot
/// confirmed; the failure is the signal's.
fn cancel(robot: &Robot, vendor: &dyn Vendor, job: &Job, signal: i32) -> Failure {
    let mut failure = Failure::interrupted(signal).with_destination(&robot.name);
    let base = failure.detail.clone();
    if withdraw(robot, vendor, job) {
        remove_data(job);
        failure.detail =
            format!("{base}: job {} withdrawn before the robot took it; nothing was burned", job.id);
        return failure;
    }
    let (name, text) = vendor.cancel_file(&job.id);
    let target = robot.hot_folder.join(&name);
    if let Err(written) = put_whole(&job.dir.join("CANCEL.part"), &robot.hot_folder, &target, &text) {
        failure.detail = format!(
            "{base}: the cancel of job {} could not be written ({}): stop it at the robot",
            job.id, written.detail
        );
        return failure;
    }
    let asked = Instant::now();
    while asked.elapsed() < CANCEL_WAIT {
        match phase(robot, vendor, &job.id) {
            Some(Phase::Failed) => {
                remove_data(job);
                failure.detail = format!("{base}: the robot confirmed the cancel of job {}", job.id);
                return failure;
            }
            Some(Phase::Done) => {
                remove_data(job);
                failure.detail = format!("{base}: job {} was finished before the cancel arrived", job.id);
                return failure;
            }
            _ => std::thread::sleep(POLL),
        }
    }
    failure.detail = format!(
        "{base}: the robot did not confirm the cancel of job {} within {} s: check the robot",
        job.id,
        CANCEL_WAIT.as_secs()
    );
    failure
}

/// An INI-style text (`[SECTION]`, `KEY=value`) as sections of pairs, in
/// order; what both robots' status files are.
pub fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut all: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            all.push((name.trim().to_string(), Vec::new()));
        } else if let Some((key, value)) = line.split_once('=')
            && let Some((_, pairs)) = all.last_mut()
        {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    all
}

/// A key's value in a section's pairs.
pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_fit_td_bridge() {
        let id = job_id(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        assert!(id.len() <= 40, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
    }

    #[test]
    fn sections_read_ini_text() {
        let all = sections("[A]\r\nX = 1\r\n\r\n[B]\r\nY=two=2\r\nstray\r\n");
        assert_eq!(all.len(), 2);
        assert_eq!(value(&all[0].1, "x"), Some("1"));
        assert_eq!(value(&all[1].1, "Y"), Some("two=2"));
    }
}
