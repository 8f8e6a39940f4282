//! PACSs and publishers that misbehave on purpose (tests/support, on
//! pynetdicom): each case gives its documented exit code, and nothing
//! reaches the publisher or the output folder when it must not.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study, Written};
use crate::harness::{FakePacs, FakePublisher, Publisher, Storescp, TestEnv};

const RETRIEVES: [&str; 2] = ["retrieve = \"get\"\n", "retrieve = \"move\"\n"];

/// One study of 30 images (25 CT, 5 MR) of a patient whose name and id
/// are Latin-1 (ISO_IR 100) in the files.
fn study(dir: &Path) -> Vec<Written> {
    let study = Study {
        latin1: true,
        ..Study::new(
            "MÜLLER^JOSÉ",
            "MÜ-77",
            "ACC100",
            vec![Series::new("CT", CT_IMAGE, 25), Series::new("MR", MR_IMAGE, 5)],
        )
    };
    dicom_gen::write_study(dir, &study)
}

struct Case {
    pacs: FakePacs,
    publisher: Storescp,
    env: TestEnv,
    uids: BTreeSet<String>,
}

fn start(behaviour: &str, extra: &[&str], config: &str) -> Case {
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path());
    let uids = files.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let pacs = FakePacs::start(behaviour, &files, extra);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(config),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    Case { pacs, publisher, env, uids }
}

impl Case {
    /// Print fails with `code` and `error`, nothing at the publisher, no
    /// staging left; fetch fails the same, no output folder.
    fn refuses(&self, code: i32, error: &str, detail: &str) {
        let run = self.env.run(&["--json", "print", "ACC100"]);
        run.expect_code(code);
        let json = run.json();
        assert_eq!(json["error"], error, "{json}\n{}", self.pacs.log());
        assert!(json["detail"].as_str().is_some_and(|d| d.contains(detail)), "{detail:?} not in {json}");
        assert!(self.publisher.received_uids().is_empty(), "something reached the publisher");
        self.env.assert_staging_empty();
        let out = self.env.dir.path().join("disc");
        self.env.run(&["--json", "fetch", "ACC100", "-o", out.to_str().expect("utf-8")]).expect_code(code);
        assert!(!out.exists(), "an output folder was left");
        self.env.assert_staging_empty();
    }

    /// Print sends exactly the study; returns the JSON.
    fn sends_whole(&self) -> serde_json::Value {
        let run = self.env.run(&["--json", "print", "ACC100"]);
        run.expect_code(0);
        assert_eq!(self.publisher.received_once(), self.uids, "{}", self.pacs.log());
        self.env.assert_staging_empty();
        run.json()
    }
}

#[test]
fn fewer_files_than_announced_with_a_final_success() {
    for retrieve in RETRIEVES {
        // No image counts anywhere; 25 of 30 sent; final Success with 5 left.
        let case = start("short", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "5 of 30 images");
    }
}

/// Only the final status can tell: no list, no counts, the disc accepted
/// as unproven. A pacs2cd that ignored "Success, 5 remaining" would send 25.
#[test]
fn a_final_status_with_sub_operations_left_is_read_without_a_list() {
    for retrieve in RETRIEVES {
        let config = format!("{retrieve}allow_unproven = true\n");
        let case = start("short", &["--refuse-levels", "SERIES,IMAGE"], &config);
        case.refuses(75, "DICOM fetch incomplete", "5 remaining");
        // A failed sub-operation (final Warning), no list, no counts.
        let case = start("lose-one", &["--refuse-levels", "SERIES,IMAGE", "--counts", "off"], &config);
        case.refuses(75, "DICOM fetch incomplete", "1 failed");
    }
}

/// Only the counts can tell: no list, and a final Success that keeps quiet
/// about the 5 not sent. A pacs2cd that ignored the series' counts would
/// send 25.
#[test]
fn the_counts_alone_catch_a_short_delivery() {
    for retrieve in RETRIEVES {
        let case =
            start("short", &["--counts", "on", "--hide-remaining", "--refuse-levels", "IMAGE"], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "5 of 30 images");
        let run = case.env.run(&["--json", "print", "ACC100", "--dry-run"]);
        assert_eq!(run.json()["proof"], "series-counts", "{}", run.stdout);
    }
}

#[test]
fn repeats_make_up_the_count_but_not_the_study() {
    for retrieve in RETRIEVES {
        let case = start("repeats", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "5 of 30 images");
    }
}

#[test]
fn two_different_files_under_one_uid_are_refused() {
    for retrieve in RETRIEVES {
        let case = start("same-uid-differs", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "two different images with one SOP Instance UID");
    }
}

