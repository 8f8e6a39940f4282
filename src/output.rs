//! Where a finished disc folder or image goes: built whole in the job's
//! private folder, then moved into place. Nothing is written to the
//! user's folder before the disc is proven and complete, nothing through a
//! symlink, nothing over what is there unless asked (`--force`).
//!
//! An output folder that exists is accepted only when it is the user's
//! own tree: every entry theirs, writable by nobody else, no symlink (a
//! planted `AUTORUN.INF -> ~/.profile` would otherwise be written
//! through). It is checked before any traffic (to fail early) and again at
//! the move (what counts). A rename on the same file system is atomic and
//! never follows the target; across file systems the content is copied
//! into a fresh private folder beside the target, created exclusively, and
//! renamed into place.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::failure::Failure;
use crate::staging::{lower, user_name};

/// Folders and files of a disc as placed: the owner's and the group's
/// (a technician's team), never every local user's.
pub const FOLDER_MODE: u32 = 0o750;
pub const FILE_MODE: u32 = 0o640;

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn refused(path: &Path, why: &str) -> Failure {
    Failure::config(format!("output {} {why}", path.display()))
}

/// A write of the output that failed: a full disk is said as such (74,
/// never a configuration error), with what is free there.
fn not_written(path: &Path, err: &io::Error) -> Failure {
    if err.raw_os_error() == Some(libc::ENOSPC) {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let free = crate::staging::free_bytes(folder).map(|b| format!("{} MB free", b / 1_000_000));
        return Failure::disk_full(&format!(
            "output disk full: {} cannot be written ({}); nothing was placed",
            path.display(),
            free.unwrap_or_else(|_| "no space left".into())
        ))
        .for_the_web("the server that prepares the discs is out of disk space");
    }
    refused(path, &format!("cannot be written: {}", lower(err)))
}

/// Checks a folder the disc is to go into: missing, or the user's own
/// tree (see the module comment); occupied only with `force`.
pub fn check_folder(output: &Path, force: bool) -> Result<(), Failure> {
    // Whoever may replace a folder above it may replace the disc later.
    crate::staging::check_ancestors(&absolute(output), false, "output")?;
    let Ok(meta) = std::fs::symlink_metadata(output) else { return Ok(()) };
    if !meta.is_dir() {
        return Err(refused(output, "exists and is not a folder (or is a symbolic link)"));
    }
    own_tree(output)?;
    let occupied = std::fs::read_dir(output).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if occupied && !force {
        return Err(refused(output, "exists and is not empty: choose another with -o, or use --force"));
    }
    Ok(())
}

/// Checks a file the image is to go to: missing, or (with `force`) a
/// regular file of the user's.
pub fn check_file(target: &Path, force: bool) -> Result<(), Failure> {
    crate::staging::check_ancestors(&absolute(target), false, "output")?;
    let Ok(meta) = std::fs::symlink_metadata(target) else { return Ok(()) };
    if !force {
        return Err(refused(target, "exists: choose another file, or use --force"));
    }
    if !meta.is_file() || meta.uid() != euid() {
        return Err(refused(
            target,
            "exists and is not a file of yours: --force replaces only your own image",
        ));
    }
    Ok(())
}

