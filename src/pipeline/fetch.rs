//! `pacs2cd fetch`: lookup, resolve, retrieve into a private staging folder,
//! verify, then lay the files out as a disc folder. The output folder is
//! written only after the retrieve is verified, so a failed fetch leaves
//! no half-filled disc folder behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::audit::atna::ExportTarget;
use crate::config::IsoTool;
use crate::failure::Failure;
use crate::iso;
use crate::job::{Context, FetchJob};
use crate::output;
use crate::patients::Patient;
use crate::pipeline::find::Finder;
use crate::pipeline::manifest::Proof;
use crate::pipeline::{Deadline, StudySummary, disc, lookup, retrieve};
use crate::sanitize;
use crate::staging;

#[derive(Debug, Serialize)]
pub struct Fetched {
    pub accessions: Vec<String>,
    /// The first accession's patient; `patients` has all.
    pub patient_name: String,
    pub patient_id: String,
    pub patients: Vec<Patient>,
    /// How the folder was proven whole.
    pub proof: &'static str,
    pub studies: Vec<StudySummary>,
    pub files: usize,
    pub bytes: u64,
    /// The disc folder, unless only an image was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso_bytes: Option<u64>,
    pub seconds: f64,
    /// Images the PACS lists that are not on the disc (`--allow-partial`):
    /// a PARTIAL DISC.
    pub partial: bool,
    pub missing: usize,
    /// Who delivered the files to the C-MOVE receiver.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivered_by: Vec<crate::pipeline::retrieve::DeliveredBy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whose files, of which studies (the audit records').
    #[serde(skip)]
    pub objects: crate::audit::trail::Objects,
    /// The folder and the image, as absolute paths (the audit records').
    #[serde(skip)]
    pub exported_to: Vec<crate::audit::atna::ExportTarget>,
}

/// Where `--iso` writes the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsoTarget {
    /// This file.
    File(PathBuf),
    /// `{PATIENT_NAME}-{ACC1_ACC2}.iso` in this folder.
    DefaultIn(PathBuf),
}

