//! Reads DICOM Part 10 files far enough to know what they are and whose:
//! the File Meta Information (a storage instance, a DICOMDIR index, or a
//! foreign file) and the top-level data set attributes up to group 0020
//! (patient, study, series, instance), never the pixel data. C-FIND
//! responses that findscu writes with `-X` are read the same way.
//!
//! Text values are decoded by the data set's SpecificCharacterSet (see
//! `charset`): every set of the standard, ISO 2022 code extensions
//! included. Control characters (CR/LF in a name, say) are removed after
//! decoding.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::charset;
use crate::patients::Demographics;

/// Media Storage Directory Storage: the DICOMDIR index, not an instance.
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// Tags this tool reads.
pub mod tag {
    pub const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
    pub const SOP_CLASS_UID: u32 = 0x0008_0016;
    pub const SOP_INSTANCE_UID: u32 = 0x0008_0018;
    pub const STUDY_DATE: u32 = 0x0008_0020;
    pub const ACCESSION_NUMBER: u32 = 0x0008_0050;
    pub const MODALITY: u32 = 0x0008_0060;
    pub const MODALITIES_IN_STUDY: u32 = 0x0008_0061;
    pub const STUDY_DESCRIPTION: u32 = 0x0008_1030;
    pub const PATIENT_NAME: u32 = 0x0010_0010;
    pub const PATIENT_ID: u32 = 0x0010_0020;
    pub const ISSUER_OF_PATIENT_ID: u32 = 0x0010_0021;
    pub const ISSUER_OF_PATIENT_ID_QUALIFIERS: u32 = 0x0010_0024;
    pub const PATIENT_BIRTH_DATE: u32 = 0x0010_0030;
    pub const UNIVERSAL_ENTITY_ID: u32 = 0x0040_0032;
    pub const UNIVERSAL_ENTITY_ID_TYPE: u32 = 0x0040_0033;
    pub const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
    pub const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
    pub const SERIES_NUMBER: u32 = 0x0020_0011;
    pub const INSTANCE_NUMBER: u32 = 0x0020_0013;
    pub const NUMBER_OF_STUDY_RELATED_INSTANCES: u32 = 0x0020_1208;
    pub const NUMBER_OF_SERIES_RELATED_INSTANCES: u32 = 0x0020_1209;
}

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
    Read::by_ref(&mut file).take(16 * 1024).read_to_end(&mut head)?;
    Ok(parse_header(&head).map(|(meta, _)| meta))
}

/// Parses the preamble and meta group from the first bytes of a file.
#[cfg(test)]
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
        let (length, value_at) = if long_vr(&vr) {
            let bytes = head.get(at + 8..at + 12)?;
            (u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize, at + 12)
        } else if vr.iter().all(u8::is_ascii_uppercase) {
            (u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize, at + 8)
        } else {
            return None;
        };
        let value = head.get(value_at..value_at.checked_add(length)?)?;
        match element {
            0x0002 => meta.sop_class_uid = uid(value),
            0x0003 => meta.sop_instance_uid = uid(value),
            0x0010 => meta.transfer_syntax_uid = uid(value),
            _ => {}
        }
        at = value_at + length;
    }
    (!meta.sop_class_uid.is_empty() && !meta.transfer_syntax_uid.is_empty()).then_some((meta, at))
}

/// Deflated Explicit VR Little Endian (PS3.5 A.5).
pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_LITTLE: &[u8; 20] = b"1.2.840.10008.1.2.1\0";
/// No inflated data set is larger (DICOM's own 4 GiB value limit): a
/// "deflate bomb" stops here, not at a full disk.
const MOST_INFLATED: u64 = 4 << 30;

