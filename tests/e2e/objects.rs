//! Every object a PACS holds, every way it sends it: Deflated by C-MOVE
//! (dcmqrscp `-xd`), a vendor's private SOP class and the newer SR
//! classes by C-MOVE and C-GET, a PACS that takes one study per request,
//! and the disc's one name (File-set ID and volume label) with its
//! DICOMDIR checked by dicom3tools' dciodvfy.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study, Written};
use crate::harness::{Dcmqrscp, FakePacs, Orthanc, Publisher, Storescp, TestEnv, require};

/// Siemens CSA Non-Image: private, and no General Purpose profile indexes it.
const CSA_NON_IMAGE: &str = "1.3.12.2.1107.5.9.1";
/// Acquisition Context SR: newer than getscu 3.6.7's list of classes.
const ACQUISITION_CONTEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.71";

fn uids(files: &[Written]) -> BTreeSet<String> {
    files.iter().map(|f| f.sop_instance_uid.clone()).collect()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The SOP Instance UIDs of a disc folder's images, and how many its
/// DICOMDIR indexes (dcmdump's IMAGE-level records).
fn disc_content(folder: &Path) -> (BTreeSet<String>, usize) {
    let files: BTreeSet<String> = dicom_gen::sop_instance_uids(&folder.join("DICOM")).into_iter().collect();
    let dump = Command::new(require("dcmdump", "dcmtk"))
        .arg("+P")
        .arg("DirectoryRecordType")
        .arg(folder.join("DICOMDIR"))
        .output()
        .expect("dcmdump");
    let text = String::from_utf8_lossy(&dump.stdout);
    let indexed = text
        .lines()
        .filter(|l| l.contains("[IMAGE") || l.contains("[SR DOCUMENT") || l.contains("[PRIVATE"))
        .count();
    (files, indexed)
}

/// dcmqrscp proposing Deflated Explicit VR Little Endian first: the move
/// port takes it, the files are inflated on arrival, and the disc and the
/// publisher get every image.
#[test]
fn a_deflated_c_move_reaches_the_disc_and_the_publisher() {
    let pacs = Dcmqrscp::start_with(&["-xd"]);
    let source = tempfile::tempdir().expect("source");
    let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 4)]);
    let files = dicom_gen::write_study(source.path(), &study);
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config("allow_unproven = true\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(0);
    assert_eq!(publisher.received_once(), uids(&files));
    let out = env.dir.path().join("disc");
    env.run(&["--json", "fetch", "ACC001", "-o", arg(&out)]).expect_code(0);
    let (on_disc, indexed) = disc_content(&out);
    assert_eq!(on_disc, uids(&files));
    assert_eq!(indexed, 4);
    env.assert_staging_empty();
}

/// A study with a vendor's private object: by C-MOVE it reaches the disc
/// (named as outside the DICOMDIR, which may not index it) and the
/// publisher that takes it; nothing is refused for it.
#[test]
fn a_private_object_reaches_the_disc_and_is_named() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let study = Study::new(
        "DOE^JOHN",
        "PID001",
        "ACC300",
        vec![Series::new("CT", CT_IMAGE, 3), Series::new("OT", CSA_NON_IMAGE, 1)],
    );
    let files = dicom_gen::write_study(source.path(), &study);
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::Promiscuous);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    env.run(&["--json", "print", "ACC300"]).expect_code(0);
    assert_eq!(publisher.received_once(), uids(&files));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC300", "-o", arg(&out)]);
    run.expect_code(0);
    let (on_disc, indexed) = disc_content(&out);
    assert_eq!(on_disc, uids(&files), "every object on the disc");
    assert_eq!(indexed, 3, "the images indexed");
    let warnings = run.json()["warnings"].to_string();
    assert!(
        warnings.contains("is on the disc but not in its DICOMDIR") && warnings.contains(CSA_NON_IMAGE),
        "{warnings}"
    );
    env.assert_staging_empty();
}

