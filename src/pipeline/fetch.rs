//! `pacs2cd fetch`: lookup, resolve, retrieve into a private staging folder,
//! verify, then lay the files out as a disc folder. The output folder is
//! written only after the retrieve is verified, so a failed fetch leaves
//! no half-filled disc folder behind.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::failure::Failure;
use crate::job::{Context, FetchJob};
use crate::pipeline::{Deadline, StudySummary, disc, lookup, retrieve};
use crate::sanitize;
use crate::staging;

#[derive(Debug, Serialize)]
pub struct Fetched {
    pub accessions: Vec<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub studies: Vec<StudySummary>,
    pub files: usize,
    pub bytes: u64,
    pub folder: String,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub fn run(context: &Context, job: &FetchJob) -> Result<Fetched, Failure> {
    let started = Instant::now();
    // A folder named on the command line is checked before any traffic.
    if let Some(output) = &job.output {
        disc::prepare(output, job.force)?;
    }
    let deadline = Deadline::after(job.pacs.timeouts.total);
    let work = staging::private_dir(&context.config.staging_dir)?;
    let found =
        lookup::run(context, &job.pacs, &job.accessions, job.allow_mixed_patients, work.path(), &deadline)?;
    let output = job.output.clone().unwrap_or_else(|| default_folder(&found.patient.name, &job.accessions));
    if job.output.is_none() {
        disc::prepare(&output, job.force)?;
    }
    crate::signals::check()?;
    let incoming = work.path().join("incoming");
    let retrieved = retrieve::run(context, &job.pacs, &found, &incoming, job.allow_partial, &deadline)?;
    let created = !output.exists();
    let laid = disc::lay_out(&retrieved.files, &output, context.config.tools.viewer_dir.as_deref());
    let layout = match laid {
        Ok(layout) => layout,
        Err(failure) => {
            if created {
                let _ = std::fs::remove_dir_all(&output);
            }
            return Err(failure);
        }
    };
    let studies = StudySummary::list(&found, &retrieved.per_study);
    for warning in &retrieved.warnings {
        log::warn!("{warning}");
    }
    Ok(Fetched {
        accessions: job.accessions.iter().map(|a| a.to_string()).collect(),
        patient_name: found.patient.name,
        patient_id: found.patient.id,
        studies,
        files: layout.files,
        bytes: layout.bytes,
        folder: output.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        warnings: retrieved.warnings,
    })
}

/// `./{PATIENT_NAME}-{ACC1_ACC2}`, safe as one folder name in the current
/// folder whatever the PACS calls the patient.
fn default_folder(patient_name: &str, accessions: &[crate::accession::Accession]) -> PathBuf {
    let joined: Vec<&str> = accessions.iter().map(|a| a.as_str()).collect();
    let name = sanitize::file_name(patient_name, 64, "patient");
    let accessions = sanitize::file_name(&joined.join("_"), 64, "study");
    PathBuf::from(format!("{name}-{accessions}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accession::parse_list;

    #[test]
    fn default_folder_stays_in_the_working_folder() {
        let accessions = parse_list(&["ACC001,ACC002"], 20).expect("accessions");
        assert_eq!(default_folder("DOE^JOHN", &accessions), PathBuf::from("DOE_JOHN-ACC001_ACC002"));
        let hostile = default_folder("../../x^<y>", &accessions);
        assert_eq!(hostile.components().count(), 1, "{hostile:?}");
        assert_eq!(hostile, PathBuf::from("x_y-ACC001_ACC002"));
        assert_eq!(default_folder("", &accessions), PathBuf::from("patient-ACC001_ACC002"));
    }
}
