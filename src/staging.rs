//! The staging root and what lives in it: private per-job folders and the
//! lock on the C-MOVE port.
//!
//! One staging root serves everyone who prints on a host. It is either
//! - **shared**: owned by root, group `staging_group` (the web service user
//!   and the technicians are its members), group-writable with the sticky
//!   bit (members cannot rename or delete each other's entries), nothing for
//!   others: `root:pacs2cd 3770`, made by the installer. pacs2cd verifies it
//!   and never creates it; or
//! - **private**: owned by the running user and writable by nobody else.
//!   A missing root is created so (0700, whatever the umask).
//!
//! Anything else (another owner, a world-writable folder, a symlink) could
//! be written or replaced by someone outside this model: another user could
//! read patients' images, plant a forged image or aim the lock at a file of
//! ours, so it is refused with what to fix. The folders above the root must
//! not be replaceable either. The lock file is opened read-only without
//! following symlinks and locked with `flock`: never written, never
//! truncated. Job folders are private (0700) and removed when dropped
//! (errors and signals unwind through `Drop`). Folders older than a day that
//! a crash left are swept, our own only: another user's belong to the
//! root-run age rule of the package's tmpfiles.d entry.

use std::ffi::CString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::failure::Failure;

/// How messages name the staging root.
const STAGING: &str = "staging folder (staging_dir)";

/// Every folder this tool makes starts so, so a sweep can recognise them.
pub const PREFIX: &str = "pacs2cd-";

/// The lock file's name inside the root: one retrieve at a time listens on
/// the move port.
pub const LOCK_FILE: &str = "retrieve.lock";

/// The record of studies recent jobs asked the PACS to C-MOVE to a port:
/// `moved-PORT.UID` in the root (see `Root::moved_recently`).
pub const MOVED_PREFIX: &str = "moved-";

/// How long a study stays in that record: a PACS that sends late sends
/// within seconds; a quarter of an hour is far beyond any measured.
const MOVED_KEPT: Duration = Duration::from_secs(15 * 60);

/// At most this many studies in the record (the newest kept).
const MOVED_MOST: usize = 2000;

/// Staging folders older than this were left by a crash or a power loss.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How the root is shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// root:`group` with the sticky bit: technicians and the web service.
    Shared { group: String },
    /// The running user's alone.
    Private,
}

/// A verified staging root.
#[derive(Debug)]
pub struct Root {
    pub path: PathBuf,
    pub sharing: Sharing,
}

/// Opens the staging root for a job: verified, created private when missing.
pub fn open(path: &Path, group: &str) -> Result<Root, Failure> {
    let path = std::path::absolute(path).map_err(|err| unusable(path, &err.to_string()))?;
    if std::fs::symlink_metadata(&path).is_err() {
        check_ancestors(&path, false, STAGING)?;
        DirBuilder::new().recursive(true).mode(0o700).create(&path).map_err(|err| {
            unusable(
                &path,
                &format!(
                    "cannot create it ({}); for technicians and the web service to share it, create it as root (README: the shared staging folder)",
                    lower(&err)
                ),
            )
        })?;
        // DirBuilder's mode passes through the umask: say it once more.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(|err| unusable(&path, &lower(&err)))?;
    }
    let root = inspect_existing(&path, group)?;
    // A lock that is there must be sound before any traffic: a job that
    // retrieves would refuse it only after asking the PACS.
    if root.sharing != Sharing::Private || std::fs::symlink_metadata(root.path.join(LOCK_FILE)).is_ok() {
        open_lock_file(&root, false)?;
    }
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&root.path));
    Ok(root)
}

