//! Relay: every DICOM instance under a folder to the CD publisher, in one
//! run of one sender (one association), decided per file. The files sent
//! must be all the instances found: an incomplete disc is worse than none.
//! When it goes wrong the account is exact: how many files the publisher
//! accepted (the robot may have started a partial disc job), and for every
//! other file a reason from a fixed set (`dicom::refusal`). A publisher
//! that stops answering ends the send at the first DIMSE timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::audit::trail::Objects;
use crate::config::Sender;
use crate::dicom::refusal::{Cut, Refusal};
use crate::dicom::runner::{self, Command};
use crate::dicom::storescu::Kind;
use crate::dicom::tools::Tool;
use crate::dicom::{AssociationProblem, FileOutcome, StoreLog, dcmsend, echoscu, part10, storescu};
use crate::failure::{Failure, RelayCounts};
use crate::job::{Context, Publisher};
use crate::patients::Patient;
use crate::progress::{Progress, Stage};
use crate::staging;

/// A storage instance to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Path relative to the folder.
    pub name: String,
    /// How a technician is shown it (the relative path, or "CT image UID").
    pub shown: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
}

/// A file left out of the relay, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub instances: Vec<Instance>,
    pub skipped: Vec<Skipped>,
    /// Whose instances, of which studies (the audit records and the JSON
    /// `patients`): what the files say.
    pub objects: Objects,
}

/// A relay that delivered every instance.
#[derive(Debug, Serialize)]
pub struct Relayed {
    pub destination: String,
    pub files_sent: usize,
    pub files_skipped: usize,
    pub called_ae: String,
    pub sender: &'static str,
    /// Files stored with a warning status (still on the disc).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<(String, String)>,
    pub seconds: f64,
    /// Whose images were sent, as the files name them (`relay`; empty for
    /// `print`, whose report has its own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<Patient>,
    #[serde(skip)]
    pub objects: Objects,
}

/// `pacs2cd relay DIR`.
pub fn run(context: &Context, dir: &Path, publisher: &Publisher) -> Result<(Relayed, Vec<Skipped>), Failure> {
    let started = Instant::now();
    let scan = scan(dir)?;
    for skipped in &scan.skipped {
        log::info!("skipping {}: {}", skipped.file, skipped.reason);
    }
    if scan.instances.is_empty() {
        return Err(Failure::no_dicom_files(&dir.display().to_string()));
    }
    // A large folder takes a while to scan: honour a Ctrl-C before sending.
    crate::signals::check()?;
    let root = staging::open(&context.config.staging_dir, &context.config.staging_group)?;
    let work = root.job_dir().map_err(|failure| staging::explain_full(&root.path, failure))?;
    let patients = scan.objects.patients();
    let sent = send(context, work.path(), dir, &scan.instances, publisher).map_err(|mut failure| {
        context.audit.send_failed(&publisher.endpoint, &scan.objects, &failure);
        // The failure's account lists the skipped files too, as success does.
        if let Some(counts) = &mut failure.relay {
            counts.skipped = scan.skipped.iter().map(|s| (s.file.clone(), s.reason.to_string())).collect();
        }
        staging::explain_full(&root.path, failure.for_patients(&patients))
    });
    let mut relayed = sent?;
    relayed.files_skipped = scan.skipped.len();
    relayed.patients = patients;
    relayed.objects = scan.objects;
    relayed.seconds = started.elapsed().as_secs_f64();
    Ok((relayed, scan.skipped))
}

/// A C-ECHO to the publisher with the titles of the send: a robot that is
/// off or does not know us fails the job in seconds, before the retrieve.
pub fn echo(context: &Context, publisher: &Publisher) -> Result<(), Failure> {
    let program = context.toolbox.path(Tool::Echoscu)?;
    let timeouts = &publisher.timeouts;
    let mut command = Command::new(&program, timeouts.connect + timeouts.acse + timeouts.dimse);
    command.args(echoscu::args(publisher.calling_ae.as_str(), &publisher.endpoint, timeouts));
    command.waiting_for = Some(format!("the {} to answer", publisher.display()));
    let output = runner::run(&command, &mut |_| {})?;
    let destination = publisher.endpoint.address();
    let peer = publisher.display();
    match echoscu::parse(&output.lines) {
        Ok(()) => Ok(()),
        Err(AssociationProblem::Unreachable(why)) => Err(Failure::publisher_unreachable(&destination, &why)),
        Err(AssociationProblem::Stalled) => {
            Err(Failure::publisher_unreachable(&destination, "no answer within the timeouts"))
        }
        Err(AssociationProblem::Rejected(reason)) => {
            Err(rejected(publisher, &reason, RelayCounts::default()))
        }
        Err(AssociationProblem::Aborted(why) | AssociationProblem::Ended(why)) => Err(Failure::relay_failed(
            &destination,
            &format!("the {peer} ended the association ({why}); nothing was sent"),
            RelayCounts::default(),
        )),
    }
}

