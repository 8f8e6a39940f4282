//! dcmmkdir: the DICOMDIR index of a disc folder (General Purpose CD-R
//! profile). It exits 0 even when it left files out (`W: 1 file(s) cannot
//! be added to DICOMDIR`), so its log decides: every file must have been
//! added, or be named as left out with its reason (a private or newer SOP
//! class the profile does not list, an SR without attributes its record
//! needs).
//!
//! `+I` invents missing type 1 record attributes rather than leave a file
//! out, and `-Nxc -Nec -Nrc` keep compressed or unusual images that the
//! strict profile would reject: an image missing from a patient's disc is
//! worse than a disc whose profile is nominal.

use std::ffi::OsString;

use super::log_line;

pub fn args(file_set_id: &str, folder: &str) -> Vec<OsString> {
    ["-v", "-nb", "+r", "-Pgp", "+I", "-Nxc", "-Nec", "-Nrc", "+F", file_set_id, "+D", "DICOMDIR", folder]
        .into_iter()
        .map(OsString::from)
        .collect()
}

/// The disc's one name: its DICOMDIR's File-set ID and its ISO volume
/// label (PS3.12 F.1.1 asks them to agree): at most 16 of `A-Z 0-9 _`,
/// from the accessions. When they do not fit as they are (too long, or
/// characters changed), 11 characters of them and `_` and 4 of a hash of
/// the accessions as given, so two discs whose accessions differ only past
/// the cut, or in case or punctuation, are named apart.
pub fn disc_label(accessions: &[&str]) -> String {
    let joined = accessions.join("_");
    let plain = crate::sanitize::d_characters(&joined, 64, "PACS2CD");
    if plain == joined && plain.len() <= 16 {
        return plain;
    }
    // FNV-1a (32 bits), in base 36: stable across runs and machines.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in joined.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut suffix = String::new();
    for _ in 0..4 {
        suffix.insert(0, char::from(digits[(hash % 36) as usize]));
        hash /= 36;
    }
    let head: String = plain.chars().take(11).collect();
    format!("{}_{suffix}", head.trim_end_matches('_'))
}

/// What the run did: files added, and why others were not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Indexed {
    pub added: usize,
    /// Files dcmmkdir checked and did not index (its list after "cannot be
    /// added"), each with its first reason in plain words.
    pub left_out: Vec<(String, String)>,
    /// Errors that name no file left out: the index itself is in doubt.
    pub problems: Vec<String>,
    pub written: bool,
}

pub fn parse(log: &[String]) -> Indexed {
    let mut indexed = Indexed::default();
    // Per file, the first error that names it.
    let mut reasons: Vec<(String, String)> = Vec::new();
    let mut listing = false;
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text.starts_with("adding file: ") {
            indexed.added += 1;
        } else if text.starts_with("writing file: ") {
            indexed.written = true;
            listing = false;
        } else if text.contains("cannot be added to DICOMDIR") {
            listing = true;
        } else if listing && level == 'W' && !text.trim().is_empty() {
            let file = text.trim().to_string();
            let why = reasons
                .iter()
                .find(|(f, _)| *f == file)
                .map_or_else(|| "dcmmkdir gave no reason".to_string(), |(_, why)| why.clone());
            indexed.left_out.push((file, why));
        } else if level == 'E' || level == 'F' {
            match file_reason(text) {
                Some((file, why)) if !reasons.iter().any(|(f, _)| *f == file) => reasons.push((file, why)),
                Some(_) => {}
                None if text.starts_with("Tag not found") => {}
                None => indexed.problems.push(text.to_string()),
            }
        }
    }
    // An error about a file that was then listed is that file's reason;
    // one about a file that is not listed leaves the index in doubt.
    for (file, why) in reasons {
        if !indexed.left_out.iter().any(|(f, _)| *f == file) {
            indexed.problems.push(format!("{file}: {why}"));
        }
    }
    indexed
}