/// What `check` says about the staging root, creating nothing.
pub fn describe(path: &Path, group: &str) -> Result<String, Failure> {
    let path = std::path::absolute(path).map_err(|err| unusable(path, &err.to_string()))?;
    if std::fs::symlink_metadata(&path).is_err() {
        check_ancestors(&path, false, STAGING)?;
        return Ok(format!(
            "{} does not exist yet: the first job creates it, private (0700) to the user who runs it",
            path.display()
        ));
    }
    let root = inspect_existing(&path, group)?;
    let lock = root.path.join(LOCK_FILE);
    let lock_note = match (&root.sharing, open_lock_file(&root, false)) {
        (_, Ok(_)) => "lock ok".to_string(),
        (Sharing::Private, Err(_)) if std::fs::symlink_metadata(&lock).is_err() => {
            "lock created at the first C-MOVE".to_string()
        }
        (_, Err(failure)) => return Err(failure),
    };
    let kind = match &root.sharing {
        Sharing::Shared { group } => format!("shared with group {group}"),
        Sharing::Private => "private".to_string(),
    };
    if !writable(&root.path) {
        return Err(unusable(&root.path, "this user cannot write it (is it a member of the staging group?)"));
    }
    let free = free_bytes(&root.path)
        .map(|free| format!("{:.1} GB free", free as f64 / 1e9))
        .unwrap_or_else(|err| format!("free space unknown: {err}"));
    Ok(format!("{} ({kind}), {lock_note}, {free}", root.path.display()))
}

fn inspect_existing(path: &Path, group: &str) -> Result<Root, Failure> {
    check_ancestors(path, false, STAGING)?;
    // O_NOFOLLOW: a symlink planted where the root should be is refused,
    // and what is checked is what is opened.
    let folder =
        OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path).map_err(
            |err| match err.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                    unusable(path, "it is a symbolic link or not a folder; make it a real folder")
                }
                _ => unusable(path, &lower(&err)),
            },
        )?;
    let meta = folder.metadata().map_err(|err| unusable(path, &lower(&err)))?;
    let me = euid();
    let mode = meta.mode() & 0o7777;
    let sharing = if meta.uid() == me && mode & 0o022 == 0 {
        Sharing::Private
    } else if meta.uid() == 0
        && mode & 0o002 == 0
        && mode & 0o1000 != 0
        && group_id(group) == Some(meta.gid())
    {
        // Root may use it as it is (a technician's `sudo pacs2cd`).
        if me != 0 && !in_group(meta.gid()) {
            return Err(unusable(
                path,
                &format!(
                    "this user is not a member of group {group} (staging_group): ask the administrator to add it"
                ),
            ));
        }
        // Above a root everyone shares, only root may change anything.
        check_ancestors(path, true, STAGING)?;
        Sharing::Shared { group: group.to_string() }
    } else {
        return Err(unusable(
            path,
            &format!(
                "owner {}, group {}, mode {mode:04o}: users outside the staging model could write or replace it; \
                 make it root:{group} 3770 (shared) or yours with mode 0700 (private)",
                user_name(meta.uid()),
                group_name(meta.gid())
            ),
        ));
    };
    Ok(Root { path: path.to_path_buf(), sharing })
}

/// The folders above the root must not be replaceable by others: each is
/// owned by root or by us (root alone above a shared root) and writable by
/// nobody else. A sticky folder others may write (/tmp) is the one
/// exception, since others cannot rename what they do not own: the entry
/// below it must then be root's or ours. A folder of the staging group is
/// no exception: a second member could rename the root away and put one
/// of his own in its place.
pub fn check_ancestors(path: &Path, root_only: bool, what: &str) -> Result<(), Failure> {
    let me = euid();
    let mut below_owner: Option<u32> = std::fs::symlink_metadata(path).ok().map(|m| m.uid());
    for ancestor in path.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(ancestor) else {
            below_owner = None;
            continue;
        };
        let mode = meta.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        let owner_ok = meta.uid() == 0 || (!root_only && meta.uid() == me);
        let writable_by_others = mode & 0o022 != 0;
        let below_is_safe = below_owner.is_none_or(|owner| owner == 0 || owner == me);
        let write_ok = !writable_by_others || (sticky && below_is_safe);
        if !(owner_ok && write_ok) {
            let need = if root_only {
                "owned by root and writable by root alone"
            } else {
                "owned by root or you and writable by nobody else"
            };
            return Err(Failure::config(format!(
                "{what} {} is not safe: the folder {} above it (owner {}, group {}, mode {mode:04o}) could be \
                 replaced by other users; every folder above it must be {need}",
                path.display(),
                ancestor.display(),
                user_name(meta.uid()),
                group_name(meta.gid())
            )));
        }
        below_owner = Some(meta.uid());
    }
    Ok(())
}

