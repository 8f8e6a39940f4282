//! IHE PDI's two files at the root of a disc: `README.TXT` and `INDEX.HTM`.
//! What the disc holds, for which patient, made when and by whom, and how
//! to view it; nothing of pacs2cd's own workings (no paths, hosts or
//! tools). Written for `fetch` and for the hot-folder robots alike, after
//! the proof and before the DICOMDIR.

use std::path::Path;
use std::time::SystemTime;

use crate::failure::Failure;
use crate::patients::{Patient, for_people};

/// One study on the disc, as the lookup found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscStudy {
    pub accession: String,
    /// StudyDate as DICOM writes it (`YYYYMMDD`), or empty.
    pub date: String,
    pub description: String,
    pub modalities: Vec<String>,
    pub images: usize,
}

/// What the disc's root files and label say.
#[derive(Clone, Debug)]
pub struct DiscInfo {
    pub patients: Vec<Patient>,
    pub studies: Vec<DiscStudy>,
    /// Who made it (`cd_publisher.institution`), or empty.
    pub institution: String,
    pub made: SystemTime,
    /// The disc's one name (File-set ID and volume label).
    pub label: String,
    /// Whether a viewer is on the disc.
    pub viewer: bool,
}

impl DiscInfo {
    /// Every modality of every study, once, in order.
    pub fn modalities(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for modality in self.studies.iter().flat_map(|s| &s.modalities) {
            if !all.contains(modality) {
                all.push(modality.clone());
            }
        }
        all
    }

    pub fn accessions(&self) -> Vec<String> {
        self.studies.iter().map(|s| s.accession.clone()).collect()
    }

    /// "2026-03-14 09:05 UTC".
    pub fn made_words(&self) -> String {
        let stamp = crate::audit::syslog::timestamp(self.made);
        format!("{} {} UTC", &stamp[..10], &stamp[11..16])
    }

    fn maker(&self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        if self.institution.trim().is_empty() {
            format!("pacs2cd {version}")
        } else {
            format!("{} (pacs2cd {version})", self.institution.trim())
        }
    }
}

/// `20240131` -> `2024-01-31`; anything else as it is.
pub fn date_words(da: &str) -> String {
    let da = da.trim();
    if da.len() == 8 && da.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &da[..4], &da[4..6], &da[6..])
    } else {
        // Not a DICOM date: nothing, rather than what a PACS put there
        // (a line break and a second patient's name, say).
        String::new()
    }
}

/// A code string (a modality) as a disc may show it: letters, digits, `_`.
fn code(value: &str) -> String {
    value.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(16).collect()
}

/// The text of README.TXT (CR LF lines, as the PCs that read discs expect).
pub fn readme(info: &DiscInfo) -> String {
    let mut lines = vec![
        "DICOM MEDICAL IMAGES (IHE Portable Data for Imaging)".to_string(),
        String::new(),
        format!("Disc: {}", info.label),
        format!("Made: {}", info.made_words()),
        format!("Made by: {}", info.maker()),
        String::new(),
    ];
    for patient in &info.patients {
        let id = if patient.id.is_empty() { "no patient ID".to_string() } else { patient.id.clone() };
        lines.push(format!("Patient: {}", clean(&for_people(&patient.name))));
        lines.push(format!("Patient ID: {}", clean(&id)));
        if !date_words(&patient.birth_date).is_empty() {
            lines.push(format!("Birth date: {}", date_words(&patient.birth_date)));
        }
    }
    lines.push(String::new());
    lines.push("Studies:".to_string());
    for study in &info.studies {
        lines.push(format!(
            "  {}  {}  {}  {}  ({} images)",
            clean(&study.accession),
            date_words(&study.date),
            study.modalities.iter().map(|m| code(m)).collect::<Vec<_>>().join("/"),
            clean(&study.description),
            study.images
        ));
    }
    lines.extend([
        String::new(),
        "Contents:".to_string(),
        "  DICOMDIR     the index of the images (DICOM PS3.10)".to_string(),
        "  DICOM\\       the images, one file each, no file name extension".to_string(),
        "  INDEX.HTM    this description for a web browser".to_string(),
        "  README.TXT   this file".to_string(),
        String::new(),
        "How to view: open the disc with any DICOM viewer, or import it in".to_string(),
        "a PACS import station; the DICOMDIR lists every image.".to_string(),
    ]);
    if info.viewer {
        lines.push("A viewer program is on this disc, at its root.".to_string());
    }
    lines.push(String::new());
    lines.join("\r\n")
}

