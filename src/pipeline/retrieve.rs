//! Retrieve: the studies from the PACS into the job's private folder, and
//! the proof that the disc is whole.
//!
//! C-MOVE goes to a storescp of ours on the move port (one receiver for the
//! whole job, the legacy loop included, under the retrieve lock), with
//! movescu as a pure C-MOVE SCU; C-GET brings the files back on getscu's
//! own association. Beside the transfer, the manifest (what the PACS lists
//! for each study) is asked for, and each file is identified as it arrives.
//! Then: every file must belong to a requested study of its patient, the
//! SOP Instance UIDs received must equal the manifest (or the PACS's counts
//! where it gives no list), repeats are kept once, two different files
//! under one UID are refused, and the sub-operation counts must show
//! nothing failed or left. A PACS's final status alone is not trusted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::atna::Outcome;
use crate::audit::trail::Objects;
use crate::config::{Retrieve, Strategy};
use crate::dicom::part10::Identity;
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::dicom::{AssociationProblem, RetrieveKeys, RetrieveLog, getscu, movescu};
use crate::failure::{Class, Failure};
use crate::job::{Allow, Context, Pacs};
use crate::patients::{Demographics, Patient};
use crate::pipeline::Deadline;
use crate::pipeline::arrivals::{self, Folders, Watch};
use crate::pipeline::find::{Finder, pacs_failure};
use crate::pipeline::lookup::{self, Found, FoundStudy};
use crate::pipeline::manifest::{self, Manifest, Proof};
use crate::pipeline::receiver::Receiver;
use crate::progress::{Part, Progress, Stage};
use crate::staging::{self, PortLock, Root};

/// A file received and identified.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: PathBuf,
    pub identity: Identity,
    /// Who delivered it (the C-MOVE receiver's association).
    pub source: Option<Arc<arrivals::Source>>,
}

/// Who delivered a job's files, and how many each (the JSON's
/// `delivered_by`: peers and AE titles the receiver accepted).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeliveredBy {
    pub peer: String,
    pub calling_ae: String,
    pub files: usize,
}

/// The verified result: files in study, series, instance order.
#[derive(Debug, Default)]
pub struct Retrieved {
    pub files: Vec<Received>,
    /// Per study (same order as `Found::studies`): files received.
    pub per_study: Vec<usize>,
    /// Per study: the modalities of the files received, in order of first
    /// arrival.
    pub modalities: Vec<Vec<String>>,
    /// What the PACS listed for each study.
    pub manifest: Manifest,
    /// How completeness was proven.
    pub proof: Option<Proof>,
    /// The patients, as the lookup and the received files together name
    /// them (more than the lookup found only when several are allowed).
    pub patients: Vec<Patient>,
    /// Images listed that did not arrive, accepted with `--allow-partial`:
    /// the disc is PARTIAL.
    pub missing: usize,
    /// Who delivered the files (C-MOVE).
    pub delivered_by: Vec<DeliveredBy>,
    /// Shortfalls accepted with `--allow-partial`, and other remarks.
    pub warnings: Vec<String>,
    /// Whose files, of which studies and classes (the audit records').
    pub objects: Objects,
}

/// Retrieves the studies of `found`; the audit trail gets one record per
/// patient of what came (or, when it failed, of what was asked for).
pub fn run(
    context: &Context,
    finder: &Finder,
    found: &Found,
    (work, root): (&Path, &Root),
    receiver: Option<MoveReceiver>,
    (allow, limit): (Allow, Option<DiscLimit>),
    deadline: &Deadline,
) -> Result<Retrieved, Failure> {
    let result = retrieve(context, finder, found, (work, root), receiver, (allow, limit), deadline);
    let pacs = &finder.pacs().endpoint;
    match &result {
        Ok(retrieved) => {
            let outcome = match retrieved.missing {
                0 => Outcome::success(),
                missing => Outcome {
                    indicator: crate::audit::atna::Indicator::MinorFailure,
                    description: Some(format!("{missing} image(s) the PACS lists did not arrive")),
                },
            };
            context.audit.retrieved(pacs, &retrieved.objects, outcome);
        }
        Err(failure) => context.audit.retrieved(pacs, &Objects::asked(found), Outcome::failed(failure)),
    }
    result
}

fn retrieve(
    context: &Context,
    finder: &Finder,
    found: &Found,
    (work, root): (&Path, &Root),
    receiver: Option<MoveReceiver>,
    (allow, limit): (Allow, Option<DiscLimit>),
    deadline: &Deadline,
) -> Result<Retrieved, Failure> {
    let pacs = finder.pacs();
    let verb = match pacs.retrieve {
        Retrieve::Move => "C-MOVE",
        Retrieve::Get => "C-GET",
    };
    let what = format!("retrieving from the PACS {} ({verb})", pacs.endpoint);
    let total: Option<u64> = found.studies.iter().map(|s| s.instances.map(|n| n as u64)).sum();
    // Each arrival is identified and checked as it comes: it counts for
    // its accession, and the first image that may go on no disc (another
    // patient's, a study nobody asked for) stops the retrieve at once
    // rather than after the last file.
    let counts = Counts::of(found);
    let parts = counts.parts(found.studies.iter().map(|s| s.instances));
    let progress = Progress::start(context.progress.clone(), Stage::Retrieve, &what, total, parts);
    let progress = Arc::new(Mutex::new(progress));
    let refusal = Arc::new(Refusal::default());
    let requested = Arc::new(Requested::of(found, allow.mixed_patients));
    if receiver.is_some() {
        // Under the port lock: what earlier jobs asked the PACS to send here.
        requested.learn_earlier(root.moved_recently(pacs.move_port));
    }
    // What the whole retrieve is expected to hold (the lookup's counts,
    // then the manifest's), for the disk space guard.
    let expected = Arc::new(std::sync::atomic::AtomicUsize::new(total.unwrap_or(0) as usize));
    let (watch, folders) = {
        let (counting, refused, requested) = (progress.clone(), refusal.clone(), requested.clone());
        let parts_of_studies = counts.parts_of_studies.clone();
        let mut space = SpaceGuard::new(work, expected.clone(), limit);
        Watch::start_with_folders(
            work,
            Box::new(move |identity, source, bytes| {
                // Late images take room too: a PACS streaming an earlier
                // job's study cannot fill the disk unnoticed.
                if let Err(full) = space.arrived(bytes) {
                    refused.refuse(full);
                }
                // Not this job's: dropped at the verdict.
                if source.is_some_and(|source| source.early)
                    || (source.is_some() && requested.is_earlier(&identity.study_instance_uid))
                {
                    return;
                }
                let part = match requested.place(identity) {
                    Ok(study) => parts_of_studies.get(study).copied(),
                    Err(mut failure) => {
                        if let Some(source) = source {
                            failure.detail = format!("{} (delivered by {source})", failure.detail);
                        }
                        refused.refuse(failure);
                        None
                    }
                };
                counting.lock().unwrap_or_else(|p| p.into_inner()).inc_part(part);
            }),
        )?
    };
    if let Some(receiver) = &receiver {
        receiver.receiver.attach(folders.clone());
    }
    // C-GET that may hand a study to C-MOVE: the manifest's SOP classes
    // decide before the C-GET is asked (see getscu: it cannot be given
    // more classes), so nothing is fetched twice.
    let (classes_tx, classes_rx) = std::sync::mpsc::channel::<Option<Vec<Vec<String>>>>();
    let wait_for_classes =
        pacs.retrieve == Retrieve::Get && pacs.strategy == Strategy::Study && pacs.move_fallback;
    // The manifest is asked for beside the transfer: it costs a few
    // C-FINDs, which the PACS answers while it sends. A refused image
    // stops them too.
    finder.stop_on(refusal.cancel.clone());
    let (transferred, manifest) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            let listed = manifest::run(finder, &found.studies);
            let beyond = listed.as_ref().ok().map(|l| l.studies.iter().map(beyond_getscu).collect());
            let _ = classes_tx.send(beyond);
            // The PACS's own count of what is coming, for the bar.
            if let Ok(listed) = &listed {
                // From now on each arrival is checked against the list too.
                requested.know(listed);
                let mut progress = progress.lock().unwrap_or_else(|p| p.into_inner());
                // The parts first: set_total tells the live page, parts and all.
                let parts = counts.parts(listed.studies.iter().map(|s| s.expected));
                for (index, part) in parts.into_iter().enumerate() {
                    progress.set_part_total(index, part.total);
                }
                if let Some(total) = listed.expected() {
                    progress.set_total(total as u64);
                    expected.store(total, Ordering::Release);
                }
            }
            listed
        });
        let means = Means {
            receiver,
            root,
            folders,
            requested: requested.clone(),
            classes: wait_for_classes.then_some(classes_rx),
        };
        let transferred = transfer(context, pacs, found, &watch, means, &refusal.cancel, deadline);
        let manifest = listing.join().unwrap_or_else(|_| Err(Failure::config("the manifest query panicked")));
        (transferred, manifest)
    });
    log::debug!("phase: transferred and listed");
    drop(progress);
    // Every file taken and checked (the final sweep's too) before the verdict.
    let arrivals = watch.finish();
    // A signal ends the job as interrupted, whatever else happened.
    crate::signals::check()?;
    // Then an image that may go on no disc: the gravest thing a PACS can do.
    if let Some(refused) = refusal.first() {
        return Err(refused);
    }
    let mut transferred = transferred?;
    let manifest = manifest?;
    none_overwritten(transferred.stored, arrivals.len())?;
    let arrivals = drop_early(arrivals, &requested);
    // A C-GET that failed for objects getscu cannot take: which, by the
    // manifest, in place of the general hint (a study handed to C-MOVE is
    // not among them).
    if pacs.retrieve == Retrieve::Get {
        let named: Vec<String> = found
            .studies
            .iter()
            .zip(&manifest.studies)
            .filter(|(study, _)| !transferred.moved.contains(&study.study_instance_uid))
            .filter_map(|(study, listed)| {
                let beyond = beyond_getscu(listed);
                (!beyond.is_empty()).then(|| format!("accession {}: {}", study.accession, beyond.join(", ")))
            })
            .collect();
        if let Some(status) = transferred.statuses.iter_mut().find(|s| s.ends_with(GETSCU_HINT))
            && !named.is_empty()
        {
            let general = status.len() - GETSCU_HINT.len();
            status.truncate(general);
            status.push_str(&format!(
                "; getscu (DCMTK 3.6.7) cannot take these objects by C-GET: {}; set pacs.move_port to the port the \
                 PACS knows AE {} at, and pacs2cd retrieves such a study by C-MOVE (or pacs.retrieve = \"move\")",
                named.join("; "),
                pacs.calling_ae
            ));
        }
    }
    let mut retrieved =
        verify(found, &manifest, arrivals, (&transferred.statuses, &transferred.excused), allow)?;
    let (refused, peers) = &transferred.refused;
    if *refused > 0 {
        let more = if *refused > peers.len() { ", ..." } else { "" };
        retrieved.warnings.push(format!(
            "the move port refused {refused} connection(s) that did not come from the PACS ({}{more}); \
             nothing of theirs was kept",
            peers.join(", ")
        ));
    }
    Ok(retrieved)
}

