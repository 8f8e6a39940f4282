//! What the hot-folder robots share. The disc content goes into
//! `data_folder/<JOB_ID>/disc` whole (built aside, renamed in), the job
//! file is written outside the watched folder and renamed into it (the
//! vendors warn against writing in place), then the job is followed by its
//! file's extension and the robot's status file until it is done, failed,
//! or `wait_secs` have passed. A signal after placing cancels the job the
//! vendor's way. The data folder goes once the robot is done with the job
//! (DON or ERR), never before: a robot still reading it would burn half.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    /// (device, inode) of the job file as placed: the robot renames it
    /// from phase to phase, so only a file with these is the job's (a
    /// member of the hot folder's group could make `<id>.DON` beside it).
    pub file: (u64, u64),
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
    use ring::rand::SecureRandom;
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    // A part nobody can guess: another member must not be able to make a
    // job's folder or job file before it (the robots take 40 characters).
    let mut random = [0u8; 8];
    let filled = ring::rand::SystemRandom::new().fill(&mut random);
    let suffix: String = match filled {
        Ok(()) => random.iter().map(|b| format!("{b:02X}")).collect(),
        Err(_) => format!("{:08X}{:08X}", std::process::id(), since.subsec_nanos()),
    };
    format!("PACS2CD-{}-{suffix}", since.as_secs())
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
    if err.raw_os_error() == Some(libc::ENOSPC) || err.kind() == std::io::ErrorKind::StorageFull {
        return Failure::disk_full(&format!(
            "the robot's folder is full: cannot {what} {} (no space left on device); nothing was placed",
            path.display()
        ))
        .for_the_web("the disc robot's folder is out of disk space");
    }
    Failure::config(format!("cannot {what} {}: {}", path.display(), err.to_string().to_lowercase()))
}