impl Root {
    /// A new private job folder (0700) in the root, removed when dropped.
    pub fn job_dir(&self) -> Result<TempDir, Failure> {
        // The pid and its start time name the job: a folder whose process
        // is gone (a crash, a power loss) is swept at once by its owner's
        // next job.
        let prefix =
            format!("{PREFIX}{}.{}-", std::process::id(), start_time(std::process::id()).unwrap_or(0));
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&self.path)
            .map_err(|err| unusable(&self.path, &lower(&err)))?;
        // Patients' images: nobody else may read them, whatever the umask.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|err| unusable(dir.path(), &lower(&err)))?;
        Ok(dir)
    }

    /// Takes the retrieve lock, waiting up to `wait` for another job
    /// (`on_wait` is told its pid once). Gives up with `busy`.
    pub fn lock(
        &self,
        port: u16,
        wait: Duration,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<PortLock, Failure> {
        let file = open_lock_file(self, true)?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(PortLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(err)) => return Err(unusable(&self.path, &lower(&err))),
            }
            let holder = file
                .metadata()
                .ok()
                .and_then(|meta| lock_holder(meta.ino()))
                .map_or_else(|| "unknown".to_string(), |pid| pid.to_string());
            if !told && !wait.is_zero() {
                on_wait(&format!("waiting for another job (pid {holder}) retrieving on port {port}"));
                told = true;
            }
            if started.elapsed() >= wait {
                return Err(Failure::busy(&format!(
                    "another job (pid {holder}) has been retrieving on port {port} (pacs.move_port) for longer than \
                     lock_wait_secs ({} s); try again in a few minutes",
                    wait.as_secs()
                )));
            }
            crate::signals::check()?;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Root {
    /// What jobs asked the PACS to C-MOVE to `port` in the last quarter of
    /// an hour, as `moved_key`s of their StudyInstanceUIDs. A PACS that
    /// sends a study's last images after its final response delivers them
    /// to whichever job listens then: that job must know them for an
    /// earlier job's (dropped and logged), not for a wrong study (refused).
    ///
    /// Each account keeps its own record (`moved-PORT.UID`, written only by
    /// it, readable by the staging group): no member can rewrite, empty or
    /// lock another's. The records hold digests, not UIDs: a member learns
    /// nothing of another's patients from them. What a member can do to
    /// his own record is make jobs drop images of studies they did not ask
    /// for, which never go on their disc either way. A record that cannot
    /// be read is skipped (its late images are then refused, as before).
    pub fn moved_recently(&self, port: u16) -> Vec<String> {
        let prefix = format!("{MOVED_PREFIX}{port}.");
        let Ok(entries) = std::fs::read_dir(&self.path) else { return Vec::new() };
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            // `UID`, or `UID-N` where another member squats `UID`.
            let Ok(owner) = rest.split_once('-').map_or(rest, |(uid, _)| uid).parse::<u32>() else {
                continue;
            };
            match self.read_moved(&entry.path(), owner) {
                Ok(found) => keys.extend(found.into_iter().map(|(_, key)| key)),
                Err(err) => log::warn!("skipped {}: {err}", entry.path().display()),
            }
        }
        keys
    }

    /// Adds `studies`, asked now to be moved to `port`, to this account's
    /// record: written beside it and renamed into place, so a full disk or
    /// a crash leaves the old record whole.
    pub fn note_moved(&self, port: u16, studies: &[String]) {
        // Our own name; should another member squat it (the root is
        // sticky: we could not replace his file), one of a few others.
        let mut last = None;
        for n in 0..4 {
            let name = match n {
                0 => format!("{MOVED_PREFIX}{port}.{}", euid()),
                n => format!("{MOVED_PREFIX}{port}.{}-{n}", euid()),
            };
            let path = self.path.join(name);
            match self.write_moved(&path, studies) {
                Ok(()) => return,
                Err(err) => last = Some((path, err)),
            }
        }
        if let Some((path, err)) = last {
            log::warn!(
                "cannot record the studies moved in {}: {err}; images the PACS sends them late will fail the \
                 next job",
                path.display()
            );
        }
    }

    fn write_moved(&self, path: &Path, studies: &[String]) -> std::io::Result<()> {
        use std::io::Write;
        let now = unix_now();
        let added: Vec<String> = studies.iter().map(|uid| moved_key(uid)).collect();
        let mut entries = match self.read_moved(path, euid()) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            // Ours but unreadable: written anew.
            Err(_) => Vec::new(),
        };
        entries.retain(|(_, key)| !added.contains(key));
        entries.extend(added.into_iter().map(|key| (now, key)));
        let skip = entries.len().saturating_sub(MOVED_MOST);
        entries.drain(..skip);
        let out: String = entries.iter().map(|(when, key)| format!("{when} {key}\n")).collect();
        let mode = match self.sharing {
            Sharing::Shared { .. } => 0o640,
            Sharing::Private => 0o600,
        };
        // A name nobody can guess beforehand (O_EXCL, random), then renamed
        // over our own record: a file of another's by that name stays, and
        // the rename fails (the root is sticky).
        if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.uid() != euid()) {
            return Err(std::io::Error::other(format!(
                "taken by {}",
                user_name(std::fs::symlink_metadata(path)?.uid())
            )));
        }
        let mut temp = tempfile::Builder::new()
            .prefix(".moved-")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(&self.path)?;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
        temp.write_all(out.as_bytes())?;
        temp.persist(path).map_err(|err| err.error)?;
        Ok(())
    }

    /// One account's record: (when, key) of what is recent, never through
    /// a symlink, and only a plain file that no one but its owner may
    /// write. Lines that do not parse, and times in the future, are
    /// forgotten.
    fn read_moved(&self, path: &Path, owner: u32) -> std::io::Result<Vec<(u64, String)>> {
        use std::io::Read;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        let root_gid = std::fs::metadata(&self.path)?.gid();
        // Written by the account its name says, and no other: a record
        // another member made under this name is not this one's.
        let owner_ok = meta.uid() == owner
            && match self.sharing {
                Sharing::Shared { .. } => meta.gid() == root_gid || meta.uid() == euid(),
                Sharing::Private => meta.uid() == euid(),
            };
        if !meta.is_file() || meta.mode() & 0o022 != 0 || meta.nlink() != 1 || !owner_ok {
            return Err(std::io::Error::other(format!(
                "not a record of this staging folder's (owner {}, mode {:04o})",
                user_name(meta.uid()),
                meta.mode() & 0o7777
            )));
        }
        let mut bytes = Vec::new();
        file.take(1 << 20).read_to_end(&mut bytes)?;
        let now = unix_now();
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| {
                let (when, key) = line.split_once(' ')?;
                let when: u64 = when.parse().ok()?;
                let key_ok = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
                let recent = when <= now + 60 && now.saturating_sub(when) < MOVED_KEPT.as_secs();
                (key_ok && recent).then(|| (when, key.to_string()))
            })
            .collect())
    }
}