/// Drops what associations opened before the job asked for anything
/// delivered: a PACS finishing an earlier job's C-MOVE late, on the same
/// port. Those images belong to no study of this job; they are logged,
/// not held against the PACS's answer to this one.
/// So are images of a study an earlier job asked for (and this one did
/// not) that arrive while this job listens: that PACS sends late.
fn drop_early(arrivals: Vec<arrivals::Arrival>, requested: &Requested) -> Vec<arrivals::Arrival> {
    let (early, own): (Vec<_>, Vec<_>) =
        arrivals.into_iter().partition(|a| a.source.as_ref().is_some_and(|s| s.early));
    if let Some(first) = early.first().and_then(|a| a.source.as_ref()) {
        log::warn!(
            "{} image(s) from {first} arrived before this job asked for any (an earlier job's, sent late): \
             dropped",
            early.len()
        );
    }
    let (late, own): (Vec<_>, Vec<_>) = own.into_iter().partition(|a| {
        a.source.is_some()
            && a.identity.as_ref().is_ok_and(|identity| requested.is_earlier(&identity.study_instance_uid))
    });
    let mut studies: Vec<&str> = Vec::new();
    for arrival in &late {
        if let Ok(identity) = &arrival.identity
            && !studies.contains(&identity.study_instance_uid.as_str())
        {
            studies.push(&identity.study_instance_uid);
        }
    }
    if let Some(first) = late.first().and_then(|a| a.source.as_ref()) {
        log::warn!(
            "{} image(s) from {first} of study {} arrived late: an earlier job asked for {}, this job did not; \
             dropped, not held against this job",
            late.len(),
            studies.join(", "),
            if studies.len() > 1 { "them" } else { "it" }
        );
    }
    for arrival in early.iter().chain(&late) {
        let _ = std::fs::remove_file(&arrival.path);
    }
    own
}

/// The SOP classes of a study's objects that getscu cannot take, named
/// (empty when the PACS did not name the classes).
fn beyond_getscu(listed: &manifest::Study) -> Vec<String> {
    let Some(classes) = listed.classes() else { return Vec::new() };
    classes
        .into_iter()
        .filter(|class| !getscu::takes(class))
        .map(|class| {
            let name = crate::dicom::refusal::class_name(class, "");
            if name != class {
                format!("{name} ({class})")
            } else if class.starts_with("1.2.840.10008.") {
                format!("SOP class {class}")
            } else {
                format!("private SOP class {class}")
            }
        })
        .collect()
}

/// Stops a retrieve before it fills the staging disk: from the images so
/// far, what the rest of the study needs, against the space left.
struct SpaceGuard {
    folder: PathBuf,
    expected: Arc<std::sync::atomic::AtomicUsize>,
    files: usize,
    bytes: u64,
    limit: Option<DiscLimit>,
}

/// What one disc of the robot holds at most: a retrieve whose images so
/// far promise more stops at once (the PACS gives counts, not bytes, so
/// this is the first moment the size can be told).
pub struct DiscLimit {
    pub medium: &'static str,
    /// Bytes a disc of `medium` holds, its file system's room taken off.
    pub bytes: u64,
    pub robot: String,
}

impl SpaceGuard {
    /// Checked every this many files (a statvfs each).
    const EVERY: usize = 8;
    /// Kept free beyond the estimate: the disc layout, the DICOMDIR.
    const MARGIN: u64 = 16 * 1024 * 1024;

    fn new(
        folder: &Path,
        expected: Arc<std::sync::atomic::AtomicUsize>,
        limit: Option<DiscLimit>,
    ) -> SpaceGuard {
        SpaceGuard { folder: folder.to_path_buf(), expected, files: 0, bytes: 0, limit }
    }

    fn arrived(&mut self, bytes: u64) -> Result<(), Failure> {
        self.files += 1;
        self.bytes += bytes;
        if !self.files.is_multiple_of(Self::EVERY) {
            return Ok(());
        }
        let expected = self.expected.load(Ordering::Acquire);
        if let Some(limit) = &self.limit {
            let whole = expected.max(self.files) as u64 * (self.bytes / self.files as u64);
            if whole > limit.bytes {
                let mut failure =
                    Failure::disc_too_big(whole, limit.medium, limit.bytes).with_destination(&limit.robot);
                failure.detail = format!(
                    "{} (estimated from the first {} images; the retrieve was stopped and nothing was kept)",
                    failure.detail, self.files
                );
                return Err(failure);
            }
        }
        let left = expected.saturating_sub(self.files) as u64;
        let needed = left * (self.bytes / self.files as u64) + Self::MARGIN;
        match staging::free_bytes(&self.folder) {
            Ok(free) if free < needed => Err(Failure::disk_full(&format!(
                "staging disk full at {}: {} MB free, about {} MB more needed for the {left} images still to come; \
                 the retrieve was stopped and nothing was kept",
                self.folder.parent().unwrap_or(&self.folder).display(),
                free / 1_000_000,
                needed / 1_000_000
            ))
            .for_the_web("the server that prepares the discs is out of disk space; nothing was sent")),
            _ => Ok(()),
        }
    }
}

/// The accessions a retrieve's count is split into (parts of the
/// progress), and which one each study's files count for.
struct Counts {
    labels: Vec<String>,
    /// Per study (in `Found::studies` order): its part.
    parts_of_studies: Vec<usize>,
}

impl Counts {
    fn of(found: &Found) -> Counts {
        let mut labels: Vec<String> = Vec::new();
        let mut parts_of_studies = Vec::with_capacity(found.studies.len());
        for study in &found.studies {
            let part = labels.iter().position(|label| *label == study.accession).unwrap_or_else(|| {
                labels.push(study.accession.clone());
                labels.len() - 1
            });
            parts_of_studies.push(part);
        }
        Counts { labels, parts_of_studies }
    }

    /// The parts, counting from zero, with totals from each study's count
    /// (a part's total is unknown when one of its studies' is).
    fn parts(&self, per_study: impl Iterator<Item = Option<usize>>) -> Vec<Part> {
        let mut parts: Vec<Part> =
            self.labels.iter().map(|label| Part { label: label.clone(), done: 0, total: Some(0) }).collect();
        for (&part, count) in self.parts_of_studies.iter().zip(per_study) {
            let total = &mut parts[part].total;
            *total = total.zip(count).map(|(sum, count)| sum + count as u64);
        }
        parts
    }
}

/// What the files may be: the requested studies, each of its patient,
/// and once the manifest is in, the images the PACS lists for them.
struct Requested {
    /// StudyInstanceUID -> index in `Found::studies`.
    studies: HashMap<String, usize>,
    /// Per study: who the lookup says its patient is.
    stated: Vec<Demographics>,
    /// Per study: its patient in the lookup's roster.
    patient_of: Vec<usize>,
    /// Studies of several patients may share the disc (each is named).
    mixed_allowed: bool,
    /// What the files have said so far.
    learned: Mutex<Learned>,
    /// Per study: its SOP Instance UIDs where the PACS listed them.
    listed: std::sync::OnceLock<Vec<Option<HashSet<String>>>>,
    /// Studies earlier jobs asked the PACS to C-MOVE to this port (and
    /// this job does not ask for).
    earlier: Mutex<HashSet<String>>,
}

/// Who the files said their patient is: per study, and per patient of
/// the lookup's roster (everything its studies' files said, merged).
#[derive(Default)]
struct Learned {
    studies: Vec<Option<Demographics>>,
    patients: Vec<Option<Demographics>>,
}

impl Requested {
    fn of(found: &Found, mixed_allowed: bool) -> Requested {
        let studies = found
            .studies
            .iter()
            .enumerate()
            .map(|(index, study)| (study.study_instance_uid.clone(), index))
            .collect();
        Requested {
            studies,
            stated: found.studies.iter().map(|s| s.patient.clone()).collect(),
            patient_of: found.patient_of.clone(),
            mixed_allowed,
            learned: Mutex::new(Learned {
                studies: vec![None; found.studies.len()],
                patients: vec![None; found.patients.len()],
            }),
            listed: std::sync::OnceLock::new(),
            earlier: Mutex::new(HashSet::new()),
        }
    }