/// The text of INDEX.HTM: the same, for a browser; everything escaped.
pub fn index_htm(info: &DiscInfo) -> String {
    let e = crate::sanitize::escape_html;
    let mut patients = String::new();
    for patient in &info.patients {
        let id = if patient.id.is_empty() { "no patient ID".to_string() } else { patient.id.clone() };
        let birth = if patient.birth_date.is_empty() {
            String::new()
        } else {
            format!(", born {}", e(&date_words(&patient.birth_date)))
        };
        patients.push_str(&format!(
            "<li>{} (ID {}){birth}</li>\n",
            e(&clean(&for_people(&patient.name))),
            e(&clean(&id))
        ));
    }
    let mut studies = String::new();
    for study in &info.studies {
        studies.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e(&clean(&study.accession)),
            e(&date_words(&study.date)),
            e(&study.modalities.join("/")),
            e(&clean(&study.description)),
            study.images
        ));
    }
    let viewer = if info.viewer { "<p>A viewer program is on this disc, at its root.</p>\n" } else { "" };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>DICOM images {label}</title></head>\n<body>\n\
         <h1>DICOM medical images</h1>\n<p>Disc {label}, made {made} by {maker}.</p>\n<h2>Patient</h2>\n<ul>\n{patients}</ul>\n\
         <h2>Studies</h2>\n<table border=\"1\">\n<tr><th>Accession</th><th>Date</th><th>Modality</th><th>Description</th><th>Images</th></tr>\n\
         {studies}</table>\n<h2>How to view</h2>\n<p>Open the disc with any DICOM viewer, or import it in a PACS import \
         station: the file DICOMDIR lists every image, which are in the folder DICOM.</p>\n{viewer}</body></html>\n",
        label = e(&info.label),
        made = e(&info.made_words()),
        maker = e(&info.maker()),
    )
}

/// The disc's studies: the summaries' counts and modalities with the
/// lookup's date and description (same order).
pub fn studies(
    summaries: &[crate::pipeline::StudySummary],
    found: &crate::pipeline::lookup::Found,
) -> Vec<DiscStudy> {
    summaries
        .iter()
        .zip(&found.studies)
        .map(|(summary, study)| DiscStudy {
            accession: summary.accession.clone(),
            date: study.date.clone(),
            description: study.description.clone(),
            modalities: summary.modalities.clone(),
            images: summary.files,
        })
        .collect()
}

/// Control characters out of a value from the PACS (a line of its own).
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Writes README.TXT and INDEX.HTM at the root of the disc folder.
pub fn write(folder: &Path, info: &DiscInfo) -> Result<(), Failure> {
    for (name, text) in [("README.TXT", readme(info)), ("INDEX.HTM", index_htm(info))] {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(|err| {
            Failure::config(format!("cannot write {}: {}", path.display(), err.to_string().to_lowercase()))
        })?;
        crate::pipeline::disc::restrict(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a PACS puts in a date or a modality cannot add lines to the
    /// disc's README (a second patient, say).
    #[test]
    fn dates_and_codes_from_a_pacs_stay_in_their_line() {
        assert_eq!(date_words("19700101"), "1970-01-01");
        assert_eq!(date_words("19700101\r\nPatient: SMITH, JOHN\r\nPatient ID: PID999"), "");
        assert_eq!(code("CT\r\nPatient: X"), "CTPatientX");
    }

    fn info() -> DiscInfo {
        DiscInfo {
            patients: vec![Patient {
                name: "DOE^JOHN".into(),
                id: "PID001".into(),
                birth_date: "19700102".into(),
                ..Patient::default()
            }],
            studies: vec![DiscStudy {
                accession: "ACC001".into(),
                date: "20240131".into(),
                description: "CT <chest>\nscript".into(),
                modalities: vec!["CT".into(), "SR".into()],
                images: 5,
            }],
            institution: "St. Elsewhere".into(),
            made: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            label: "ACC001".into(),
            viewer: false,
        }
    }

    #[test]
    fn readme_says_what_for_whom_when_and_by_whom() {
        let text = readme(&info());
        for wanted in [
            "Patient: DOE, JOHN",
            "Patient ID: PID001",
            "Birth date: 1970-01-02",
            "ACC001  2024-01-31  CT/SR  CT <chest> script  (5 images)",
            "Made: 2023-11-14 22:13 UTC",
            "Made by: St. Elsewhere (pacs2cd",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
        assert!(text.lines().all(|l| l.is_empty() || !l.ends_with('\n')));
        assert!(text.contains("\r\n"));
    }

    #[test]
    fn index_escapes_what_the_pacs_says() {
        let page = index_htm(&info());
        assert!(page.contains("CT &lt;chest&gt; script"), "{page}");
        assert!(!page.contains("<chest>"), "{page}");
        assert_eq!(info().modalities(), vec!["CT".to_string(), "SR".to_string()]);
    }
}
