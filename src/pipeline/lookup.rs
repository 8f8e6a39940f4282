//! Lookup: for every accession (not only the first, as the legacy script
//! did) a STUDY-level C-FIND gives the studies and their patient; with
//! `patient.source = "api"` the HIS patient API names the patient too.
//! Answers are merged by StudyInstanceUID (some PACSs answer once per
//! instance), and two answers that name different patients for one study
//! are refused.
//!
//! Whose images a job holds is decided here first (and again on every
//! received file, see retrieve): studies are grouped into patients by
//! PatientID with its issuer, name and birth date (see `patients`). A job
//! of several patients is refused unless allowed, naming each; a study
//! without a PatientID identifies nobody, so it goes on a disc only alone
//! or when allowed.

use crate::accession::Accession;
use crate::config::PatientSource;
use crate::dicom::findscu::{Query, Response};
use crate::dicom::part10::tag;
use crate::failure::Failure;
use crate::job::{Allow, Context};
use crate::patients::{self, Demographics, Patient};
use crate::pipeline::find::{Answer, Finder};
use crate::pipeline::patient_api::{self, HisPatient};
use crate::sanitize::quoted;

/// One study as the PACS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundStudy {
    pub accession: String,
    pub study_instance_uid: String,
    /// Who the PACS says the patient is (and the HIS's id, see
    /// `Demographics::his_id`).
    pub patient: Demographics,
    /// The HIS's name for the patient, when it was asked.
    pub his_name: Option<String>,
    pub modalities: Vec<String>,
    /// NumberOfStudyRelatedInstances, when the PACS gives it.
    pub instances: Option<usize>,
    /// StudyDate (DA) and StudyDescription, when given.
    pub date: String,
    pub description: String,
}

impl FoundStudy {
    fn from_response(data: &Response) -> FoundStudy {
        FoundStudy {
            accession: data.get(tag::ACCESSION_NUMBER).to_string(),
            study_instance_uid: data.get(tag::STUDY_INSTANCE_UID).to_string(),
            patient: data.patient().clone(),
            his_name: None,
            modalities: data.codes(tag::MODALITIES_IN_STUDY),
            instances: data.number(tag::NUMBER_OF_STUDY_RELATED_INSTANCES),
            date: data.get(tag::STUDY_DATE).to_string(),
            description: data.get(tag::STUDY_DESCRIPTION).to_string(),
        }
    }
}