    /// Learns the studies earlier jobs asked to be moved to this port
    /// (their `staging::moved_key`s).
    fn learn_earlier(&self, moved: Vec<String>) {
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        earlier.extend(moved);
    }

    /// Whether `study` is an earlier job's, not this one's.
    fn is_earlier(&self, study: &str) -> bool {
        !self.studies.contains_key(study)
            && self
                .earlier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&crate::staging::moved_key(study))
    }

    /// The PACS's lists (studies in `Found` order).
    fn know(&self, manifest: &Manifest) {
        let lists = manifest
            .studies
            .iter()
            .map(|study| study.instances().map(|uids| uids.into_iter().map(str::to_string).collect()))
            .collect();
        let _ = self.listed.set(lists);
    }

    /// The study a received file belongs to, or why it may go on no disc:
    /// another patient's image on a disc is a clinical and legal incident.
    /// A file must agree with what the lookup said of its study's patient,
    /// with the other files of its study, and (unless several patients are
    /// allowed) with the files of the other studies of its patient.
    fn place(&self, identity: &Identity) -> Result<usize, Failure> {
        let refuse = |why: String| Failure::fetch_incomplete(&format!("{why}; nothing was kept"));
        let another = || "the PACS sent an image of another patient; nothing was kept";
        let Some(&study) = self.studies.get(&identity.study_instance_uid) else {
            return Err(refuse(format!(
                "the PACS sent an image of study {}, which was not requested",
                identity.study_instance_uid
            )));
        };
        let file = &identity.patient;
        let stated = &self.stated[study];
        if let Some(differs) = file.disagreement(stated) {
            return Err(refuse(format!(
                "the PACS sent an image of {} for study {} of {} ({} differs)",
                file.describe(),
                identity.study_instance_uid,
                stated.describe(),
                differs.attribute
            ))
            .for_the_web(another()));
        }
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut learned.studies[study];
        match slot {
            Some(known) => {
                if let Some(differs) = file.disagreement(known) {
                    return Err(refuse(format!(
                        "study {} holds images of two patients: {} and {} ({} differs)",
                        identity.study_instance_uid,
                        known.describe(),
                        file.describe(),
                        differs.attribute
                    ))
                    .for_the_web(another()));
                }
                known.fill_from(file);
            }
            None => {
                let mut known = file.clone();
                known.fill_from(stated);
                *slot = Some(known);
            }
        }
        let patient = self.patient_of.get(study).copied().unwrap_or(study);
        if let Some(slot) = learned.patients.get_mut(patient) {
            match slot {
                Some(known) => match file.disagreement(known) {
                    Some(differs) if !self.mixed_allowed => {
                        return Err(Failure::fetch_incomplete(&format!(
                            "the images name two patients where the PACS's answers named one: {} and {} \
                             ({} differs); one disc holds one patient's images (--allow-mixed-patients puts \
                             them on one disc); nothing was kept",
                            known.describe(),
                            file.describe(),
                            differs.attribute
                        ))
                        .for_the_web(
                            "the images belong to different patients; one disc holds one patient's images; \
                             nothing was kept",
                        ));
                    }
                    // Allowed: the verdict names each patient.
                    Some(_) => {}
                    None => known.fill_from(file),
                },
                None => *slot = Some(file.clone()),
            }
        }
        drop(learned);
        let list = self.listed.get().and_then(|lists| lists.get(study)).and_then(Option::as_ref);
        if let Some(list) = list
            && !list.contains(&identity.sop_instance_uid)
        {
            return Err(refuse(not_listed(&identity.sop_instance_uid, &identity.study_instance_uid)));
        }
        Ok(study)
    }

    /// The studies as the lookup and the files together describe them.
    fn studies_as_learned(&self, found: &Found) -> Vec<FoundStudy> {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        found
            .studies
            .iter()
            .zip(&learned.studies)
            .map(|(study, learned)| {
                let mut study = study.clone();
                if let Some(learned) = learned {
                    study.patient.fill_from(learned);
                }
                study
            })
            .collect()
    }
}

/// Why an image the PACS does not list for its study may go on no disc.
fn not_listed(uid: &str, study: &str) -> String {
    format!("the PACS sent image {uid} of study {study}, which is not in its own list of the study's images")
}

/// The first received image that may go on no disc, and the flag that
/// stops the retrieving tool (see runner::Command::cancel).
#[derive(Default)]
struct Refusal {
    cancel: Arc<AtomicBool>,
    first: Mutex<Option<Failure>>,
}

impl Refusal {
    fn refuse(&self, failure: Failure) {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(failure);
        self.cancel.store(true, Ordering::Release);
    }

    fn first(&self) -> Option<Failure> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The C-MOVE receiver of a job: the lock on the move port and the
/// receiver listening on it, writing into the job's `incoming` folder.
pub struct MoveReceiver {
    // Fields drop in this order: the port is free before the lock lets the
    // next job in.
    receiver: Receiver,
    _lock: PortLock,
}

/// Takes the lock and starts the receiver when the PACS is to C-MOVE;
/// `None` for C-GET. A job tries this beside the lookup, without waiting
/// for the lock, then again after the lookup with `receiver_after`.
pub fn prepare_receiver(
    context: &Context,
    root: &Root,
    pacs: &Pacs,
    work: &Path,
    wait: bool,
) -> Result<Option<MoveReceiver>, Failure> {
    if pacs.retrieve != Retrieve::Move {
        return Ok(None);
    }
    start_receiver(context, root, pacs, work, wait).map(Some)
}

/// Takes the lock on the move port and starts the receiver on it.
fn start_receiver(
    context: &Context,
    root: &Root,
    pacs: &Pacs,
    work: &Path,
    wait: bool,
) -> Result<MoveReceiver, Failure> {
    // Within the whole job's deadline (CGI) when it is shorter.
    let wait = match (wait, runner::job_remaining()) {
        (false, _) => Duration::ZERO,
        (true, Some(left)) => left.min(Duration::from_secs(context.config.lock_wait_secs)),
        (true, None) => Duration::from_secs(context.config.lock_wait_secs),
    };
    let lock =
        root.lock(pacs.move_port, wait, &mut |message| crate::progress::waiting(&context.progress, message))?;
    let receiver = Receiver::start(context, pacs, &arrivals::incoming_of(work), &work.join("receiver"))?;
    Ok(MoveReceiver { receiver, _lock: lock })
}

/// What a transfer works with beside the tools.
struct Means<'a> {
    /// The C-MOVE receiver, when the job started one (C-MOVE); a C-GET
    /// job starts one here when a study must go by C-MOVE.
    receiver: Option<MoveReceiver>,
    root: &'a Root,
    /// The watch's folders, for a receiver started here.
    folders: Folders,
    requested: Arc<Requested>,
    /// C-GET that may hand a study to C-MOVE: per study, the SOP classes
    /// getscu cannot take, once the manifest is in (`None`: not known).
    classes: Option<std::sync::mpsc::Receiver<Option<Vec<Vec<String>>>>>,
}

/// The receiver the job started beside its lookup or, when the port was
/// busy then, started now, waiting `lock_wait_secs` for the other job.
pub fn receiver_after(
    early: Result<Option<MoveReceiver>, Failure>,
    context: &Context,
    root: &Root,
    pacs: &Pacs,
    work: &Path,
) -> Result<Option<MoveReceiver>, Failure> {
    match early {
        Err(failure) if failure.class == Class::Busy => prepare_receiver(context, root, pacs, work, true),
        other => other,
    }
}

