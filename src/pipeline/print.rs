//! `pacs2cd print`: the legacy send_rimage_multiple job, honest about
//! failure. Lookup, a C-ECHO to the publisher (a robot that is off fails in
//! seconds, not after the retrieve), retrieve into a private staging folder
//! and prove it whole, then send every file in one association to the CD
//! publisher and verify each was accepted. Nothing reaches the robot before
//! the disc is proven: that is why print keeps two hops rather than asking
//! the PACS to move straight to the publisher (a move that fails halfway
//! would leave a partial disc job at the robot). The staging folder is a
//! TempDir: errors and signals unwind through its Drop. The retrieve lock
//! is released when the retrieve ends, so another job can retrieve while
//! this one sends.

use std::time::Instant;

use serde::Serialize;

use crate::failure::Failure;
use crate::job::{Context, PrintJob};
use crate::patients::Patient;
use crate::pipeline::find::Finder;
use crate::pipeline::manifest::{self, Proof};
use crate::pipeline::relay::{self, Instance};
use crate::pipeline::retrieve;
use crate::pipeline::{Deadline, StudySummary, disc, lookup};
use crate::publisher::Robot;
use crate::publisher::hotfolder;
use crate::staging;

/// A print that reached the publisher whole. The legacy HIS contract's
/// keys come first.
#[derive(Debug, Serialize)]
pub struct Printed {
    pub accessions_sent: Vec<String>,
    /// The first accession's patient (the legacy contract); `patients` has all.
    pub patient_name: String,
    pub destination: String,
    pub files_sent: usize,
    pub patient_id: String,
    pub patients: Vec<Patient>,
    /// The publisher's display name (`cd_publisher.name`).
    pub publisher: String,
    pub called_ae: String,
    pub sender: &'static str,
    /// How the disc was proven whole before it was sent.
    pub proof: &'static str,
    pub studies: Vec<StudySummary>,
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
    /// A hot-folder robot's job: how far it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn: Option<Box<crate::publisher::hotfolder::Burn>>,
    /// Whose files went, of which studies (the audit records').
    #[serde(skip)]
    pub objects: crate::audit::trail::Objects,
}

/// What a dry run found: what would be sent.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub accessions: Vec<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub patients: Vec<Patient>,
    pub destination: String,
    pub publisher: String,
    /// The images the PACS lists (or counts), where it says.
    pub files_expected: Option<usize>,
    pub proof: &'static str,
    pub studies: Vec<StudySummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub enum Outcome {
    Printed(Printed),
    Planned(Plan),
}

