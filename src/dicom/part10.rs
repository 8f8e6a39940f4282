//! Reads the File Meta Information of a DICOM Part 10 file (enough to tell
//! a storage instance from a DICOMDIR index or a foreign file), and the few
//! data set attributes that say whose image a file is and where it belongs
//! (patient, study, series), without parsing the rest.

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
    parse_header(head).map(|(meta, _)| meta)
}

/// The meta group and the offset where the data set starts.
fn parse_header(head: &[u8]) -> Option<(Meta, usize)> {
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
            b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"OD" | b"OL" | b"OV" | b"SV"
            | b"UV" => {
                let bytes = head.get(at + 8..at + 12)?;
                (u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize, at + 12)
            }
            _ if vr.iter().all(u8::is_ascii_uppercase) => {
                (u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize, at + 8)
            }
            _ => return None,
        };
        let value = head.get(value_at..value_at.checked_add(length)?)?;
        let text = || String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).trim_start().to_string();
        match element {
            0x0002 => meta.sop_class_uid = text(),
            0x0003 => meta.sop_instance_uid = text(),
            0x0010 => meta.transfer_syntax_uid = text(),
            _ => {}
        }
        at = value_at + length;
    }
    (!meta.sop_class_uid.is_empty() && !meta.sop_instance_uid.is_empty()).then_some((meta, at))
}

/// Whose image a file is and where it belongs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub patient_id: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: String,
}

/// Reads the identity of a Part 10 file. `Ok(None)`: not a Part 10 file,
/// or one whose data set this reader cannot walk (big endian, deflated).
pub fn read_identity(path: &Path) -> io::Result<Option<Identity>> {
    let length = std::fs::metadata(path)?.len() as usize;
    // Most headers fit in 16 KiB; large private blocks ask for more.
    let mut want = 16 * 1024;
    loop {
        let mut head = Vec::with_capacity(want.min(length));
        File::open(path)?.take(want as u64).read_to_end(&mut head)?;
        match parse_identity(&head) {
            Walk::Done(identity) => return Ok(identity),
            // Past 64 MiB of header something is wrong with the file.
            Walk::NeedMore if head.len() < length && want < 64 * 1024 * 1024 => want *= 4,
            Walk::NeedMore => return Ok(None),
        }
    }
}

enum Walk<T> {
    Done(T),
    /// The buffer ended inside the attributes we look for.
    NeedMore,
}

fn parse_identity(head: &[u8]) -> Walk<Option<Identity>> {
    let Some((meta, start)) = parse_header(head) else {
        // A header cut short by the buffer looks broken: ask for more.
        return if head.len() >= 132 && &head[128..132] == b"DICM" {
            Walk::NeedMore
        } else {
            Walk::Done(None)
        };
    };
    let explicit = match meta.transfer_syntax_uid.as_str() {
        "1.2.840.10008.1.2" => false,
        // Explicit big endian (retired) and deflated: not walked here.
        "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => return Walk::Done(None),
        _ => true,
    };
    let mut identity = Identity {
        sop_class_uid: meta.sop_class_uid,
        sop_instance_uid: meta.sop_instance_uid,
        ..Identity::default()
    };
    let mut reader = Reader { buf: head, at: start, explicit, depth: 0 };
    loop {
        // Data sets are sorted by tag: past group 0020 nothing we want
        // follows, so the rest (pixel data above all) is never read.
        if reader.peek_group().is_some_and(|group| group > 0x0020) {
            break;
        }
        let element = match reader.element() {
            Ok(Some(element)) => element,
            Ok(None) => break,
            Err(Short) => return Walk::NeedMore,
        };
        let text = || String::from_utf8_lossy(element.value).trim_matches(['\0', ' ']).to_string();
        match (element.group, element.element) {
            (0x0008, 0x0060) => identity.modality = text(),
            (0x0010, 0x0020) => identity.patient_id = text(),
            (0x0020, 0x000D) => identity.study_instance_uid = text(),
            (0x0020, 0x000E) => identity.series_instance_uid = text(),
            _ => {}
        }
    }
    Walk::Done((!identity.study_instance_uid.is_empty()).then_some(identity))
}

/// The buffer ended before the element did.
struct Short;

struct Element<'a> {
    group: u16,
    element: u16,
    value: &'a [u8],
}

/// Walks little endian elements, skipping sequences of any nesting.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    explicit: bool,
    /// Sequence nesting; deeper than any real data set means a broken file.
    depth: usize,
}

