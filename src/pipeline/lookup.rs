//! Lookup: for every accession (not only the first, as the legacy script
//! did) a STUDY-level C-FIND gives the studies and their patient; the
//! patient comes from that C-FIND or from the HIS patient API. Answers are
//! merged by StudyInstanceUID (some PACSs answer once per instance), and
//! two answers that name different patients for one study are refused, as
//! are accessions of different patients unless asked for.

use crate::accession::Accession;
use crate::config::PatientSource;
use crate::dicom::findscu::{Query, Response};
use crate::dicom::part10::tag;
use crate::failure::Failure;
use crate::job::Context;
use crate::patients::Patient;
use crate::pipeline::find::{Answer, Finder};
use crate::pipeline::patient_api;

/// One study as the PACS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundStudy {
    pub accession: String,
    pub study_instance_uid: String,
    pub patient_name: String,
    pub patient_id: String,
    pub modalities: Vec<String>,
    /// NumberOfStudyRelatedInstances, when the PACS gives it.
    pub instances: Option<usize>,
}

impl FoundStudy {
    fn from_response(data: &Response) -> FoundStudy {
        FoundStudy {
            accession: data.get(tag::ACCESSION_NUMBER).to_string(),
            study_instance_uid: data.get(tag::STUDY_INSTANCE_UID).to_string(),
            patient_name: data.get(tag::PATIENT_NAME).to_string(),
            patient_id: data.get(tag::PATIENT_ID).to_string(),
            modalities: data.codes(tag::MODALITIES_IN_STUDY),
            instances: data.number(tag::NUMBER_OF_STUDY_RELATED_INSTANCES),
        }
    }
}

/// What the PACS (and the HIS) said about the accessions.
#[derive(Clone, Debug)]
pub struct Found {
    /// Every patient, in accession order; the first is the first
    /// accession's (the legacy contract's `patient_name`).
    pub patients: Vec<Patient>,
    /// Every study of every accession, in accession order.
    pub studies: Vec<FoundStudy>,
}

impl Found {
    pub fn first_patient(&self) -> &Patient {
        // `run` never returns an empty list.
        &self.patients[0]
    }
}

pub fn run(
    context: &Context,
    finder: &Finder,
    accessions: &[Accession],
    allow_mixed: bool,
) -> Result<Found, Failure> {
    let source = context.config.patient.source;
    let pacs = finder.pacs();
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
    // One C-FIND run for every accession: one association, one process.
    let mut answered = find(finder, accessions)?;
    let mut studies: Vec<FoundStudy> = Vec::new();
    for accession in accessions {
        let mut found: Vec<FoundStudy> = Vec::new();
        answered.retain(|study| {
            let mine = study.accession == accession.as_str();
            if mine {
                found.push(study.clone());
            }
            !mine
        });
        // A study that two accessions share is one study.
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
    // A PACS that matches loosely (case, fuzzy) must not widen the request:
    // only the exact accessions count.
    for study in &answered {
        log::warn!(
            "the PACS answered with study {} of accession {}, which was not asked for: ignored",
            study.study_instance_uid,
            crate::sanitize::quoted(&study.accession)
        );
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
                        "the HIS says accession {accession} is patient {}, but the PACS holds it under patient ID {}; nothing was sent",
                        his.id,
                        crate::sanitize::quoted(pacs_id)
                    ))
                    .for_the_web(format!(
                        "the HIS and the PACS name different patients for accession {accession}; nothing was sent"
                    )));
                }
            }
        }
    }
    let mut patients: Vec<Patient> = Vec::new();
    for accession in accessions {
        let (name, id) = match his_patients.iter().find(|(a, _)| a == accession) {
            Some((_, his)) => (his.name.clone(), his.id.clone()),
            None => match studies.iter().find(|s| s.accession == accession.as_str()) {
                Some(study) => (study.patient_name.clone(), study.patient_id.clone()),
                None => continue,
            },
        };
        match patients.iter_mut().find(|p| p.id == id) {
            Some(patient) => patient.accessions.push(accession.to_string()),
            None => patients.push(Patient { name, id, accessions: vec![accession.to_string()] }),
        }
    }
    // Studies of one accession under several patient ids count too.
    let mut ids: Vec<&str> = studies.iter().map(|s| s.patient_id.as_str()).collect();
    ids.extend(patients.iter().map(|p| p.id.as_str()));
    ids.sort_unstable();
    ids.dedup();
    if !allow_mixed && ids.len() > 1 {
        let who: Vec<String> = patients
            .iter()
            .map(|p| format!("{} is patient {}", p.accessions.join(", "), crate::sanitize::quoted(&p.id)))
            .collect();
        return Err(Failure::mixed_patients(&format!(
            "{}; one disc holds one patient's images (--allow-mixed-patients puts them on one disc)",
            who.join("; ")
        ))
        .for_the_web(
            "the accession numbers belong to different patients; one disc holds one patient's images",
        ));
    }
    Ok(Found { patients, studies })
}

/// The studies of the accessions, by C-FIND, merged by StudyInstanceUID.
fn find(finder: &Finder, accessions: &[Accession]) -> Result<Vec<FoundStudy>, Failure> {
    let pacs = finder.pacs();
    let queries: Vec<Query> = accessions.iter().map(|a| Query::studies(a.as_str())).collect();
    let responses = match finder.find(&queries)? {
        Answer::Found(responses) => responses,
        Answer::Refused(status) => {
            return Err(Failure::pacs_unreachable(&format!(
                "the PACS {} refused the study query ({status})",
                pacs.endpoint
            )));
        }
    };
    let mut studies: Vec<FoundStudy> = Vec::new();
    for response in &responses {
        let study = FoundStudy::from_response(response);
        if study.study_instance_uid.is_empty() {
            continue;
        }
        match studies.iter_mut().find(|s| s.study_instance_uid == study.study_instance_uid) {
            None => studies.push(study),
            Some(known) if known.patient_id != study.patient_id => {
                return Err(Failure::mixed_patients(&format!(
                    "the PACS {} names two patients ({} and {}) for study {} of accession {}; nothing was sent",
                    pacs.endpoint,
                    crate::sanitize::quoted(&known.patient_id),
                    crate::sanitize::quoted(&study.patient_id),
                    crate::sanitize::quoted(&study.study_instance_uid),
                    crate::sanitize::quoted(&study.accession)
                ))
                .for_the_web(format!(
                    "the PACS names two patients for one study of accession {}; nothing was sent",
                    crate::sanitize::quoted(&study.accession)
                )));
            }
            Some(known) => {
                // One answer per instance (pynetdicom's qrscp) or per
                // location: the same study; keep what each adds.
                for modality in study.modalities {
                    if !known.modalities.contains(&modality) {
                        known.modalities.push(modality);
                    }
                }
                known.instances = known.instances.max(study.instances);
            }
        }
    }
    log::debug!("{} accessions: {} studies", accessions.len(), studies.len());
    Ok(studies)
}
