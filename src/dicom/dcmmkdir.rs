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

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn counts_and_problems() {
        let good = lines(
            "I: checking file: DICOM/ST000001/SE000001/IM000001\nI: adding file: DICOM/ST000001/SE000001/IM000001\n\
             W: Image Record (origin: X) inventing InstanceNumber: 2\nI: writing file: DICOMDIR",
        );
        assert_eq!(parse(&good), Indexed { added: 1, problems: vec![], written: true });
        let bad = lines(
            "E: LittleEndianExplicit expected but JPEGLossless found: DICOM/X\nW: 1 file(s) cannot be added to DICOMDIR: ",
        );
        let parsed = parse(&bad);
        assert_eq!((parsed.added, parsed.problems.len(), parsed.written), (0, 2, false));
    }

    #[test]
    fn file_set_ids() {
        assert_eq!(file_set_id("MR.2024.001_ct-2"), "MR_2024_001_CT_2");
        assert_eq!(file_set_id("ABCDEFGHIJKLMNOPQRS"), "ABCDEFGHIJKLMNOP");
        assert_eq!(file_set_id("..."), "PACS2CD");
    }
}
