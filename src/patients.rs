//! Patients: who a study or an image says its patient is, when two such
//! statements can be one patient, and how a job names its patients.
//!
//! A patient is PatientID together with IssuerOfPatientID (and the
//! issuer's qualifiers where given): two hospitals may both have a patient
//! 12345. The name and the birth date must agree too where both sides give
//! them. An absent issuer, name or birth date tells nobody apart; an empty
//! PatientID identifies nobody (see `Demographics::unidentified`).

use serde::Serialize;

/// What a C-FIND answer or a file says of its patient.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Demographics {
    pub id: String,
    /// IssuerOfPatientID.
    pub issuer: String,
    /// IssuerOfPatientIDQualifiersSequence: UniversalEntityID and its type.
    pub issuer_universal: Option<(String, String)>,
    /// PatientName as DICOM writes it (`DOE^JOHN^^DR`), decoded.
    pub name: String,
    /// False when the name's bytes could not all be decoded by a declared
    /// character set (then it is shown escaped, with a warning).
    pub name_exact: bool,
    /// The name as compared: the decoded name, or for a name that could
    /// not be decoded, its bytes read as UTF-8 or else Latin-1 (as
    /// identifiers are, see charset::lenient): an undecodable name is
    /// still compared, never waved through.
    pub name_compared: String,
    /// PatientBirthDate (DA, `YYYYMMDD`).
    pub birth_date: String,
    /// The HIS's id for the patient, where the patient API was asked and
    /// its ids are not the PACS's: two accessions the HIS gives to two
    /// patients are two patients.
    pub his_id: String,
}

/// The first attribute on which two statements of a patient disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    pub attribute: &'static str,
}

impl Demographics {
    /// No PatientID: such a statement identifies nobody.
    pub fn unidentified(&self) -> bool {
        self.id.trim().is_empty()
    }

    /// Whether `self` and `other` can be one patient: the same PatientID,
    /// and no other attribute that both give differs.
    pub fn disagreement(&self, other: &Demographics) -> Option<Disagreement> {
        let differs = |a: &str, b: &str| !a.is_empty() && !b.is_empty() && a != b;
        let attribute = if self.id.trim() != other.id.trim() {
            "PatientID"
        } else if differs(self.issuer.trim(), other.issuer.trim()) {
            "IssuerOfPatientID"
        } else if matches!((&self.issuer_universal, &other.issuer_universal), (Some(a), Some(b)) if a != b) {
            "IssuerOfPatientIDQualifiersSequence"
        } else if !names_agree(self.compared_name(), other.compared_name()) {
            "PatientName"
        } else if differs(self.birth_date.trim(), other.birth_date.trim()) {
            "PatientBirthDate"
        } else if differs(&self.his_id, &other.his_id) {
            "the HIS's patient id"
        } else {
            return None;
        };
        Some(Disagreement { attribute })
    }

    fn compared_name(&self) -> &str {
        if self.name_compared.is_empty() { &self.name } else { &self.name_compared }
    }

    /// Takes what `other` (of the same patient) gives and `self` lacks.
    pub fn fill_from(&mut self, other: &Demographics) {
        if self.issuer.is_empty() {
            self.issuer = other.issuer.clone();
        }
        if self.issuer_universal.is_none() {
            self.issuer_universal = other.issuer_universal.clone();
        }
        if self.name.is_empty() || (!self.name_exact && other.name_exact && !other.name.is_empty()) {
            self.name = other.name.clone();
            self.name_exact = other.name_exact;
            self.name_compared = other.name_compared.clone();
        }
        if self.birth_date.is_empty() {
            self.birth_date = other.birth_date.clone();
        }
        if self.his_id.is_empty() {
            self.his_id = other.his_id.clone();
        }
    }

    /// "12345 (issuer HOSP_A)", or "no PatientID": for messages.
    pub fn id_phrase(&self) -> String {
        let id =
            if self.unidentified() { "no PatientID".to_string() } else { crate::sanitize::quoted(&self.id) };
        if self.issuer.is_empty() {
            id
        } else {
            format!("{id} (issuer {})", crate::sanitize::quoted(&self.issuer))
        }
    }