/// Runs the C-MOVEs or C-GETs; returns what their statuses said was wrong
/// and how many files were written.
fn transfer(
    context: &Context,
    pacs: &Pacs,
    found: &Found,
    watch: &Watch,
    means: Means,
    cancel: &Arc<AtomicBool>,
    deadline: &Deadline,
) -> Result<Transferred, Failure> {
    let Means { mut receiver, root, folders, requested, classes } = means;
    let uids: Vec<String> = found.studies.iter().map(|s| s.study_instance_uid.clone()).collect();
    let mut accessions: Vec<&str> = Vec::new();
    for study in &found.studies {
        if !accessions.contains(&study.accession.as_str()) {
            accessions.push(&study.accession);
        }
    }
    // C-GET with a move port: a study holding objects getscu cannot take
    // goes by C-MOVE, decided from the manifest before anything is asked.
    let beyond: Vec<Vec<String>> =
        classes.and_then(|classes| classes.recv().ok().flatten()).unwrap_or_default();
    let (mut asked, mut by_move): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (index, uid) in uids.iter().enumerate() {
        match beyond.get(index).filter(|classes| !classes.is_empty()) {
            Some(classes) => {
                log::warn!(
                    "accession {}: study {uid} holds objects getscu (DCMTK 3.6.7) cannot take by C-GET: {}; \
                     retrieving it by C-MOVE to port {} (pacs.move_port)",
                    found.studies[index].accession,
                    classes.join(", "),
                    pacs.move_port
                );
                by_move.push(uid.clone());
            }
            None => asked.push(uid.clone()),
        }
    }
    let mut requests: Vec<(RetrieveKeys, Retrieve)> = match pacs.strategy {
        // One request for every study: one association, one sub-association.
        Strategy::Study if asked.is_empty() => Vec::new(),
        Strategy::Study => vec![(RetrieveKeys::Studies(&asked), pacs.retrieve)],
        Strategy::LegacyModalities => pacs
            .modalities
            .iter()
            .flat_map(|modality| {
                accessions.iter().map(move |a| (RetrieveKeys::AccessionModality(a, modality), pacs.retrieve))
            })
            .collect(),
    };
    if !by_move.is_empty() {
        requests.push((RetrieveKeys::Studies(&by_move), Retrieve::Move));
        if receiver.is_none() {
            let work = watch.incoming().parent().unwrap_or(watch.incoming());
            let started = start_receiver(context, root, pacs, work, true)?;
            started.receiver.attach(folders.clone());
            requested.learn_earlier(root.moved_recently(pacs.move_port));
            receiver = Some(started);
        }
    }
    // What the PACS is asked to send to the move port, for the next jobs
    // there (see staging::Root::moved_recently): recorded before it is
    // asked, under the port lock, so that a job cut short (a deadline, a
    // signal, a failure) still tells the next one.
    let moved: Vec<String> = match pacs.retrieve {
        Retrieve::Move => uids.clone(),
        Retrieve::Get => by_move.clone(),
    };
    if receiver.is_some() && !moved.is_empty() {
        root.note_moved(pacs.move_port, &moved);
    }
    let mut statuses: Vec<String> = Vec::new();
    let mut excused: Vec<String> = Vec::new();
    let mut stored = Some(0);
    let mut cancelled = false;
    if let Some(receiver) = &receiver {
        receiver.receiver.asking();
    }
    let mut queue: std::collections::VecDeque<(RetrieveKeys, Retrieve)> = requests.into();
    while let Some((request, how)) = queue.pop_front() {
        let keys = &request;
        let remaining = deadline.remaining().map_err(|_| too_slow(pacs))?;
        crate::signals::check()?;
        if cancel.load(Ordering::Acquire) {
            break;
        }
        let verb = match how {
            Retrieve::Move => "C-MOVE",
            Retrieve::Get => "C-GET",
        };
        let program = match (how, &receiver) {
            (Retrieve::Move, Some(_)) => context.toolbox.path(Tool::Movescu)?,
            (Retrieve::Move, None) => return Err(Failure::config("a C-MOVE without its receiver")),
            (Retrieve::Get, _) => context.toolbox.path(Tool::Getscu)?,
        };
        let work = watch.incoming().parent().unwrap_or(watch.incoming());
        let query = work.join("retrieve.dcm");
        keys.write_query(&query).map_err(|err| {
            Failure::config(format!("cannot write {}: {}", query.display(), err.to_string().to_lowercase()))
        })?;
        let mut command = Command::new(&program, remaining);
        command.cancel = Some(cancel.clone());
        let calling = pacs.calling_ae.as_str();
        command.args(match how {
            Retrieve::Move => movescu::args(calling, &pacs.endpoint, &pacs.timeouts, &query),
            Retrieve::Get => getscu::args(calling, &pacs.endpoint, &pacs.timeouts, watch.incoming(), &query),
        });
        command.dir = watch.incoming().parent().map(Path::to_path_buf);
        let taken_before = receiver.as_ref().map(|r| r.receiver.associations());
        let refused_before = receiver.as_ref().map_or(0, |r| r.receiver.refused().0);
        let output = runner::run(&command, &mut |_| {})?;
        // A refused image arrived: the caller says which.
        if output.cancelled {
            cancelled = true;
            break;
        }
        if output.timed_out {
            return Err(too_slow(pacs));
        }
        let log: RetrieveLog = match how {
            Retrieve::Move => movescu::parse(&output.lines),
            Retrieve::Get => getscu::parse(&output.lines),
        };
        // Did this request bring anything? (The files themselves may still
        // be on their way to the watch: the association, or getscu's own
        // count, says.)
        let delivered = match (how, &receiver, taken_before) {
            (Retrieve::Move, Some(receiver), Some(before)) => receiver.receiver.associations() > before,
            _ => log.stored.unwrap_or(0) > 0,
        };
        // A PACS that cannot take several studies in one request (some
        // answer "Move Destination unknown" for it, others "Unable to
        // process"), having sent nothing: asked again one study at a time.
        if let RetrieveKeys::Studies(list) = keys
            && list.len() > 1
            && !delivered
            && log.counts.completed.unwrap_or(0) == 0
            && log
                .final_status
                .as_deref()
                .is_some_and(|s| !s.starts_with("Success") && !s.starts_with("Warning"))
        {
            log::info!(
                "the PACS refused a {verb} of {} studies in one request ({}): asking for one study at a time",
                list.len(),
                log.final_status.as_deref().unwrap_or_default()
            );
            queue.extend(list.iter().map(|uid| (RetrieveKeys::Studies(std::slice::from_ref(uid)), how)));
            continue;
        }
        let done_so = Pacs { retrieve: how, ..pacs.clone() };
        // Nothing came, and the move port refused someone meanwhile: most
        // likely a node of the PACS not in pacs.move_from, whatever the
        // PACS then says about its AE table.
        let judged = judge(&log, keys, (watch.count(), delivered), &done_so, verb).map_err(|mut failure| {
            if let Some(receiver) = receiver.as_ref().filter(|_| !delivered) {
                let (count, peers) = receiver.receiver.refused();
                if count > refused_before {
                    failure.detail = format!(
                        "the move port refused the connection(s) from {} during the {verb}: not the PACS's \
                         address (pacs.host), and not in pacs.move_from (where a PACS cluster's other nodes \
                         go); then {}",
                        peers.join(", "),
                        failure.detail
                    );
                }
            }
            failure
        })?;
        match judged {
            Some(why) => statuses.push(why),
            // Excused (the legacy loop's "no such modality"), but said if
            // a study then lacks every image: it may have been the cause.
            None => {
                if let (RetrieveKeys::AccessionModality(_, modality), Some(status)) =
                    (keys, &log.final_status)
                    && !status.starts_with("Success")
                {
                    excused.push(format!("the PACS ended the {verb} for {modality} with {status}"));
                }
            }
        }
        if how == Retrieve::Get {
            stored = stored.zip(log.stored).map(|(a, b)| a + b);
        }
    }
    let mut refused = (0, Vec::new());
    if let Some(MoveReceiver { receiver, _lock }) = receiver {
        // Every file is on disk before the PACS sends the final response
        // (storescp writes each before answering its C-STORE); what the
        // receiver waits for is a sub-association still ending (see
        // QUIET). After a refusal the PACS may go on sending once movescu
        // is gone: what it sends must reach this job's receiver (and go
        // with the staging folder), not the next job's on the same port, so
        // the receiver and the lock stay until nothing has happened for a
        // second, at most ten.
        if cancelled {
            receiver.wait_quiet(Duration::from_secs(1), Duration::from_secs(10));
        } else {
            receiver.wait_quiet(QUIET, Duration::from_secs(5));
        }
        let tally = receiver.stop();
        for association in &tally.associations {
            log::debug!("association {} from {}", association.source.association, association.source);
        }
        context.audit.refused_connections(pacs.move_port, &tally.refused, tally.refused_count);
        refused = (tally.refused_count, tally.refused.into_iter().map(|(peer, _)| peer).collect());
    }
    Ok(Transferred {
        statuses: once_each(statuses),
        excused: once_each(excused),
        stored,
        refused,
        moved: by_move,
    })
}

/// The same status from several requests (the legacy loop asks once per
/// modality, and a PACS that ignores the modality answers each alike) is
/// said once, with how many requests ended so.
fn once_each(statuses: Vec<String>) -> Vec<String> {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for status in statuses {
        match counted.iter_mut().find(|(known, _)| *known == status) {
            Some((_, count)) => *count += 1,
            None => counted.push((status, 1)),
        }
    }
    counted
        .into_iter()
        .map(|(status, count)| if count > 1 { format!("{status}, in {count} requests") } else { status })
        .collect()
}

/// How long the receiver stays, once the last C-MOVE has ended and no
/// association is open, before the job lets the port go: a PACS that ends
/// or opens a sub-association just after its final C-MOVE response still
/// reaches this job. Measured on loopback (a pynetdicom receiver and move
/// SCU in one process, one clock; 30 C-MOVEs of a 20-image study each,
/// the script in tests/support/README.md): the sub-association's release
/// came after the final response on Orthanc 1.10.1 (0.1 / 1.5 / 4.6 ms,
/// min / median / max), before it on dcmqrscp 3.6.7 (-1.7 / -1.2 / -0.6
/// ms) and pynetdicom 3.0.4 (-13.8 / -4.7 / -2.3 ms); the last C-STORE
/// always came before the final response (Orthanc -6.9 / -2.2 / -1.2 ms).
/// An open association is waited for in any case (at most 5 s); 20 ms of
/// silence after it is four times the worst measured, and costs every
/// C-MOVE job those 20 ms. Images a PACS sends later than that (seconds,
/// on a new association) reach the next job, which drops them as an
/// earlier job's (see staging::Root::moved_recently); this job's verdict
/// names them missing.
const QUIET: Duration = Duration::from_millis(20);

/// What the C-MOVEs or C-GETs said: their problems, and how many files the
/// tool wrote (getscu says; storescp writes each under a name of its own).
struct Transferred {
    statuses: Vec<String>,
    /// Failures the legacy loop excuses (a modality the study may lack).
    excused: Vec<String>,
    stored: Option<usize>,
    /// Connections to the move port refused: how many, and the first few
    /// peers.
    refused: (usize, Vec<String>),
    /// Studies of a C-GET job retrieved by C-MOVE instead.
    moved: Vec<String>,
}

