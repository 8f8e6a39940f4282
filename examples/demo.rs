//! The README's demo: a local CD publisher (DCMTK's storescp) on a free
//! loopback port, a generated CT + MR study, and the real pacs2cd binary
//! relaying it. Everything it starts is stopped at the end.
//!
//! Run with `scripts/demo` (installs the Debian packages, builds, runs this).

#[path = "../tests/e2e/dicom_gen.rs"]
#[allow(dead_code)]
mod dicom_gen;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use dicom_gen::{CT_IMAGE, MR_IMAGE, Series, Study};
use harness::{Publisher, Storescp, TestEnv};

fn main() {
    // exit() skips destructors: demo() has stopped its servers by then.
    let code = demo();
    std::process::exit(code);
}

fn demo() -> i32 {
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    let study = Study::new(
        "DEMO^PATIENT",
        "DEMO001",
        "DEMO.0001",
        vec![Series::new("CT", CT_IMAGE, 40), Series::new("MR", MR_IMAGE, 20)],
    );
    let data = env.dir.path().join("study");
    let written = dicom_gen::write_study(&data, &study);
    println!(
        "demo: CD publisher (storescp) listening on 127.0.0.1:{}; {} generated files in {}",
        publisher.port,
        written.len(),
        data.display()
    );
    let data_arg = data.to_string_lossy().into_owned();
    let config_arg = env.config.to_string_lossy().into_owned();
    println!("demo: $ pacs2cd --config {config_arg} relay {data_arg}");
    let code = env.run_inherited(&["relay", &data_arg]);
    println!(
        "demo: pacs2cd exited {code}; the publisher holds {} files; stopping the publisher",
        publisher.received_uids().len()
    );
    code
}