/// Real data sets nest a handful of sequences; a file from a peer must not
/// exhaust the stack.
const MAX_DEPTH: usize = 32;

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.at.checked_add(n).ok_or(Short)?;
        let slice = self.buf.get(self.at..end).ok_or(Short)?;
        self.at = end;
        Ok(slice)
    }

    fn peek_group(&self) -> Option<u16> {
        let b = self.buf.get(self.at..self.at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u16(&mut self) -> Result<u16, Short> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Short> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next element; `None` at the end of the data set. A value of
    /// undefined length (a sequence) is skipped and returned empty.
    fn element(&mut self) -> Result<Option<Element<'a>>, Short> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let group = self.u16()?;
        let element = self.u16()?;
        let length = if group == 0xFFFE {
            // Item and delimiter tags carry no VR, even in explicit syntaxes.
            self.u32()?
        } else if self.explicit {
            let vr = self.bytes(2)?;
            match vr {
                b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"OD" | b"OL" | b"OV"
                | b"SV" | b"UV" => {
                    self.bytes(2)?;
                    self.u32()?
                }
                _ => u32::from(self.u16()?),
            }
        } else {
            self.u32()?
        };
        if length == u32::MAX {
            self.skip_undefined()?;
            return Ok(Some(Element { group, element, value: &[] }));
        }
        let value = self.bytes(length as usize)?;
        Ok(Some(Element { group, element, value }))
    }

    /// Skips items up to and including the sequence delimiter (FFFE,E0DD).
    fn skip_undefined(&mut self) -> Result<(), Short> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Short);
        }
        let skipped = self.skip_items();
        self.depth -= 1;
        skipped
    }

    fn skip_items(&mut self) -> Result<(), Short> {
        loop {
            let group = self.u16()?;
            let element = self.u16()?;
            let length = self.u32()?;
            match (group, element) {
                (0xFFFE, 0xE0DD) => return Ok(()),
                (0xFFFE, 0xE000) if length == u32::MAX => {
                    // An item of undefined length: elements up to (FFFE,E00D).
                    loop {
                        match self.element()? {
                            Some(e) if e.group == 0xFFFE && e.element == 0xE00D => break,
                            Some(_) => {}
                            None => return Err(Short),
                        }
                    }
                }
                (0xFFFE, 0xE000) => {
                    self.bytes(length as usize)?;
                }
                // Not a sequence after all: nothing sensible to walk.
                _ => return Err(Short),
            }
        }
    }
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
        assert!(parse_meta(&file(DICOMDIR_SOP_CLASS)).expect("meta").is_dicomdir());
    }

    /// A data set element, explicit VR little endian.
    fn data(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if vr == b"SQ" {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }

    #[test]
    fn reads_identity_past_nested_sequences() {
        let mut bytes = file("1.2.840.10008.5.1.4.1.1.2");
        bytes.truncate(bytes.len() - 10);
        data(&mut bytes, 0x0008, 0x0060, b"CS", b"CT");
        // (0008,1140) SQ of undefined length: one undefined-length item
        // holding a nested undefined-length sequence.
        data(&mut bytes, 0x0008, 0x1140, b"SQ", &[]);
        bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        data(&mut bytes, 0x0008, 0x1150, b"UI", b"1.2\0");
        data(&mut bytes, 0x0008, 0x9215, b"SQ", &[]);
        bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
        bytes.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        data(&mut bytes, 0x0010, 0x0020, b"LO", b"PID001");
        data(&mut bytes, 0x0020, 0x000D, b"UI", b"2.25.7\0");
        data(&mut bytes, 0x0020, 0x000E, b"UI", b"2.25.8\0");
        data(&mut bytes, 0x7FE0, 0x0010, b"OW", &[0, 0]);
        let Walk::Done(Some(identity)) = parse_identity(&bytes) else { panic!("identity") };
        assert_eq!(identity.modality, "CT");
        assert_eq!(identity.patient_id, "PID001");
        assert_eq!(identity.study_instance_uid, "2.25.7");
        assert_eq!(identity.series_instance_uid, "2.25.8");
        assert_eq!(identity.sop_instance_uid, "2.25.1234");
        assert!(matches!(parse_identity(&bytes[..bytes.len() - 30]), Walk::NeedMore));
        assert!(matches!(parse_identity(&bytes[..200]), Walk::NeedMore));
    }

    #[test]
    fn refuses_foreign_and_truncated_files() {
        assert_eq!(parse_meta(b"hello, this is a README"), None);
        assert_eq!(parse_meta(&[0u8; 200]), None);
        let whole = file("1.2.3");
        assert_eq!(parse_meta(&whole[..150]), None);
    }
}
