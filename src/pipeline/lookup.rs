//! Lookup and resolve: for every accession (not only the first, as the
//! legacy script did) a STUDY-level C-FIND gives the studies, their patient
//! and image counts; the patient comes from that C-FIND or from the HIS
//! patient API. Accessions of different patients are refused unless asked.

use std::path::Path;

use crate::accession::Accession;
use crate::config::PatientSource;
use crate::dicom::AssociationProblem;
use crate::dicom::findscu::{self, FoundStudy};
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::failure::Failure;
use crate::job::{Context, Pacs};
use crate::pipeline::{Deadline, patient_api};

/// The patient a disc is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    pub name: String,
    pub id: String,
}

/// What the PACS (and the HIS) said about the accessions.
#[derive(Clone, Debug)]
pub struct Found {
    pub patient: Patient,
    /// Every study of every accession, in accession order.
    pub studies: Vec<FoundStudy>,
}

pub fn run(
    context: &Context,
    pacs: &Pacs,
    accessions: &[Accession],
    allow_mixed: bool,
    work: &Path,
    deadline: &Deadline,
) -> Result<Found, Failure> {
    let source = context.config.patient.source;
    let mut his_patients = Vec::new();
    if source == PatientSource::Api {
        let api = context
            .config
            .patient
            .api
            .as_ref()
            .ok_or_else(|| Failure::config("patient.source is \"api\" but [patient.api] is missing"))?;
        for accession in accessions {
            his_patients.push((accession.clone(), patient_api::lookup(api, accession)?));
            crate::signals::check()?;
        }
    }
    let mut studies: Vec<FoundStudy> = Vec::new();
    for accession in accessions {
        let mut found = find(context, pacs, accession, work, deadline)?;
        // A study the PACS lists twice (one row per location, say) is one study.
        found.retain(|study| !studies.iter().any(|s| s.study_instance_uid == study.study_instance_uid));
        let listed = found.len();
        // An ordered study whose images are not there yet holds nothing to send.
        found.retain(|study| {
            let empty = study.instances == Some(0);
            if empty {
                log::info!(
                    "accession {accession}: study {} holds no images yet: left out",
                    study.study_instance_uid
                );
            }
            !empty
        });
        if found.is_empty() {
            return Err(match source {
                PatientSource::Pacs if listed == 0 => Failure::accession_not_found(&format!(
                    "the PACS {} has no study with accession number {accession}",
                    pacs.endpoint
                )),
                _ => Failure::no_data_for(accession.as_str(), &pacs.endpoint.to_string()),
            });
        }
        studies.extend(found);
    }
    // Whose images these are: what the images say (the PACS's PatientID)
    // and, with the API, what the HIS says. They must name one patient.
    if context.config.patient.api.as_ref().is_some_and(|api| api.same_id_as_pacs) {
        for (accession, his) in &his_patients {
            let pacs_ids =
                studies.iter().filter(|s| s.accession == accession.as_str()).map(|s| &s.patient_id);
            for pacs_id in pacs_ids {
                if *pacs_id != his.id {
                    return Err(Failure::mixed_patients(&format!(
                        "the HIS says accession {accession} is patient {}, but the PACS holds it under patient ID {pacs_id:?}; nothing was sent",
                        his.id
                    )));
                }
            }
        }
    }
    let distinct = |ids: &mut dyn Iterator<Item = (String, String)>| {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (accession, id) in ids {
            if !seen.iter().any(|(_, known)| *known == id) {
                seen.push((accession, id));
            }
        }
        seen
    };
    let ids = distinct(&mut studies.iter().map(|s| (s.accession.clone(), s.patient_id.clone())));
    let his_ids = distinct(&mut his_patients.iter().map(|(a, p)| (a.to_string(), p.id.clone())));
    if !allow_mixed && (ids.len() > 1 || his_ids.len() > 1) {
        let list = if ids.len() > 1 { &ids } else { &his_ids };
        let who: Vec<String> =
            list.iter().map(|(accession, id)| format!("{accession} is patient {id}")).collect();
        return Err(Failure::mixed_patients(&format!(
            "{} (use --allow-mixed-patients to put them on one disc)",
            who.join(", ")
        )));
    }
    let patient = match his_patients.first() {
        Some((_, his)) => Patient { name: his.name.clone(), id: his.id.clone() },
        None => {
            let first = &studies[0];
            Patient { name: first.patient_name.clone(), id: first.patient_id.clone() }
        }
    };
    Ok(Found { patient, studies })
}

/// The studies of one accession, by C-FIND.
fn find(
    context: &Context,
    pacs: &Pacs,
    accession: &Accession,
    work: &Path,
    deadline: &Deadline,
) -> Result<Vec<FoundStudy>, Failure> {
    let program = context.toolbox.path(Tool::Findscu)?;
    let xml = work.join("find.xml");
    let _ = std::fs::remove_file(&xml);
    let mut command = Command::new(
        &program,
        deadline.remaining().map_err(|_| pacs_failure(pacs, &AssociationProblem::Stalled))?,
    );
    command.args(findscu::args(
        pacs.calling_ae.as_str(),
        &pacs.endpoint,
        &pacs.timeouts,
        accession.as_str(),
        &xml,
    ));
    let output = runner::run(&command, &mut |_| {})?;
    if output.timed_out {
        return Err(pacs_failure(pacs, &AssociationProblem::Stalled));
    }
    findscu::completed(&output.lines).map_err(|problem| pacs_failure(pacs, &problem))?;
    let text = std::fs::read_to_string(&xml).unwrap_or_default();
    let studies: Vec<FoundStudy> = findscu::parse_xml(&text)
        .into_iter()
        .filter(|study| {
            // A PACS that matches loosely (case, fuzzy) must not widen the
            // request: only the exact accession counts.
            let exact = study.accession == accession.as_str();
            if !exact {
                log::warn!(
                    "the PACS answered accession {accession} with study {} of accession {:?}: ignored",
                    study.study_instance_uid,
                    study.accession
                );
            }
            exact
        })
        .collect();
    log::debug!("accession {accession}: {} studies", studies.len());
    Ok(studies)
}

/// The PACS's association problem as a technician reads it.
pub fn pacs_failure(pacs: &Pacs, problem: &AssociationProblem) -> Failure {
    let peer = &pacs.endpoint;
    let why = match problem {
        AssociationProblem::Unreachable(why) => format!("PACS unreachable at {}: {why}", peer.address()),
        AssociationProblem::Rejected(reason) => format!(
            "the PACS {peer} rejected the association from AE {}{}: check the AE titles",
            pacs.calling_ae,
            if reason.is_empty() { String::new() } else { format!(" ({reason})") }
        ),
        AssociationProblem::Stalled => format!("the PACS {peer} stopped answering within the timeouts"),
        AssociationProblem::Aborted(why) => {
            format!("the PACS {peer} ended the association ({why}): is AE {} known to it?", pacs.calling_ae)
        }
    };
    Failure::pacs_unreachable(&why)
}
