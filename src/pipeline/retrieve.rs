//! Retrieve: the studies from the PACS into a private folder, by C-MOVE
//! (our storage SCP on the fixed move port, under the port lock) or C-GET,
//! and then the check that matters: every file belongs to a requested study
//! of the expected patient, and each study has as many files as the PACS
//! said it holds. A PACS's final status alone is not trusted (Orthanc
//! reports every failure with all counts 0).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Retrieve, Strategy};
use crate::dicom::part10::{self, Identity};
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::dicom::{AssociationProblem, RetrieveKeys, RetrieveLog, getscu, movescu};
use crate::failure::Failure;
use crate::job::{Context, Pacs};
use crate::pipeline::Deadline;
use crate::pipeline::lookup::{Found, pacs_failure};
use crate::progress::Progress;
use crate::staging::PortLock;

/// A file received and identified.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: PathBuf,
    pub identity: Identity,
}

/// The verified result: files in study order, and what was let pass.
#[derive(Debug, Default)]
pub struct Retrieved {
    pub files: Vec<Received>,
    /// Per study (same order as `Found::studies`): files received.
    pub per_study: Vec<usize>,
    /// Shortfalls accepted with `--allow-partial`, and other remarks.
    pub warnings: Vec<String>,
}

pub fn run(
    context: &Context,
    pacs: &Pacs,
    found: &Found,
    into: &Path,
    allow_partial: bool,
    deadline: &Deadline,
) -> Result<Retrieved, Failure> {
    std::fs::create_dir_all(into)
        .map_err(|err| Failure::config(format!("cannot create {}: {err}", into.display())))?;
    let expected: Option<u64> = found.studies.iter().map(|s| s.instances.map(|n| n as u64)).sum();
    let uids: Vec<String> = found.studies.iter().map(|s| s.study_instance_uid.clone()).collect();
    let mut accessions: Vec<&str> = Vec::new();
    for study in &found.studies {
        if !accessions.contains(&study.accession.as_str()) {
            accessions.push(&study.accession);
        }
    }
    let requests: Vec<RetrieveKeys> = match pacs.strategy {
        // One request for every study: one association, one sub-association.
        Strategy::Study => vec![RetrieveKeys::Studies(&uids)],
        Strategy::LegacyModalities => pacs
            .modalities
            .iter()
            .flat_map(|modality| accessions.iter().map(move |a| RetrieveKeys::AccessionModality(a, modality)))
            .collect(),
    };
    let (tool, verb) = match pacs.retrieve {
        Retrieve::Move => (Tool::Movescu, "C-MOVE"),
        Retrieve::Get => (Tool::Getscu, "C-GET"),
    };
    let program = context.toolbox.path(tool)?;
    let what = format!("retrieving from the PACS {} ({verb})", pacs.endpoint);
    // The legacy loop moves a study once per modality: no meaningful total.
    let total = if pacs.strategy == Strategy::Study { expected } else { None };
    let mut progress = Progress::start(context.progress, &what, total);
    let _lock = match pacs.retrieve {
        Retrieve::Move => Some(PortLock::acquire(
            &context.config.staging_dir,
            pacs.move_port,
            // Within the whole job's deadline (CGI) when it is shorter.
            runner::job_remaining().map_or(Duration::from_secs(context.config.lock_wait_secs), |left| {
                left.min(Duration::from_secs(context.config.lock_wait_secs))
            }),
            &mut |message| progress.note(message),
        )?),
        Retrieve::Get => None,
    };
    let mut statuses: Vec<String> = Vec::new();
    for keys in &requests {
        let remaining = deadline.remaining().map_err(|_| too_slow(pacs))?;
        crate::signals::check()?;
        let mut command = Command::new(&program, remaining);
        let calling = pacs.calling_ae.as_str();
        command.args(match pacs.retrieve {
            Retrieve::Move => {
                movescu::args(calling, &pacs.endpoint, &pacs.timeouts, pacs.move_port, into, keys)
            }
            Retrieve::Get => getscu::args(calling, &pacs.endpoint, &pacs.timeouts, into, keys),
        });
        let received: fn(&str) -> bool = match pacs.retrieve {
            Retrieve::Move => movescu::is_file_received,
            Retrieve::Get => getscu::is_file_received,
        };
        let output = runner::run(&command, &mut |line| {
            if received(line) {
                progress.inc();
            }
        })?;
        if output.timed_out {
            return Err(too_slow(pacs));
        }
        let log: RetrieveLog = match pacs.retrieve {
            Retrieve::Move => movescu::parse(&output.lines),
            Retrieve::Get => getscu::parse(&output.lines),
        };
        if log.port_in_use {
            return Err(Failure::busy(&format!(
                "port {} (pacs.move_port) is in use by another program, so the PACS cannot send to us",
                pacs.move_port
            )));
        }
        match (&log.problem, &log.final_status) {
            // No final response: the association failed. Before any file
            // that is the PACS being unreachable; after, an incomplete fetch.
            (Some(problem), None) if count_files(into) == 0 => return Err(pacs_failure(pacs, problem)),
            (Some(problem), None) => {
                let why = match problem {
                    AssociationProblem::Stalled => "the PACS stopped answering".to_string(),
                    _ => "the association ended early".to_string(),
                };
                statuses.push(why);
            }
            _ => {}
        }
        // The legacy loop asks for modalities a study may not have, and a
        // PACS answers those with a failure: only failed sub-operations
        // count there. The study strategy asks only for what exists.
        let failed = match pacs.strategy {
            Strategy::Study => !log.succeeded(),
            Strategy::LegacyModalities => log.failed_suboperations.is_some_and(|n| n > 0),
        };
        if failed {
            let status = log.final_status.clone().unwrap_or_else(|| "no final response".into());
            let failed =
                log.failed_suboperations.map(|n| format!(", {n} failed sub-operations")).unwrap_or_default();
            statuses.push(format!("the PACS reported {verb} {status}{failed}"));
        }
        crate::signals::check()?;
    }
    drop(progress);
    verify(found, into, &statuses, allow_partial)
}