/// What the PACS (and the HIS) said about the accessions.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// Every patient, in accession order; the first is the first
    /// accession's (the legacy contract's `patient_name`).
    pub patients: Vec<Patient>,
    /// Every study of every accession, in accession order.
    pub studies: Vec<FoundStudy>,
    /// Per study: the index of its patient in `patients`.
    pub patient_of: Vec<usize>,
    /// What the job should say although it goes on.
    pub warnings: Vec<String>,
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
    allow: Allow,
) -> Result<Found, Failure> {
    let source = context.config.patient.source;
    let pacs = finder.pacs();
    // The first words on the screen, at once: the lookup may wait.
    let asked: Vec<&str> = accessions.iter().map(|a| a.as_str()).collect();
    log::info!("looking up {} at the PACS {}", asked.join(", "), pacs.endpoint);
    let api = context.config.patient.api.as_ref();
    let mut his_patients: Vec<(Accession, HisPatient)> = Vec::new();
    if source == PatientSource::Api {
        let api =
            api.ok_or_else(|| Failure::config("patient.source is \"api\" but [patient.api] is missing"))?;
        for accession in accessions {
            let his = patient_api::lookup(api, accession);
            context.audit.queried_api(&patient_api::url(api, accession), his.as_ref().map(|_| ()));
            his_patients.push((accession.clone(), his?));
            crate::signals::check()?;
        }
    }
    // One C-FIND run for every accession: one association, one process.
    let answered = find(finder, accessions);
    context.audit.queried(&pacs.endpoint, &asked, answered.as_ref().map(|_| ()));
    let mut answered = answered?;
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
        if found.is_empty() {
            return Err(match source {
                PatientSource::Pacs => Failure::accession_not_found(&format!(
                    "the PACS {} has no study with accession number {accession}",
                    pacs.endpoint
                )),
                PatientSource::Api => Failure::no_data_for(accession.as_str(), &pacs.endpoint.to_string()),
            });
        }
        // A study counted 0 (an ordered study whose images are not there
        // yet, or a PACS that miscounts) is kept: the manifest asks what it
        // holds, and an empty one is named, never left out silently.
        studies.extend(found);
    }
    // A PACS that matches loosely (case, fuzzy) must not widen the request:
    // only the exact accessions count.
    for study in &answered {
        log::warn!(
            "the PACS answered with study {} of accession {}, which was not asked for: ignored",
            study.study_instance_uid,
            quoted(&study.accession)
        );
    }
    let same_id = api.is_none_or(|api| api.same_id_as_pacs);
    for study in &mut studies {
        let Some((_, his)) = his_patients.iter().find(|(a, _)| a.as_str() == study.accession) else {
            continue;
        };
        if same_id && study.patient.id.trim() != his.id {
            return Err(Failure::mixed_patients(&format!(
                "the HIS says accession {} is patient {}, but the PACS holds study {} under {}; nothing was sent",
                study.accession,
                quoted(&his.id),
                study.study_instance_uid,
                study.patient.describe()
            ))
            .for_the_web(format!(
                "the HIS and the PACS name different patients for accession {}; nothing was sent",
                study.accession
            )));
        }
        // The name must agree too, whatever the ids: the HIS's name goes
        // on the result, the audit and the disc's name.
        let pacs_name = if study.patient.name_compared.is_empty() {
            &study.patient.name
        } else {
            &study.patient.name_compared
        };
        if !patients::his_name_agrees(&his.name, pacs_name) {
            return Err(Failure::mixed_patients(&format!(
                "the HIS names accession {} {}, but the PACS holds study {} under {}; nothing was sent",
                study.accession,
                quoted(&his.name),
                study.study_instance_uid,
                study.patient.describe()
            ))
            .for_the_web(format!(
                "the HIS and the PACS name different patients for accession {}; nothing was sent",
                study.accession
            )));
        }
        if !same_id {
            study.patient.his_id = his.id.clone();
        }
        study.his_name = Some(his.name.clone());
    }
    let mut warnings = Vec::new();
    for study in &studies {
        if !study.patient.name_exact {
            warnings.push(format!(
                "the PACS gave the name of patient {} in bytes its character set does not decode; shown as {}",
                study.patient.id_phrase(),
                quoted(&study.patient.name)
            ));
        }
    }
    let (patients, patient_of) = roster(&studies);
    refuse_unless_allowed(&studies, &patients, &patient_of, allow)?;
    if let Some(study) = studies.iter().find(|s| s.patient.unidentified())
        && studies.len() > 1
    {
        warnings.push(format!(
            "study {} of accession {} has no PatientID (accepted: --allow-unidentified)",
            study.study_instance_uid, study.accession
        ));
    }
    warnings.dedup();
    Ok(Found { patients, studies, patient_of, warnings })
}

/// The patients of `studies` (grouped as `patients::group` does) in order
/// of first appearance, and for each study its patient's index.
pub fn roster(studies: &[FoundStudy]) -> (Vec<Patient>, Vec<usize>) {
    let statements: Vec<&Demographics> = studies.iter().map(|s| &s.patient).collect();
    let patient_of = patients::group(&statements);
    let mut merged: Vec<(Demographics, Option<String>, Vec<String>)> = Vec::new();
    for (study, &index) in studies.iter().zip(&patient_of) {
        if index == merged.len() {
            merged.push((study.patient.clone(), None, Vec::new()));
        }
        let (demographics, his_name, accessions) = &mut merged[index];
        demographics.fill_from(&study.patient);
        if his_name.is_none() {
            his_name.clone_from(&study.his_name);
        }
        if !accessions.contains(&study.accession) {
            accessions.push(study.accession.clone());
        }
    }
    let patients = merged
        .into_iter()
        .map(|(demographics, his_name, accessions)| {
            let mut patient = Patient::of(&demographics, accessions);
            // The legacy contract names the patient as the HIS does.
            if let Some(name) = his_name {
                patient.name = name;
            }
            if !demographics.his_id.is_empty() {
                patient.his_id = Some(demographics.his_id);
            }
            patient
        })
        .collect();
    (patients, patient_of)
}