#[test]
fn another_patients_image_or_an_unlisted_one_is_refused() {
    for retrieve in RETRIEVES {
        let case = start("foreign", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "INTRUDER");
        let case = start("extra", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "not in its own list");
    }
}

#[test]
fn another_patients_image_stops_the_retrieve_at_once() {
    for retrieve in RETRIEVES {
        // The intruder first, then 30 images 0.2 s apart: six seconds of
        // PACS that pacs2cd need not wait for.
        let case = start("foreign-first", &["--pause", "0.2"], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "INTRUDER");
        let log = case.pacs.log();
        assert!(log.contains("foreign-first"), "{log}");
        // The PACS logs "sent all" before its final response: pacs2cd ended
        // (twice) without waiting for it.
        assert!(!log.contains("sent all"), "pacs2cd waited for the retrieve to end ({retrieve}):\n{log}");
        let audit = case.env.audit_lines("audit.log");
        let finished: Vec<_> = audit.iter().filter(|line| line["event"] == "finished").collect();
        assert_eq!(finished.len(), 2, "{audit:?}");
        assert!(finished.iter().all(|line| line["files"] == 0), "{audit:?}");
    }
}

#[test]
fn odd_answers_to_the_lookup_read_right() {
    // One identical answer per instance: one study, sent whole.
    let case = start("per-instance-find", &[], "");
    let dry = case.env.run(&["--json", "print", "--dry-run", "ACC100"]);
    dry.expect_code(0);
    assert_eq!(dry.json()["studies"].as_array().map(Vec::len), Some(1), "{}", dry.stdout);
    assert_eq!(dry.json()["files_expected"], 30);
    case.sends_whole();

    // Latin-1 bytes and no character set in the answers: the id still
    // matches the files' (which declare ISO_IR 100), the name is never
    // guessed into some script: the files' own name is used, and the job
    // says that the answer could not be decoded.
    let case = start("latin1", &[], "");
    let json = case.sends_whole();
    assert_eq!(json["patient_name"], "MÜLLER^JOSÉ");
    assert_eq!(json["patient_id"], "MÜ-77");
    let warnings = json["warnings"].to_string();
    assert!(warnings.contains("does not decode") && warnings.contains("M\\\\xDCLLER"), "{warnings}");

    // One study answered twice: one study.
    let case = start("study-twice", &[], "");
    assert_eq!(case.sends_whole()["studies"].as_array().map(Vec::len), Some(1));

    // Twice, naming two patients: refused.
    let case = start("study-twice-disagree", &[], "");
    case.refuses(65, "accessions belong to different patients", "two patients");
}

#[test]
fn where_the_pacs_gives_no_list_its_counts_stand_in() {
    let case = start("refuse-image", &[], "");
    assert_eq!(case.sends_whole()["proof"], "series-counts");
    // A strict PACS wants one series per IMAGE query: that is how we ask.
    let case = start("image-needs-series", &[], "");
    assert_eq!(case.sends_whole()["proof"], "instance-list");
}

#[test]
fn nothing_proves_it_whole_unless_accepted() {
    let case = start("refuse-image-no-counts", &[], "");
    case.refuses(75, "DICOM fetch incomplete", "nothing proves");
    let run = case.env.run(&["--json", "print", "ACC100", "--allow-unproven"]);
    run.expect_code(0);
    assert_eq!(run.json()["proof"], "unproven");
    assert!(
        run.stderr.contains("NOT proven complete") || run.stderr.contains("nothing proves"),
        "{}",
        run.stderr
    );
    let finished = case.env.audit_lines("audit.log").pop().expect("audit");
    assert_eq!(finished["proof"], "unproven");
}

#[test]
fn a_lost_image_and_a_stalled_move() {
    for retrieve in RETRIEVES {
        let case = start("lose-one", &[], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "1 of 30 images");
    }
    // The PACS stops mid-move: the DIMSE timeout ends the job.
    let stalled = start("stall", &["--deliver", "3"], "retrieve = \"move\"\n");
    let text = std::fs::read_to_string(&stalled.env.config).expect("config");
    std::fs::write(
        &stalled.env.config,
        text.replacen("timeout_dimse_secs = 20", "timeout_dimse_secs = 2", 1),
    )
    .expect("config");
    let run = stalled.env.run(&["--json", "print", "ACC100"]);
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}", run.elapsed);
    run.expect_code(75);
    assert!(stalled.publisher.received_uids().is_empty());
    stalled.env.assert_staging_empty();
}

