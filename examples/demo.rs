//! The README's demo of the main job: a local demo PACS (Orthanc) holding a
//! generated CT + MR study, a local CD publisher (DCMTK's storescp), both
//! on free loopback ports, and the real pacs2cd binary running `print` for
//! the study's accession number. Everything it starts is stopped at the end.
//!
//! Run with `scripts/demo` (installs the Debian packages, builds, runs this).

#[path = "../tests/e2e/dicom_gen.rs"]
#[allow(dead_code)]
mod dicom_gen;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use dicom_gen::{CT_IMAGE, MR_IMAGE, Series, Study};
use harness::{Orthanc, Publisher, Storescp, TestEnv};

const ACCESSION: &str = "DEMO.0001";

fn main() {
    // exit() skips destructors: demo() has stopped its servers by then.
    let code = demo();
    std::process::exit(code);
}

fn demo() -> i32 {
    let pacs = Orthanc::start();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let study = Study::new(
        "DEMO^PATIENT",
        "DEMO001",
        ACCESSION,
        vec![Series::new("CT", CT_IMAGE, 40), Series::new("MR", MR_IMAGE, 20)],
    );
    let written = dicom_gen::write_study(&env.dir.path().join("study"), &study);
    pacs.load(&written);
    println!(
        "demo: PACS (Orthanc) on 127.0.0.1:{} holds {} images of accession {ACCESSION}; \
         CD publisher (storescp) on 127.0.0.1:{}",
        pacs.dicom_port,
        written.len(),
        publisher.port
    );
    let config = env.config.to_string_lossy().into_owned();
    println!("demo: $ pacs2cd --config {config} print {ACCESSION}");
    let code = env.run_inherited(&["print", ACCESSION]);
    println!(
        "demo: pacs2cd exited {code}; the publisher received {} images; stopping the PACS and the publisher",
        publisher.received_uids().len()
    );
    code
}