fn rejected(publisher: &Publisher, reason: &str, counts: RelayCounts) -> Failure {
    let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
    Failure::relay_failed(
        &publisher.endpoint.address(),
        &format!(
            "association rejected by the {}{reason}: check its AE title and its list of known callers; nothing was sent",
            publisher.display()
        ),
        counts,
    )
}

/// Sends `instances` (paths relative to `dir`) in one sender run; its
/// report, profile and short names go to the job's folder `work`.
pub fn send(
    context: &Context,
    work: &Path,
    dir: &Path,
    instances: &[Instance],
    publisher: &Publisher,
) -> Result<Relayed, Failure> {
    if instances.is_empty() {
        // Nothing to send is never a success.
        return Err(Failure::no_dicom_files(&dir.display().to_string()));
    }
    let destination = publisher.endpoint.address();
    let calling = publisher.calling_ae.as_str();
    let timeouts = &publisher.timeouts;
    // "./" keeps a file named "-x" from reading as an option; the sender
    // names each file back exactly as given, which is how results are matched.
    let mut files: Vec<String> = instances.iter().map(|i| format!("./{}", i.name)).collect();
    let mut run_dir = dir.to_path_buf();
    if files.iter().map(|f| f.len() + 1).sum::<usize>() > ARGV_BUDGET {
        (run_dir, files) = short_names(dir, instances, work)?;
    }
    // storescu: a negotiation profile that proposes what these files need.
    let mut kinds: Vec<Kind> = Vec::new();
    let mut kind_of: HashMap<String, Kind> = HashMap::new();
    for (file, instance) in files.iter().zip(instances) {
        let kind = Kind {
            sop_class_uid: instance.sop_class_uid.clone(),
            transfer_syntax_uid: instance.transfer_syntax_uid.clone(),
        };
        if !kinds.contains(&kind) {
            kinds.push(kind.clone());
        }
        kind_of.insert(file.clone(), kind);
    }
    let (tool, args, ids) = match publisher.sender {
        Sender::Dcmsend => {
            (Tool::Dcmsend, dcmsend::args(calling, &publisher.endpoint, timeouts, &files), HashMap::new())
        }
        Sender::Storescu => {
            let (profile, ids) = if kinds.len() <= storescu::MAX_CONTEXTS {
                let (text, ids) = storescu::profile(&kinds);
                let path = work.join("storescu-profile.cfg");
                std::fs::write(&path, text).map_err(|err| {
                    Failure::relay_failed_locally(&format!("cannot write {}: {err}", path.display()))
                })?;
                (Some(path), ids)
            } else {
                log::warn!(
                    "{} kinds of image are more than one association can propose: storescu proposes its defaults",
                    kinds.len()
                );
                (None, HashMap::new())
            };
            (
                Tool::Storescu,
                storescu::args(calling, &publisher.endpoint, timeouts, profile.as_deref(), &files),
                ids,
            )
        }
    };
    let program = context.toolbox.path(tool)?;
    let mut command = Command::new(&program, timeouts.total);
    command.args(args);
    command.dir = Some(run_dir);
    // A signal must not lose what the publisher already accepted, and a
    // publisher that stops answering ends the send at once.
    command.keep_on_signal = true;
    command.stop_at = Some(match publisher.sender {
        Sender::Dcmsend => dcmsend::is_stall,
        Sender::Storescu => storescu::is_stall,
    });
    let what = format!("sending to the {}", publisher.display());
    let mut progress = Progress::start(
        context.progress.clone(),
        Stage::Send,
        &what,
        Some(instances.len() as u64),
        Vec::new(),
    );
    let file_done: fn(&str) -> bool = match publisher.sender {
        Sender::Dcmsend => dcmsend::is_file_done,
        Sender::Storescu => storescu::is_file_done,
    };
    let output = runner::run(&command, &mut |line| {
        if file_done(line) {
            progress.inc();
        }
    })?;
    drop(progress);
    // What ended the send early, if anything, and the account of it.
    let cut = match (output.interrupted, output.stopped_at_line, output.timed_out) {
        (Some(_), _, _) => Some(Cut::Interrupted),
        (None, true, _) | (None, false, true) => Some(Cut::Stalled),
        _ => None,
    };
    let log = match (publisher.sender, cut) {
        // A dcmsend stopped early wrote no report: its log's responses
        // are the account, in the order the files were given.
        (Sender::Dcmsend, Some(cut)) => in_order(&files, dcmsend::accepted_in_log(&output.lines), cut),
        // No report is written when the association never formed.
        (Sender::Dcmsend, None) => dcmsend::parse(&dcmsend::report_in(&output.lines), &output.lines),
        (Sender::Storescu, _) => {
            let mut log = storescu::parse(&output.lines, &files, &kind_of, &ids);
            if let Some(cut) = cut {
                // A file begun as storescu was stopped was cut off too.
                for (_, outcome) in &mut log.files {
                    if *outcome == FileOutcome::Failed(Refusal::NotAttempted(Cut::AssociationEnded)) {
                        *outcome = FileOutcome::Failed(Refusal::NotAttempted(cut));
                    }
                }
                mark_rest(&mut log, &files, cut);
            }
            log
        }
    };
    if let Some(signal) = output.interrupted {
        let in_flight = match publisher.sender {
            Sender::Dcmsend => dcmsend::in_flight(&output.lines),
            Sender::Storescu => storescu::in_flight(&output.lines),
        };
        return Err(interrupted(signal, publisher, &files, instances, log, in_flight));
    }
    let stall = if output.timed_out {
        "did not finish within its time limit (cd_publisher.timeout_total_secs, or cgi.timeout_secs for a CGI request)"
            .to_string()
    } else {
        format!(
            "stopped answering (no response within {} s, cd_publisher.timeout_dimse_secs)",
            timeouts.dimse.as_secs()
        )
    };
    let mut log = log;
    if cut == Some(Cut::Stalled) {
        log.problem.get_or_insert(AssociationProblem::Stalled);
    }
    let warnings = verdict(publisher, &files, instances, log, &stall)?;
    Ok(Relayed {
        destination,
        files_sent: instances.len(),
        files_skipped: 0,
        called_ae: publisher.endpoint.ae.to_string(),
        sender: tool.program(),
        warnings,
        seconds: 0.0,
        patients: Vec::new(),
        objects: Objects::default(),
    })
}