/// A publisher that stops answering after 3 files: the send ends at the
/// first DIMSE timeout, the 3 are reported as accepted, the 4th as
/// unanswered, the rest as not sent.
#[test]
fn a_publisher_that_stalls_after_three_files() {
    let data = tempfile::tempdir().expect("data");
    let written = dicom_gen::write_study(
        data.path(),
        &Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 10)]),
    );
    for sender in ["dcmsend", "storescu"] {
        let publisher = FakePublisher::start(3);
        let env = TestEnv::new(
            &TestEnv::publisher_section(publisher.port, sender, "")
                .replace("timeout_dimse_secs = 5", "timeout_dimse_secs = 2"),
        );
        let run = env.run(&["--json", "relay", data.path().to_str().expect("utf-8")]);
        run.expect_code(75);
        // One DIMSE timeout and the release, not one timeout per file.
        assert!(run.elapsed < Duration::from_secs(12), "{sender} took {:?}", run.elapsed);
        let json = run.json();
        assert_eq!(json["files_sent"], 3, "{sender}: {json}");
        assert_eq!(json["files_failed"], (written.len() - 3) as u64);
        // The 4th was sent and never answered: the robot may hold it.
        assert_eq!(json["files_in_doubt"], 1, "{sender}: {json}");
        let reasons: Vec<&str> = json["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .filter_map(|f| f["reason"].as_str())
            .collect();
        assert!(reasons[0].contains("no answer"), "{sender}: {reasons:?}");
        assert!(reasons[1..].iter().all(|r| r.contains("stopped answering")), "{sender}: {reasons:?}");
        assert!(json["detail"].as_str().is_some_and(|d| d.contains("partial disc job")), "{json}");
        assert_eq!(publisher.received_uids().len(), 3, "{sender}");
        env.assert_staging_empty();
    }
}

/// The publisher answers first: a robot that is off fails the job before
/// the PACS is asked for a single image (its log shows no retrieve).
#[test]
fn a_publisher_that_is_off_fails_the_job_before_any_retrieve() {
    for retrieve in RETRIEVES {
        let source = tempfile::tempdir().expect("source");
        let pacs = FakePacs::start("slow", &study(source.path()), &[]);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(retrieve),
            TestEnv::publisher_section(port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC100"]);
        run.expect_code(69);
        assert_eq!(run.json()["error"], "CD Publisher unreachable");
        let log = pacs.log();
        assert!(
            !log.contains("C-MOVE") && !log.contains("C-GET"),
            "{retrieve}: the PACS was asked to send:\n{log}"
        );
        // 30 images 0.1 s apart would take 3 s: it ended long before.
        assert!(run.elapsed < Duration::from_secs(2), "{retrieve}: {:?}", run.elapsed);
        env.assert_staging_empty();
    }
}

/// An image of a study nobody asked for (the same patient, filed under
/// another study) stops the retrieve at its arrival, as another patient's
/// does: the PACS never gets to send the rest.
#[test]
fn an_image_of_a_study_not_asked_for_stops_the_retrieve_at_once() {
    for retrieve in RETRIEVES {
        // The stray image first, then 30 images 0.2 s apart.
        let case = start("other-study-first", &["--pause", "0.2"], retrieve);
        case.refuses(75, "DICOM fetch incomplete", "which was not requested");
        let log = case.pacs.log();
        assert!(log.contains("other-study-first"), "{log}");
        assert!(!log.contains("sent all"), "pacs2cd waited for the retrieve to end ({retrieve}):\n{log}");
        let audit = case.env.audit_lines("audit.log");
        let finished: Vec<_> = audit.iter().filter(|line| line["event"] == "finished").collect();
        assert_eq!(finished.len(), 2, "{audit:?}");
        assert!(finished.iter().all(|line| line["files"] == 0), "{audit:?}");
    }
}

/// `pacs.allow_unproven = true` in the configuration, and no flag on the
/// command line: a PACS that gives neither a list nor counts gets its disc
/// through, said to be unproven; without it, the job fails.
#[test]
fn pacs_allow_unproven_alone_lets_an_unproven_disc_through() {
    for retrieve in RETRIEVES {
        let strict = start("refuse-image-no-counts", &[], retrieve);
        strict.refuses(75, "DICOM fetch incomplete", "nothing proves");

        let case = start("refuse-image-no-counts", &[], &format!("{retrieve}allow_unproven = true\n"));
        let json = case.sends_whole();
        assert_eq!(json["proof"], "unproven", "{json}");
        assert_eq!(json["files_sent"], 30, "{json}");
        assert!(json["warnings"].to_string().contains("nothing proves that every image arrived"), "{json}");
        let finished = case.env.audit_lines("audit.log").pop().expect("audit");
        assert_eq!(finished["proof"], "unproven");
    }
}
