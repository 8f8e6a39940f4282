//! `pacs2cd print`: the legacy send_rimage_multiple job, honest about
//! failure. Lookup, retrieve into a private staging folder, verify, send
//! every file in one association to the CD publisher, verify each was
//! accepted, and remove the staging folder on every path (it is a TempDir:
//! errors and signals unwind through its Drop; stale ones from crashes are
//! swept when the first is made). The retrieve-port lock is
//! released when the retrieve ends, so another job can retrieve while this
//! one sends.

use std::time::Instant;

use serde::Serialize;

use crate::failure::Failure;
use crate::job::{Context, PrintJob};
use crate::pipeline::relay::{self, Instance};
use crate::pipeline::{Deadline, StudySummary, lookup, retrieve};
use crate::staging;

/// A print that reached the publisher whole. The legacy HIS contract's
/// keys come first.
#[derive(Debug, Serialize)]
pub struct Printed {
    pub accessions_sent: Vec<String>,
    pub patient_name: String,
    pub destination: String,
    pub files_sent: usize,
    pub patient_id: String,
    pub called_ae: String,
    pub sender: &'static str,
    pub studies: Vec<StudySummary>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What a dry run found: what would be sent.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub accessions: Vec<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub destination: String,
    /// The PACS's image counts, where it gave them.
    pub files_expected: Option<usize>,
    pub studies: Vec<StudySummary>,
}

pub enum Outcome {
    Printed(Printed),
    Planned(Plan),
}

pub fn run(context: &Context, job: &PrintJob) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let deadline = Deadline::after(job.pacs.timeouts.total);
    let work = staging::private_dir(&context.config.staging_dir)?;
    let found =
        lookup::run(context, &job.pacs, &job.accessions, job.allow_mixed_patients, work.path(), &deadline)?;
    let accessions: Vec<String> = job.accessions.iter().map(|a| a.to_string()).collect();
    let destination = job.publisher.endpoint.address();
    if job.dry_run {
        let counts: Vec<usize> = found.studies.iter().map(|s| s.instances.unwrap_or(0)).collect();
        return Ok(Outcome::Planned(Plan {
            accessions,
            patient_name: found.patient.name.clone(),
            patient_id: found.patient.id.clone(),
            destination,
            files_expected: found.studies.iter().map(|s| s.instances).sum(),
            studies: StudySummary::list(&found, &counts),
        }));
    }
    let patient_id = found.patient.id.clone();
    let incoming = work.path().join("incoming");
    let sent = (|| {
        let retrieved = retrieve::run(context, &job.pacs, &found, &incoming, job.allow_partial, &deadline)?;
        crate::signals::check()?;
        let instances: Vec<Instance> = retrieved
            .files
            .iter()
            .map(|file| Instance {
                name: file.path.strip_prefix(&incoming).unwrap_or(&file.path).to_string_lossy().into_owned(),
                sop_instance_uid: file.identity.sop_instance_uid.clone(),
            })
            .collect();
        let relayed = relay::send(context, &incoming, &instances, &job.publisher)?;
        Ok((retrieved, relayed))
    })();
    let (retrieved, relayed) = sent.map_err(|failure: Failure| failure.for_patient(&patient_id))?;
    for warning in &retrieved.warnings {
        log::warn!("{warning}");
    }
    Ok(Outcome::Printed(Printed {
        accessions_sent: accessions,
        patient_name: found.patient.name.clone(),
        destination,
        files_sent: relayed.files_sent,
        patient_id,
        called_ae: relayed.called_ae,
        sender: relayed.sender,
        studies: StudySummary::list(&found, &retrieved.per_study),
        seconds: started.elapsed().as_secs_f64(),
        warnings: retrieved.warnings,
    }))
}