/// An account from a count of accepted files, in the order given: the
/// next file was in flight, the rest not tried.
fn in_order(files: &[String], accepted: usize, cut: Cut) -> StoreLog {
    let in_flight = match cut {
        Cut::Stalled => Refusal::NotAttempted(Cut::NoAnswer),
        other => Refusal::NotAttempted(other),
    };
    let files = files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let outcome = match index.cmp(&accepted) {
                std::cmp::Ordering::Less => FileOutcome::Stored,
                std::cmp::Ordering::Equal => FileOutcome::Failed(in_flight.clone()),
                std::cmp::Ordering::Greater => FileOutcome::Failed(Refusal::NotAttempted(cut)),
            };
            (file.clone(), outcome)
        })
        .collect();
    StoreLog { files, problem: None }
}

/// Files the sender never mentioned were cut off by `cut`.
fn mark_rest(log: &mut StoreLog, files: &[String], cut: Cut) {
    let mentioned: std::collections::HashSet<String> = log.files.iter().map(|(f, _)| f.clone()).collect();
    for file in files.iter().filter(|f| !mentioned.contains(*f)) {
        log.files.push((file.clone(), FileOutcome::Failed(Refusal::NotAttempted(cut))));
    }
}

/// Stopped by a signal mid-send: what the publisher had accepted by then,
/// counted from the sender's own per-file responses (a killed dcmsend
/// writes no report), with a warning about the robot.
fn interrupted(
    signal: i32,
    publisher: &Publisher,
    files: &[String],
    instances: &[Instance],
    log: StoreLog,
    in_flight: usize,
) -> Failure {
    let mut log = log;
    if in_flight > 0 {
        let said: HashMap<String, usize> =
            log.files.iter().enumerate().map(|(index, (name, _))| (name.clone(), index)).collect();
        let first_cut = files.iter().filter_map(|f| said.get(f)).copied().find(|&index| {
            log.files[index].1 == FileOutcome::Failed(Refusal::NotAttempted(Cut::Interrupted))
        });
        if let Some(index) = first_cut {
            log.files[index].1 = FileOutcome::Failed(Refusal::NotAttempted(Cut::InFlight));
        }
    }
    let mut counts = account(files, instances, &log).0;
    counts.files_in_doubt = in_flight.min(counts.files_failed);
    let accepted = if counts.files_in_doubt > 0 {
        format!(
            "{} or {} of {} files (one was on its way: the robot may hold it)",
            counts.files_sent,
            counts.files_sent + counts.files_in_doubt,
            files.len()
        )
    } else {
        format!("{} of {} files", counts.files_sent, files.len())
    };
    let detail = format!(
        "{} while sending: the {} had accepted {accepted}; it may have started a partial disc job, check it",
        Failure::interrupted(signal).detail,
        publisher.display(),
    );
    Failure::interrupted_sending(signal, &publisher.endpoint.address(), detail, counts)
}

