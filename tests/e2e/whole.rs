//! A disc proven whole: the files must be the PACS's own list of each
//! study's images, on Orthanc and on DCMTK's dcmqrscp (strict, no image
//! counts), for both strategies and both retrieve methods.

use std::collections::BTreeSet;
use std::path::Path;

use crate::data::{DataSet, dcmqrscp_with_data, pacs_with_data};
use crate::harness::{Publisher, Storescp, TestEnv};

const WAYS: [&str; 4] = [
    "retrieve = \"move\"\nstrategy = \"study\"\n",
    "retrieve = \"get\"\nstrategy = \"study\"\n",
    "retrieve = \"move\"\nstrategy = \"legacy-modalities\"\n",
    "retrieve = \"get\"\nstrategy = \"legacy-modalities\"\n",
];

fn received(publisher: &Storescp) -> BTreeSet<String> {
    publisher.received_uids().into_iter().collect()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Every way of retrieving proves the disc by the instance list and sends
/// exactly the study, also for a Latin-1 patient id.
fn every_way_is_whole(pacs_config: &dyn Fn(&str) -> String, data: &DataSet, name: &str) {
    for way in WAYS {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let env = TestEnv::new(&format!(
            "audit_log = \"audit.log\"\n{}{}",
            pacs_config(way),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC001,ACC008", "--allow-mixed-patients"]);
        run.expect_code(0);
        let json = run.json();
        assert_eq!(json["proof"], "instance-list", "{name} {way}: {json}");
        // Exactly the studies, each image once (the legacy loop asks for a
        // study once per modality: still one copy at the robot).
        assert_eq!(publisher.received_once(), data.uids(&["ACC001", "ACC008"]), "{name} {way}");
        // Every patient named, the Latin-1 id read as the PACS wrote it.
        let ids: Vec<&str> =
            json["patients"].as_array().expect("patients").iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(ids, ["PID001", "MÜ-77"], "{name} {way}");
        assert_eq!(json["patient_id"], "PID001", "the legacy key keeps the first accession's patient");
        let finished = env.audit_lines("audit.log").pop().expect("audit");
        assert_eq!(finished["patients"][1]["id"], "MÜ-77", "{finished}");
        assert_eq!(finished["proof"], "instance-list");
        env.assert_staging_empty();
    }
}

#[test]
fn orthanc_every_way_whole() {
    let (pacs, data) = pacs_with_data();
    every_way_is_whole(&|way| pacs.config(way), &data, "Orthanc");
}

#[test]
fn dcmqrscp_every_way_whole() {
    let (pacs, data) = dcmqrscp_with_data();
    every_way_is_whole(&|way| pacs.config(way), &data, "dcmqrscp");
}

/// One image lost from the PACS's storage: every way of retrieving says
/// which series lacks how many, and nothing reaches the publisher.
fn a_lost_image_is_named(pacs_config: &dyn Fn(&str) -> String, accessions: &str, name: &str) {
    for way in WAYS {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs_config(way),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", accessions, "--allow-mixed-patients"]);
        run.expect_code(75);
        let json = run.json();
        assert_eq!(json["error"], "DICOM fetch incomplete", "{name} {way}: {json}");
        let detail = json["detail"].as_str().unwrap_or("");
        // Which accession lacks how many (the list's word), and what the
        // PACS's final status said (its own): both, each way.
        let named = (detail.contains(" images of study ") && detail.contains(" did not arrive (series "))
            || detail.contains(" no image of study ");
        assert!(named && detail.contains("accession ACC"), "{name} {way}: {detail}");
        assert!(detail.contains("the PACS ended the C-"), "{name} {way}: {detail}");
        // A status the legacy loop's requests repeat is said once.
        assert!(detail.matches("the PACS ended the C-").count() <= 2, "{name} {way}: {detail}");
        assert!(received(&publisher).is_empty(), "{name} {way}: something reached the publisher");
        env.assert_staging_empty();
        let out = env.dir.path().join("disc");
        let run = env.run(&["--json", "fetch", accessions, "--allow-mixed-patients", "-o", arg(&out)]);
        run.expect_code(75);
        assert!(!out.exists(), "{name} {way}: a half-filled disc folder");
    }
}

#[test]
fn dcmqrscp_lost_image_every_way() {
    let (pacs, data) = dcmqrscp_with_data();
    pacs.lose_one_image();
    a_lost_image_is_named(&|way| pacs.config(way), &data.accessions().join(","), "dcmqrscp");
}

#[test]
fn orthanc_lost_image_every_way() {
    let (pacs, data) = pacs_with_data();
    pacs.lose_one_image();
    a_lost_image_is_named(&|way| pacs.config(way), &data.accessions().join(","), "Orthanc");
}

#[test]
fn a_mixed_print_names_every_patient() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["print", "ACC001,ACC007", "--allow-mixed-patients"]);
    run.expect_code(0);
    assert!(run.stdout.contains("2 patients"), "{}", run.stdout);
    assert!(run.stdout.contains("DOE, JOHN (PID001) [ACC001]"), "{}", run.stdout);
    assert!(run.stdout.contains("MÜLLER, JOSÉ (PID005) [ACC007]"), "{}", run.stdout);
    assert_eq!(received(&publisher), data.uids(&["ACC001", "ACC007"]));
    // The dry run lists the PACS's own image count per study.
    let run = env.run(&["--json", "print", "--dry-run", "ACC001,ACC007", "--allow-mixed-patients"]);
    run.expect_code(0);
    assert_eq!(run.json()["files_expected"], 7);
    assert_eq!(run.json()["patients"].as_array().map(Vec::len), Some(2));
}
