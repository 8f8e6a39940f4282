//! dcmmkdir: the DICOMDIR index of a disc folder (General Purpose CD-R
//! profile). It exits 0 even when it left files out (`W: 1 file(s) cannot
//! be added to DICOMDIR`), so its log decides: every file must have been
//! added.
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

/// A file-set ID from free text: CS, at most 16 of `A-Z 0-9 _`.
pub fn file_set_id(text: &str) -> String {
    crate::sanitize::d_characters(text, 16, "PACS2CD")
}

/// What the run did: files added, and why others were not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Indexed {
    pub added: usize,
    pub problems: Vec<String>,
    pub written: bool,
}

pub fn parse(log: &[String]) -> Indexed {
    let mut indexed = Indexed::default();
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text.starts_with("adding file: ") {
            indexed.added += 1;
        } else if text.starts_with("writing file: ") {
            indexed.written = true;
        } else if level == 'E' || level == 'F' || text.contains("cannot be added") {
            indexed.problems.push(text.to_string());
        }
    }
    indexed
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::out as recorded;

    /// dcmmkdir run as disc.rs runs it, in a disc folder of 5 images
    /// (tests/data/recorded/README.md, round 3).
    #[test]
    fn a_whole_index() {
        assert_eq!(parse(&recorded("dcmmkdir_ok")), Indexed { added: 5, problems: vec![], written: true });
    }

    /// A file left out still exits 0 and the DICOMDIR is written: the
    /// problems decide. dcmmkdir logs "adding" for the others only.
    #[test]
    fn a_file_left_out() {
        let private = parse(&recorded("dcmmkdir_private_class"));
        assert_eq!((private.added, private.written), (5, true));
        assert_eq!(
            private.problems,
            [
                "invalid SOP class (2.25.424242424242) for STD-GEN-CD/DVD-RAM profile: \
                 DICOM/ST000001/SE000003/IM000001",
                "1 file(s) cannot be added to DICOMDIR: ",
            ]
        );
        // An SR missing attributes that +I does not invent: one E: line each.
        let sr = parse(&recorded("dcmmkdir_sr_incomplete"));
        assert_eq!((sr.added, sr.written), (5, true));
        assert_eq!(sr.problems.len(), 7, "{:?}", sr.problems);
        assert!(sr.problems[0].starts_with("required attribute CompletionFlag (0040,a491) missing in file"));
        assert_eq!(sr.problems[6], "1 file(s) cannot be added to DICOMDIR: ");
    }

    /// One PatientID under two names: dcmmkdir adds the file under the
    /// first name's patient record and only warns, and the parse finds no
    /// problem. (The retrieve is where two names for one patient are
    /// refused; with --allow-mixed-patients they reach this index.)
    #[test]
    fn an_inconsistent_patient_record_is_a_warning() {
        let log = recorded("dcmmkdir_inconsistent_patient");
        assert!(log.contains(&"W: file inconsistent with existing DICOMDIR record".to_string()));
        assert_eq!(parse(&log), Indexed { added: 6, problems: vec![], written: true });
    }

    #[test]
    fn file_set_ids() {
        assert_eq!(file_set_id("MR.2024.001_ct-2"), "MR_2024_001_CT_2");
        assert_eq!(file_set_id("ABCDEFGHIJKLMNOPQRS"), "ABCDEFGHIJKLMNOP");
        assert_eq!(file_set_id("..."), "PACS2CD");
    }
}
