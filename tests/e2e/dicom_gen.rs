//! Writes small synthetic DICOM Part 10 files (explicit VR little endian)
//! for the tests: real enough for storescp, Orthanc and dcmmkdir, and fast
//! to make in bulk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const CR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const BASIC_TEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.11";
pub const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";
const EXPLICIT_LITTLE: &str = "1.2.840.10008.1.2.1";

/// A fresh UID under the 2.25 (UUID-derived) root, unique across processes.
pub fn uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u128;
    let value = (nanos << 24) ^ ((std::process::id() as u128) << 96) ^ n;
    format!("2.25.{value}")
}

/// One series of a study to generate.
#[derive(Clone, Debug)]
pub struct Series {
    pub modality: &'static str,
    pub sop_class: &'static str,
    pub count: usize,
    pub rows: u16,
    pub columns: u16,
    /// 8-bit pixels (what lossy JPEG baseline can encode), else 16.
    pub eight_bit: bool,
}

impl Series {
    pub fn new(modality: &'static str, sop_class: &'static str, count: usize) -> Series {
        Series { modality, sop_class, count, rows: 16, columns: 16, eight_bit: false }
    }
}

/// A study: patient, accession and series.
#[derive(Clone, Debug)]
pub struct Study {
    pub patient_name: String,
    pub patient_id: String,
    pub accession: String,
    pub study_uid: String,
    pub series: Vec<Series>,
    /// Names and ids in ISO_IR 100 (Latin-1) rather than UTF-8.
    pub latin1: bool,
    /// No SpecificCharacterSet at all, whatever the bytes (a legacy
    /// modality writing Latin-1 undeclared).
    pub undeclared: bool,
    /// IssuerOfPatientID, when the study has one.
    pub issuer: Option<String>,
    /// PatientBirthDate (DA).
    pub birth_date: String,
}

impl Study {
    pub fn new(patient_name: &str, patient_id: &str, accession: &str, series: Vec<Series>) -> Study {
        Study {
            patient_name: patient_name.into(),
            patient_id: patient_id.into(),
            accession: accession.into(),
            study_uid: uid(),
            series,
            latin1: false,
            undeclared: false,
            issuer: None,
            birth_date: "19600101".into(),
        }
    }
}

/// A file written, and its SOP Instance UID.
#[derive(Clone, Debug)]
pub struct Written {
    pub path: PathBuf,
    pub sop_instance_uid: String,
}

/// Writes every instance of `study` under `dir` (`<modality><series>_<n>.dcm`).
pub fn write_study(dir: &Path, study: &Study) -> Vec<Written> {
    std::fs::create_dir_all(dir).expect("create study folder");
    let mut written = Vec::new();
    for (series_index, series) in study.series.iter().enumerate() {
        let series_uid = uid();
        for n in 0..series.count {
            let sop_instance_uid = uid();
            let bytes = instance(study, series, series_index + 1, &series_uid, n + 1, &sop_instance_uid);
            let path = dir.join(format!("{}{}_{:04}.dcm", series.modality, series_index + 1, n + 1));
            std::fs::write(&path, bytes).expect("write instance");
            written.push(Written { path, sop_instance_uid });
        }
    }
    written
}