pub fn run(context: &Context, job: &PrintJob) -> Result<Outcome, Failure> {
    if let Some(robot) = &job.robot {
        return burn(context, job, robot);
    }
    let started = Instant::now();
    let deadline = Deadline::after(job.pacs.timeouts.total);
    let root = staging::open(&context.config.staging_dir, &context.config.staging_group)?;
    if !job.dry_run {
        staging::check_space(&root.path, context.config.staging_min_free_mb * 1_000_000)?;
    }
    let work = root.job_dir()?;
    let finder = Finder::new(context, &job.pacs, work.path().to_path_buf(), &deadline);
    // The publisher's C-ECHO goes beside the lookup: a robot that is off
    // fails the job in seconds, and a robot that is on costs nothing.
    // So does the C-MOVE receiver's start (see retrieve::prepare_receiver),
    // on this thread: a child dies with the thread that started it (see
    // runner), and the receiver must outlive the lookup.
    let (found, echoed, receiver) = std::thread::scope(|scope| {
        // A dry run asks the publisher too: "would send" must mean it could.
        let echo = scope.spawn(|| relay::echo(context, &job.publisher));
        let lookup = scope.spawn(|| lookup::run(context, &finder, &job.accessions, job.allow));
        let receiver =
            (!job.dry_run).then(|| retrieve::prepare_receiver(context, &root, &job.pacs, work.path(), false));
        let found = lookup.join().unwrap_or_else(|_| Err(Failure::config("the lookup panicked")));
        let echoed = echo.join().unwrap_or_else(|_| Err(Failure::config("the C-ECHO panicked")));
        (found, echoed, receiver)
    });
    // A lookup that could not write the PACS's answers on a full disk
    // is the disk's fault.
    let found = found.map_err(|failure| staging::explain_full(&root.path, failure))?;
    let destination = job.publisher.endpoint.address();
    let patients = found.patients.clone();
    if job.dry_run {
        echoed?;
        return plan(&finder, &found, job, destination).map(Outcome::Planned);
    }
    let sent = (|| {
        echoed?;
        let early = receiver.unwrap_or(Ok(None));
        let receiver = retrieve::receiver_after(early, context, &root, &job.pacs, work.path())?;
        let retrieved = retrieve::run(
            context,
            &finder,
            &found,
            (work.path(), &root),
            receiver,
            (job.allow, None),
            &deadline,
        )?;
        log::debug!("phase: verified");
        crate::signals::check()?;
        let received = work.path().join("received");
        let instances: Vec<Instance> = retrieved
            .files
            .iter()
            .map(|file| Instance {
                name: file.path.strip_prefix(&received).unwrap_or(&file.path).to_string_lossy().into_owned(),
                shown: format!("{} image {}", file.identity.modality, file.identity.sop_instance_uid),
                sop_instance_uid: file.identity.sop_instance_uid.clone(),
                sop_class_uid: file.identity.sop_class_uid.clone(),
                transfer_syntax_uid: file.identity.transfer_syntax_uid.clone(),
            })
            .collect();
        let relayed = relay::send(context, work.path(), &received, &instances, &job.publisher).inspect_err(
            |failure| context.audit.send_failed(&job.publisher.endpoint, &retrieved.objects, failure),
        )?;
        log::debug!("phase: relayed");
        Ok((retrieved, relayed))
    })();
    let (retrieved, relayed) =
        sent.map_err(|failure: Failure| staging::explain_full(&root.path, failure.for_patients(&patients)))?;
    let studies =
        StudySummary::list(&found, &retrieved.manifest, &retrieved.per_study, &retrieved.modalities);
    let delivery = Delivery {
        destination,
        files_sent: relayed.files_sent,
        called_ae: relayed.called_ae,
        sender: relayed.sender,
        burn: None,
    };
    Ok(Outcome::Printed(printed(job, &found, retrieved, studies, Vec::new(), delivery, started)))
}

/// `print` to a hot-folder robot: the robot's status read beside the
/// lookup (a robot that is off or out of discs stops the job before any
/// image moves), the retrieve proven whole, the disc built here (PDI files,
/// DICOMDIR), then placed with its job file and followed.
fn burn(context: &Context, job: &PrintJob, robot: &Robot) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let vendor = robot.vendor();
    let deadline = Deadline::after(job.pacs.timeouts.total);
    let root = staging::open(&context.config.staging_dir, &context.config.staging_group)?;
    if !job.dry_run {
        staging::check_space(&root.path, context.config.staging_min_free_mb * 1_000_000)?;
    }
    let work = root.job_dir()?;
    let finder = Finder::new(context, &job.pacs, work.path().to_path_buf(), &deadline);
    let (found, ready, receiver) = std::thread::scope(|scope| {
        let ready = scope.spawn(|| hotfolder::check_folders(robot).and_then(|()| vendor.preflight(robot)));
        let lookup = scope.spawn(|| lookup::run(context, &finder, &job.accessions, job.allow));
        let receiver =
            (!job.dry_run).then(|| retrieve::prepare_receiver(context, &root, &job.pacs, work.path(), false));
        let found = lookup.join().unwrap_or_else(|_| Err(Failure::config("the lookup panicked")));
        let ready =
            ready.join().unwrap_or_else(|_| Err(Failure::config("the robot's status check panicked")));
        (found, ready, receiver)
    });
    let found = found.map_err(|failure| staging::explain_full(&root.path, failure))?;
    let destination = robot.hot_folder.display().to_string();
    let patients = found.patients.clone();
    if job.dry_run {
        ready?;
        return plan(&finder, &found, job, destination).map(Outcome::Planned);
    }
    let full = |failure: Failure| staging::explain_full(&root.path, failure.for_patients(&patients));
    ready.map_err(full)?;
    let early = receiver.unwrap_or(Ok(None));
    let receiver = retrieve::receiver_after(early, context, &root, &job.pacs, work.path()).map_err(full)?;
    // A disc the robot's largest medium cannot hold stops the retrieve as
    // soon as the images so far tell.
    let (largest, bytes) = robot.largest();
    let limit = retrieve::DiscLimit { medium: largest.as_str(), bytes, robot: robot.name.clone() };
    let retrieved = retrieve::run(
        context,
        &finder,
        &found,
        (work.path(), &root),
        receiver,
        (job.allow, Some(limit)),
        &deadline,
    )
    .map_err(full)?;
    log::debug!("phase: verified");
    crate::signals::check()?;
    // The disc, built whole in the private folder as `fetch` builds it.
    let disc_folder = work.path().join("disc");
    let disc::Built { layout, summaries, info, left_out, .. } =
        disc::build(context, &job.accessions, &found, &retrieved, &disc_folder).map_err(full)?;
    let institution = context.config.cd_publisher.institution.clone();
    // The size is known only now: the PACS gives counts, not bytes.
    let medium = robot.medium_for(disc::folder_bytes(&disc_folder)).map_err(full)?;
    crate::signals::check()?;
    let placed = hotfolder::place(robot, vendor, &disc_folder, info, medium, &institution).map_err(full)?;
    log::debug!("phase: placed");
    let burned = hotfolder::follow(robot, vendor, &placed, &context.progress).map_err(full)?;
    let delivery = Delivery {
        destination,
        files_sent: layout.files,
        called_ae: String::new(),
        sender: robot.kind.as_str(),
        burn: Some(Box::new(burned)),
    };
    Ok(Outcome::Printed(printed(job, &found, retrieved, summaries, left_out, delivery, started)))
}