/// The hot folder and the data folder as the staging root is held: root's
/// or ours, and where the group or others may write, sticky (only an
/// entry's owner renames or removes it). Otherwise another member could
/// swap a placed disc, or its job file, for his own.
pub fn check_folders(robot: &Robot) -> Result<(), Failure> {
    // The robot's own account may own them (it renames its job files).
    let robot_uid = match &robot.robot_user {
        Some(name) => Some(uid_of(name).ok_or_else(|| {
            Failure::config(format!(
                "cd_publisher.robot_user {}: no such account",
                crate::sanitize::quoted(name)
            ))
        })?),
        None => None,
    };
    // The robot's status (a file, or PTBurn's folder): whoever could
    // replace it could say "ready" or "2 discs burned" for the robot.
    let status_folder = if robot.status.is_dir() {
        robot.status.clone()
    } else {
        robot.status.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    };
    for (folder, key) in [
        (&robot.hot_folder, "cd_publisher.hot_folder"),
        (&robot.data_folder, "cd_publisher.data_folder"),
        (&status_folder, "the folder of cd_publisher.status"),
    ] {
        // The folders above it too: one another member may rename would
        // let him put a folder of his own in its place.
        crate::staging::check_ancestors(folder, false, key)?;
        let meta = std::fs::symlink_metadata(folder).map_err(|err| {
            Failure::config(format!("{key} {}: {}", folder.display(), err.to_string().to_lowercase()))
        })?;
        let owner_ok =
            meta.uid() == 0 || meta.uid() == euid() || robot_uid.is_some_and(|uid| meta.uid() == uid);
        let writable_by_others = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        if !meta.is_dir() || !owner_ok || (writable_by_others && !sticky) {
            return Err(Failure::config(format!(
                "{key} {} is not safe (owner {}, mode {:04o}): it must be root's, this account's or \
                 cd_publisher.robot_user's, and sticky where others may write (chmod +t), or another member could \
                 swap a placed disc",
                folder.display(),
                crate::staging::user_name(meta.uid()),
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
}

/// A robot's file, read as nobody else's can hang or flood us: never
/// through a symlink, never a FIFO or device (O_NONBLOCK, a plain file
/// only), at most 1 MiB.
pub fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| err.to_string().to_lowercase())?;
    let meta = file.metadata().map_err(|err| err.to_string().to_lowercase())?;
    if !meta.is_file() {
        return Err("not a plain file".into());
    }
    // Content another account may rewrite is not the robot's word.
    if meta.mode() & 0o022 != 0 {
        return Err(format!("writable by others (mode {:04o})", meta.mode() & 0o7777));
    }
    let mut bytes = Vec::new();
    file.take(1 << 20).read_to_end(&mut bytes).map_err(|err| err.to_string().to_lowercase())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The uid of account `name`.
fn uid_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r(3) writes into `entry` and `buffer`, both valid
    // for the lengths given; `found` says whether it found one.
    let rc =
        unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some(entry.pw_uid)
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() }
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
        // Only our own jobs: a member's forged `.DON` beside another's
        // job must not remove its disc mid-burn.
        let ours = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == euid());
        let finished = ["DON", "ERR"]
            .iter()
            .any(|ext| vendor.phase(ext).is_some() && ours(&robot.hot_folder.join(format!("{name}.{ext}"))));
        if finished && ours(&entry.path()) {
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
    check_folders(robot)?;
    sweep(robot, vendor);
    let id = job_id(SystemTime::now());
    // A name nobody can make beforehand (mkdtemp: random, O_EXCL, 0700).
    let part = tempfile::Builder::new()
        .prefix(&format!(".{id}."))
        .tempdir_in(&robot.data_folder)
        .map_err(|err| io_failure("write in", &robot.data_folder, err))?
        .keep();
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
        rename_new(&part, &dir).map_err(|err| io_failure("place", &dir, err))?;
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
    let mut job = Job { id: id.clone(), disc: dir.join("disc"), dir, merge_file, medium, info, file: (0, 0) };
    let text = vendor.job_file(robot, &job);
    let target = robot.hot_folder.join(format!("{id}.{}", vendor.job_extension()));
    match put_whole(&job.dir.join("JOB.part"), &robot.hot_folder, &target, &text) {
        Ok(file) => job.file = file,
        Err(failure) => {
            let _ = std::fs::remove_dir_all(&job.dir);
            return Err(failure);
        }
    }
    log::info!("placed job {id} in {}", robot.hot_folder.display());
    Ok(job)
}

/// Writes `text` at `aside` (in the job's own folder) and renames it to
/// `target` in one step, never replacing a file there; where the two are on
/// different file systems, a random hidden name in `folder` (O_EXCL) is
/// the aside. Returns the placed file's (device, inode).
fn put_whole(aside: &Path, folder: &Path, target: &Path, text: &str) -> Result<(u64, u64), Failure> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(aside)
        .map_err(|err| io_failure("write", aside, err))?;
    file.write_all(text.as_bytes()).map_err(|err| io_failure("write", aside, err))?;
    // Known before the rename: a robot may rename it on at once.
    let placed =
        file.metadata().map(|meta| (meta.dev(), meta.ino())).map_err(|err| io_failure("read", aside, err))?;
    drop(file);
    if shared(folder) {
        set_mode(aside, SHARED_FILE)?;
    }
    match rename_new(aside, target) {
        Ok(()) => return Ok(placed),
        Err(err) if err.raw_os_error() != Some(libc::EXDEV) => {
            let _ = std::fs::remove_file(aside);
            return Err(io_failure("place the job file", target, err));
        }
        Err(_) => {}
    }
    let _ = std::fs::remove_file(aside);
    let mut hidden = tempfile::Builder::new()
        .prefix(".pacs2cd-")
        .tempfile_in(folder)
        .map_err(|err| io_failure("write in", folder, err))?;
    hidden.write_all(text.as_bytes()).map_err(|err| io_failure("write", hidden.path(), err))?;
    if shared(folder) {
        set_mode(hidden.path(), SHARED_FILE)?;
    }
    let placed = hidden
        .as_file()
        .metadata()
        .map(|meta| (meta.dev(), meta.ino()))
        .map_err(|err| io_failure("read", hidden.path(), err))?;
    hidden.persist_noclobber(target).map_err(|err| io_failure("place the job file", target, err.error))?;
    Ok(placed)
}

/// rename(2) that never replaces what is at `to` (RENAME_NOREPLACE).
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |path: &Path| {
        std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: valid NUL-terminated paths, AT_FDCWD for both.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A folder of a group (setgid): the web service's and the technicians'
/// jobs share it, and the robot's share user reads it as a member.
fn shared(folder: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(folder).is_ok_and(|m| m.permissions().mode() & 0o2000 != 0)
}

/// In a shared folder: members (the robot's share user among them) read
/// the disc; only its owner changes or removes it.
const SHARED_FOLDER: u32 = 0o2750;
const SHARED_FILE: u32 = 0o640;

fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|err| io_failure("set the mode of", path, err))
}

