//! Patients as a job names them: the DICOM value (kept as the PACS or the
//! HIS spells it, for JSON and the audit log) and the form people read.

use serde::Serialize;

/// One patient of a job and the accessions that are theirs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Patient {
    /// PatientName as DICOM writes it (`DOE^JOHN^^DR`).
    pub name: String,
    pub id: String,
    pub accessions: Vec<String>,
}

/// A DICOM person name as people write it: `DOE^JOHN^^DR` -> "DOE, JOHN".
/// Family name, then given and middle names; prefix and suffix, and the
/// ideographic and phonetic groups after `=`, are left out.
pub fn for_people(name: &str) -> String {
    let alphabetic = name.split('=').next().unwrap_or("");
    let mut parts = alphabetic.split('^').map(str::trim);
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
        assert_eq!(for_people(""), "");
    }
}