fn instance(
    study: &Study,
    series: &Series,
    series_number: usize,
    series_uid: &str,
    number: usize,
    sop_instance_uid: &str,
) -> Vec<u8> {
    let mut data = Vec::new();
    let ascii = study.patient_name.is_ascii() && study.patient_id.is_ascii();
    let charset = match (ascii, study.latin1) {
        (true, _) => "ISO_IR 6",
        (false, true) => "ISO_IR 100",
        (false, false) => "ISO_IR 192",
    };
    let text = |value: &str| -> Vec<u8> {
        if study.latin1 {
            value.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect()
        } else {
            value.as_bytes().to_vec()
        }
    };
    if !study.undeclared {
        put(&mut data, 0x0008, 0x0005, b"CS", charset.as_bytes());
    }
    put(&mut data, 0x0008, 0x0016, b"UI", series.sop_class.as_bytes());
    put(&mut data, 0x0008, 0x0018, b"UI", sop_instance_uid.as_bytes());
    put(&mut data, 0x0008, 0x0020, b"DA", b"20240115");
    put(&mut data, 0x0008, 0x0023, b"DA", b"20240115");
    put(&mut data, 0x0008, 0x0030, b"TM", b"101500");
    put(&mut data, 0x0008, 0x0033, b"TM", b"101500");
    put(&mut data, 0x0008, 0x0050, b"SH", study.accession.as_bytes());
    put(&mut data, 0x0008, 0x0060, b"CS", series.modality.as_bytes());
    put(&mut data, 0x0008, 0x0090, b"PN", b"");
    put(&mut data, 0x0010, 0x0010, b"PN", &text(&study.patient_name));
    put(&mut data, 0x0010, 0x0020, b"LO", &text(&study.patient_id));
    if let Some(issuer) = &study.issuer {
        put(&mut data, 0x0010, 0x0021, b"LO", issuer.as_bytes());
    }
    put(&mut data, 0x0010, 0x0030, b"DA", study.birth_date.as_bytes());
    put(&mut data, 0x0010, 0x0040, b"CS", b"O");
    put(&mut data, 0x0020, 0x000D, b"UI", study.study_uid.as_bytes());
    put(&mut data, 0x0020, 0x000E, b"UI", series_uid.as_bytes());
    put(&mut data, 0x0020, 0x0010, b"SH", b"1");
    put(&mut data, 0x0020, 0x0011, b"IS", series_number.to_string().as_bytes());
    put(&mut data, 0x0020, 0x0013, b"IS", number.to_string().as_bytes());
    if series.sop_class == BASIC_TEXT_SR {
        // A report has no pixels: its content is a text tree.
        put(&mut data, 0x0040, 0xA040, b"CS", b"CONTAINER");
        // ConceptNameCodeSequence: one item, the document title.
        let mut code = Vec::new();
        put(&mut code, 0x0008, 0x0100, b"SH", b"18748-4");
        put(&mut code, 0x0008, 0x0102, b"SH", b"LN");
        put(&mut code, 0x0008, 0x0104, b"LO", b"Diagnostic Imaging Report");
        sequence(&mut data, 0x0040, 0xA043, &[code]);
        put(&mut data, 0x0040, 0xA050, b"CS", b"SEPARATE");
        put(&mut data, 0x0040, 0xA491, b"CS", b"COMPLETE");
        put(&mut data, 0x0040, 0xA493, b"CS", b"UNVERIFIED");
        return part10(series.sop_class, sop_instance_uid, &data);
    }
    put(&mut data, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    put(&mut data, 0x0028, 0x0004, b"CS", b"MONOCHROME2");
    put(&mut data, 0x0028, 0x0010, b"US", &series.rows.to_le_bytes());
    put(&mut data, 0x0028, 0x0011, b"US", &series.columns.to_le_bytes());
    let (allocated, stored): (u16, u16) = if series.eight_bit { (8, 8) } else { (16, 12) };
    put(&mut data, 0x0028, 0x0100, b"US", &allocated.to_le_bytes());
    put(&mut data, 0x0028, 0x0101, b"US", &stored.to_le_bytes());
    put(&mut data, 0x0028, 0x0102, b"US", &(stored - 1).to_le_bytes());
    put(&mut data, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    let pixels = series.rows as usize * series.columns as usize;
    let mut pixel_data = Vec::with_capacity(pixels * 2);
    for i in 0..pixels {
        let value = (i + number * 7) % (1 << stored);
        if series.eight_bit {
            pixel_data.push(value as u8);
        } else {
            pixel_data.extend_from_slice(&(value as u16).to_le_bytes());
        }
    }
    put(&mut data, 0x7FE0, 0x0010, if series.eight_bit { b"OB" } else { b"OW" }, &pixel_data);
    part10(series.sop_class, sop_instance_uid, &data)
}

/// A data set behind a preamble and a meta group.
pub fn part10(sop_class: &str, sop_instance_uid: &str, data_set: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    put(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    put(&mut meta, 0x0002, 0x0002, b"UI", sop_class.as_bytes());
    put(&mut meta, 0x0002, 0x0003, b"UI", sop_instance_uid.as_bytes());
    put(&mut meta, 0x0002, 0x0010, b"UI", EXPLICIT_LITTLE.as_bytes());
    put(&mut meta, 0x0002, 0x0012, b"UI", b"1.2.826.0.1.3680043.9.7433.1.1");
    put(&mut meta, 0x0002, 0x0013, b"SH", b"PACS2CD_TEST");
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    put(&mut out, 0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(data_set);
    out
}

/// A file whose meta header says "DICOMDIR" (Media Storage Directory).
pub fn fake_dicomdir() -> Vec<u8> {
    let mut data = Vec::new();
    put(&mut data, 0x0004, 0x1130, b"CS", b"TEST");
    part10(DICOMDIR_CLASS, &uid(), &data)
}

/// Appends a sequence of undefined length holding `items`.
fn sequence(out: &mut Vec<u8>, group: u16, element: u16, items: &[Vec<u8>]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(b"SQ\0\0");
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    for item in items {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
}

/// Appends one element, padded to even length (UI with NUL, text with space).
fn put(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UT" | b"UN") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
}

/// SOP Instance UIDs of the Part 10 files under `dir` (recursively).
pub fn sop_instance_uids(dir: &Path) -> Vec<String> {
    let mut uids = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(uid) = read_sop_instance_uid(&path) {
                uids.push(uid);
            }
        }
    }
    uids.sort();
    uids
}

pub fn read_sop_instance_uid(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return None;
    }
    let mut at = 132;
    while at + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        if group != 2 {
            return None;
        }
        let element = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
        let vr = &bytes[at + 4..at + 6];
        let (len, start) = if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UT" | b"UN") {
            let b = &bytes[at + 8..at + 12];
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, at + 12)
        } else {
            (u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize, at + 8)
        };
        if element == 3 {
            let value = bytes.get(start..start + len)?;
            return Some(String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string());
        }
        at = start + len;
    }
    None
}