/// What one C-MOVE or C-GET run's log says: an error that ends the job,
/// a problem to report, or nothing.
/// `arrived`: how many files have arrived so far; `delivered`: whether
/// this request brought anything (C-MOVE: the PACS opened an association
/// to our receiver; C-GET: getscu stored a file).
fn judge(
    log: &RetrieveLog,
    keys: &RetrieveKeys,
    (arrived, delivered): (usize, bool),
    pacs: &Pacs,
    verb: &str,
) -> Result<Option<String>, Failure> {
    if log.final_status.is_none() {
        let problem = log.problem.clone().unwrap_or(AssociationProblem::Aborted("no final response".into()));
        // Before any file that is the PACS being unreachable; after, an
        // incomplete retrieve.
        if arrived == 0 {
            return Err(pacs_failure(pacs, &problem));
        }
        // How many came is said with the shortfall (the count here may
        // lag the files still being taken).
        return Ok(Some(match problem {
            AssociationProblem::Stalled => format!("the PACS stopped answering during the {verb}"),
            _ => format!("the PACS ended the association during the {verb}"),
        }));
    }
    let status = log.final_status.clone().unwrap_or_default();
    // The PACS does not know us as a move destination: its AE table, not
    // a retry, mends that.
    if status.contains("MoveDestinationUnknown") || status.contains("Move Destination unknown") {
        return Err(Failure::pacs_unreachable(&format!(
            "the PACS {} does not know AE {} as a move destination ({status}): its AE table must list {} at \
             this host's address, port {} (pacs.move_port)",
            pacs.endpoint, pacs.calling_ae, pacs.calling_ae, pacs.move_port
        ))
        .for_the_web("the PACS is not set up to send images to pacs2cd; call IT"));
    }
    // Sent, says the PACS, and nothing came: it sent them elsewhere (its
    // AE table points our AE title at another host or port).
    let completed = log.counts.completed.unwrap_or(0);
    let failed = log.counts.failed.unwrap_or(0);
    let quoted = match movescu::describe(&log.counts) {
        counts if counts.is_empty() => status.clone(),
        counts => format!("{status}: {counts} sub-operations"),
    };
    if pacs.retrieve == Retrieve::Move && completed > 0 && !delivered {
        return Err(Failure::pacs_unreachable(&format!(
            "the PACS {} reports {completed} images sent ({quoted}) but none reached port {}: it sent them \
             elsewhere; its AE table must list {} at this host's address, port {} (pacs.move_port)",
            pacs.endpoint, pacs.move_port, pacs.calling_ae, pacs.move_port
        ))
        .for_the_web("the PACS sent the images somewhere else; call IT"));
    }
    // Every image failed and the PACS never even connected: it knows our
    // AE title, at an address or port where it cannot reach us.
    if pacs.retrieve == Retrieve::Move && failed > 0 && completed == 0 && !delivered {
        return Err(Failure::pacs_unreachable(&format!(
            "the PACS {} could not deliver any image to the move destination it knows as AE {} ({quoted}) \
             and never connected to port {}: its AE table must list {} at this host's address, port {} \
             (pacs.move_port), and nothing between may block that port",
            pacs.endpoint, pacs.calling_ae, pacs.move_port, pacs.calling_ae, pacs.move_port
        ))
        .for_the_web("the PACS cannot reach pacs2cd to send the images; call IT"));
    }
    if log.succeeded() {
        return Ok(None);
    }
    // The legacy loop asks for modalities a study may not have: a request
    // that moved nothing, and says so, is not a failure there. Any failed
    // or remaining sub-operation is, and so is a failure after images came
    // (Orthanc ends one with all counts 0 too).
    if matches!(keys, RetrieveKeys::AccessionModality(..))
        && !delivered
        && log.counts.failed.unwrap_or(0) == 0
        && log.counts.remaining.unwrap_or(0) == 0
        && log.counts.completed.unwrap_or(0) == 0
    {
        return Ok(None);
    }
    let counts = movescu::describe(&log.counts);
    let counts = if counts.is_empty() { String::new() } else { format!(" ({counts} sub-operations)") };
    // getscu (DCMTK 3.6.7) takes only the storage classes built into it,
    // and nothing can add to them: a newer or private object fails to
    // come by C-GET whatever the PACS does. A C-MOVE takes every class.
    let hint =
        if pacs.retrieve == Retrieve::Get && log.counts.failed.unwrap_or(0) > 0 { GETSCU_HINT } else { "" };
    Ok(Some(format!("the PACS ended the {verb} with {status}{counts}{hint}")))
}

/// The end of a C-GET's failure where its objects' classes are not known
/// (retrieve names them where the manifest does).
const GETSCU_HINT: &str = "; getscu cannot take objects of SOP classes newer than DCMTK 3.6.7 or private ones: if \
                           the study holds such objects, retrieve it by C-MOVE (pacs.retrieve = \"move\", or \
                           pacs.move_port set for such studies alone)";

fn too_slow(pacs: &Pacs) -> Failure {
    Failure::fetch_incomplete(&format!(
        "the retrieve from the PACS {} did not finish within pacs.timeout_total_secs ({} s)",
        pacs.endpoint,
        pacs.timeouts.total.as_secs()
    ))
}