/// Rewrites a Deflated file as the same data set in Explicit VR Little
/// Endian: the meta header with its TransferSyntaxUID changed (and its
/// group length), then the data set inflated. A deflated file is its meta
/// header and one raw deflate stream of the explicit VR little endian
/// data set, so nothing but the container changes. `Ok(false)`: not a
/// deflated file, left as it was.
pub fn inflate_in_place(path: &Path) -> io::Result<bool> {
    let mut head = Vec::new();
    File::open(path)?.take(64 * 1024).read_to_end(&mut head)?;
    let Some((meta, start)) = parse_header(&head) else {
        return Ok(false);
    };
    if meta.transfer_syntax_uid != DEFLATED {
        return Ok(false);
    }
    // The meta elements but the group length, TransferSyntaxUID replaced.
    let mut elements = Vec::new();
    let mut at = 132;
    while at < start {
        let element = u16::from_le_bytes([head[at + 2], head[at + 3]]);
        let vr = [head[at + 4], head[at + 5]];
        let (length, value_at) = if long_vr(&vr) {
            (u32::from_le_bytes([head[at + 8], head[at + 9], head[at + 10], head[at + 11]]) as usize, at + 12)
        } else {
            (u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize, at + 8)
        };
        match element {
            0x0000 => {}
            0x0010 => {
                elements.extend_from_slice(&head[at..at + 6]);
                elements.extend_from_slice(&(EXPLICIT_LITTLE.len() as u16).to_le_bytes());
                elements.extend_from_slice(EXPLICIT_LITTLE);
            }
            _ => elements.extend_from_slice(&head[at..value_at + length]),
        }
        at = value_at + length;
    }
    let mut out_meta = head[..132].to_vec();
    out_meta.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out_meta.extend_from_slice(&(elements.len() as u32).to_le_bytes());
    out_meta.extend_from_slice(&elements);
    let temporary = path.with_extension("inflating");
    let result = (|| {
        let mut out =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        out.write_all(&out_meta)?;
        let mut source = File::open(path)?;
        source.seek(io::SeekFrom::Start(start as u64))?;
        let mut inflated =
            flate2::read::DeflateDecoder::new(io::BufReader::new(source)).take(MOST_INFLATED + 1);
        let copied = io::copy(&mut inflated, &mut out)?;
        if copied > MOST_INFLATED {
            return Err(io::Error::other("its deflated data set inflates past 4 GiB"));
        }
        out.sync_data()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map(|()| true)
}

fn long_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"OD" | b"OL" | b"OV" | b"SV" | b"UV"
    )
}

/// A UI value: ASCII, padded with NUL or space.
fn uid(value: &[u8]) -> String {
    String::from_utf8_lossy(value).trim_matches(['\0', ' ']).to_string()
}

/// The top-level attributes of a data set up to group 0020, as raw bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataSet {
    pub meta: Meta,
    /// (tag, value) in file order.
    elements: Vec<(u32, Vec<u8>)>,
    /// The first item of IssuerOfPatientIDQualifiersSequence, the one
    /// sequence read: (tag, value) of its elements.
    qualifiers: Vec<(u32, Vec<u8>)>,
    /// Where the data set starts in the file (after the meta group).
    pub data_offset: usize,
}

impl DataSet {
    fn raw(&self, tag: u32) -> Option<&[u8]> {
        self.elements.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_slice())
    }

    /// A UI, CS, DA or IS value (ASCII by definition).
    pub fn ascii(&self, tag: u32) -> String {
        self.raw(tag).map(uid).unwrap_or_default()
    }

    fn charset(&self) -> String {
        self.ascii(tag::SPECIFIC_CHARACTER_SET)
    }

    /// A text value (PN, LO, SH...) decoded by the SpecificCharacterSet,
    /// and whether every byte of it could be decoded.
    pub fn text_checked(&self, tag: u32) -> charset::Text {
        let charset = self.charset();
        self.raw(tag)
            .map(|value| decode(tag, value, &charset))
            .unwrap_or(charset::Text { text: String::new(), exact: true })
    }

    /// Every element, decoded as text (the C-FIND answers' form).
    pub fn decoded(&self) -> Vec<(u32, charset::Text)> {
        let charset = self.charset();
        self.elements.iter().map(|(tag, value)| (*tag, decode(*tag, value, &charset))).collect()
    }

    /// Who the data set says its patient is.
    pub fn demographics(&self) -> Demographics {
        let name = self.text_checked(tag::PATIENT_NAME);
        let charset = self.charset();
        let qualifier = |wanted: u32| {
            self.qualifiers
                .iter()
                .find(|(tag, _)| *tag == wanted)
                .map(|(tag, value)| decode(*tag, value, &charset).text)
                .unwrap_or_default()
        };
        let universal = qualifier(tag::UNIVERSAL_ENTITY_ID);
        let identifier = |tag: u32| {
            self.raw(tag).map(|value| clean(&charset::lenient(value, &charset))).unwrap_or_default()
        };
        Demographics {
            name_compared: if name.exact { name.text.clone() } else { identifier(tag::PATIENT_NAME) },
            id: identifier(tag::PATIENT_ID),
            issuer: identifier(tag::ISSUER_OF_PATIENT_ID),
            issuer_universal: (!universal.is_empty())
                .then(|| (universal, qualifier(tag::UNIVERSAL_ENTITY_ID_TYPE))),
            name: name.text,
            name_exact: name.exact,
            birth_date: self.ascii(tag::PATIENT_BIRTH_DATE),
            his_id: String::new(),
        }
    }
}