pub fn run(context: &Context, job: &FetchJob) -> Result<Fetched, Failure> {
    let started = Instant::now();
    // What can be checked before any traffic is checked first (and again
    // when the disc is moved into place, which is what counts).
    if let Some(output) = &job.output {
        disc::refuse_viewer_around(context.config.tools.viewer_dir.as_deref(), output)?;
        output::check_folder(output, job.force)?;
    }
    if let Some(IsoTarget::File(image)) = &job.iso {
        output::check_file(image, job.force)?;
    }
    // Found before any traffic, used at the end.
    let iso_tool = job.iso.as_ref().map(|_| iso::find(context.config.tools.iso_tool)).transpose()?;
    let deadline = Deadline::after(job.pacs.timeouts.total);
    let root = staging::open(&context.config.staging_dir, &context.config.staging_group)?;
    staging::check_space(&root.path, context.config.staging_min_free_mb * 1_000_000)?;
    let work = root.job_dir()?;
    let finder = Finder::new(context, &job.pacs, work.path().to_path_buf(), &deadline);
    // The C-MOVE receiver starts beside the lookup (see
    // retrieve::prepare_receiver).
    let (found, receiver) = std::thread::scope(|scope| {
        let lookup = scope.spawn(|| lookup::run(context, &finder, &job.accessions, job.allow));
        let receiver = retrieve::prepare_receiver(context, &root, &job.pacs, work.path(), false);
        let found = lookup.join().unwrap_or_else(|_| Err(Failure::config("the lookup panicked")));
        (found, receiver)
    });
    // A lookup that could not write the PACS's answers on a full disk
    // is the disk's fault.
    let found = found.map_err(|failure| staging::explain_full(&root.path, failure))?;
    let receiver = retrieve::receiver_after(receiver, context, &root, &job.pacs, work.path())?;
    let patients = found.patients.clone();
    let name = default_name(&patients, &job.accessions);
    // Paths as the user typed them (shown), and from the folder they typed
    // them in (used: the tools run elsewhere, see runner).
    let image_shown = match &job.iso {
        Some(IsoTarget::File(image)) => Some(image.clone()),
        Some(IsoTarget::DefaultIn(dir)) => {
            let image = dir.join(format!("{name}.iso"));
            output::check_file(&image, job.force)?;
            Some(image)
        }
        None => None,
    };
    let image = image_shown.as_deref().map(absolute).transpose()?;
    // Only an image asked for: the folder is not kept.
    let keep_folder = job.output.is_some() || image.is_none();
    let output_shown = job.output.clone().unwrap_or_else(|| PathBuf::from(&name));
    let output = absolute(&output_shown)?;
    if job.output.is_none() && keep_folder {
        disc::refuse_viewer_around(context.config.tools.viewer_dir.as_deref(), &output)?;
        output::check_folder(&output, job.force)?;
    }
    crate::signals::check()?;
    let full = |failure: Failure| staging::explain_full(&root.path, failure.for_patients(&patients));
    let retrieved =
        retrieve::run(context, &finder, &found, (work.path(), &root), receiver, (job.allow, None), &deadline)
            .map_err(full)?;
    log::debug!("phase: verified");
    // The disc is built whole in the job's private folder under neutral
    // names (nobody else can read or replace it there), and moved into
    // place only once complete.
    let disc_folder = work.path().join("disc");
    let disc::Built { layout, label, summaries, left_out, .. } =
        disc::build(context, &job.accessions, &found, &retrieved, &disc_folder).map_err(full)?;
    let mut warnings = found.warnings.clone();
    warnings.extend(left_out);
    warnings.extend(retrieved.warnings);
    let (missing, retrieved_patients, delivered_by, objects) =
        (retrieved.missing, retrieved.patients, retrieved.delivered_by, retrieved.objects);
    let first = retrieved_patients.first().cloned().unwrap_or_else(|| found.first_patient().clone());
    let iso_bytes = match &image {
        Some(image) => {
            let tool = iso_tool.as_ref().ok_or_else(|| Failure::config("no ISO tool"))?;
            let built = work.path().join("image.iso");
            let size = build_image(tool, &label, job, &disc_folder, &built, &mut warnings).map_err(full)?;
            output::place_file(&built, image, job.force).map_err(|f| f.for_patients(&patients))?;
            Some(size)
        }
        None => None,
    };
    let mut exported_to = Vec::new();
    if let Some(image) = &image {
        exported_to.push(ExportTarget::Iso(image.clone()));
    }
    if keep_folder {
        // The image is in place already: a folder that cannot follow fails
        // the job, and the image goes too (a failed job leaves no disc).
        let placed = image.as_deref().and_then(|image| identity_of(image).map(|id| (image, id)));
        if let Err(failure) = output::place_folder(&disc_folder, &output, job.force) {
            if let Some((image, id)) = placed
                && identity_of(image) == Some(id)
            {
                let _ = std::fs::remove_file(image);
            }
            return Err(failure.for_patients(&patients));
        }
        exported_to.push(ExportTarget::Folder(output.clone()));
    }
    for warning in &warnings {
        log::warn!("{warning}");
    }
    Ok(Fetched {
        accessions: job.accessions.iter().map(|a| a.to_string()).collect(),
        patient_name: first.name,
        patient_id: first.id,
        patients: retrieved_patients,
        proof: retrieved.proof.unwrap_or(Proof::Unproven).as_str(),
        studies: summaries,
        files: layout.files,
        bytes: layout.bytes,
        folder: keep_folder.then(|| output_shown.display().to_string()),
        iso: image_shown.map(|image| image.display().to_string()),
        iso_bytes,
        seconds: started.elapsed().as_secs_f64(),
        partial: missing > 0,
        missing,
        delivered_by,
        warnings,
        objects,
        exported_to,
    })
}

/// Which file `path` is (device and inode), to remove only the one placed.
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
}

/// `path` from the current folder.
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .map_err(|err| Failure::config(format!("cannot resolve {}: {err}", path.display())))
}