/// Refuses a job of several patients, or one whose studies include one
/// without a PatientID among others, unless the user allowed it: each
/// patient is named with the accessions that are theirs.
pub fn refuse_unless_allowed(
    studies: &[FoundStudy],
    patients: &[Patient],
    patient_of: &[usize],
    allow: Allow,
) -> Result<(), Failure> {
    let unidentified = studies.iter().zip(patient_of).find(|(s, _)| s.patient.unidentified());
    if studies.len() > 1
        && !allow.unidentified
        && let Some((study, &patient)) = unidentified
    {
        return Err(Failure::mixed_patients(&format!(
            "study {} of accession {} ({}) has no PatientID, so nothing tells whose images it holds; \
             a disc of several studies needs every study identified (--allow-unidentified accepts it)",
            study.study_instance_uid,
            study.accession,
            patients.get(patient).map(Patient::label).unwrap_or_default()
        ))
        .for_patients(patients)
        .for_the_web("a study has no patient ID, so nothing tells whose images it holds; nothing was sent"));
    }
    if patients.len() > 1 && !allow.mixed_patients {
        return Err(Failure::mixed_patients(&format!(
            "{}; one disc holds one patient's images (--allow-mixed-patients puts them on one disc)",
            who(patients)
        ))
        .for_patients(patients)
        .for_the_web(
            "the accession numbers belong to different patients; one disc holds one patient's images",
        ));
    }
    Ok(())
}