/// The digest a moved study is known by in the records (SHA-256 of its
/// StudyInstanceUID, in hex).
pub fn moved_key(study_instance_uid: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, study_instance_uid.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Opens the lock read-only, never through a symlink; in a private root it
/// is created when missing (`create`), in a shared one the installer made it.
fn open_lock_file(root: &Root, create: bool) -> Result<File, Failure> {
    let path = root.path.join(LOCK_FILE);
    if create && root.sharing == Sharing::Private && std::fs::symlink_metadata(&path).is_err() {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(unusable(&root.path, &format!("cannot create {LOCK_FILE}: {}", lower(&err))));
            }
        }
    }
    let fix = match &root.sharing {
        Sharing::Shared { .. } => format!("sudo install -m 644 -o root -g root /dev/null {}", path.display()),
        Sharing::Private => format!("remove it; pacs2cd makes a new one ({})", path.display()),
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|err| {
            let why = match err.raw_os_error() {
                Some(libc::ELOOP) => "is a symbolic link".to_string(),
                Some(libc::ENOENT) => "is missing".to_string(),
                _ => lower(&err),
            };
            Failure::config(format!("the retrieve lock {} {why}: {fix}", path.display()))
        })?;
    let meta = file.metadata().map_err(|err| unusable(&root.path, &lower(&err)))?;
    let owner_ok = match root.sharing {
        Sharing::Shared { .. } => meta.uid() == 0,
        Sharing::Private => meta.uid() == 0 || meta.uid() == euid(),
    };
    if !meta.is_file() || !owner_ok || meta.mode() & 0o022 != 0 {
        return Err(Failure::config(format!(
            "the retrieve lock {} (owner {}, mode {:04o}) could be replaced or written by other users: {fix}",
            path.display(),
            user_name(meta.uid()),
            meta.mode() & 0o7777
        )));
    }
    Ok(file)
}