/// The same kinds of object by C-GET: getscu 3.6.7 cannot take classes
/// outside its built-in list (nor be given more): the job says which
/// objects and what to change, never a bare "Unable to process".
#[test]
fn objects_c_get_cannot_take_are_named_with_the_way_out() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let study = Study::new(
        "DOE^JOHN",
        "PID001",
        "ACC301",
        vec![Series::new("CT", CT_IMAGE, 2), Series::new("SR", ACQUISITION_CONTEXT_SR, 1)],
    );
    let files = dicom_gen::write_study(source.path(), &study);
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::Promiscuous);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config("retrieve = \"get\"\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC301"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("1 failed"), "the PACS's counts: {detail}");
    assert!(detail.contains("pacs.retrieve = \"move\""), "the way out: {detail}");
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
    // By C-MOVE the same study comes whole.
    let by_move = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    by_move.run(&["--json", "print", "ACC301"]).expect_code(0);
    assert_eq!(publisher.received_once(), uids(&files));
}

/// A PACS that cannot take several studies in one request: asked one
/// study at a time, by C-MOVE and by C-GET, and the disc is whole.
#[test]
fn a_pacs_that_takes_one_study_per_request_is_asked_so() {
    let source = tempfile::tempdir().expect("source");
    let mut files = dicom_gen::write_study(
        &source.path().join("a"),
        &Study::new("DOE^JOHN", "PID001", "ACC100", vec![Series::new("CT", CT_IMAGE, 3)]),
    );
    files.extend(dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("DOE^JOHN", "PID001", "ACC200", vec![Series::new("MR", MR_IMAGE, 2)]),
    ));
    let pacs = FakePacs::start("no-multi-study", &files, &[]);
    for retrieve in ["move", "get"] {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(&format!("retrieve = \"{retrieve}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC100", "ACC200"]);
        run.expect_code(0);
        assert_eq!(publisher.received_once(), uids(&files), "{retrieve}");
        assert!(run.stderr.contains("asking for one study at a time"), "{retrieve}: {}", run.stderr);
        env.assert_staging_empty();
    }
}

/// The disc's File-set ID is its volume label (PS3.12 F.1.1), 16
/// characters at most and different for accessions that differ past the
/// cut; dciodvfy finds no error in the DICOMDIR.
#[test]
fn the_disc_has_one_name_and_a_valid_dicomdir() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let mut files = Vec::new();
    for accession in ["RAD20240115001", "RAD20240115002"] {
        files.extend(dicom_gen::write_study(
            &source.path().join(accession),
            &Study::new("DOE^JOHN", "PID001", accession, vec![Series::new("CT", CT_IMAGE, 2)]),
        ));
    }
    pacs.load(&files);
    let env = TestEnv::new(&pacs.config(""));
    let out = env.dir.path().join("disc");
    let image = env.dir.path().join("disc.iso");
    env.run(&[
        "--json",
        "fetch",
        "RAD20240115001,RAD20240115002",
        "-o",
        arg(&out),
        &format!("--iso={}", image.display()),
    ])
    .expect_code(0);
    let dump = Command::new(require("dcmdump", "dcmtk"))
        .args(["+P", "FileSetID"])
        .arg(out.join("DICOMDIR"))
        .output()
        .expect("dcmdump");
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    let file_set_id =
        dump.split('[').nth(1).and_then(|s| s.split(']').next()).unwrap_or_default().trim().to_string();
    let info = Command::new(require("isoinfo", "genisoimage"))
        .args(["-d", "-i"])
        .arg(&image)
        .output()
        .expect("isoinfo");
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    let volume =
        info.lines().find_map(|l| l.strip_prefix("Volume id: ")).unwrap_or_default().trim().to_string();
    assert_eq!(file_set_id, volume, "{dump}\n{info}");
    assert!(volume.len() <= 16 && volume.starts_with("RAD20240115_"), "{volume}");
    let check = Command::new(require("dciodvfy", "dicom3tools"))
        .arg(out.join("DICOMDIR"))
        .output()
        .expect("dciodvfy");
    let said =
        format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(!said.contains("Error"), "{said}");
}