/// The ISO image of the disc folder, within what a disc holds.
fn build_image(
    tool: &(PathBuf, IsoTool),
    label: &str,
    job: &FetchJob,
    folder: &Path,
    image: &Path,
    warnings: &mut Vec<String>,
) -> Result<u64, Failure> {
    let content = disc::folder_bytes(folder);
    fits_a_dvd(content, job.force)?;
    // The image needs about the folder's size again in the staging folder:
    // a disk that cannot hold it is said before the tool fails on it.
    let needed = content + IMAGE_MARGIN;
    if let Ok(free) = crate::staging::free_bytes(image.parent().unwrap_or(folder))
        && free < needed
    {
        return Err(Failure::disk_full(&format!(
            "staging disk full at {}: the disc image needs about {} MB, {} MB are free",
            image.parent().unwrap_or(folder).display(),
            needed / 1_000_000,
            free / 1_000_000
        ))
        .for_the_web("the server that prepares the discs is out of disk space; nothing was sent"));
    }
    let started = Instant::now();
    let size = iso::build(tool, label, folder, image)?;
    log::info!(
        "built {} ({:.1} MB) in {:.2} s",
        image.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    warnings.extend(more_than_a_cd(size));
    Ok(size)
}

/// Kept free beyond the image's estimated size (the ISO's own structures).
const IMAGE_MARGIN: u64 = 16 * 1024 * 1024;

/// A disc that would not fit a DVD is refused unless `--force`.
fn fits_a_dvd(content: u64, force: bool) -> Result<(), Failure> {
    if content > iso::DVD_BYTES && !force {
        let size = format!("the disc would hold {:.2} GB, more than a DVD (4.7 GB)", content as f64 / 1e9);
        return Err(Failure::config(format!("{size}: split the accessions, or use --force"))
            .for_the_web(format!("{size}: request fewer accession numbers per disc")));
    }
    Ok(())
}

/// The warning for an image a CD cannot hold.
fn more_than_a_cd(size: u64) -> Option<String> {
    (size > iso::CD_BYTES).then(|| {
        format!("the image is {:.0} MB: more than a CD holds (700 MB), burn it on a DVD", size as f64 / 1e6)
    })
}

/// `{PATIENT_NAME}-{ACC1_ACC2}`, safe as one file or folder name in the
/// current folder whatever the PACS calls the patient; `PATIENTS-...` for
/// a disc of several patients (allowed), which no one name describes.
pub fn default_name(patients: &[Patient], accessions: &[crate::accession::Accession]) -> String {
    let joined: Vec<&str> = accessions.iter().map(|a| a.as_str()).collect();
    let name = match patients {
        [one] => sanitize::file_name(&one.name, 64, "patient"),
        _ => "PATIENTS".to_string(),
    };
    let accessions = sanitize::file_name(&joined.join("_"), 64, "study");
    format!("{name}-{accessions}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accession::parse_list;
    use crate::failure::Class;

    #[test]
    fn a_dvd_and_a_cd_are_the_limits() {
        assert!(fits_a_dvd(iso::DVD_BYTES, false).is_ok());
        let err = fits_a_dvd(iso::DVD_BYTES + 1, false).expect_err("more than a DVD");
        assert_eq!(err.class, Class::Configuration);
        assert!(
            err.detail.contains("more than a DVD (4.7 GB)") && err.detail.contains("--force"),
            "{}",
            err.detail
        );
        assert!(fits_a_dvd(iso::DVD_BYTES + 1, true).is_ok(), "--force");
        assert_eq!(more_than_a_cd(iso::CD_BYTES), None);
        let warning = more_than_a_cd(iso::CD_BYTES + 1).expect("more than a CD");
        assert!(warning.contains("burn it on a DVD"), "{warning}");
    }

    #[test]
    fn default_folder_stays_in_the_working_folder() {
        let accessions = parse_list(&["ACC001,ACC002"], 20).expect("accessions");
        let named = |name: &str| vec![Patient { name: name.into(), ..Patient::default() }];
        assert_eq!(default_name(&named("DOE^JOHN"), &accessions), "DOE_JOHN-ACC001_ACC002");
        let hostile = PathBuf::from(default_name(&named("../../x^<y>"), &accessions));
        assert_eq!(hostile.components().count(), 1, "{hostile:?}");
        assert_eq!(hostile, PathBuf::from("x_y-ACC001_ACC002"));
        assert_eq!(default_name(&named(""), &accessions), "patient-ACC001_ACC002");
        assert_eq!(default_name(&named("MÜLLER^JOSÉ"), &accessions), "MULLER_JOSE-ACC001_ACC002");
        let two = [named("SMITH^ANNA"), named("JONES^BOB")].concat();
        assert_eq!(default_name(&two, &accessions), "PATIENTS-ACC001_ACC002");
    }
}
