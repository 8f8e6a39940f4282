//! Reads the File Meta Information of a DICOM Part 10 file: enough to tell
//! a storage instance from a DICOMDIR index or a foreign file, and to know
//! its SOP Instance UID, without parsing the data set.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Media Storage Directory Storage: the DICOMDIR index, not an instance.
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// What the meta header of a Part 10 file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
}

impl Meta {
    pub fn is_dicomdir(&self) -> bool {
        self.sop_class_uid == DICOMDIR_SOP_CLASS
    }
}

/// Reads the meta header of `path`; `Ok(None)` when it is not a Part 10
/// file (no `DICM` after the 128-byte preamble, or a broken meta group).
pub fn read_meta(path: &Path) -> io::Result<Option<Meta>> {
    let mut file = File::open(path)?;
    // The meta group is small; 16 KiB holds it with room to spare and keeps
    // a scan of thousands of files cheap.
    let mut head = Vec::with_capacity(16 * 1024);
    file.by_ref().take(16 * 1024).read_to_end(&mut head)?;
    Ok(parse_meta(&head))
}

/// Parses the preamble and meta group from the first bytes of a file.
pub fn parse_meta(head: &[u8]) -> Option<Meta> {
    if head.len() < 132 || &head[128..132] != b"DICM" {
        return None;
    }
    let mut meta = Meta::default();
    let mut at = 132;
    // Group 0002 is always explicit VR little endian.
    while at + 8 <= head.len() {
        let group = u16::from_le_bytes([head[at], head[at + 1]]);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([head[at + 2], head[at + 3]]);
        let vr = [head[at + 4], head[at + 5]];
        let (length, value_at) = match &vr {
            b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"OD" | b"OL"
            | b"OV" | b"SV" | b"UV" => {
                let bytes = head.get(at + 8..at + 12)?;
                (
                    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
                    at + 12,
                )
            }
            _ if vr.iter().all(u8::is_ascii_uppercase) => (
                u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize,
                at + 8,
            ),
            _ => return None,
        };
        let value = head.get(value_at..value_at.checked_add(length)?)?;
        let text = || {
            String::from_utf8_lossy(value)
                .trim_end_matches(['\0', ' '])
                .trim_start()
                .to_string()
        };
        match element {
            0x0002 => meta.sop_class_uid = text(),
            0x0003 => meta.sop_instance_uid = text(),
            0x0010 => meta.transfer_syntax_uid = text(),
            _ => {}
        }
        at = value_at + length;
    }
    (!meta.sop_class_uid.is_empty() && !meta.sop_instance_uid.is_empty()).then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&0x0002u16.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if vr == b"OB" {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }

    fn file(sop_class: &str) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        element(&mut out, 0x0000, b"UL", &42u32.to_le_bytes());
        element(&mut out, 0x0001, b"OB", &[0, 1]);
        element(&mut out, 0x0002, b"UI", format!("{sop_class}\0").as_bytes());
        element(&mut out, 0x0003, b"UI", b"2.25.1234");
        element(&mut out, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0");
        // The data set starts: group 0008.
        out.extend_from_slice(&[0x08, 0x00, 0x16, 0x00, b'U', b'I', 2, 0, b'1', 0]);
        out
    }

    #[test]
    fn reads_instance_meta() {
        let meta = parse_meta(&file("1.2.840.10008.5.1.4.1.1.2")).expect("meta");
        assert_eq!(meta.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(meta.sop_instance_uid, "2.25.1234");
        assert_eq!(meta.transfer_syntax_uid, "1.2.840.10008.1.2.1");
        assert!(!meta.is_dicomdir());
    }

    #[test]
    fn knows_a_dicomdir() {
        assert!(
            parse_meta(&file(DICOMDIR_SOP_CLASS))
                .expect("meta")
                .is_dicomdir()
        );
    }

    #[test]
    fn refuses_foreign_and_truncated_files() {
        assert_eq!(parse_meta(b"hello, this is a README"), None);
        assert_eq!(parse_meta(&[0u8; 200]), None);
        let whole = file("1.2.3");
        assert_eq!(parse_meta(&whole[..150]), None);
    }
}
