//! The generated data set the PACS tests share.

use std::collections::BTreeSet;

use crate::dicom_gen::{
    self, BASIC_TEXT_SR, CR_IMAGE, CT_IMAGE, MR_IMAGE, SECONDARY_CAPTURE, Series, Study, Written,
};
use crate::harness::{Dcmqrscp, Orthanc};

/// The generated data set, by accession.
pub struct DataSet {
    by_accession: Vec<(&'static str, Vec<Written>)>,
}

impl DataSet {
    /// Every accession of the data set, in order.
    pub fn accessions(&self) -> Vec<&'static str> {
        self.by_accession.iter().map(|(accession, _)| *accession).collect()
    }

    pub fn uids(&self, accessions: &[&str]) -> BTreeSet<String> {
        self.by_accession
            .iter()
            .filter(|(a, _)| accessions.contains(a))
            .flat_map(|(_, files)| files.iter().map(|f| f.sop_instance_uid.clone()))
            .collect()
    }
}

/// Two patients (and two with hostile names: a path and a script): DOE^JOHN has three
/// accessions (CT of two series, MR, CR of two images); ROE^JANE has one
/// multi-modality study (CT + Secondary Capture + a structured report).
pub fn pacs_with_data() -> (Orthanc, DataSet) {
    let pacs = Orthanc::start();
    let data = load_data(&|files| pacs.load(files));
    (pacs, data)
}

/// The same data set in DCMTK's dcmqrscp, the strict PACS without counts.
pub fn dcmqrscp_with_data() -> (Dcmqrscp, DataSet) {
    let pacs = Dcmqrscp::start();
    let data = load_data(&|files| pacs.load(files));
    (pacs, data)
}

fn load_data(load: &dyn Fn(&[Written])) -> DataSet {
    let source = tempfile::tempdir().expect("source");
    let studies = [
        (
            "ACC001",
            Study::new(
                "DOE^JOHN",
                "PID001",
                "ACC001",
                vec![Series::new("CT", CT_IMAGE, 3), Series::new("CT", CT_IMAGE, 2)],
            ),
        ),
        ("ACC002", Study::new("DOE^JOHN", "PID001", "ACC002", vec![Series::new("MR", MR_IMAGE, 3)])),
        ("ACC003", Study::new("DOE^JOHN", "PID001", "ACC003", vec![Series::new("CR", CR_IMAGE, 2)])),
        (
            "ACC004",
            Study::new(
                "ROE^JANE",
                "PID002",
                "ACC004",
                vec![
                    Series::new("CT", CT_IMAGE, 2),
                    Series::new("OT", SECONDARY_CAPTURE, 1),
                    Series::new("SR", BASIC_TEXT_SR, 1),
                ],
            ),
        ),
        ("ACC005", Study::new("../../x^<y>", "PID003", "ACC005", vec![Series::new("CT", CT_IMAGE, 1)])),
        (
            "ACC006",
            Study::new("<script>alert(1)</script>", "PID004", "ACC006", vec![Series::new("CT", CT_IMAGE, 1)]),
        ),
        ("ACC007", Study::new("MÜLLER^JOSÉ", "PID005", "ACC007", vec![Series::new("CT", CT_IMAGE, 2)])),
        // A Latin-1 patient id (ISO_IR 100): the image's id and the query's
        // must read the same.
        (
            "ACC008",
            Study {
                latin1: true,
                ..Study::new("MÜLLER^JOSÉ", "MÜ-77", "ACC008", vec![Series::new("MR", MR_IMAGE, 2)])
            },
        ),
    ];
    let mut by_accession = Vec::new();
    for (accession, study) in studies {
        let files = dicom_gen::write_study(&source.path().join(accession), &study);
        load(&files);
        by_accession.push((accession, files));
    }
    DataSet { by_accession }
}

/// An Orthanc holding one study of 400 CT images of `side` x `side` pixels
/// (DOE^JOHN, BIG001): a retrieve that takes a moment, to interrupt.
pub fn big_pacs(side: u16) -> Orthanc {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let study = Study::new(
        "DOE^JOHN",
        "PID001",
        "BIG001",
        vec![Series { rows: side, columns: side, ..Series::new("CT", CT_IMAGE, 400) }],
    );
    pacs.load(&dicom_gen::write_study(source.path(), &study));
    pacs
}
