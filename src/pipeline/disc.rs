//! The disc layout: DICOM files under `DICOM/` with file IDs that follow
//! the DICOM media rules (`A-Z 0-9 _`, at most 8 characters a component:
//! `DICOM/ST000001/SE000001/IM000001`), numbered by our own counters, since
//! received names (`CT.<SOP Instance UID>`) are neither legal nor unique
//! enough; the DICOMDIR index (dcmmkdir); and the viewer files at the root.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dicom::dcmmkdir;
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::failure::Failure;
use crate::job::Context;
use crate::pipeline::retrieve::Received;

/// What was laid out.
#[derive(Debug, Default)]
pub struct Layout {
    pub files: usize,
    pub bytes: u64,
}

use crate::output::{FILE_MODE, FOLDER_MODE};

/// Creates `path` and any missing parents with the disc's folder mode.
pub fn create_folder(path: &Path) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(path)
        .map_err(|err| write_failure(path, err))
}

/// Sets the disc's file mode (the umask may have opened it wider).
pub fn restrict(path: &Path) -> Result<(), Failure> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(|err| write_failure(path, err))
}

/// The viewer's files go onto every patient's disc, and an AUTORUN.INF may
/// start one of them: whoever can change them can put a program of his on
/// every disc. So the viewer folder follows the staging root's rules: it
/// and every folder above it are root's or ours and writable by nobody
/// else, and so is everything inside it. Returns how many files it holds.
pub fn check_viewer(viewer: &Path) -> Result<usize, Failure> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_viewer = |path: &Path, why: String| {
        Failure::config(format!(
            "tools.viewer_dir {} is not safe: {} {why}; its files go onto every disc (make it root's, \
             writable by root alone)",
            viewer.display(),
            path.display()
        ))
    };
    let meta = std::fs::symlink_metadata(viewer).map_err(|err| {
        Failure::config(format!(
            "tools.viewer_dir {} cannot be read: {}",
            viewer.display(),
            err.to_string().to_lowercase()
        ))
    })?;
    if !meta.is_dir() {
        return Err(Failure::config(format!("tools.viewer_dir {} is not a folder", viewer.display())));
    }
    crate::staging::check_ancestors(viewer, false, "tools.viewer_dir")?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut files = 0;
    let mut pending = vec![viewer.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let meta = std::fs::symlink_metadata(&dir).map_err(|err| unsafe_viewer(&dir, err.to_string()))?;
        let check = |path: &Path, meta: &std::fs::Metadata| -> Result<(), Failure> {
            if meta.uid() != 0 && meta.uid() != me {
                return Err(unsafe_viewer(
                    path,
                    format!("belongs to {}", crate::staging::user_name(meta.uid())),
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(unsafe_viewer(
                    path,
                    format!("can be written by others (mode {:04o})", meta.mode() & 0o7777),
                ));
            }
            Ok(())
        };
        check(&dir, &meta)?;
        let entries =
            std::fs::read_dir(&dir).map_err(|err| unsafe_viewer(&dir, err.to_string().to_lowercase()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|err| unsafe_viewer(&path, err.to_string()))?;
            if meta.is_dir() {
                pending.push(path);
            } else {
                // A symlink is left off the disc (see copy_tree); its own
                // owner matters all the same.
                check(&path, &meta)?;
                files += usize::from(meta.is_file());
            }
        }
    }
    Ok(files)
}

/// The viewer's files go onto every disc: a viewer folder that holds the
/// output folder would copy the disc into itself.
pub fn refuse_viewer_around(viewer: Option<&Path>, output: &Path) -> Result<(), Failure> {
    let output = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
    match viewer {
        Some(viewer) if crate::config::is_within(&output, viewer) => Err(Failure::config(format!(
            "the output folder {} is inside tools.viewer_dir {}: choose another with -o",
            output.display(),
            viewer.display()
        ))),
        _ => Ok(()),
    }
}

/// A disc folder built whole: its layout, its one name (File-set ID and
/// volume label), the study summaries, what its README.TXT and INDEX.HTM
/// say, and what the DICOMDIR could not index (as warnings).
pub struct Built {
    pub layout: Layout,
    pub label: String,
    pub summaries: Vec<crate::pipeline::StudySummary>,
    pub info: crate::pipeline::pdi::DiscInfo,
    pub left_out: Vec<String>,
}

/// Builds the disc in `folder` from what the retrieve proved: the files
/// laid out, the viewer, IHE PDI's README.TXT and INDEX.HTM, and the
/// DICOMDIR (`fetch` and a robot's `print` alike).
pub fn build(
    context: &Context,
    accessions: &[crate::accession::Accession],
    found: &crate::pipeline::lookup::Found,
    retrieved: &crate::pipeline::retrieve::Retrieved,
    folder: &Path,
) -> Result<Built, Failure> {
    use crate::pipeline::{StudySummary, pdi};
    let layout = lay_out(&retrieved.files, folder, &context.config.tools)?;
    log::debug!("phase: laid out");
    // One name for the index and the image (PS3.12 F.1.1).
    let joined: Vec<&str> = accessions.iter().map(|a| a.as_str()).collect();
    let label = dcmmkdir::disc_label(&joined);
    let summaries =
        StudySummary::list(found, &retrieved.manifest, &retrieved.per_study, &retrieved.modalities);
    let info = pdi::DiscInfo {
        patients: retrieved.patients.clone(),
        studies: pdi::studies(&summaries, found),
        institution: context.config.cd_publisher.institution.clone(),
        made: std::time::SystemTime::now(),
        label: label.clone(),
        viewer: context.config.tools.viewer_dir.is_some(),
    };
    pdi::write(folder, &info)?;
    let left_out = index(context, folder, &label, layout.files)?;
    Ok(Built { layout, label, summaries, info, left_out })
}

/// Creates `output` and moves the files (already in study, series,
/// instance order) into `output/DICOM/...`, copies the viewer files of
/// `tools.viewer_dir` to `output`, and writes an AUTORUN.INF for the viewer
/// when one is named: the disc as `fetch` and a robot's print lay it out.
pub fn lay_out(files: &[Received], output: &Path, tools: &crate::config::Tools) -> Result<Layout, Failure> {
    create_folder(output)?;
    let (viewer_dir, viewer_autorun) = (tools.viewer_dir.as_deref(), tools.viewer_autorun.as_deref());
    let mut layout = Layout::default();
    let mut last: Option<(&str, &str)> = None;
    let (mut study, mut series, mut image) = (0usize, 0usize, 0usize);
    for file in files {
        crate::signals::check()?;
        let identity = &file.identity;
        let here = (identity.study_instance_uid.as_str(), identity.series_instance_uid.as_str());
        match last {
            Some((s, _)) if s != here.0 => (study, series, image) = (study + 1, 1, 0),
            Some((_, s)) if s != here.1 => (series, image) = (series + 1, 0),
            Some(_) => {}
            None => (study, series, image) = (1, 1, 0),
        }
        last = Some(here);
        image += 1;
        let folder = output.join(file_id(study, series));
        if image == 1 {
            create_folder(&folder)?;
        }
        let target = folder.join(format!("IM{image:06}"));
        move_file(&file.path, &target)?;
        restrict(&target)?;
        layout.files += 1;
        layout.bytes += target.metadata().map(|m| m.len()).unwrap_or(0);
    }
    if let Some(viewer) = viewer_dir {
        copy_tree(viewer, output)?;
    }
    if let Some(program) = viewer_autorun {
        let inf = output.join("AUTORUN.INF");
        let text = format!("[autorun]\r\nopen={}\r\n", program.replace('/', "\\"));
        std::fs::write(&inf, text).map_err(|err| write_failure(&inf, err))?;
        restrict(&inf)?;
    }
    Ok(layout)
}

/// Writes the DICOMDIR of `output` with dcmmkdir, and checks that it
/// indexes all `files` (dcmmkdir exits 0 even when it leaves some out).
/// An object the General Purpose profile cannot index (a private or newer
/// SOP class, an SR without the attributes its record needs) stays on the
/// disc, outside the index: returned as a warning naming it and why. A
/// disc is never refused for one object without saying which.
pub fn index(
    context: &Context,
    output: &Path,
    file_set_id: &str,
    files: usize,
) -> Result<Vec<String>, Failure> {
    let program = context.toolbox.path(Tool::Dcmmkdir)?;
    let mut command = Command::new(&program, Duration::from_secs(3600));
    command.args(dcmmkdir::args(file_set_id, "DICOM"));
    command.dir = Some(output.to_path_buf());
    let run = runner::run(&command, &mut |_| {})?;
    let indexed = dcmmkdir::parse(&run.lines);
    // Every file added, the index written, and not one error on the way:
    // dcmmkdir logs "adding" before it builds a file's records.
    let whole = indexed.added + indexed.left_out.len() == files
        && indexed.written
        && indexed.problems.is_empty()
        && run.code == Some(0)
        && output.join("DICOMDIR").is_file();
    if !whole {
        let why = indexed
            .problems
            .first()
            .or(indexed.left_out.first().map(|(_, why)| why))
            .map(|p| format!(": {p}"))
            .unwrap_or_default();
        return Err(Failure::fetch_incomplete(&format!(
            "the DICOMDIR of the disc folder is not complete ({} of {files} images indexed){}",
            indexed.added,
            why.chars().take(300).collect::<String>()
        )));
    }
    restrict(&output.join("DICOMDIR"))?;
    Ok(indexed
        .left_out
        .into_iter()
        .map(|(file, why)| {
            format!(
                "{file} is on the disc but not in its DICOMDIR: {why}; a viewer that reads only the DICOMDIR \
                 will not show it"
            )
        })
        .collect())
}

/// Bytes of the files under `folder`.
pub fn folder_bytes(folder: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `DICOM/ST000001/SE000001`: a media file ID's folders.
fn file_id(study: usize, series: usize) -> PathBuf {
    Path::new("DICOM").join(format!("ST{study:06}")).join(format!("SE{series:06}"))
}

/// Renames, or copies when the staging folder is on another file system.
fn move_file(from: &Path, to: &Path) -> Result<(), Failure> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|err| write_failure(to, err))?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Copies the viewer's files. Symbolic links are not followed (a link to
/// a parent folder would copy without end), and a signal stops the copy.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Failure> {
    let entries = std::fs::read_dir(from)
        .map_err(|err| Failure::config(format!("cannot read tools.viewer_dir {}: {err}", from.display())))?;
    for entry in entries.flatten() {
        crate::signals::check()?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|err| write_failure(&source, err))?;
        if kind.is_dir() {
            create_folder(&target)?;
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(|err| write_failure(&target, err))?;
            // Keep an executable bit for the viewer program, drop others' bits.
            let mode = entry.metadata().map(|m| m.permissions().mode()).unwrap_or(FILE_MODE);
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o750 | FILE_MODE))
                .map_err(|err| write_failure(&target, err))?;
        } else {
            log::warn!(
                "viewer folder: {} is not a plain file or folder: left off the disc",
                source.display()
            );
        }
    }
    Ok(())
}

fn write_failure(path: &Path, err: std::io::Error) -> Failure {
    Failure::config(format!("cannot write {}: {}", path.display(), err.to_string().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_follow_the_media_rules() {
        let id = file_id(12, 3);
        assert_eq!(id, Path::new("DICOM/ST000012/SE000003"));
        for component in id.components() {
            let text = component.as_os_str().to_string_lossy();
            assert!(
                text.len() <= 8
                    && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            );
        }
    }
}
