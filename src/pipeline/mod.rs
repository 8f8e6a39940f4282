//! The steps of a job, each `run(..) -> Result<_, Failure>`.

pub mod arrivals;
pub mod disc;
pub mod fetch;
pub mod find;
pub mod lookup;
pub mod manifest;
pub mod patient_api;
pub mod pdi;
pub mod print;
pub mod receiver;
pub mod relay;
pub mod retrieve;

use std::time::{Duration, Instant};

use serde::Serialize;

/// One study of a job's result.
#[derive(Debug, Serialize)]
pub struct StudySummary {
    pub accession: String,
    pub study_instance_uid: String,
    pub modalities: Vec<String>,
    /// Files handled (received, sent); for a dry run, the PACS's count.
    pub files: usize,
    /// Images the PACS lists for the study (or counts, where it gives no
    /// list), when it says.
    pub expected: Option<usize>,
}

impl StudySummary {
    /// Summaries of `found`'s studies with their file counts (same order);
    /// where the PACS named no modality, those of the files `received`
    /// (per study; none for a dry run).
    pub fn list(
        found: &lookup::Found,
        manifest: &manifest::Manifest,
        files: &[usize],
        received: &[Vec<String>],
    ) -> Vec<StudySummary> {
        found
            .studies
            .iter()
            .zip(files)
            .enumerate()
            .map(|(index, (study, &files))| StudySummary {
                accession: study.accession.clone(),
                study_instance_uid: study.study_instance_uid.clone(),
                modalities: match &study.modalities {
                    none if none.is_empty() => received.get(index).cloned().unwrap_or_default(),
                    named => named.clone(),
                },
                files,
                expected: manifest.studies.get(index).and_then(|s| s.expected).or(study.instances),
            })
            .collect()
    }
}

/// A job's total deadline: every tool run gets what is left of it, so a
/// PACS that stalls or answers Pending forever cannot hang the job.
pub struct Deadline {
    end: Instant,
}

/// The deadline has passed.
pub struct Expired;

impl Deadline {
    pub fn after(total: Duration) -> Deadline {
        Deadline { end: Instant::now() + total }
    }

    pub fn remaining(&self) -> Result<Duration, Expired> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(Expired) } else { Ok(left) }
    }
}