/// The file an error names, and the reason in plain words.
fn file_reason(text: &str) -> Option<(String, String)> {
    if let Some(rest) = text.strip_prefix("invalid SOP class (")
        && let Some((class, rest)) = rest.split_once(") for ")
        && let Some((profile, file)) = rest.split_once(" profile: ")
    {
        let name = crate::dicom::refusal::class_name(class, "");
        return Some((
            file.trim().to_string(),
            format!("its SOP class ({name}) is not one the {profile} profile may index"),
        ));
    }
    if let Some(rest) = text.strip_prefix("required attribute ")
        && let Some((attribute, file)) = rest.split_once(" missing in file: ")
    {
        return Some((
            file.trim().to_string(),
            format!("it lacks {attribute}, which its DICOMDIR record needs"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::out as recorded;

    /// dcmmkdir run as disc.rs runs it, in a disc folder of 5 images
    /// (tests/data/recorded/README.md, round 3).
    #[test]
    fn a_whole_index() {
        assert_eq!(
            parse(&recorded("dcmmkdir_ok")),
            Indexed { added: 5, written: true, ..Indexed::default() }
        );
    }

    /// A file left out still exits 0 and the DICOMDIR is written: the
    /// list after "cannot be added" names it, with its reason.
    #[test]
    fn a_file_left_out() {
        let private = parse(&recorded("dcmmkdir_private_class"));
        assert_eq!((private.added, private.written), (5, true));
        assert!(private.problems.is_empty(), "{:?}", private.problems);
        assert_eq!(
            private.left_out,
            [(
                "DICOM/ST000001/SE000003/IM000001".to_string(),
                "its SOP class (2.25.424242424242) is not one the STD-GEN-CD/DVD-RAM profile may index"
                    .to_string()
            )]
        );
        // An SR missing attributes that +I does not invent: its first.
        let sr = parse(&recorded("dcmmkdir_sr_incomplete"));
        assert_eq!((sr.added, sr.written), (5, true));
        assert!(sr.problems.is_empty(), "{:?}", sr.problems);
        assert_eq!(sr.left_out.len(), 1);
        assert_eq!(sr.left_out[0].1, "it lacks CompletionFlag (0040,a491), which its DICOMDIR record needs");
    }

    /// One PatientID under two names: dcmmkdir adds the file under the
    /// first name's patient record and only warns, and the parse finds no
    /// problem. (The retrieve is where two names for one patient are
    /// refused; with --allow-mixed-patients they reach this index.)
    #[test]
    fn an_inconsistent_patient_record_is_a_warning() {
        let log = recorded("dcmmkdir_inconsistent_patient");
        assert!(log.contains(&"W: file inconsistent with existing DICOMDIR record".to_string()));
        assert_eq!(parse(&log), Indexed { added: 6, written: true, ..Indexed::default() });
    }

    #[test]
    fn disc_labels_fit_16_characters_and_tell_discs_apart() {
        assert_eq!(disc_label(&["ACC001", "ACC002"]), "ACC001_ACC002");
        let two = disc_label(&["RAD20240115001", "RAD20240115002"]);
        let other = disc_label(&["RAD20240115001", "RAD20240115003"]);
        assert_eq!(two.len(), 16, "{two}");
        assert!(two.starts_with("RAD20240115_"), "{two}");
        assert_ne!(two, other, "a collision past the cut");
        // Case and punctuation changed: named apart too.
        assert_ne!(disc_label(&["mr.001"]), disc_label(&["MR_001"]));
        assert_eq!(disc_label(&["MR_001"]), "MR_001");
        for label in [two, other, disc_label(&["..."]), disc_label(&["ÜÖ"])] {
            assert!(
                label.len() <= 16
                    && label.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{label}"
            );
        }
        // Stable: the same accessions, the same name.
        assert_eq!(
            disc_label(&["RAD20240115001", "RAD20240115002"]),
            disc_label(&["RAD20240115001", "RAD20240115002"])
        );
    }
}