/// Every entry of `root` (itself included) is the user's, writable by
/// nobody else, and no symlink.
fn own_tree(root: &Path) -> Result<(), Failure> {
    let me = euid();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|err| refused(&path, &lower(&err)))?;
        if meta.file_type().is_symlink() {
            return Err(refused(
                root,
                &format!(
                    "holds a symbolic link, {}: nothing is written through one; remove it",
                    path.display()
                ),
            ));
        }
        if meta.uid() != me {
            return Err(refused(
                root,
                &format!(
                    "holds {}, which belongs to {}: it must be yours alone",
                    path.display(),
                    user_name(meta.uid())
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                root,
                &format!(
                    "holds {}, which others can write (mode {:04o}): it must be yours alone",
                    path.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|err| refused(&path, &lower(&err)))?;
            pending.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
    Ok(())
}

/// Moves the finished disc folder `built` (in the job's private folder) to
/// `output`. Into an existing folder (checked again now) its top-level
/// entries go one by one, after `--force` removed the old ones of the same
/// names. Returns what was placed, for an undo.
pub fn place_folder(built: &Path, output: &Path, force: bool) -> Result<(), Failure> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(FOLDER_MODE)
            .create(parent)
            .map_err(|err| refused(parent, &format!("cannot be created: {}", lower(&err))))?;
    }
    match move_whole(built, output) {
        Ok(()) => return set_mode(output, FOLDER_MODE),
        // Someone made it meanwhile (or it was there): the checks decide.
        Err(err) if matches!(err.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {}
        Err(err) => return Err(not_written(output, &err)),
    }
    check_folder(output, force)?;
    let entries: Vec<PathBuf> = std::fs::read_dir(built)
        .map_err(|err| refused(built, &lower(&err)))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    let mut placed: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let Some(name) = entry.file_name() else { continue };
        let target = output.join(name);
        if force {
            // Checked: no symlink anywhere, all the user's own.
            let removed = match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&target),
                Ok(_) => std::fs::remove_file(&target),
                Err(_) => Ok(()),
            };
            removed.map_err(|err| refused(&target, &format!("cannot be replaced: {}", lower(&err))))?;
            log::info!("--force: replaced {}", target.display());
        }
        if let Err(err) = move_whole(&entry, &target) {
            for done in placed.iter().rev() {
                let _ =
                    if done.is_dir() { std::fs::remove_dir_all(done) } else { std::fs::remove_file(done) };
            }
            return Err(not_written(&target, &err));
        }
        placed.push(target);
    }
    Ok(())
}

/// Moves the finished image `built` to `target` (replacing a file of the
/// user's with `force`, checked again now).
pub fn place_file(built: &Path, target: &Path, force: bool) -> Result<(), Failure> {
    check_file(target, force)?;
    let moved = if force { rename(built, target, false) } else { rename(built, target, true) };
    match moved {
        Ok(()) => {}
        // Another file system: copied whole into a private folder beside
        // the target, then renamed in. The old image (--force) is replaced
        // only by a whole one, and no partial image ever has its name.
        Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {
            let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let beside = tempfile::Builder::new()
                .prefix(".pacs2cd-")
                .tempdir_in(parent)
                .map_err(|err| not_written(target, &err))?;
            let copy = beside.path().join("image");
            copy_file(built, &copy).map_err(|err| not_written(target, &err))?;
            match rename(&copy, target, !force) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                    return Err(refused(target, "appeared meanwhile: choose another file, or use --force"));
                }
                Err(err) => return Err(not_written(target, &err)),
            }
        }
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
            return Err(refused(target, "appeared meanwhile: choose another file, or use --force"));
        }
        Err(err) => return Err(not_written(target, &err)),
    }
    set_mode(target, FILE_MODE)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|err| refused(path, &format!("cannot be restricted: {}", lower(&err))))
}

/// `from` to `to` whole: a rename that never replaces, or across file
/// systems a copy into a fresh private folder beside `to`, renamed in.
fn move_whole(from: &Path, to: &Path) -> io::Result<()> {
    match rename(from, to, true) {
        Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {}
        other => return other,
    }
    let is_dir = std::fs::symlink_metadata(from)?.is_dir();
    let parent = to.parent().unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new().prefix(".pacs2cd-").tempdir_in(parent)?;
    let copy = staging.path().join("copy");
    if is_dir {
        copy_tree(from, &copy)?;
    } else {
        copy_file(from, &copy)?;
    }
    rename(&copy, to, true)
}