/// Where a print's disc went, as its result names it.
struct Delivery {
    destination: String,
    files_sent: usize,
    called_ae: String,
    sender: &'static str,
    burn: Option<Box<crate::publisher::hotfolder::Burn>>,
}

/// A print's result, either publisher kind: the lookup's and the files'
/// remarks (each in the log too), the patients the files name (more than
/// the lookup's, where allowed), and the proof.
fn printed(
    job: &PrintJob,
    found: &crate::pipeline::lookup::Found,
    retrieved: retrieve::Retrieved,
    studies: Vec<StudySummary>,
    more_warnings: Vec<String>,
    delivery: Delivery,
    started: Instant,
) -> Printed {
    let mut warnings = found.warnings.clone();
    warnings.extend(more_warnings);
    warnings.extend(retrieved.warnings);
    for warning in &warnings {
        log::warn!("{warning}");
    }
    let first = retrieved.patients.first().cloned().unwrap_or_else(|| found.first_patient().clone());
    Printed {
        accessions_sent: job.accessions.iter().map(|a| a.to_string()).collect(),
        patient_name: first.name,
        destination: delivery.destination,
        files_sent: delivery.files_sent,
        patient_id: first.id,
        patients: retrieved.patients,
        publisher: job.publisher.name.clone(),
        called_ae: delivery.called_ae,
        sender: delivery.sender,
        proof: retrieved.proof.unwrap_or(Proof::Unproven).as_str(),
        studies,
        seconds: started.elapsed().as_secs_f64(),
        partial: retrieved.missing > 0,
        missing: retrieved.missing,
        delivered_by: retrieved.delivered_by,
        warnings,
        burn: delivery.burn,
        objects: retrieved.objects,
    }
}

/// A dry run's answer: who, what, and how the PACS's list would prove it.
fn plan(
    finder: &Finder,
    found: &crate::pipeline::lookup::Found,
    job: &PrintJob,
    destination: String,
) -> Result<Plan, Failure> {
    let patients = found.patients.clone();
    let first = found.first_patient().clone();
    let manifest = manifest::run(finder, &found.studies).map_err(|f| f.for_patients(&patients))?;
    let counts: Vec<usize> = manifest.studies.iter().map(|s| s.expected.unwrap_or(0)).collect();
    Ok(Plan {
        accessions: job.accessions.iter().map(|a| a.to_string()).collect(),
        patient_name: first.name,
        patient_id: first.id,
        patients,
        destination,
        publisher: job.publisher.name.clone(),
        files_expected: manifest.expected(),
        proof: manifest.proof().as_str(),
        studies: StudySummary::list(found, &manifest, &counts, &[]),
        warnings: found.warnings.clone(),
    })
}