/// "ISSA is SMITH, ANNA (12345, issuer HOSP_A); ISSB is JONES, BOB (...)".
pub fn who(patients: &[Patient]) -> String {
    let labels: Vec<String> = patients.iter().map(Patient::label).collect();
    patients
        .iter()
        .zip(&labels)
        .map(|(p, label)| {
            // Patients who read the same differ in their birth dates: say them.
            let twins = labels.iter().filter(|other| *other == label).count() > 1;
            format!(
                "{} {} {}",
                p.accessions.join(", "),
                if p.accessions.len() == 1 { "is" } else { "are" },
                if twins { p.label_born() } else { label.clone() }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The studies of the accessions, by C-FIND, merged by StudyInstanceUID.
fn find(finder: &Finder, accessions: &[Accession]) -> Result<Vec<FoundStudy>, Failure> {
    let pacs = finder.pacs();
    let queries = |issuer| accessions.iter().map(|a| Query::studies(a.as_str(), issuer)).collect::<Vec<_>>();
    let responses = match finder.find(&queries(true))? {
        Answer::Found(responses) => responses,
        Answer::Refused(status) => {
            log::info!(
                "the PACS refused the study query with IssuerOfPatientID ({status}): asking without it"
            );
            match finder.find(&queries(false))? {
                Answer::Found(responses) => responses,
                Answer::Refused(status) => {
                    return Err(Failure::pacs_unreachable(&format!(
                        "the PACS {} refused the study query ({status})",
                        pacs.endpoint
                    )));
                }
            }
        }
    };
    // Answers in ISO 2022 code extensions (a Japanese or Korean site): the
    // manifest's answers will be in them too, which DCMTK's XML
    // conversion drops; take them as files from the start.
    if responses.iter().any(|r| r.get(tag::SPECIFIC_CHARACTER_SET).contains("2022")) {
        finder.prefer_files();
    }
    let mut studies: Vec<FoundStudy> = Vec::new();
    for response in &responses {
        let study = FoundStudy::from_response(response);
        if study.study_instance_uid.is_empty() {
            continue;
        }
        match studies.iter_mut().find(|s| s.study_instance_uid == study.study_instance_uid) {
            None => studies.push(study),
            Some(known) if known.patient.disagreement(&study.patient).is_some() => {
                return Err(Failure::mixed_patients(&format!(
                    "the PACS {} names two patients ({} and {}) for study {} of accession {}; nothing was sent",
                    pacs.endpoint,
                    known.patient.describe(),
                    study.patient.describe(),
                    quoted(&study.study_instance_uid),
                    quoted(&study.accession)
                ))
                .for_the_web(format!(
                    "the PACS names two patients for one study of accession {}; nothing was sent",
                    quoted(&study.accession)
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
                known.patient.fill_from(&study.patient);
            }
        }
    }
    log::debug!("{} accessions: {} studies", accessions.len(), studies.len());
    Ok(studies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(accession: &str, id: &str, issuer: &str, name: &str) -> FoundStudy {
        FoundStudy {
            accession: accession.into(),
            study_instance_uid: format!("2.25.{}", accession.len() + id.len() + name.len()),
            patient: Demographics {
                id: id.into(),
                issuer: issuer.into(),
                name: name.into(),
                name_exact: true,
                ..Demographics::default()
            },
            ..FoundStudy::default()
        }
    }

    const NONE: Allow = Allow { mixed_patients: false, unidentified: false, partial: false, unproven: false };

    fn verdict(studies: &[FoundStudy], allow: Allow) -> Result<Vec<Patient>, Failure> {
        let (patients, patient_of) = roster(studies);
        refuse_unless_allowed(studies, &patients, &patient_of, allow).map(|()| patients)
    }

    #[test]
    fn patients_told_apart_by_birth_date_alone_are_named_with_it() {
        let born = |accession: &str, date: &str| FoundStudy {
            patient: Demographics {
                birth_date: date.into(),
                ..study(accession, "12345", "", "SMITH^ANNA").patient
            },
            ..study(accession, "12345", "", "SMITH^ANNA")
        };
        let err = verdict(&[born("BORN1", "19700101"), born("BORN2", "19710202")], NONE).expect_err("two");
        assert!(err.detail.contains("BORN1 is SMITH, ANNA (12345, born 1970-01-01)"), "{}", err.detail);
        assert!(err.detail.contains("BORN2 is SMITH, ANNA (12345, born 1971-02-02)"), "{}", err.detail);
    }

    #[test]
    fn a_shared_patient_id_of_two_issuers_is_two_patients_named_each() {
        let studies =
            [study("ISSA", "12345", "HOSP_A", "SMITH^ANNA"), study("ISSB", "12345", "HOSP_B", "JONES^BOB")];
        let err = verdict(&studies, NONE).expect_err("two patients");
        assert!(err.detail.contains("ISSA is SMITH, ANNA (12345, issuer HOSP_A)"), "{}", err.detail);
        assert!(err.detail.contains("ISSB is JONES, BOB (12345, issuer HOSP_B)"), "{}", err.detail);
        assert_eq!(err.patients.len(), 2, "the audit names both");
        assert!(!err.web_detail().contains("SMITH"));
        let allowed = verdict(&studies, Allow { mixed_patients: true, ..NONE }).expect("allowed");
        assert_eq!(allowed.len(), 2);
    }

    #[test]
    fn one_accession_on_two_patients_names_both_with_it() {
        let studies = [study("A1", "P100", "", "DOE^JOHN"), study("A1", "P200", "", "ROE^JANE")];
        let err = verdict(&studies, NONE).expect_err("misfiled");
        assert!(
            err.detail.contains("A1 is DOE, JOHN (P100)") && err.detail.contains("A1 is ROE, JANE (P200)")
        );
        let patients = verdict(&studies, Allow { mixed_patients: true, ..NONE }).expect("allowed");
        assert_eq!(patients.iter().map(|p| p.accessions.clone()).collect::<Vec<_>>(), [["A1"], ["A1"]]);
    }

    #[test]
    fn a_study_without_patient_id_goes_alone_or_when_allowed() {
        let one = [study("T1", "", "", "TRAUMA^ONE")];
        assert_eq!(verdict(&one, NONE).expect("alone")[0].label(), "TRAUMA, ONE (no patient ID)");
        let two = [study("T1", "", "", "TRAUMA^ONE"), study("T2", "", "", "TRAUMA^TWO")];
        let err = verdict(&two, NONE).expect_err("unidentified");
        assert!(err.detail.contains("has no PatientID") && err.detail.contains("--allow-unidentified"));
        // Allowed: still two patients, each named.
        let err = verdict(&two, Allow { unidentified: true, ..NONE }).expect_err("still two");
        assert!(err.detail.contains("TRAUMA, ONE") && err.detail.contains("TRAUMA, TWO"));
        let both = verdict(&two, Allow { unidentified: true, mixed_patients: true, ..NONE }).expect("both");
        assert_eq!(both.len(), 2);
    }
}