/// One association needs every file on one command line, and Linux allows
/// about 2 MB of arguments: past this many bytes of names, the files go by
/// short names (20 CT accessions of thin slices come to ~27,000 files).
const ARGV_BUDGET: usize = 128 * 1024;

/// Links `F0000001`... to the instances in a folder of `work`: the run
/// folder and the names to pass, in the instances' order.
fn short_names(dir: &Path, instances: &[Instance], work: &Path) -> Result<(PathBuf, Vec<String>), Failure> {
    let links = work.join("files");
    let cannot =
        |err: std::io::Error| Failure::relay_failed_locally(&format!("cannot link the files to send: {err}"));
    std::fs::create_dir(&links).map_err(cannot)?;
    let dir = std::path::absolute(dir).map_err(cannot)?;
    let mut names = Vec::with_capacity(instances.len());
    for (index, instance) in instances.iter().enumerate() {
        let name = format!("F{:07}", index + 1);
        std::os::unix::fs::symlink(dir.join(&instance.name), links.join(&name)).map_err(cannot)?;
        names.push(format!("./{name}"));
    }
    log::debug!("{} files: sending them by short names from {}", instances.len(), links.display());
    Ok((links, names))
}

/// The per-file account: counts and reasons, and the warnings of files
/// stored with one.
fn account(files: &[String], instances: &[Instance], log: &StoreLog) -> (RelayCounts, Vec<(String, String)>) {
    let mut counts = RelayCounts::default();
    let mut warnings = Vec::new();
    // The last word on a file wins (a sender may retry on a new association).
    let said: HashMap<&str, &FileOutcome> =
        log.files.iter().map(|(name, outcome)| (name.as_str(), outcome)).collect();
    for (file, instance) in files.iter().zip(instances) {
        match said.get(file.as_str()).copied() {
            Some(FileOutcome::Stored) => counts.files_sent += 1,
            Some(FileOutcome::StoredWithWarning(warning)) => {
                counts.files_sent += 1;
                warnings.push((instance.shown.clone(), warning.clone()));
            }
            Some(FileOutcome::Failed(refusal)) => {
                counts.files_failed += 1;
                // Sent and never answered: the robot may hold it.
                if matches!(refusal, Refusal::NotAttempted(Cut::NoAnswer | Cut::InFlight)) {
                    counts.files_in_doubt += 1;
                }
                counts.failures.push((instance.shown.clone(), refusal.to_string()));
            }
            None => {
                counts.files_failed += 1;
                counts
                    .failures
                    .push((instance.shown.clone(), Refusal::NotAttempted(Cut::AssociationEnded).to_string()));
            }
        }
    }
    (counts, warnings)
}

