//! Private working folders under `staging_dir`: unique per job, mode 0700,
//! removed when dropped (including on errors and signals, which unwind
//! normally through `signals`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;

use crate::failure::Failure;

/// Every folder this tool makes starts so, so a sweep can recognise them.
pub const PREFIX: &str = "pacs2cd-";

/// Creates a new private folder under `root` (creating `root` if needed).
pub fn private_dir(root: &Path) -> Result<TempDir, Failure> {
    let unwritable = |err: std::io::Error| {
        Failure::config(format!(
            "staging folder {} is not usable: {} (see staging_dir in the configuration)",
            root.display(),
            err.to_string().to_lowercase()
        ))
    };
    std::fs::create_dir_all(root).map_err(unwritable)?;
    // Patients' images: nobody else may read them, whatever the umask.
    tempfile::Builder::new()
        .prefix(PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(root)
        .map_err(unwritable)
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte")
    })?;
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
        let mode = dir
            .path()
            .metadata()
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        assert!(
            dir.path()
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
        );
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        assert!(free_bytes(root.path()).expect("statvfs") > 0);
    }
}