fn too_slow(pacs: &Pacs) -> Failure {
    Failure::fetch_incomplete(&format!(
        "the retrieve from the PACS {} did not finish within pacs.timeout_total_secs ({} s)",
        pacs.endpoint,
        pacs.timeouts.total.as_secs()
    ))
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|entries| entries.flatten().count()).unwrap_or(0)
}

/// Checks what arrived against what was asked for.
fn verify(
    found: &Found,
    into: &Path,
    statuses: &[String],
    allow_partial: bool,
) -> Result<Retrieved, Failure> {
    let unreadable = |path: &Path, why: String| {
        Failure::fetch_incomplete(&format!("received file {} cannot be checked: {why}", path.display()))
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|err| unreadable(into, err.to_string()))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    let index: HashMap<&str, usize> =
        found.studies.iter().enumerate().map(|(i, s)| (s.study_instance_uid.as_str(), i)).collect();
    let mut by_study: Vec<Vec<Received>> = vec![Vec::new(); found.studies.len()];
    for path in paths {
        crate::signals::check()?;
        let identity = part10::read_identity(&path)
            .map_err(|err| unreadable(&path, err.to_string()))?
            .ok_or_else(|| unreadable(&path, "not a DICOM file this tool can read".into()))?;
        // Never put an image on the disc that nobody asked for: another
        // patient's image on a disc is a clinical and legal incident.
        let Some(&study) = index.get(identity.study_instance_uid.as_str()) else {
            return Err(Failure::fetch_incomplete(&format!(
                "the PACS sent an image of study {}, which was not requested; nothing was kept",
                identity.study_instance_uid
            )));
        };
        let expected_id = &found.studies[study].patient_id;
        if !expected_id.is_empty() && &identity.patient_id != expected_id {
            return Err(Failure::fetch_incomplete(&format!(
                "the PACS sent an image of patient {:?} for study {} of patient {:?}; nothing was kept",
                identity.patient_id, identity.study_instance_uid, expected_id
            )));
        }
        by_study[study].push(Received { path, identity });
    }
    // A study of which nothing arrived fails the job even with
    // --allow-partial: "sent 0 images" must never read as success.
    for (study, received) in found.studies.iter().zip(&by_study) {
        if received.is_empty() {
            let detail = format!(
                "accession {}: no image of study {} arrived from the PACS{}",
                study.accession,
                study.study_instance_uid,
                statuses.first().map(|s| format!(" ({s})")).unwrap_or_default()
            );
            return Err(match study.instances {
                Some(_) => Failure::fetch_incomplete(&detail),
                None => Failure::no_dicom_data(&detail),
            });
        }
    }
    let mut problems: Vec<String> = statuses.to_vec();
    for (study, received) in found.studies.iter().zip(&by_study) {
        match study.instances {
            Some(expected) if received.len() < expected => problems.push(format!(
                "accession {}: {} of {expected} images of study {} arrived",
                study.accession,
                received.len(),
                study.study_instance_uid
            )),
            _ => {}
        }
    }
    let mut warnings = Vec::new();
    if found.studies.iter().any(|s| s.instances.is_none()) {
        warnings.push(
            "the PACS gave no image count for some studies: their completeness rests on its final status"
                .to_string(),
        );
    }
    if !problems.is_empty() {
        if !allow_partial {
            return Err(Failure::fetch_incomplete(&problems.join("; ")));
        }
        warnings.extend(problems.into_iter().map(|p| format!("{p} (accepted with --allow-partial)")));
    }
    let per_study = by_study.iter().map(Vec::len).collect();
    let mut files = Vec::new();
    for mut received in by_study {
        received.sort_by(|a, b| {
            (&a.identity.series_instance_uid, &a.identity.sop_instance_uid)
                .cmp(&(&b.identity.series_instance_uid, &b.identity.sop_instance_uid))
        });
        files.extend(received);
    }
    Ok(Retrieved { files, per_study, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::findscu::FoundStudy;
    use crate::failure::Class;
    use crate::pipeline::lookup::Patient;

    fn found(instances: Option<usize>) -> Found {
        let study = FoundStudy {
            accession: "A1".into(),
            study_instance_uid: "2.25.1".into(),
            patient_id: "P1".into(),
            instances,
            ..FoundStudy::default()
        };
        Found { patient: Patient { name: "N".into(), id: "P1".into() }, studies: vec![study] }
    }

    #[test]
    fn nothing_received_fails_even_with_allow_partial() {
        let empty = tempfile::tempdir().expect("dir");
        let err = verify(&found(Some(3)), empty.path(), &[], true).expect_err("incomplete");
        assert_eq!(err.class, Class::FetchIncomplete);
        let err = verify(&found(None), empty.path(), &[], true).expect_err("no data");
        assert_eq!(err.class, Class::NoDicomData);
    }

    #[test]
    fn a_foreign_file_fails_the_fetch() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("README"), "not dicom").expect("write");
        let err = verify(&found(Some(1)), dir.path(), &[], true).expect_err("unreadable");
        assert_eq!(err.class, Class::FetchIncomplete);
    }
}