    /// "SMITH, ANNA, 12345 (issuer HOSP_A), born 1970-01-01": for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.name.is_empty() {
            parts.push(for_people(&self.name));
        }
        parts.push(self.id_phrase());
        if let Some(date) = shown_date(&self.birth_date) {
            parts.push(format!("born {date}"));
        }
        parts.join(", ")
    }
}

/// Groups statements into patients: for each, the index of its patient
/// (numbered in order of first appearance). A statement joins a patient
/// only when it agrees with every statement already there; one without a
/// PatientID is a patient of its own, since nothing ties it to another.
pub fn group(statements: &[&Demographics]) -> Vec<usize> {
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut patient_of = Vec::with_capacity(statements.len());
    for (index, statement) in statements.iter().enumerate() {
        let joins = (!statement.unidentified())
            .then(|| {
                members.iter().position(|group| {
                    group.iter().all(|&other| {
                        !statements[other].unidentified()
                            && statement.disagreement(statements[other]).is_none()
                    })
                })
            })
            .flatten();
        match joins {
            Some(patient) => {
                members[patient].push(index);
                patient_of.push(patient);
            }
            None => {
                members.push(vec![index]);
                patient_of.push(members.len() - 1);
            }
        }
    }
    patient_of
}

/// Whether two person names can name one patient: each component group
/// (alphabetic, ideographic, phonetic) that both give must agree, ignoring
/// case, padding and empty trailing components, and two names that both
/// give something must give at least one group alike (`DOE^JOHN` and
/// `=ROE^JANE` share nothing to compare: not one patient).
pub fn names_agree(a: &str, b: &str) -> bool {
    let groups = |name: &str| -> Vec<Vec<String>> {
        name.split('=')
            .map(|group| {
                let mut components: Vec<String> = group.split('^').map(|c| c.trim().to_lowercase()).collect();
                while components.last().is_some_and(String::is_empty) {
                    components.pop();
                }
                components
            })
            .collect()
    };
    let (a, b) = (groups(a), groups(b));
    let both: Vec<(&Vec<String>, &Vec<String>)> =
        a.iter().zip(&b).filter(|(a, b)| !a.is_empty() && !b.is_empty()).collect();
    let given = |groups: &[Vec<String>]| groups.iter().any(|g| !g.is_empty());
    if both.is_empty() {
        return !(given(&a) && given(&b));
    }
    both.iter().all(|(a, b)| a == b)
}

/// Whether a name as the HIS writes it ("Doe, John Q", "DOE^JOHN") and a
/// DICOM person name can be one patient: the words of one are all among
/// the other's (case and punctuation aside; a middle initial may be
/// missing on either side), and they share at least one.
pub fn his_name_agrees(his: &str, dicom: &str) -> bool {
    let words = |name: &str| -> std::collections::BTreeSet<String> {
        name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    // The alphabetic group (or the first group that has a name).
    let dicom = dicom.split('=').find(|g| !g.trim_matches(['^', ' ']).is_empty()).unwrap_or("");
    let (his, dicom) = (words(his), words(dicom));
    if his.is_empty() || dicom.is_empty() {
        return true;
    }
    !his.is_disjoint(&dicom) && (his.is_subset(&dicom) || dicom.is_subset(&his))
}

/// `YYYYMMDD` as `YYYY-MM-DD`, when it is one.
fn shown_date(date: &str) -> Option<String> {
    let date = date.trim();
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]))
}

/// One patient of a job and the accessions that are theirs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Patient {
    /// PatientName as DICOM writes it (`DOE^JOHN^^DR`), or as the HIS gives it.
    pub name: String,
    /// PatientID; empty when the PACS gives none (the patient had no ID).
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub birth_date: String,
    pub accessions: Vec<String>,
    /// The HIS's id when it is not the PACS's (`same_id_as_pacs = false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub his_id: Option<String>,
}

impl Patient {
    pub fn of(demographics: &Demographics, accessions: Vec<String>) -> Patient {
        Patient {
            name: demographics.name.clone(),
            id: demographics.id.trim().to_string(),
            issuer: demographics.issuer.trim().to_string(),
            birth_date: demographics.birth_date.trim().to_string(),
            accessions,
            his_id: None,
        }
    }

    /// "DOE, JOHN (PID001)", "DOE, JOHN (PID001, issuer HOSP_A)", or
    /// "DOE, JOHN (no patient ID)": how a technician reads who it is.
    pub fn label(&self) -> String {
        self.label_with(false)
    }