/// Opens a job's folder to the data folder's group (this process's umask
/// made it private; a disc renamed in from staging keeps our own group).
fn share_tree(folder: &Path) -> Result<(), Failure> {
    let group = folder.parent().and_then(|parent| std::fs::metadata(parent).ok()).map(|meta| meta.gid());
    std::os::unix::fs::lchown(folder, None, group)
        .map_err(|err| io_failure("set the group of", folder, err))?;
    set_mode(folder, SHARED_FOLDER)?;
    let entries = std::fs::read_dir(folder).map_err(|err| io_failure("read", folder, err))?;
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => share_tree(&path)?,
            Ok(kind) if kind.is_file() => {
                std::os::unix::fs::lchown(&path, None, group)
                    .map_err(|err| io_failure("set the group of", &path, err))?;
                set_mode(&path, SHARED_FILE)?
            }
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

/// The job file's phase now, by which of its names exists: only the file
/// placed counts (the robot renames it; its device and inode stay), never
/// another file of such a name that someone else made.
pub fn phase(robot: &Robot, vendor: &dyn Vendor, job: &Job) -> Option<Phase> {
    let entries = std::fs::read_dir(&robot.hot_folder).ok()?;
    let prefix = format!("{}.", job.id);
    let mut found = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let placed = entry.metadata().is_ok_and(|meta| (meta.dev(), meta.ino()) == job.file);
        if let Some(extension) = name.strip_prefix(&prefix)
            && placed
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
    // Ours, not a file of that name someone made after the robot took ours.
    let ours = std::fs::symlink_metadata(&placed).is_ok_and(|meta| (meta.dev(), meta.ino()) == job.file);
    // A hidden name in the hot folder itself (the data folder may be on
    // another file system, where a rename cannot go), then gone.
    let hidden = robot.hot_folder.join(format!(".{}.withdrawn", job.id));
    let withdrawn = ours && rename_new(&placed, &hidden).is_ok();
    if withdrawn {
        let _ = std::fs::remove_file(&hidden);
    }
    withdrawn
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
        let phase = phase(robot, vendor, job);
        let report = vendor.report(robot, &job.id);
        let done = report.discs_done.unwrap_or(0);
        match phase {
            Some(Phase::Done) => {
                remove_data(job);
                let discs = report.discs_done.unwrap_or(robot.copies);
                // Done with fewer discs than asked for is no success.
                if discs < robot.copies {
                    return Err(Failure::burn_failed(
                        &robot.name,
                        &format!(
                            "job {}: the robot ended it with {discs} of {} discs burned",
                            job.id, robot.copies
                        ),
                    ));
                }
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
                // Still placed, and not withdrawn: never "taken".
                Some(Phase::Placed) | None => Err(Failure::robot_not_ready(
                    &robot.name,
                    &format!(
                        "{} did not take job {} within {} s, and it could not be withdrawn from {}: remove it \
                         there before the robot starts",
                        vendor.software(),
                        job.id,
                        wait.as_secs(),
                        robot.hot_folder.display()
                    ),
                )),
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
        match phase(robot, vendor, job) {
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
        assert_ne!(
            id,
            job_id(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            "nobody can guess it"
        );
    }

    #[test]
    fn sections_read_ini_text() {
        let all = sections("[A]\r\nX = 1\r\n\r\n[B]\r\nY=two=2\r\nstray\r\n");
        assert_eq!(all.len(), 2);
        assert_eq!(value(&all[0].1, "x"), Some("1"));
        assert_eq!(value(&all[1].1, "Y"), Some("two=2"));
    }
}