/// Person names reset ISO 2022 code extensions at more delimiters.
fn kind_of(tag: u32) -> charset::Kind {
    // PatientName, OtherPatientNames, ReferringPhysicianName,
    // PerformingPhysicianName, OperatorsName, NameOfPhysiciansReadingStudy.
    const PERSON_NAMES: [u32; 6] =
        [0x0010_0010, 0x0010_1001, 0x0008_0090, 0x0008_1050, 0x0008_1070, 0x0008_1060];
    if PERSON_NAMES.contains(&tag) { charset::Kind::PersonName } else { charset::Kind::Text }
}

/// Decodes a text value by its SpecificCharacterSet (see `charset`), then
/// drops control characters and the padding.
fn decode(tag: u32, value: &[u8], specific_character_set: &str) -> charset::Text {
    let decoded = charset::decode(value, specific_character_set, kind_of(tag));
    charset::Text { text: clean(&decoded.text), exact: decoded.exact }
}

fn clean(text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    text.trim_matches([' ', '\0']).to_string()
}

/// Writes a small Part 10 file (explicit VR little endian) holding
/// `elements` (tag, VR, value; sorted by tag): a query file for findscu.
pub fn write_query(path: &Path, elements: &[(u32, &[u8; 2], &str)]) -> io::Result<()> {
    fn put(out: &mut Vec<u8>, tag: u32, vr: &[u8; 2], value: &[u8]) {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&(tag as u16).to_le_bytes());
        out.extend_from_slice(vr);
        if long_vr(vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&value);
    }
    // Study Root Query/Retrieve - FIND, as the meta header's class.
    const FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
    let mut meta = Vec::new();
    put(&mut meta, 0x0002_0001, b"OB", &[0, 1]);
    put(&mut meta, 0x0002_0002, b"UI", FIND.as_bytes());
    put(&mut meta, 0x0002_0003, b"UI", b"2.25.1");
    put(&mut meta, 0x0002_0010, b"UI", b"1.2.840.10008.1.2.1");
    put(&mut meta, 0x0002_0012, b"UI", b"2.25.329800735698586629295641978511506172918");
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    put(&mut out, 0x0002_0000, b"UL", &(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    let mut sorted = elements.to_vec();
    sorted.sort_by_key(|(tag, _, _)| *tag);
    for (tag, vr, value) in sorted {
        put(&mut out, tag, vr, value.as_bytes());
    }
    std::fs::write(path, out)
}

/// Whose image a file is and where it belongs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    /// Who the file says its patient is.
    pub patient: Demographics,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: String,
    /// InstanceNumber, for the order of images on the disc.
    pub instance_number: Option<i64>,
    /// Where the data set starts: two copies of one instance are compared
    /// from here (the meta headers may differ in who wrote them).
    pub data_offset: usize,
}

/// Reads the identity of a Part 10 file. `Ok(None)`: not a Part 10 file,
/// or one whose data set this reader cannot walk (big endian, deflated).
pub fn read_identity(path: &Path) -> io::Result<Option<Identity>> {
    Ok(read(path, true)?.and_then(|data| {
        let study = data.ascii(tag::STUDY_INSTANCE_UID);
        // The data set's own UID wins over the meta header's copy.
        let instance = Some(data.ascii(tag::SOP_INSTANCE_UID))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| data.meta.sop_instance_uid.clone());
        (!study.is_empty() && !instance.is_empty()).then(|| Identity {
            sop_class_uid: data.meta.sop_class_uid.clone(),
            sop_instance_uid: instance,
            transfer_syntax_uid: data.meta.transfer_syntax_uid.clone(),
            patient: data.demographics(),
            study_instance_uid: study,
            series_instance_uid: data.ascii(tag::SERIES_INSTANCE_UID),
            modality: data.ascii(tag::MODALITY),
            instance_number: data.ascii(tag::INSTANCE_NUMBER).trim().parse().ok(),
            data_offset: data.data_offset,
        })
    }))
}