/// An exclusive lock on the retrieve port, held until dropped. The kernel
/// releases it when the process dies, so a crash leaves no stale lock.
pub struct PortLock {
    _file: File,
}

/// The pid holding a `flock` on inode `inode`, from /proc/locks (the lock
/// file itself is never written, so it cannot say).
fn lock_holder(inode: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    text.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let pid = fields.get(at + 3)?.parse().ok()?;
        let ino: u64 = fields.get(at + 4)?.rsplit(':').next()?.parse().ok()?;
        (ino == inode).then_some(pid)
    })
}

/// When process `pid` started (clock ticks after boot, /proc/PID/stat's
/// 22nd field): with the pid, it tells one process from a later one that
/// reuses its number.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a job folder's name says its process is gone.
fn job_is_dead(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else { return false };
    let Some((pid, rest)) = rest.split_once('.') else { return false };
    let Some((start, _)) = rest.split_once('-') else { return false };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) if start > 0 => start_time(pid) != Some(start),
        _ => false,
    }
}

/// Removes this user's staging folders whose job is gone, or that are
/// older than a day (only names with our prefix, never through a
/// symlink). Errors are logged, not fatal.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let me = euid();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = name.starts_with(PREFIX);
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
        let stale = age.is_some_and(|age| age > STALE_AFTER) || job_is_dead(&name);
        if is_ours && meta.is_dir() && meta.uid() == me && stale {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    log::warn!(
                        "removed staging folder {} (its job is gone: a crash?)",
                        entry.path().display()
                    )
                }
                Err(err) => {
                    log::warn!("cannot remove stale staging folder {}: {err}", entry.path().display())
                }
            }
        }
    }
}

fn unusable(root: &Path, why: &str) -> Failure {
    Failure::config(format!(
        "staging folder {} is not usable: {why} (see staging_dir in the configuration)",
        root.display()
    ))
}

/// An I/O error as a message's tail ("permission denied (os error 13)").
pub fn lower(err: &std::io::Error) -> String {
    err.to_string().to_lowercase()
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn writable(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Whether the running process has group `gid` (effective or supplementary).
fn in_group(gid: u32) -> bool {
    // SAFETY: getegid cannot fail; getgroups writes at most `len` entries
    // into a buffer of that size.
    unsafe {
        if libc::getegid() == gid {
            return true;
        }
        let len = libc::getgroups(0, std::ptr::null_mut());
        if len <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; len as usize];
        let n = libc::getgroups(len, groups.as_mut_ptr());
        n > 0 && groups[..n as usize].contains(&gid)
    }
}

/// The id of group `name`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getgrnam_r writes only into the buffers given, which outlive
    // the call; the result is read before they go.
    unsafe {
        let mut group: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(c_name.as_ptr(), &mut group, buffer.as_mut_ptr(), buffer.len(), &mut found);
        (rc == 0 && !found.is_null()).then_some(group.gr_gid)
    }
}

/// The name of group `gid`, or the number.
pub fn group_name(gid: u32) -> String {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in group_id.
    unsafe {
        let mut group: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut group, buffer.as_mut_ptr(), buffer.len(), &mut found);
        if rc == 0 && !found.is_null() && !group.gr_name.is_null() {
            return std::ffi::CStr::from_ptr(group.gr_name).to_string_lossy().into_owned();
        }
    }
    gid.to_string()
}

/// The login name of `uid`, or the number.
pub fn user_name(uid: u32) -> String {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwuid_r writes only into the buffers given, which outlive
    // the call; the name is read before they go.
    unsafe {
        let mut passwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut passwd, buffer.as_mut_ptr(), buffer.len(), &mut found);
        if rc == 0 && !found.is_null() && !passwd.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(passwd.pw_name).to_string_lossy().into_owned();
        }
    }
    uid.to_string()
}