/// Decides the relay from the sender's account: every instance stored, or
/// a failure from the SPEC table with counts. Nothing accepted is "DICOM
/// relay failed" (76); some accepted, "partial relay" (75). Returns the
/// warnings.
fn verdict(
    publisher: &Publisher,
    files: &[String],
    instances: &[Instance],
    log: StoreLog,
    stall: &str,
) -> Result<Vec<(String, String)>, Failure> {
    let (counts, warnings) = account(files, instances, &log);
    if counts.files_failed == 0 {
        return Ok(warnings);
    }
    let destination = publisher.endpoint.address();
    let peer = publisher.display();
    let total = files.len();
    let sent = counts.files_sent;
    let nothing = sent == 0;
    match log.problem {
        Some(AssociationProblem::Unreachable(why)) if nothing => {
            Err(Failure::publisher_unreachable(&destination, &why))
        }
        Some(AssociationProblem::Rejected(reason)) if nothing => Err(rejected(publisher, &reason, counts)),
        Some(AssociationProblem::Stalled) if nothing && counts.files_in_doubt > 0 => {
            Err(Failure::relay_failed(
                &destination,
                &format!(
                    "the {peer} {stall}; no file was confirmed, but it may hold the first one it never answered for: \
                 check it before trying again"
                ),
                counts,
            ))
        }
        Some(AssociationProblem::Stalled) if nothing => Err(Failure::relay_failed(
            &destination,
            &format!("the {peer} {stall}; nothing was accepted"),
            counts,
        )),
        Some(AssociationProblem::Stalled) => Err(Failure::partial_relay(
            &destination,
            &format!(
                "the {peer} {stall} after accepting {sent} of {total} files; it may have started a partial disc job, check it"
            ),
            counts,
        )),
        Some(AssociationProblem::Aborted(why) | AssociationProblem::Ended(why)) if nothing => {
            Err(Failure::relay_failed(
                &destination,
                &format!("the association with the {peer} failed ({why}); nothing was accepted"),
                counts,
            ))
        }
        _ if nothing => Err(Failure::relay_failed(
            &destination,
            &format!("the {peer} accepted none of the {total} files"),
            counts,
        )),
        _ => {
            let detail = format!(
                "{} of {total} files were not accepted by the {peer}; it may have started a partial disc job, check it",
                counts.files_failed
            );
            Err(Failure::partial_relay(&destination, &detail, counts))
        }
    }
}