/// Reads the top-level attributes up to group 0020 of `path`. Without
/// `part10`, a bare data set in implicit VR little endian is read too
/// (what some tools write for C-FIND responses).
pub fn read(path: &Path, part10: bool) -> io::Result<Option<DataSet>> {
    let length = std::fs::metadata(path)?.len() as usize;
    // Most headers fit in 16 KiB; large private blocks ask for more.
    let mut want = 16 * 1024;
    loop {
        let mut head = Vec::with_capacity(want.min(length));
        File::open(path)?.take(want as u64).read_to_end(&mut head)?;
        match parse_data_set(&head, part10) {
            Walk::Done(data) => return Ok(data),
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

fn parse_data_set(head: &[u8], part10: bool) -> Walk<Option<DataSet>> {
    let (meta, start) = match parse_header(head) {
        Some(header) => header,
        // A header cut short by the buffer looks broken: ask for more.
        None if head.len() >= 132 && &head[128..132] == b"DICM" => return Walk::NeedMore,
        None if part10 => return Walk::Done(None),
        None => (Meta { transfer_syntax_uid: "1.2.840.10008.1.2".into(), ..Meta::default() }, 0),
    };
    let explicit = match meta.transfer_syntax_uid.as_str() {
        "1.2.840.10008.1.2" => false,
        // Explicit big endian (retired) and deflated: not walked here.
        "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => return Walk::Done(None),
        _ => true,
    };
    let mut data = DataSet { meta, data_offset: start, ..DataSet::default() };
    let mut reader = Reader { buf: head, at: start, explicit, depth: 0 };
    loop {
        // Data sets are sorted by tag: past group 0020 nothing we want
        // follows, so the rest (pixel data above all) is never read.
        if reader.peek_group().is_some_and(|group| group > 0x0020) {
            break;
        }
        let at = reader.at;
        let element = match reader.element() {
            Ok(Some(element)) => element,
            Ok(None) => break,
            Err(Short) => return Walk::NeedMore,
        };
        let tag = element.tag();
        if tag == tag::ISSUER_OF_PATIENT_ID_QUALIFIERS {
            // The one sequence whose content matters. It was read whole
            // just now: a broken item only means no qualifiers.
            data.qualifiers = first_item(head, at, explicit).unwrap_or_default();
        } else if element.group != 0xFFFE {
            data.elements.push((tag, element.value.to_vec()));
        }
    }
    Walk::Done(Some(data))
}

/// The buffer ended before the element did.
struct Short;

/// The elements of the first item of the sequence element at `at` (either
/// length form, items of either length form).
fn first_item(buf: &[u8], at: usize, explicit: bool) -> Result<Vec<(u32, Vec<u8>)>, Short> {
    let mut reader = Reader { buf, at, explicit, depth: 0 };
    reader.bytes(4)?;
    let length = if explicit {
        let vr = reader.bytes(2)?;
        if long_vr(vr) {
            reader.bytes(2)?;
            reader.u32()?
        } else {
            u32::from(reader.u16()?)
        }
    } else {
        reader.u32()?
    };
    if length == 0 {
        return Ok(Vec::new());
    }
    let (group, element, item_length) = (reader.u16()?, reader.u16()?, reader.u32()?);
    if (group, element) != (0xFFFE, 0xE000) {
        return Ok(Vec::new());
    }
    let end = (item_length != u32::MAX).then(|| reader.at.saturating_add(item_length as usize));
    let mut elements = Vec::new();
    while end.is_none_or(|end| reader.at < end) {
        match reader.element()? {
            Some(e) if e.group == 0xFFFE && e.element == 0xE00D => break,
            Some(e) if e.group != 0xFFFE => elements.push((e.tag(), e.value.to_vec())),
            Some(_) => {}
            None => break,
        }
    }
    Ok(elements)
}

struct Element<'a> {
    group: u16,
    element: u16,
    value: &'a [u8],
}

impl Element<'_> {
    fn tag(&self) -> u32 {
        (u32::from(self.group) << 16) | u32::from(self.element)
    }
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
            if long_vr(vr) {
                self.bytes(2)?;
                self.u32()?
            } else {
                u32::from(self.u16()?)
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
        } else if long_vr(vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }

    fn identity_of(bytes: &[u8]) -> Walk<Option<Identity>> {
        match parse_data_set(bytes, true) {
            Walk::NeedMore => Walk::NeedMore,
            Walk::Done(data) => Walk::Done(data.map(|data| Identity {
                patient: data.demographics(),
                study_instance_uid: data.ascii(tag::STUDY_INSTANCE_UID),
                series_instance_uid: data.ascii(tag::SERIES_INSTANCE_UID),
                modality: data.ascii(tag::MODALITY),
                sop_instance_uid: data.meta.sop_instance_uid.clone(),
                ..Identity::default()
            })),
        }
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
        let Walk::Done(Some(identity)) = identity_of(&bytes) else { panic!("identity") };
        assert_eq!(identity.modality, "CT");
        assert_eq!(identity.patient.id, "PID001");
        assert_eq!(identity.study_instance_uid, "2.25.7");
        assert_eq!(identity.series_instance_uid, "2.25.8");
        assert_eq!(identity.sop_instance_uid, "2.25.1234");
        assert!(matches!(identity_of(&bytes[..bytes.len() - 30]), Walk::NeedMore));
        assert!(matches!(identity_of(&bytes[..200]), Walk::NeedMore));
    }

    #[test]
    fn decodes_by_the_character_set_and_drops_controls() {
        let pn = |bytes: &[u8], charset: &str| decode(tag::PATIENT_NAME, bytes, charset);
        assert_eq!(pn(b"M\xdcLLER^JOS\xc9", "ISO_IR 100").text, "MÜLLER^JOSÉ");
        assert_eq!(pn("MÜLLER^JOSÉ".as_bytes(), "ISO_IR 192").text, "MÜLLER^JOSÉ");
        assert_eq!(pn(b"DOE^JOHN ", ""), charset::Text { text: "DOE^JOHN".into(), exact: true });
        // No character set, but Latin-1 bytes: shown, never dropped, flagged.
        assert_eq!(pn(b"M\xdc-77", ""), charset::Text { text: "M\\xDC-77".into(), exact: false });
        // CR/LF in a name go after decoding.
        assert_eq!(pn(b"DOE^\r\nJOHN", "ISO_IR 100").text, "DOE^JOHN");
        assert_eq!(pn(b"M\xdcLLER", "\\ISO 2022 IR 100").text, "M\\xDCLLER");
        assert_eq!(pn(b"M\xdcLLER", "ISO 2022 IR 100").text, "MÜLLER");
    }

    #[test]
    fn reads_the_issuer_and_its_qualifiers() {
        for undefined in [true, false] {
            let mut bytes = file("1.2.840.10008.5.1.4.1.1.2");
            bytes.truncate(bytes.len() - 10);
            data(&mut bytes, 0x0008, 0x0005, b"CS", b"ISO_IR 100");
            data(&mut bytes, 0x0010, 0x0010, b"PN", b"M\xdcLLER^ANNA");
            data(&mut bytes, 0x0010, 0x0020, b"LO", b"12345 ");
            data(&mut bytes, 0x0010, 0x0021, b"LO", b"HOSP_A");
            let mut item = Vec::new();
            data(&mut item, 0x0040, 0x0032, b"UT", b"1.2.3.4 ");
            data(&mut item, 0x0040, 0x0033, b"CS", b"ISO ");
            if undefined {
                data(&mut bytes, 0x0010, 0x0024, b"SQ", &[]);
                bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
                bytes.extend_from_slice(&item);
                bytes.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
                bytes.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            } else {
                let mut value = vec![0xFE, 0xFF, 0x00, 0xE0];
                value.extend_from_slice(&(item.len() as u32).to_le_bytes());
                value.extend_from_slice(&item);
                bytes.extend_from_slice(&[0x10, 0x00, 0x24, 0x00, b'S', b'Q', 0, 0]);
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&value);
            }
            data(&mut bytes, 0x0010, 0x0030, b"DA", b"19700101");
            let Walk::Done(Some(read)) = parse_data_set(&bytes, true) else { panic!("a data set") };
            let patient = read.demographics();
            assert_eq!(patient.id, "12345");
            assert_eq!(patient.issuer, "HOSP_A");
            assert_eq!(patient.issuer_universal, Some(("1.2.3.4".into(), "ISO".into())), "{undefined}");
            assert_eq!((patient.name.as_str(), patient.name_exact), ("MÜLLER^ANNA", true));
            assert_eq!(patient.birth_date, "19700101", "read past the sequence");
        }
    }

    #[test]
    fn a_deflated_file_becomes_the_same_data_set_uncompressed() {
        use std::io::Write as _;
        let mut plain = file("1.2.840.10008.5.1.4.1.1.2");
        plain.truncate(plain.len() - 10);
        let start = parse_header(&plain).expect("meta").1;
        data(&mut plain, 0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0");
        data(&mut plain, 0x0010, 0x0020, b"LO", b"PID001");
        data(&mut plain, 0x0020, 0x000D, b"UI", b"2.25.7\0");
        data(&mut plain, 0x7FE0, 0x0010, b"OW", &[1, 2, 3, 4]);
        let data_set = plain[start..].to_vec();
        // The same file deflated: its TransferSyntaxUID, then the data set
        // as one raw deflate stream.
        let mut deflated = vec![0u8; 128];
        deflated.extend_from_slice(b"DICM");
        element(&mut deflated, 0x0000, b"UL", &60u32.to_le_bytes());
        element(&mut deflated, 0x0001, b"OB", &[0, 1]);
        element(&mut deflated, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0");
        element(&mut deflated, 0x0003, b"UI", b"2.25.1234");
        element(&mut deflated, 0x0010, b"UI", DEFLATED.as_bytes());
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data_set).expect("deflate");
        deflated.extend_from_slice(&encoder.finish().expect("deflate"));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("000001");
        std::fs::write(&path, &deflated).expect("write");
        assert_eq!(read_identity(&path).expect("read").map(|i| i.patient.id), None, "unreadable deflated");
        assert!(inflate_in_place(&path).expect("inflate"));
        let written = std::fs::read(&path).expect("read");
        let (meta, at) = parse_header(&written).expect("meta");
        assert_eq!(meta.transfer_syntax_uid, "1.2.840.10008.1.2.1");
        assert_eq!(meta.sop_instance_uid, "2.25.1234");
        assert_eq!(&written[at..], &data_set[..], "the data set, byte for byte");
        let group_length =
            u32::from_le_bytes([written[140], written[141], written[142], written[143]]) as usize;
        assert_eq!(132 + 12 + group_length, at, "the meta group length counts the new value");
        let identity = read_identity(&path).expect("read").expect("identity");
        assert_eq!(
            (identity.patient.id.as_str(), identity.study_instance_uid.as_str()),
            ("PID001", "2.25.7")
        );
        // Not deflated: left alone. Broken deflate: an error, the file
        // kept, nothing left beside it.
        assert!(!inflate_in_place(&path).expect("plain"));
        let mut broken = deflated[..deflated.len() - data_set.len().min(20)].to_vec();
        broken.extend_from_slice(&[0xFF; 8]);
        std::fs::write(&path, &broken).expect("write");
        assert!(inflate_in_place(&path).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), broken);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn a_written_query_reads_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("q.dcm");
        write_query(
            &path,
            &[(tag::STUDY_INSTANCE_UID, b"UI", "1.2.3"), (tag::ACCESSION_NUMBER, b"SH", "A1")],
        )
        .expect("write");
        let data = read(&path, true).expect("read").expect("data set");
        assert_eq!(data.ascii(tag::STUDY_INSTANCE_UID), "1.2.3");
        assert_eq!(data.ascii(tag::ACCESSION_NUMBER), "A1");
    }

    #[test]
    fn refuses_foreign_and_truncated_files() {
        assert_eq!(parse_meta(b"hello, this is a README"), None);
        assert_eq!(parse_meta(&[0u8; 200]), None);
        let whole = file("1.2.3");
        assert_eq!(parse_meta(&whole[..150]), None);
    }
}