/// Below this a file system counts as full whatever a job needs: a file
/// could not be written, and a failure there is the disk's, not a peer's.
const FULL_BELOW: u64 = 4 * 1024 * 1024;

/// Refuses a job before any traffic when the staging root has less than
/// `min_free` bytes free.
pub fn check_space(root: &Path, min_free: u64) -> Result<(), Failure> {
    let Ok(free) = free_bytes(root) else { return Ok(()) };
    if free < min_free {
        return Err(Failure::disk_full(&format!(
            "staging disk full at {}: {} MB free, at least {} MB wanted before a retrieve (staging_min_free_mb); \
             nothing was sent",
            root.display(),
            free / 1_000_000,
            min_free / 1_000_000
        )));
    }
    Ok(())
}

/// A failure that happened on a full staging disk is said as such: a
/// file the PACS sent, or a C-FIND answer, that could not be written is
/// not the PACS's fault. Other failures pass unchanged.
pub fn explain_full(root: &Path, failure: Failure) -> Failure {
    match free_bytes(root) {
        Ok(free) => explain_full_with(root, free, failure),
        Err(_) => failure,
    }
}

/// `explain_full` with the free bytes measured.
fn explain_full_with(root: &Path, free: u64, failure: Failure) -> Failure {
    use crate::failure::Class;
    let blamed_elsewhere = matches!(
        failure.class,
        Class::PacsUnreachable
            | Class::FetchIncomplete
            | Class::NoDicomData
            | Class::Configuration
            | Class::RelayFailed
            | Class::PartialRelay
    );
    // The publisher holds some of the images: that stays the verdict
    // (partly sent), with the full disk said beside it; "nothing was sent"
    // would be false.
    let some_sent =
        failure.relay.as_ref().is_some_and(|counts| counts.files_sent > 0 || counts.files_in_doubt > 0);
    if free >= FULL_BELOW {
        return failure;
    }
    if some_sent {
        let mut failure = failure;
        failure.detail = format!(
            "{} (the staging disk {} is full too: {} MB free)",
            failure.detail,
            root.display(),
            free / 1_000_000
        );
        return failure;
    }
    if !blamed_elsewhere {
        return failure;
    }
    let mut full = Failure::disk_full(&format!(
        "staging disk full at {} ({} MB free): {}",
        root.display(),
        free / 1_000_000,
        failure.detail
    ))
    .for_the_web("the server that prepares the discs is out of disk space; nothing was sent");
    full.patients = failure.patients;
    full.relay = failure.relay;
    full.destination = failure.destination;
    full
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid,
    // writable statvfs that outlives the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "pacs2cd-no-such-group";

    /// A full disk names itself, except where the publisher holds some of
    /// the images: that stays partly sent, the disk said beside it.
    #[test]
    fn a_full_disk_never_hides_a_partial_send() {
        use crate::failure::{Class, RelayCounts};
        let root = Path::new("/stage");
        let mut partial = Failure::new(Class::PartialRelay, "the CD publisher accepted 10 of 30 files");
        partial.relay =
            Some(Box::new(RelayCounts { files_sent: 10, files_failed: 20, ..Default::default() }));
        let kept = explain_full_with(root, 1_000_000, partial);
        assert_eq!(kept.class, Class::PartialRelay);
        assert!(
            kept.detail.contains("accepted 10 of 30") && kept.detail.contains("full too"),
            "{}",
            kept.detail
        );
        let nothing = Failure::new(Class::PacsUnreachable, "120 responses came, 0 were read");
        assert_eq!(explain_full_with(root, 1_000_000, nothing).class, Class::DiskFull);
        let roomy = Failure::new(Class::PacsUnreachable, "refused");
        assert_eq!(explain_full_with(root, 10_000_000_000, roomy).class, Class::PacsUnreachable);
    }

    #[test]
    fn the_moved_record_keeps_recent_studies_of_its_port() {
        let dir = tempfile::tempdir().expect("dir");
        let root = Root { path: dir.path().to_path_buf(), sharing: Sharing::Private };
        assert!(root.moved_recently(11112).is_empty(), "nothing moved yet");
        root.note_moved(11112, &["1.2.3".into(), "1.2.4".into()]);
        root.note_moved(11112, &["1.2.5".into(), "1.2.3".into()]);
        let keys = |uids: &[&str]| uids.iter().map(|u| moved_key(u)).collect::<Vec<_>>();
        assert_eq!(root.moved_recently(11112), keys(&["1.2.4", "1.2.5", "1.2.3"]));
        assert!(root.moved_recently(11113).is_empty(), "one record per port");
        let path = dir.path().join(format!("moved-11112.{}", euid()));
        assert_eq!(std::fs::metadata(&path).expect("record").mode() & 0o777, 0o600);
        // Digests, never the UIDs (patient data).
        assert!(!std::fs::read_to_string(&path).expect("record").contains("1.2.3"));
        // Old entries, times in the future, bytes that are no text and
        // anything that is not a digest are forgotten.
        let key = moved_key("1.2.9");
        let future = unix_now() + 3600;
        let mut text = format!("1 {key}\n{future} {key}\n").into_bytes();
        text.extend_from_slice(b"\xff\xfe broken\n99999 ../etc\nnonsense\n");
        std::fs::write(&path, text).expect("write");
        assert!(root.moved_recently(11112).is_empty());
        // A record anyone else may write is skipped; written anew by its owner.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(root.moved_recently(11112).is_empty());
        root.note_moved(11112, &["1.2.3".into()]);
        assert_eq!(root.moved_recently(11112), keys(&["1.2.3"]));
        // Never through a symlink.
        std::fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink");
        assert!(root.moved_recently(11112).is_empty());
        root.note_moved(11112, &["1.2.3".into()]);
        assert!(std::fs::read_to_string("/etc/passwd").expect("passwd").contains("root"));
        assert!(
            std::fs::symlink_metadata(&path).expect("link").file_type().is_file(),
            "the link is replaced"
        );
        // A record under another account's name that this one wrote is
        // not that account's: ignored.
        let theirs = dir.path().join("moved-11112.4242");
        std::fs::write(&theirs, format!("{} {}\n", unix_now(), moved_key("1.2.7"))).expect("squat");
        assert!(!root.moved_recently(11112).contains(&moved_key("1.2.7")), "a record under another's name");
        std::fs::remove_file(&theirs).expect("remove");
        // Another account squats ours (as root, the test can make one):
        // the record goes under a name of ours beside it.
        if euid() == 0 {
            std::fs::remove_file(&path).expect("remove");
            std::fs::write(&path, "").expect("squatter's file");
            std::os::unix::fs::chown(&path, Some(4242), None).expect("chown");
            root.note_moved(11112, &["1.2.8".into()]);
            assert_eq!(root.moved_recently(11112), keys(&["1.2.8"]));
            assert!(dir.path().join(format!("moved-11112.{}-1", euid())).is_file());
            std::fs::remove_file(dir.path().join(format!("moved-11112.{}-1", euid()))).expect("remove");
            std::fs::remove_file(&path).expect("remove");
            root.note_moved(11112, &["1.2.3".into()]);
        }
        // Nothing left beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        assert_eq!(names, vec![format!("moved-11112.{}", euid())]);
    }

    #[test]
    fn a_missing_root_is_created_private_and_job_dirs_are_private() {
        let base = tempfile::tempdir().expect("base");
        let staging = base.path().join("deeper/stage");
        assert!(describe(&staging, GROUP).expect("describe").contains("does not exist yet"));
        assert!(!staging.exists(), "check creates nothing");
        let root = open(&staging, GROUP).expect("root");
        assert_eq!(root.sharing, Sharing::Private);
        assert_eq!(staging.metadata().expect("meta").mode() & 0o777, 0o700);
        let dir = root.job_dir().expect("job dir");
        assert_eq!(dir.path().metadata().expect("metadata").permissions().mode() & 0o777, 0o700);
        assert!(dir.path().file_name().is_some_and(|n| n.to_string_lossy().starts_with(PREFIX)));
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        assert!(free_bytes(base.path()).expect("statvfs") > 0);
    }

    #[test]
    fn a_writable_or_symlinked_root_is_refused() {
        let base = tempfile::tempdir().expect("base");
        let open_root = base.path().join("open");
        std::fs::create_dir(&open_root).expect("mkdir");
        std::fs::set_permissions(&open_root, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = open(&open_root, GROUP).expect_err("world-writable");
        assert_eq!(err.class, crate::failure::Class::Configuration);
        assert!(err.detail.contains("0777") && err.detail.contains("3770"), "{}", err.detail);
        let link = base.path().join("link");
        std::fs::create_dir(base.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink(base.path().join("real"), &link).expect("symlink");
        let err = open(&link, GROUP).expect_err("symlink");
        assert!(err.detail.contains("symbolic link"), "{}", err.detail);
    }

    #[test]
    fn a_folder_above_that_others_may_write_is_refused() {
        let base = tempfile::tempdir().expect("base");
        let parent = base.path().join("parent");
        std::fs::create_dir(&parent).expect("mkdir");
        // Group-writable, whatever the group (the staging group included):
        // a member could rename the root away and plant his own.
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        let err = open(&parent.join("stage"), GROUP).expect_err("group-writable parent");
        assert_eq!(err.class, crate::failure::Class::Configuration);
        assert!(
            err.detail.contains(&parent.display().to_string()) && err.detail.contains("0770"),
            "{}",
            err.detail
        );
        // Sticky like /tmp: others cannot rename what is ours.
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        open(&parent.join("stage"), GROUP).expect("a sticky folder above is fine");
    }

    #[test]
    fn a_symlinked_lock_is_refused_and_its_target_untouched() {
        let base = tempfile::tempdir().expect("base");
        let staging = base.path().join("stage");
        let root = open(&staging, GROUP).expect("root");
        let victim = base.path().join("victim.log");
        std::fs::write(&victim, "precious").expect("victim");
        std::os::unix::fs::symlink(&victim, staging.join(LOCK_FILE)).expect("symlink");
        let err = root.lock(11112, Duration::ZERO, &mut |_| {}).err().expect("refused");
        assert!(err.detail.contains("symbolic link"), "{}", err.detail);
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious");
    }

    #[test]
    fn sweep_removes_only_our_old_folders() {
        let root = tempfile::tempdir().expect("root");
        let old = root.path().join("pacs2cd-old");
        let fresh = root.path().join("pacs2cd-fresh");
        let foreign = root.path().join("somebody-else");
        for dir in [&old, &fresh, &foreign] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
        for dir in [&old, &foreign] {
            File::open(dir).and_then(|f| f.set_modified(two_days_ago)).expect("age it");
        }
        sweep(root.path());
        assert!(!old.exists() && fresh.exists() && foreign.exists());
        // A fresh folder whose process is gone goes at once; one of a
        // living job stays.
        let me = std::process::id();
        let dead = root.path().join(format!("pacs2cd-{me}.1-abc"));
        let alive = root.path().join(format!("pacs2cd-{me}.{}-abc", start_time(me).expect("start")));
        for dir in [&dead, &alive] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        sweep(root.path());
        assert!(!dead.exists() && alive.exists());
    }

    #[test]
    fn the_lock_excludes_names_its_holder_and_gives_up_with_busy() {
        let base = tempfile::tempdir().expect("base");
        let root = open(&base.path().join("stage"), GROUP).expect("root");
        let first = root.lock(11112, Duration::ZERO, &mut |_| {}).expect("first");
        let mut said = String::new();
        let err = root.lock(11112, Duration::from_millis(200), &mut |m| said = m.into()).err().expect("busy");
        assert_eq!(err.class, crate::failure::Class::Busy);
        assert!(said.contains(&format!("pid {}", std::process::id())), "{said}");
        assert!(err.detail.contains("try again"), "{}", err.detail);
        let lock = base.path().join("stage").join(LOCK_FILE);
        assert_eq!(std::fs::read(&lock).expect("lock").len(), 0, "the lock file is never written");
        drop(first);
        root.lock(11112, Duration::ZERO, &mut |_| {}).expect("released");
    }
}