/// Finds the storage instances under `dir`, in a stable (sorted) order.
/// Symbolic links to files are followed, to folders not (no loops).
pub fn scan(dir: &Path) -> Result<Scan, Failure> {
    let unreadable = |path: &Path, err: std::io::Error| {
        Failure::relay_failed_locally(&format!(
            "cannot read {}: {}",
            path.display(),
            err.to_string().to_lowercase()
        ))
    };
    if !dir.is_dir() {
        return Err(Failure::no_dicom_files(&format!("{} (not a folder)", dir.display())));
    }
    let mut scan = Scan::default();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|err| unreadable(&folder, err))?;
        for entry in entries {
            let entry = entry.map_err(|err| unreadable(&folder, err))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|err| unreadable(&path, err))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                files.push(path);
            }
        }
    }
    // Byte order of the whole path: stable, and much cheaper than Path's
    // component-wise comparison on thousands of files.
    files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    for path in files {
        let name = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
        // Most files say whose they are (one read of the header); those
        // whose data set this reader cannot walk (deflated, big endian)
        // and the DICOMDIR go by their meta header alone.
        if let Some(identity) = part10::read_identity(&path).map_err(|err| unreadable(&path, err))? {
            scan.objects.add(&identity);
            scan.instances.push(Instance {
                shown: name.clone(),
                name,
                sop_instance_uid: identity.sop_instance_uid,
                sop_class_uid: identity.sop_class_uid,
                transfer_syntax_uid: identity.transfer_syntax_uid,
            });
            continue;
        }
        match part10::read_meta(&path).map_err(|err| unreadable(&path, err))? {
            Some(meta) if meta.is_dicomdir() => {
                scan.skipped.push(Skipped { file: name, reason: "DICOMDIR index" })
            }
            Some(meta) => scan.instances.push(Instance {
                shown: name.clone(),
                name,
                sop_instance_uid: meta.sop_instance_uid,
                sop_class_uid: meta.sop_class_uid,
                transfer_syntax_uid: meta.transfer_syntax_uid,
            }),
            None => scan.skipped.push(Skipped { file: name, reason: "not a DICOM file" }),
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::{AeTitle, Endpoint, Timeouts};
    use crate::failure::Class;

    fn instances(n: usize) -> (Vec<String>, Vec<Instance>) {
        let instances: Vec<Instance> = (0..n)
            .map(|i| Instance {
                name: format!("IM{i}"),
                shown: format!("IM{i}"),
                sop_instance_uid: format!("2.25.{i}"),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            })
            .collect();
        (instances.iter().map(|i| format!("./{}", i.name)).collect(), instances)
    }

    fn log(outcomes: &[FileOutcome], problem: Option<AssociationProblem>) -> StoreLog {
        StoreLog {
            files: outcomes.iter().enumerate().map(|(i, o)| (format!("./IM{i}"), o.clone())).collect(),
            problem,
        }
    }

    fn publisher() -> Publisher {
        Publisher {
            name: "CD publisher".into(),
            endpoint: Endpoint::parse("CDPUB@127.0.0.1:104").expect("endpoint"),
            calling_ae: AeTitle::parse("CDRECORD").expect("ae"),
            sender: Sender::Dcmsend,
            timeouts: Timeouts::from_secs([1, 1, 1, 1]),
        }
    }

    fn decide(n: usize, log: StoreLog) -> Result<Vec<(String, String)>, Failure> {
        let (files, instances) = instances(n);
        verdict(&publisher(), &files, &instances, log, "stopped answering")
    }

    #[test]
    fn all_stored_is_ok_with_warnings_kept() {
        let warned = FileOutcome::StoredWithWarning("Warning: Coercion".into());
        let warnings = decide(2, log(&[FileOutcome::Stored, warned], None)).expect("ok");
        assert_eq!(warnings, vec![("IM1".to_string(), "Warning: Coercion".to_string())]);
    }

    #[test]
    fn some_accepted_is_partial_none_is_failed() {
        let err = decide(3, log(&[FileOutcome::Stored, FileOutcome::Stored], None)).expect_err("partial");
        assert_eq!(err.class, Class::PartialRelay);
        let counts = err.relay.expect("counts");
        assert_eq!((counts.files_sent, counts.files_failed), (2, 1));
        assert_eq!(counts.failures[0].0, "IM2");
        let refused = FileOutcome::Failed(Refusal::SopClass { class: "CTImageStorage".into() });
        let err = decide(2, log(&[refused.clone(), refused], None)).expect_err("none");
        assert_eq!(err.class, Class::RelayFailed);
        assert!(err.detail.contains("accepted none"), "{}", err.detail);
    }

    #[test]
    fn association_problems_map_to_the_table() {
        let unreachable = Some(AssociationProblem::Unreachable("connection refused".into()));
        let err = decide(2, log(&[], unreachable)).expect_err("unreachable");
        assert_eq!(err.class, Class::PublisherUnreachable);
        assert_eq!(err.detail, "CD Publisher unreachable at 127.0.0.1:104: connection refused");
        assert_eq!(err.destination.as_deref(), Some("127.0.0.1:104"));
        let err =
            decide(2, log(&[], Some(AssociationProblem::Rejected(String::new())))).expect_err("rejected");
        assert_eq!(err.class, Class::RelayFailed);
        assert!(err.detail.starts_with("association rejected"), "{}", err.detail);
        let stalled = log(&[FileOutcome::Stored], Some(AssociationProblem::Stalled));
        assert_eq!(decide(2, stalled).expect_err("stalled").class, Class::PartialRelay);
        let stalled = log(&[], Some(AssociationProblem::Stalled));
        assert_eq!(decide(2, stalled).expect_err("stalled").class, Class::RelayFailed);
    }

    #[test]
    fn a_stopped_dcmsend_is_accounted_in_order() {
        let (files, _) = instances(4);
        let log = in_order(&files, 2, Cut::Stalled);
        assert_eq!(log.files[1].1, FileOutcome::Stored);
        assert_eq!(log.files[2].1, FileOutcome::Failed(Refusal::NotAttempted(Cut::NoAnswer)));
        assert_eq!(log.files[3].1, FileOutcome::Failed(Refusal::NotAttempted(Cut::Stalled)));
    }

    #[test]
    fn scan_skips_foreign_files_and_the_dicomdir() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("README.TXT"), "not dicom").expect("write");
        std::fs::write(dir.path().join("a/b/empty"), "").expect("write");
        let scan = scan(dir.path()).expect("scan");
        assert!(scan.instances.is_empty());
        assert_eq!(scan.skipped.len(), 2);
        assert!(matches!(super::scan(&dir.path().join("missing")), Err(f) if f.class == Class::NoDicomData));
    }
}
