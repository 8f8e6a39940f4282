//! Private working folders under `staging_dir`: unique per job, mode 0700,
//! removed when dropped (including on errors and signals, which unwind
//! normally through `signals`). And the lock on the C-MOVE port: the PACS
//! sends to one fixed port, so one job at a time may listen there.

use std::fs::TryLockError;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::failure::Failure;

/// Every folder this tool makes starts so, so a sweep can recognise them.
pub const PREFIX: &str = "pacs2cd-";

/// Creates a new private folder under `root` (creating `root` if needed).
/// The first call of a process also sweeps what crashed jobs left there.
pub fn private_dir(root: &Path) -> Result<TempDir, Failure> {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let unwritable = |err| unusable(root, err);
    std::fs::create_dir_all(root).map_err(unwritable)?;
    SWEPT.call_once(|| sweep(root));
    // Patients' images: nobody else may read them, whatever the umask.
    tempfile::Builder::new()
        .prefix(PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(root)
        .map_err(unwritable)
}

/// Staging folders older than this were left by a crash or a power loss.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Removes this tool's staging folders older than a day under `root`
/// (nothing else: only names with our prefix). Errors are logged, not fatal.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_ours = name.to_string_lossy().starts_with(PREFIX);
        let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if is_ours && entry.path().is_dir() && age.is_some_and(|age| age > STALE_AFTER) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    log::warn!("removed stale staging folder {} (left by a crash?)", entry.path().display())
                }
                Err(err) => {
                    log::warn!("cannot remove stale staging folder {}: {err}", entry.path().display())
                }
            }
        }
    }
}

/// An exclusive lock on the retrieve port, held until dropped. The kernel
/// releases it when the process dies, so a crash leaves no stale lock.
pub struct PortLock {
    _file: std::fs::File,
}

impl PortLock {
    /// Takes the lock for `port`, waiting up to `wait` for another job
    /// (`on_wait` is told its pid once). Gives up with `busy`.
    pub fn acquire(
        root: &Path,
        port: u16,
        wait: Duration,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<PortLock, Failure> {
        std::fs::create_dir_all(root).map_err(|err| unusable(root, err))?;
        let path = root.join(format!("retrieve-port-{port}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| unusable(root, err))?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(err)) => return Err(unusable(root, err)),
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
            let holder = if holder.is_empty() { "unknown".to_string() } else { holder };
            if !told {
                on_wait(&format!("waiting for another retrieve on port {port}, pid {holder}"));
                told = true;
            }
            if started.elapsed() >= wait {
                return Err(Failure::busy(&format!(
                    "another retrieve (pid {holder}) held port {port} for more than {} s (lock_wait_secs)",
                    wait.as_secs()
                )));
            }
            crate::signals::check()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        // Say who holds it, for the next job's message.
        file.set_len(0)
            .and_then(|()| {
                file.seek(SeekFrom::Start(0))?;
                writeln!(file, "{}", std::process::id())
            })
            .map_err(|err| unusable(root, err))?;
        Ok(PortLock { _file: file })
    }
}

fn unusable(root: &Path, err: std::io::Error) -> Failure {
    Failure::config(format!(
        "staging folder {} is not usable: {} (see staging_dir in the configuration)",
        root.display(),
        err.to_string().to_lowercase()
    ))
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
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

    #[test]
    fn private_and_removed_on_drop() {
        let root = tempfile::tempdir().expect("root");
        let staging = root.path().join("deeper/stage");
        let dir = private_dir(&staging).expect("private dir");
        let mode = dir.path().metadata().expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(dir.path().file_name().is_some_and(|n| n.to_string_lossy().starts_with(PREFIX)));
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        assert!(free_bytes(root.path()).expect("statvfs") > 0);
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
            std::fs::File::open(dir).and_then(|f| f.set_modified(two_days_ago)).expect("age it");
        }
        sweep(root.path());
        assert!(!old.exists() && fresh.exists() && foreign.exists());
    }

    #[test]
    fn port_lock_excludes_and_gives_up_with_busy() {
        let root = tempfile::tempdir().expect("root");
        let first = PortLock::acquire(root.path(), 11112, Duration::ZERO, &mut |_| {}).expect("first");
        let mut said = String::new();
        let err = PortLock::acquire(root.path(), 11112, Duration::from_millis(200), &mut |m| said = m.into())
            .err()
            .expect("busy");
        assert_eq!(err.class, crate::failure::Class::Busy);
        assert!(said.contains(&format!("pid {}", std::process::id())), "{said}");
        // Another port is free; the first port is free once dropped.
        PortLock::acquire(root.path(), 11113, Duration::ZERO, &mut |_| {}).expect("other port");
        drop(first);
        PortLock::acquire(root.path(), 11112, Duration::ZERO, &mut |_| {}).expect("released");
    }
}