    /// The label with the birth date in it, "SMITH, ANNA (12345, born
    /// 1970-01-01)": for patients whose labels alone read the same (one
    /// ID, issuer and name, born on different days).
    pub fn label_born(&self) -> String {
        self.label_with(true)
    }

    fn label_with(&self, born: bool) -> String {
        let mut ids = Vec::new();
        ids.push(if self.id.is_empty() { "no patient ID".to_string() } else { self.id.clone() });
        if !self.issuer.is_empty() {
            ids.push(format!("issuer {}", self.issuer));
        }
        if let Some(his) = &self.his_id {
            ids.push(format!("HIS {his}"));
        }
        if born && let Some(date) = shown_date(&self.birth_date) {
            ids.push(format!("born {date}"));
        }
        format!("{} ({})", for_people(&self.name), ids.join(", "))
    }
}

/// A DICOM person name as people write it: `DOE^JOHN^^DR` -> "DOE, JOHN".
/// Family name, then given and middle names; prefix and suffix, and the
/// ideographic and phonetic groups after `=`, are left out (the
/// ideographic group stands in when the alphabetic one is empty).
pub fn for_people(name: &str) -> String {
    let mut groups = name.split('=');
    let alphabetic = groups.next().unwrap_or("");
    let group = if alphabetic.trim_matches(['^', ' ']).is_empty() {
        groups.find(|g| !g.trim_matches(['^', ' ']).is_empty()).unwrap_or("")
    } else {
        alphabetic
    };
    let mut parts = group.split('^').map(str::trim);
    let family = parts.next().unwrap_or("");
    let given: Vec<&str> = parts.take(2).filter(|p| !p.is_empty()).collect();
    match (family.is_empty(), given.is_empty()) {
        (false, false) => format!("{family}, {}", given.join(" ")),
        (false, true) => family.to_string(),
        (true, false) => given.join(" "),
        (true, true) => name.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_people() {
        assert_eq!(for_people("DOE^JOHN^^DR"), "DOE, JOHN");
        assert_eq!(for_people("DOE^JOHN^PAUL^DR^JR"), "DOE, JOHN PAUL");
        assert_eq!(for_people("MÜLLER^JOSÉ"), "MÜLLER, JOSÉ");
        assert_eq!(for_people("DOE"), "DOE");
        assert_eq!(for_people("^JOHN"), "JOHN");
        assert_eq!(for_people("Yamada^Tarou=山田^太郎"), "Yamada, Tarou");
        assert_eq!(for_people("=山田^太郎=やまだ^たろう"), "山田, 太郎");
        assert_eq!(for_people(""), "");
    }

    fn patient(id: &str, issuer: &str, name: &str, born: &str) -> Demographics {
        Demographics {
            id: id.into(),
            issuer: issuer.into(),
            name: name.into(),
            name_exact: true,
            name_compared: name.into(),
            birth_date: born.into(),
            ..Demographics::default()
        }
    }

    #[test]
    fn one_patient_only_when_every_given_attribute_agrees() {
        let anna = patient("12345", "HOSP_A", "SMITH^ANNA", "19700101");
        let bob = patient("12345", "HOSP_B", "JONES^BOB", "19990101");
        let attribute = |a: &Demographics, b: &Demographics| a.disagreement(b).map(|d| d.attribute);
        assert_eq!(attribute(&anna, &bob), Some("IssuerOfPatientID"));
        assert_eq!(attribute(&anna, &patient("12345", "", "SMITH^ANNA", "")), None);
        assert_eq!(attribute(&anna, &patient("12345", "", "SMITH^ANNE", "")), Some("PatientName"));
        assert_eq!(attribute(&anna, &patient("12345", "HOSP_A", "", "19700102")), Some("PatientBirthDate"));
        assert_eq!(attribute(&anna, &patient("12346", "HOSP_A", "SMITH^ANNA", "")), Some("PatientID"));
        assert_eq!(attribute(&anna, &patient("12345", "HOSP_A", "Smith^Anna^^", "19700101")), None);
        let mut qualified = anna.clone();
        qualified.issuer_universal = Some(("1.2.3".into(), "ISO".into()));
        let mut other = anna.clone();
        other.issuer_universal = Some(("1.2.4".into(), "ISO".into()));
        assert_eq!(attribute(&qualified, &other), Some("IssuerOfPatientIDQualifiersSequence"));
        assert_eq!(attribute(&qualified, &anna), None);
        // A name that could not be decoded is still compared, by its bytes
        // read as Latin-1 (or UTF-8): another name is another patient.
        let mut escaped = patient("12345", "HOSP_A", "SMITH^\\xC9NNA", "");
        escaped.name_exact = false;
        escaped.name_compared = "SMITH^ÉNNA".into();
        assert_eq!(attribute(&anna, &escaped), Some("PatientName"));
        escaped.name_compared = "SMITH^ANNA".into();
        assert_eq!(attribute(&anna, &escaped), None);
        // No PatientID on both sides is the same (empty) id; whether such a
        // statement may go on a disc is the caller's question.
        assert!(patient("", "", "TRAUMA^ONE", "").unidentified());
    }

    #[test]
    fn statements_group_into_patients() {
        let anna = patient("12345", "HOSP_A", "SMITH^ANNA", "19700101");
        let anna_again = patient("12345", "", "SMITH^ANNA", "");
        let bob = patient("12345", "HOSP_B", "JONES^BOB", "19990101");
        let trauma = patient("", "", "TRAUMA^ONE", "");
        assert_eq!(group(&[&anna, &bob, &anna_again]), vec![0, 1, 0]);
        // An issuer-less statement that could be either joins the first;
        // one that agrees with the first member but not the second does not.
        let unsure = patient("12345", "", "", "");
        assert_eq!(group(&[&unsure, &anna, &bob]), vec![0, 0, 1]);
        // Nobody without an id is anybody else.
        assert_eq!(group(&[&trauma, &trauma.clone()]), vec![0, 1]);
        let mut his_a = anna.clone();
        his_a.his_id = "H1".into();
        let mut his_b = anna.clone();
        his_b.his_id = "H2".into();
        assert_eq!(group(&[&his_a, &his_b]), vec![0, 1]);
    }

    #[test]
    fn names_agree_group_by_group() {
        assert!(names_agree("Yamada^Tarou=山田^太郎", "YAMADA^TAROU"));
        assert!(names_agree("Yamada^Tarou=山田^太郎", "=山田^太郎"));
        assert!(!names_agree("Yamada^Tarou=山田^太郎", "Yamada^Tarou=山本^太郎"));
        assert!(names_agree("DOE^JOHN", "DOE^JOHN^^^"));
        assert!(!names_agree("DOE^JOHN", "DOE^JANE"));
        // Nothing in common to compare: not the same patient.
        assert!(!names_agree("DOE^JOHN", "=ROE^JANE"));
        assert!(names_agree("DOE^JOHN", ""));
    }

    #[test]
    fn his_names_are_compared_word_by_word() {
        assert!(his_name_agrees("Doe, John", "DOE^JOHN"));
        assert!(his_name_agrees("DOE^JOHN Q", "DOE^JOHN"));
        assert!(his_name_agrees("Yamada Tarou", "Yamada^Tarou=山田^太郎"));
        assert!(!his_name_agrees("DOE^JOHN", "ROE^JANE"));
        assert!(!his_name_agrees("DOE^JOHN", "DOE^JANE"));
        assert!(his_name_agrees("DOE^JOHN", ""));
    }

    #[test]
    fn labels_name_the_issuer_and_a_missing_id() {
        let with_issuer = Patient::of(&patient("12345", "HOSP_A", "SMITH^ANNA", "19700101"), vec![]);
        assert_eq!(with_issuer.label(), "SMITH, ANNA (12345, issuer HOSP_A)");
        assert_eq!(with_issuer.label_born(), "SMITH, ANNA (12345, issuer HOSP_A, born 1970-01-01)");
        let nobody = Patient::of(&patient("", "", "TRAUMA^ONE", ""), vec![]);
        assert_eq!(nobody.label(), "TRAUMA, ONE (no patient ID)");
        assert_eq!(
            patient("12345", "HOSP_A", "SMITH^ANNA", "19700101").describe(),
            "SMITH, ANNA, \"12345\" (issuer \"HOSP_A\"), born 1970-01-01"
        );
    }
}