/// getscu writes an instance sent twice over its first copy: when the
/// watcher could not take the first before that, the two were never
/// compared, and a different data set under one UID would go unseen. So
/// every file the tool wrote must have been taken.
fn none_overwritten(stored: Option<usize>, taken: usize) -> Result<(), Failure> {
    match stored {
        Some(stored) if stored > taken => {
            let again = match stored - taken {
                1 => "an image".to_string(),
                n => format!("{n} images"),
            };
            Err(Failure::fetch_incomplete(&format!(
                "the PACS sent {again} again under a SOP Instance UID it had already sent, before the first \
                 copy could be checked; nothing was kept (try again)"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks what arrived against what was asked for and what the PACS lists.
pub fn verify(
    found: &Found,
    manifest: &Manifest,
    arrivals: Vec<arrivals::Arrival>,
    (statuses, excused): (&[String], &[String]),
    allow: Allow,
) -> Result<Retrieved, Failure> {
    let refuse = |why: String| Failure::fetch_incomplete(&format!("{why}; nothing was kept"));
    let (kept, repeats) = arrivals::deduplicate(arrivals).map_err(refuse)?;
    let requested = Requested::of(found, allow.mixed_patients);
    let mut by_study: Vec<Vec<Received>> = vec![Vec::new(); found.studies.len()];
    let mut undecoded: Vec<String> = Vec::new();
    for (_, identity, _) in &kept {
        let name = &identity.patient.name;
        if !identity.patient.name_exact && !name.is_empty() && !undecoded.contains(name) {
            undecoded.push(name.clone());
        }
    }
    for (path, identity, source) in kept {
        // Each file was placed as it arrived (the final sweep's too); the
        // verdict places it again, where nothing else can slip past.
        let study = requested.place(&identity).map_err(|mut failure| {
            if let Some(source) = &source {
                failure.detail = format!("{} (delivered by {source})", failure.detail);
            }
            failure
        })?;
        by_study[study].push(Received { path, identity, source });
    }
    // Whose images these are, by the lookup and every file together.
    let studies = requested.studies_as_learned(found);
    let (patients, _) = lookup::roster(&studies);
    if patients.len() > found.patients.len() && !allow.mixed_patients {
        return Err(refuse(format!(
            "the images belong to more patients than the PACS's answers said: {}; one disc holds one \
             patient's images (--allow-mixed-patients puts them on one disc)",
            lookup::who(&patients)
        ))
        .for_the_web("the images belong to different patients; one disc holds one patient's images"));
    }
    let mut problems: Vec<String> = statuses.to_vec();
    let mut warnings: Vec<String> = undecoded
        .iter()
        .map(|name| {
            format!(
                "images carry a patient name whose bytes their character set does not decode: shown as {}",
                crate::sanitize::quoted(name)
            )
        })
        .collect();
    if repeats > 0 {
        warnings.push(format!("the PACS sent {repeats} images twice (identical copies, kept once)"));
    }
    let mut missing = 0;
    for ((study, received), listed) in found.studies.iter().zip(&by_study).zip(&manifest.studies) {
        if received.is_empty() && listed.expected == Some(0) {
            // Truly empty by the PACS's own list or counts: said, not hidden.
            warnings.push(format!(
                "accession {}: study {} holds no images in the PACS (an order whose images are not there \
                 yet?): nothing of it is on the disc",
                study.accession, study.study_instance_uid
            ));
            continue;
        }
        // A study of which nothing arrived fails the job even with
        // --allow-partial: "sent 0 images" must never read as success.
        if received.is_empty() {
            let detail = format!(
                "accession {}: no image of study {} arrived from the PACS{}",
                study.accession,
                study.study_instance_uid,
                statuses.first().or(excused.first()).map(|s| format!(" ({s})")).unwrap_or_default()
            );
            return Err(match listed.expected {
                Some(n) if n > 0 => Failure::fetch_incomplete(&detail),
                _ => Failure::no_dicom_data(&detail),
            });
        }
        match check_study(study.accession.as_str(), received, listed) {
            Ok(Some((shortfall, absent))) => {
                problems.push(shortfall);
                missing += absent;
            }
            Ok(None) => {}
            Err(extra) => return Err(refuse(extra)),
        }
    }
    // Every study of an accession empty: there is nothing to put on a disc.
    for accession in found.studies.iter().map(|s| s.accession.as_str()) {
        let any = found.studies.iter().zip(&by_study).any(|(s, r)| s.accession == accession && !r.is_empty());
        if !any {
            return Err(Failure::no_dicom_data(&format!(
                "accession {accession}: the PACS holds no image of its studies"
            )));
        }
    }
    let proof = manifest.proof();
    if proof == Proof::Unproven {
        let why =
            "nothing proves that every image arrived: the PACS gives neither an image list nor image counts";
        if !allow.unproven {
            return Err(Failure::fetch_incomplete(&format!(
                "{why} (accept that with --allow-unproven or pacs.allow_unproven = true)"
            ))
            .for_the_web(why));
        }
        warnings.push(format!("{why} (accepted: --allow-unproven or pacs.allow_unproven)"));
    }
    if !problems.is_empty() {
        if !allow.partial {
            return Err(Failure::fetch_incomplete(&problems.join("; ")));
        }
        warnings.extend(problems.into_iter().map(|p| format!("{p} (accepted with --allow-partial)")));
    }
    let per_study = by_study.iter().map(Vec::len).collect();
    // The modalities the files carry, for a PACS that gives no
    // ModalitiesInStudy (the summary would show none).
    let modalities = by_study
        .iter()
        .map(|received| {
            let mut seen: Vec<String> = Vec::new();
            for modality in received.iter().map(|r| r.identity.modality.trim()).filter(|m| !m.is_empty()) {
                if !seen.iter().any(|known| known == modality) {
                    seen.push(modality.to_string());
                }
            }
            seen
        })
        .collect();
    let mut files = Vec::new();
    for (mut received, listed) in by_study.into_iter().zip(&manifest.studies) {
        // Series in the PACS's order where it listed them, images by number.
        let order: HashMap<&str, usize> =
            listed.series.iter().enumerate().map(|(i, s)| (s.uid.as_str(), i)).collect();
        received.sort_by(|a, b| {
            let key = |r: &Received| {
                (
                    order.get(r.identity.series_instance_uid.as_str()).copied().unwrap_or(usize::MAX),
                    r.identity.series_instance_uid.clone(),
                    r.identity.instance_number.unwrap_or(i64::MAX),
                    r.identity.sop_instance_uid.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        files.extend(received);
    }
    let mut delivered_by: Vec<DeliveredBy> = Vec::new();
    for source in files.iter().filter_map(|f| f.source.as_deref()) {
        match delivered_by.iter_mut().find(|d| d.peer == source.peer && d.calling_ae == source.calling_ae) {
            Some(known) => known.files += 1,
            None => delivered_by.push(DeliveredBy {
                peer: source.peer.clone(),
                calling_ae: source.calling_ae.clone(),
                files: 1,
            }),
        }
    }
    let mut objects = Objects::default();
    for file in &files {
        objects.add(&file.identity);
    }
    objects.name_studies(found);
    Ok(Retrieved {
        objects,
        files,
        per_study,
        modalities,
        manifest: manifest.clone(),
        proof: Some(proof),
        patients,
        missing,
        delivered_by,
        warnings,
    })
}

/// One study's files against its manifest: `Ok(Some)` a shortfall and how
/// many images it lacks, `Err` files the PACS did not list (refused).
fn check_study(
    accession: &str,
    received: &[Received],
    listed: &manifest::Study,
) -> Result<Option<(String, usize)>, String> {
    let study = &listed.uid;
    match listed.proof {
        Proof::InstanceList => {
            let wanted = listed.instances().unwrap_or_default();
            let got: BTreeSet<&str> = received.iter().map(|r| r.identity.sop_instance_uid.as_str()).collect();
            if let Some(extra) = got.difference(&wanted).next() {
                return Err(not_listed(extra, study));
            }
            let mut missing: Vec<String> = Vec::new();
            let mut total = 0;
            for series in &listed.series {
                let absent =
                    series.instances.iter().flatten().filter(|uid| !got.contains(uid.as_str())).count();
                if absent > 0 {
                    missing.push(format!("{}: {absent}", series.label()));
                    total += absent;
                }
            }
            Ok((total > 0).then(|| {
                let text = format!(
                    "accession {accession}: {total} of {} images of study {study} did not arrive ({})",
                    wanted.len(),
                    missing.join(", ")
                );
                (text, total)
            }))
        }
        Proof::SeriesCounts => {
            let mut per_series: BTreeMap<&str, usize> = BTreeMap::new();
            for r in received {
                *per_series.entry(r.identity.series_instance_uid.as_str()).or_default() += 1;
            }
            let mut missing = Vec::new();
            let mut total = 0;
            for series in &listed.series {
                let got = per_series.remove(series.uid.as_str()).unwrap_or(0);
                let expected = series.count.unwrap_or(0);
                if got > expected {
                    return Err(format!(
                        "the PACS sent {got} images of {} of study {study}, which it says holds {expected}",
                        series.label()
                    ));
                }
                if got < expected {
                    missing.push(format!("{}: {}", series.label(), expected - got));
                    total += expected - got;
                }
            }
            if let Some((series, _)) = per_series.into_iter().next() {
                return Err(format!(
                    "the PACS sent images of series {series}, which it does not list for study {study}"
                ));
            }
            let expected = listed.expected.unwrap_or(0);
            Ok((total > 0).then(|| {
                let text = format!(
                    "accession {accession}: {total} of {expected} images of study {study} did not arrive ({})",
                    missing.join(", ")
                );
                (text, total)
            }))
        }
        Proof::StudyCount => {
            let expected = listed.expected.unwrap_or(0);
            if received.len() > expected {
                return Err(format!(
                    "the PACS sent {} images of study {study}, which it says holds {expected}",
                    received.len()
                ));
            }
            Ok((received.len() < expected).then(|| {
                let text = format!(
                    "accession {accession}: {} of {expected} images of study {study} arrived",
                    received.len()
                );
                (text, expected - received.len())
            }))
        }
        Proof::Unproven => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Class;
    use crate::patients::Patient;
    use crate::pipeline::arrivals::Arrival;
    use crate::pipeline::lookup::FoundStudy;
    use crate::pipeline::manifest::{Series, Study};

    fn found() -> Found {
        let study = FoundStudy {
            accession: "A1".into(),
            study_instance_uid: "2.25.1".into(),
            patient: Demographics { id: "P1".into(), name_exact: true, ..Demographics::default() },
            instances: Some(3),
            ..FoundStudy::default()
        };
        Found {
            patients: vec![Patient {
                name: "N".into(),
                id: "P1".into(),
                accessions: vec!["A1".into()],
                ..Patient::default()
            }],
            studies: vec![study],
            patient_of: vec![0],
            warnings: vec![],
        }
    }

    #[test]
    fn a_status_repeated_by_the_legacy_loop_is_said_once() {
        let statuses = vec!["A".to_string(), "B".to_string(), "A".to_string(), "A".to_string()];
        assert_eq!(once_each(statuses), ["A, in 3 requests", "B"]);
    }

    #[test]
    fn the_count_splits_by_accession() {
        let mut found = found();
        let second = |accession: &str, uid: &str, instances| FoundStudy {
            accession: accession.into(),
            study_instance_uid: uid.into(),
            instances,
            ..FoundStudy::default()
        };
        // A1 holds two studies, A2 one.
        found.studies.push(second("A2", "2.25.2", Some(4)));
        found.studies.push(second("A1", "2.25.3", Some(5)));
        let counts = Counts::of(&found);
        let parts = counts.parts(found.studies.iter().map(|s| s.instances));
        let totals: Vec<(&str, Option<u64>)> = parts.iter().map(|p| (p.label.as_str(), p.total)).collect();
        assert_eq!(totals, vec![("A1", Some(8)), ("A2", Some(4))]);
        assert_eq!(counts.parts_of_studies, vec![0, 1, 0]);
        // One study of A1 without a count: A1's total is unknown.
        let parts = counts.parts([Some(3), Some(4), None].into_iter());
        assert_eq!((parts[0].total, parts[1].total), (None, Some(4)));
    }

    fn listed(uids: &[&str], proof: Proof) -> Manifest {
        let instances: BTreeSet<String> = uids.iter().map(|u| u.to_string()).collect();
        let series = Series {
            uid: "2.25.1.1".into(),
            modality: "CT".into(),
            number: "1".into(),
            count: Some(uids.len()),
            instances: (proof == Proof::InstanceList).then_some(instances),
            classes: None,
        };
        let expected = (proof != Proof::Unproven).then_some(uids.len());
        Manifest { studies: vec![Study { uid: "2.25.1".into(), series: vec![series], proof, expected }] }
    }

    #[test]
    fn each_arrival_is_placed_and_checked_against_the_list_once_it_is_in() {
        let requested = Requested::of(&found(), false);
        let image = |uid: &str, patient: &str, study: &str| Identity {
            sop_instance_uid: uid.into(),
            patient: Demographics { id: patient.into(), ..Demographics::default() },
            study_instance_uid: study.into(),
            ..Identity::default()
        };
        let detail = |placed: Result<usize, Failure>| placed.expect_err("refused").detail;
        // Before the PACS's list: the study and the patient decide.
        assert_eq!(requested.place(&image("u9", "P1", "2.25.1")).ok(), Some(0));
        let wrong = detail(requested.place(&image("u1", "P2", "2.25.1")));
        assert!(
            wrong.contains("an image of \"P2\" for study 2.25.1 of \"P1\" (PatientID differs)"),
            "{wrong}"
        );
        assert!(detail(requested.place(&image("u1", "P1", "2.25.7"))).contains("which was not requested"));
        // After it: an image it does not list is refused at once.
        requested.know(&listed(&["u1", "u2"], Proof::InstanceList));
        assert_eq!(requested.place(&image("u1", "P1", "2.25.1")).ok(), Some(0));
        assert!(detail(requested.place(&image("u9", "P1", "2.25.1"))).contains("not in its own list"));
        // Counts are no list: nothing to hold an arrival to.
        let counted = Requested::of(&found(), false);
        counted.know(&listed(&["u1", "u2"], Proof::SeriesCounts));
        assert_eq!(counted.place(&image("u9", "P1", "2.25.1")).ok(), Some(0));
    }

    /// Two studies the lookup gave to one patient (the PACS answered no
    /// issuer), whose files name two issuers: two patients.
    #[test]
    fn files_that_name_two_issuers_are_two_patients() {
        let mut found = found();
        let mut second = found.studies[0].clone();
        second.accession = "A2".into();
        second.study_instance_uid = "2.25.2".into();
        found.studies.push(second);
        found.patient_of.push(0);
        found.patients[0].accessions.push("A2".into());
        let image = |uid: &str, study: &str, issuer: &str| Identity {
            sop_instance_uid: uid.into(),
            patient: Demographics {
                id: "P1".into(),
                issuer: issuer.into(),
                name_exact: true,
                ..Demographics::default()
            },
            study_instance_uid: study.into(),
            ..Identity::default()
        };
        let requested = Requested::of(&found, false);
        requested.place(&image("u1", "2.25.1", "HOSP_A")).expect("first");
        requested.place(&image("u2", "2.25.1", "HOSP_A")).expect("same patient");
        let err = requested.place(&image("u3", "2.25.2", "HOSP_B")).expect_err("another issuer");
        assert!(
            err.detail.contains("two patients") && err.detail.contains("IssuerOfPatientID"),
            "{}",
            err.detail
        );
        assert!(!err.web_detail().contains("P1"));
        // Within one study the same is refused even when mixing is allowed.
        let allowed = Requested::of(&found, true);
        allowed.place(&image("u1", "2.25.1", "HOSP_A")).expect("first");
        let err = allowed.place(&image("u2", "2.25.1", "HOSP_B")).expect_err("one study, two patients");
        assert!(err.detail.contains("holds images of two patients"), "{}", err.detail);
        allowed.place(&image("u3", "2.25.2", "HOSP_B")).expect("another study may be another patient");
        let (patients, _) = lookup::roster(&allowed.studies_as_learned(&found));
        assert_eq!(patients.iter().map(|p| p.issuer.as_str()).collect::<Vec<_>>(), ["HOSP_A", "HOSP_B"]);
    }

    /// Files written for real: deduplicate compares their bytes.
    fn arrivals(dir: &Path, images: &[(&str, &str, &str)]) -> Vec<Arrival> {
        images
            .iter()
            .enumerate()
            .map(|(n, (uid, patient, content))| {
                let path = dir.join(format!("{n:06}"));
                std::fs::write(&path, content).expect("write");
                let identity = Identity {
                    sop_instance_uid: uid.to_string(),
                    patient: Demographics { id: patient.to_string(), ..Demographics::default() },
                    study_instance_uid: "2.25.1".into(),
                    series_instance_uid: "2.25.1.1".into(),
                    ..Identity::default()
                };
                Arrival { path, identity: Ok(identity), source: None }
            })
            .collect()
    }

    const ALL: Allow = Allow { mixed_patients: false, unidentified: false, partial: false, unproven: false };

    #[test]
    fn a_file_written_over_before_it_was_taken_fails_the_retrieve() {
        assert!(none_overwritten(Some(30), 30).is_ok());
        assert!(none_overwritten(None, 3).is_ok(), "storescp writes each under a name of its own");
        let err = none_overwritten(Some(31), 30).expect_err("one copy never compared");
        assert_eq!(err.class, Class::FetchIncomplete);
        assert!(err.detail.contains("sent an image again"), "{}", err.detail);
    }

    #[test]
    fn the_files_must_equal_the_list() {
        let dir = tempfile::tempdir().expect("dir");
        let list = listed(&["u1", "u2", "u3"], Proof::InstanceList);
        let whole = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b"), ("u3", "P1", "c")]);
        let retrieved = verify(&found(), &list, whole, (&[], &[]), ALL).expect("whole");
        assert_eq!((retrieved.files.len(), retrieved.proof), (3, Some(Proof::InstanceList)));

        let short = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b")]);
        let err = verify(&found(), &list, short, (&[], &[]), ALL).expect_err("short");
        assert_eq!(err.class, Class::FetchIncomplete);
        assert!(
            err.detail.contains("1 of 3 images") && err.detail.contains("series 1 (CT): 1"),
            "{}",
            err.detail
        );

        let short = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b")]);
        let partial =
            verify(&found(), &list, short, (&[], &[]), Allow { partial: true, ..ALL }).expect("allowed");
        assert_eq!(partial.files.len(), 2);
        assert!(partial.warnings[0].contains("--allow-partial"));

        let extra = arrivals(
            dir.path(),
            &[("u1", "P1", "a"), ("u2", "P1", "b"), ("u3", "P1", "c"), ("u9", "P1", "d")],
        );
        let err = verify(&found(), &list, extra, (&[], &[]), Allow { partial: true, unproven: true, ..ALL })
            .expect_err("extra");
        assert!(
            err.detail.contains("not in its own list") && err.detail.contains("nothing was kept"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn repeats_are_kept_once_unless_they_differ() {
        let dir = tempfile::tempdir().expect("dir");
        let list = listed(&["u1", "u2"], Proof::InstanceList);
        let repeated = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b"), ("u1", "P1", "a")]);
        let retrieved = verify(&found(), &list, repeated, (&[], &[]), ALL).expect("repeat");
        assert_eq!(retrieved.files.len(), 2);
        assert!(retrieved.warnings[0].contains("twice"));
        let differing = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b"), ("u1", "P1", "X")]);
        let err = verify(&found(), &list, differing, (&[], &[]), ALL).expect_err("differ");
        assert!(err.detail.contains("two different images with one SOP Instance UID u1"), "{}", err.detail);
    }

    #[test]
    fn another_patients_image_is_refused_and_not_named_on_the_web() {
        let dir = tempfile::tempdir().expect("dir");
        let list = listed(&["u1", "u2"], Proof::InstanceList);
        let intruder = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "INTRUDER", "b")]);
        let err = verify(&found(), &list, intruder, (&[], &[]), ALL).expect_err("intruder");
        assert!(err.detail.contains("INTRUDER"));
        assert!(!err.web_detail().contains("INTRUDER") && !err.web_detail().contains("P1"));
    }

    #[test]
    fn counts_stand_in_and_nothing_proves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let counted = listed(&["u1", "u2", "u3"], Proof::SeriesCounts);
        let short = arrivals(dir.path(), &[("u1", "P1", "a"), ("u2", "P1", "b")]);
        let err = verify(&found(), &counted, short, (&[], &[]), ALL).expect_err("short");
        assert!(err.detail.contains("1 of 3 images"), "{}", err.detail);

        let unproven = listed(&["u1"], Proof::Unproven);
        let some = arrivals(dir.path(), &[("u1", "P1", "a")]);
        let err = verify(&found(), &unproven, some, (&[], &[]), ALL).expect_err("unproven");
        assert!(
            err.detail.contains("nothing proves") && err.detail.contains("--allow-unproven"),
            "{}",
            err.detail
        );
        let some = arrivals(dir.path(), &[("u1", "P1", "a")]);
        let accepted =
            verify(&found(), &unproven, some, (&[], &[]), Allow { unproven: true, ..ALL }).expect("accepted");
        assert_eq!(accepted.proof, Some(Proof::Unproven));
    }

    #[test]
    fn a_final_success_with_suboperations_left_is_not_complete() {
        let dir = tempfile::tempdir().expect("dir");
        let list = listed(&["u1"], Proof::InstanceList);
        let whole = arrivals(dir.path(), &[("u1", "P1", "a")]);
        let statuses = vec![
            "the PACS ended the C-GET with Success (0 failed, 5 remaining, 25 completed sub-operations)"
                .to_string(),
        ];
        let err = verify(&found(), &list, whole, (&statuses, &[]), ALL).expect_err("remaining");
        assert!(err.detail.contains("5 remaining"), "{}", err.detail);
    }

    #[test]
    fn nothing_received_fails_even_with_allow_partial() {
        let list = listed(&["u1"], Proof::InstanceList);
        let err =
            verify(&found(), &list, Vec::new(), (&[], &[]), Allow { partial: true, unproven: true, ..ALL })
                .expect_err("none");
        assert_eq!(err.class, Class::FetchIncomplete);
    }

    // judge() on the parse of recorded movescu -d / getscu -v runs (made
    // with pacs2cd's own arguments; tests/data/recorded/README.md). The
    // files that arrived are the recording's `.files` list where it has one.

    fn pacs(retrieve: Retrieve, strategy: Strategy) -> Pacs {
        use crate::dicom::{AeTitle, Endpoint, Timeouts};
        Pacs {
            endpoint: Endpoint::parse("PACS@127.0.0.1:28342").expect("endpoint"),
            calling_ae: AeTitle::parse("PACS2CD").expect("AE title"),
            timeouts: Timeouts::from_secs([5, 5, 5, 600]),
            move_port: 28105,
            move_fallback: false,
            move_from: Vec::new(),
            retrieve,
            strategy,
            modalities: vec!["CT".into(), "MR".into()],
        }
    }

    /// The recorded run's log as its parser reads it, and how many files it
    /// delivered (the `.files` list).
    fn run_of(name: &str) -> (RetrieveLog, usize) {
        use crate::dicom::recorded;
        let lines = recorded::out(name);
        let log = if name.contains("getscu") { getscu::parse(&lines) } else { movescu::parse(&lines) };
        (log, recorded::text(&format!("{name}.files")).lines().count())
    }

    /// ACC001's study, which most recordings moved.
    fn studies() -> Vec<String> {
        vec!["2.25.200000000000000000000000000000001".into()]
    }

    #[test]
    fn judge_a_final_success_with_suboperations_left() {
        let uids = studies();
        let keys = RetrieveKeys::Studies(&uids);
        // The fake PACS announces 3, sends 2, ends Success with Remaining 1.
        let (log, arrived) = run_of("fake_movescu_short_debug");
        assert_eq!(arrived, 2);
        let why = judge(&log, &keys, (arrived, true), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect("not an error")
            .expect("a problem");
        assert_eq!(
            why,
            "the PACS ended the C-MOVE with Success (0 failed, 1 remaining, 2 completed sub-operations)"
        );
        let (log, arrived) = run_of("fake_getscu_short");
        let why = judge(&log, &keys, (arrived, true), &pacs(Retrieve::Get, Strategy::Study), "C-GET")
            .expect("not an error")
            .expect("a problem");
        assert_eq!(
            why,
            "the PACS ended the C-GET with Success (0 failed, 1 remaining, 2 completed sub-operations)"
        );
        // dcmqrscp, cancelled after the first pending response: Remaining 1.
        let (log, arrived) = run_of("dcmqrscp_movescu_cancel_debug");
        let why = judge(&log, &keys, (arrived, true), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect("not an error")
            .expect("a problem");
        assert!(why.contains("Cancel") && why.contains("1 remaining"), "{why}");
        // "Sent", says the PACS, and nothing reached the move port.
        let (log, _) = run_of("fake_movescu_short_debug");
        let err = judge(&log, &keys, (2, false), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect_err("sent elsewhere");
        assert_eq!(err.class, Class::PacsUnreachable);
        assert!(err.detail.contains("none reached port 28105"), "{}", err.detail);
    }

    #[test]
    fn judge_a_warning_with_failed_suboperations() {
        let uids = studies();
        let keys = RetrieveKeys::Studies(&uids);
        // dcmqrscp, a file deleted from its storage area: 2 of 3 arrived
        // (README, round 2: the move recording has no `.files` list).
        let (log, _) = run_of("dcmqrscp_movescu_missing_debug");
        let why = judge(&log, &keys, (2, true), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect("not an error")
            .expect("a problem");
        assert_eq!(
            why,
            "the PACS ended the C-MOVE with Warning: Sub-operations complete - One or more failures or warnings \
             (1 failed, 2 completed sub-operations)"
        );
        // The same from getscu (which says how many files it wrote), and a
        // class getscu does not propose.
        let get = pacs(Retrieve::Get, Strategy::Study);
        for name in
            ["dcmqrscp_getscu_missing", "dcmqrscp_getscu_unproposed_class", "orthanc_getscu_unproposed_class"]
        {
            let (log, _) = run_of(name);
            let why = judge(&log, &keys, (log.stored.unwrap_or(0), true), &get, "C-GET")
                .expect("not an error")
                .unwrap_or_else(|| panic!("{name}: no problem found"));
            assert!(
                why.starts_with("the PACS ended the C-GET with ") && why.contains("1 failed"),
                "{name}: {why}"
            );
        }
        // The legacy loop does not exempt a failed sub-operation.
        let keys = RetrieveKeys::AccessionModality("ACC001", "CT");
        let (log, _) = run_of("dcmqrscp_movescu_missing_debug");
        let legacy = pacs(Retrieve::Move, Strategy::LegacyModalities);
        assert!(judge(&log, &keys, (2, true), &legacy, "C-MOVE").expect("not an error").is_some());
    }

    #[test]
    fn judge_a_no_match_in_the_legacy_loop() {
        let legacy = pacs(Retrieve::Move, Strategy::LegacyModalities);
        // ACC001 is CT; the loop asks for MR. The fake PACS honours
        // ModalitiesInStudy in a C-MOVE and, like Orthanc, answers a no
        // match 0xC000 with all counts 0: exempt in the loop.
        let (log, _) = run_of("fake_movescu_legacy_nomatch_debug");
        assert_eq!(log.final_status.as_deref(), Some("Failed: Unable to process"));
        let mr = RetrieveKeys::AccessionModality("ACC001", "MR");
        assert_eq!(judge(&log, &mr, (0, false), &legacy, "C-MOVE").expect("not an error"), None);
        // The same answer to a request by StudyInstanceUID is a failure.
        let uids = studies();
        let why = judge(
            &log,
            &RetrieveKeys::Studies(&uids),
            (0, true),
            &pacs(Retrieve::Move, Strategy::Study),
            "C-MOVE",
        )
        .expect("not an error")
        .expect("a problem");
        assert!(why.contains("Failed: Unable to process"), "{why}");
        // dcmqrscp's no match is a Success with all counts 0.
        let (log, _) = run_of("dcmqrscp_movescu_nomatch_debug");
        assert_eq!(judge(&log, &mr, (0, false), &legacy, "C-MOVE").expect("not an error"), None);
        // The loop's matching request; and Orthanc and dcmqrscp, which
        // ignore the modality and move the CT study for MR too: all 3 came.
        for (name, modality) in [
            ("fake_movescu_legacy_match_debug", "CT"),
            ("legacy_orthanc_move_absent", "MR"),
            ("legacy_dcmqrscp_move_absent", "MR"),
        ] {
            let (log, arrived) = run_of(name);
            assert_eq!(arrived, 3, "{name}");
            let keys = RetrieveKeys::AccessionModality("ACC001", modality);
            assert_eq!(
                judge(&log, &keys, (arrived, true), &legacy, "C-MOVE").expect("not an error"),
                None,
                "{name}"
            );
        }
    }

    /// Orthanc's legacy-loop request for ACC006 (2 CT, 1 MR) and CT: it
    /// ignores the modality, sends both CTs, then fails on the MR (the
    /// receiver takes CT only) with 0xC000 and all counts 0. The request
    /// delivered files, so it is not the "moved nothing" the exemption is
    /// for: a failure (found by a recording; the manifest alone would miss
    /// it where the proof is unproven and allowed).
    #[test]
    fn judge_a_legacy_request_that_delivered_files_and_failed() {
        let (log, arrived) = run_of("orthanc_movescu_legacy_ctonly_debug");
        assert_eq!((log.final_status.as_deref(), arrived), (Some("Failed: Unable to process"), 2));
        let keys = RetrieveKeys::AccessionModality("ACC006", "CT");
        let legacy = pacs(Retrieve::Move, Strategy::LegacyModalities);
        let judged = judge(&log, &keys, (arrived, true), &legacy, "C-MOVE").expect("not an error");
        assert!(
            judged.is_some_and(|why| why.contains("Failed: Unable to process")),
            "exempted as a no match"
        );
    }

    #[test]
    fn judge_a_move_destination_the_pacs_does_not_know() {
        let uids = studies();
        let keys = RetrieveKeys::Studies(&uids);
        // dcmqrscp: 0xa801 "Refused: Move Destination unknown", nothing sent.
        let (log, arrived) = run_of("dcmqrscp_movescu_unknown_dest_debug");
        assert_eq!(log.final_status.as_deref(), Some("Refused: Move Destination unknown"));
        let err = judge(&log, &keys, (arrived, true), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect_err("a configuration fault of the PACS");
        assert_eq!(err.class, Class::PacsUnreachable);
        assert!(
            err.detail.contains("does not know AE PACS2CD as a move destination")
                && err.detail.contains("port 28105 (pacs.move_port)"),
            "{}",
            err.detail
        );
        // In the legacy loop too: the exemption is for no matches only.
        let legacy = pacs(Retrieve::Move, Strategy::LegacyModalities);
        let err = judge(&log, &RetrieveKeys::AccessionModality("ACC001", "MR"), (0, true), &legacy, "C-MOVE")
            .expect_err("unknown destination");
        assert_eq!(err.class, Class::PacsUnreachable);
    }

    /// The PACS knows our AE title at a port where nothing listens: all
    /// failed, none completed, and nothing connected to the move port. Its
    /// AE table is named, with its status and counts, in either strategy.
    #[test]
    fn judge_a_move_destination_the_pacs_cannot_reach() {
        let uids = studies();
        let (log, _) = run_of("dcmqrscp_movescu_dest_closed_debug");
        for (keys, strategy) in [
            (RetrieveKeys::Studies(&uids), Strategy::Study),
            (RetrieveKeys::AccessionModality("ACC001", "MR"), Strategy::LegacyModalities),
        ] {
            let err = judge(&log, &keys, (0, false), &pacs(Retrieve::Move, strategy), "C-MOVE")
                .expect_err("the PACS cannot reach us");
            assert_eq!(err.class, Class::PacsUnreachable);
            assert!(
                err.detail.contains("could not deliver any image")
                    && err.detail.contains("20 failed, 0 completed")
                    && err.detail.contains("AE table must list PACS2CD")
                    && err.detail.contains("port 28105 (pacs.move_port)"),
                "{}",
                err.detail
            );
        }
        // The same counts after the PACS connected: a shortfall, not this.
        let judged = judge(
            &log,
            &RetrieveKeys::Studies(&uids),
            (0, true),
            &pacs(Retrieve::Move, Strategy::Study),
            "C-MOVE",
        )
        .expect("not an error");
        assert!(judged.is_some_and(|why| why.contains("20 failed")));
    }

    #[test]
    fn judge_a_pacs_that_is_not_there() {
        let uids = studies();
        let keys = RetrieveKeys::Studies(&uids);
        let (log, _) = run_of("movescu_down");
        let err = judge(&log, &keys, (0, true), &pacs(Retrieve::Move, Strategy::Study), "C-MOVE")
            .expect_err("nothing arrived");
        assert_eq!(err.class, Class::PacsUnreachable);
        assert!(err.detail.contains("connection refused"), "{}", err.detail);
    }
}