/// rename(2) that refuses to replace an existing target (RENAME_NOREPLACE)
/// when `no_replace`.
fn rename(from: &Path, to: &Path, no_replace: bool) -> io::Result<()> {
    let c = |path: &Path| {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (from, to) = (c(from)?, c(to)?);
    let flags = if no_replace { libc::RENAME_NOREPLACE } else { 0 };
    // SAFETY: valid NUL-terminated paths, AT_FDCWD for both.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Copies a file to a path that must not exist (never through a symlink).
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(to)?;
    io::copy(&mut source, &mut target)?;
    target.sync_all()
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(FOLDER_MODE).create(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(dir: &Path) -> PathBuf {
        let disc = dir.join("built");
        std::fs::create_dir_all(disc.join("DICOM")).expect("mkdir");
        std::fs::write(disc.join("DICOMDIR"), "index").expect("write");
        std::fs::write(disc.join("AUTORUN.INF"), "[autorun]").expect("write");
        disc
    }

    #[test]
    fn a_missing_folder_is_made_whole_by_one_rename() {
        let dir = tempfile::tempdir().expect("dir");
        let disc = built(dir.path());
        let output = dir.path().join("out/disc");
        check_folder(&output, false).expect("missing is fine");
        place_folder(&disc, &output, false).expect("placed");
        assert!(output.join("DICOMDIR").is_file() && !disc.exists());
        assert_eq!(output.metadata().expect("meta").mode() & 0o777, FOLDER_MODE);
    }

    #[test]
    fn a_planted_symlink_is_refused_even_with_force_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("dir");
        let disc = built(dir.path());
        let output = dir.path().join("out");
        std::fs::create_dir(&output).expect("mkdir");
        let precious = dir.path().join("profile");
        std::fs::write(&precious, "precious").expect("write");
        std::os::unix::fs::symlink(&precious, output.join("AUTORUN.INF")).expect("symlink");
        for force in [false, true] {
            let err = place_folder(&disc, &output, force).expect_err("symlink");
            assert!(err.detail.contains("symbolic link"), "{}", err.detail);
        }
        assert_eq!(std::fs::read_to_string(&precious).expect("read"), "precious");
    }

    #[test]
    fn an_occupied_folder_needs_force_and_keeps_what_is_not_the_discs() {
        let dir = tempfile::tempdir().expect("dir");
        let disc = built(dir.path());
        let output = dir.path().join("out");
        std::fs::create_dir_all(output.join("DICOM/OLD")).expect("mkdir");
        std::fs::write(output.join("notes.txt"), "mine").expect("write");
        assert!(check_folder(&output, false).is_err());
        place_folder(&disc, &output, true).expect("forced");
        assert!(!output.join("DICOM/OLD").exists(), "the old images are gone");
        assert_eq!(std::fs::read_to_string(output.join("notes.txt")).expect("read"), "mine");
        assert_eq!(std::fs::read_to_string(output.join("DICOMDIR")).expect("read"), "index");
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let output = dir.path().join("out");
        std::fs::create_dir(&output).expect("mkdir");
        std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = check_folder(&output, true).expect_err("world-writable");
        assert!(err.detail.contains("others can write"), "{}", err.detail);
    }

    #[test]
    fn an_image_never_replaces_a_symlink_target() {
        let dir = tempfile::tempdir().expect("dir");
        let image = dir.path().join("built.iso");
        std::fs::write(&image, "iso").expect("write");
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "precious").expect("write");
        let target = dir.path().join("out.iso");
        std::os::unix::fs::symlink(&precious, &target).expect("symlink");
        assert!(place_file(&image, &target, false).is_err());
        assert!(place_file(&image, &target, true).is_err(), "a symlink is no file of ours");
        assert_eq!(std::fs::read_to_string(&precious).expect("read"), "precious");
        std::fs::remove_file(&target).expect("rm");
        place_file(&image, &target, false).expect("placed");
        assert_eq!(target.metadata().expect("meta").mode() & 0o777, FILE_MODE);
    }
}
