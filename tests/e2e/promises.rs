//! README promises that had no test of their own: a PACS that matches
//! accession numbers loosely, the study-count proof, a C-FIND aborted after
//! some answers, a stalled C-GET, the CGI mode's own deadline
//! (`cgi.timeout_secs`), and the publisher's C-ECHO beside the lookup.
//! Each fails when the behaviour it names is removed.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dicom_gen::{self, CT_IMAGE, Series, Study, Written};
use crate::harness::{FakePacs, FakePublisher, Nginx, Publisher, Storescp, TestEnv, processes_left_within};

fn one_study(dir: &std::path::Path, accession: &str, count: usize) -> Vec<Written> {
    let study = Study::new("DOE^JOHN", "PID001", accession, vec![Series::new("CT", CT_IMAGE, count)]);
    dicom_gen::write_study(&dir.join(accession), &study)
}

fn uids(files: &[Written]) -> BTreeSet<String> {
    files.iter().map(|f| f.sop_instance_uid.clone()).collect()
}

/// A PACS that matches AccessionNumber as a prefix and ignores case
/// answers ACC100 with ACC1000 and acc100 too: only the exact accession's
/// study reaches the disc, and the others are named as ignored.
#[test]
fn a_loose_pacs_never_widens_the_request() {
    let source = tempfile::tempdir().expect("source");
    let asked = one_study(source.path(), "ACC100", 4);
    let mut all = asked.clone();
    all.extend(one_study(source.path(), "ACC1000", 3));
    all.extend(one_study(source.path(), "acc100", 2));
    let pacs = FakePacs::start("loose", &all, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(0);
    assert!(pacs.log().contains("loose AccessionNumber match"), "{}", pacs.log());
    assert_eq!(run.json()["files_sent"], 4, "{}", run.stdout);
    assert_eq!(publisher.received_once(), uids(&asked));
    for other in ["\"ACC1000\"", "\"acc100\""] {
        assert!(
            run.stderr.contains(&format!("of accession {other}, which was not asked for: ignored")),
            "{other}: {}",
            run.stderr
        );
    }
    env.assert_staging_empty();
}

/// A PACS that refuses SERIES- and IMAGE-level queries but counts its
/// study's images: the study count is the proof, and it is held to it.
#[test]
fn the_study_count_stands_in_when_series_are_refused() {
    let source = tempfile::tempdir().expect("source");
    let files = one_study(source.path(), "ACC100", 6);
    let pacs = FakePacs::start("refuse-series", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(0);
    assert_eq!(run.json()["proof"], "study-count", "{}", run.stdout);
    assert_eq!(publisher.received_once(), uids(&files));
    env.assert_staging_empty();
}

/// The study count, short: the same refusals, and a delivery one short of
/// the count, ending Success with nothing remaining (a PACS that lies).
#[test]
fn a_study_count_short_of_the_delivery_is_incomplete() {
    let source = tempfile::tempdir().expect("source");
    let files = one_study(source.path(), "ACC100", 6);
    // --refuse-levels gives the short-delivering PACS the refusals and
    // --counts on its counts; --hide-remaining its lie.
    let pacs = FakePacs::start(
        "short",
        &files,
        &["--deliver", "5", "--refuse-levels", "SERIES,IMAGE", "--counts", "on", "--hide-remaining"],
    );
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("5 of 6"), "{detail}\n{}", pacs.log());
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
}

/// A C-FIND aborted after its first answer: the PACS is unreachable (try
/// again), never "not found", and the one answer is not taken for all.
#[test]
fn a_find_aborted_after_some_answers_is_not_a_lookup() {
    let source = tempfile::tempdir().expect("source");
    let mut files = one_study(source.path(), "ACC100", 2);
    files.extend(one_study(source.path(), "ACC200", 2));
    let pacs = FakePacs::start("find-abort", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100", "ACC200"]);
    run.expect_code(69);
    let json = run.json();
    assert_eq!(json["error"], "PACS unreachable", "{json}\n{}", pacs.log());
    assert!(pacs.log().contains("find-abort"), "{}", pacs.log());
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
}

/// A PACS that stops sending mid C-GET: the DIMSE timeout ends the job
/// in seconds, incomplete, getscu gone, nothing sent.
#[test]
fn a_stalled_c_get_ends_at_the_dimse_timeout() {
    let source = tempfile::tempdir().expect("source");
    let files = one_study(source.path(), "ACC100", 8);
    let pacs = FakePacs::start("stall", &files, &["--deliver", "3"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config("retrieve = \"get\"\n").replacen("timeout_dimse_secs = 20", "timeout_dimse_secs = 2", 1),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}", run.elapsed);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "DICOM fetch incomplete", "{}", run.stdout);
    assert!(publisher.received_uids().is_empty());
    let left = processes_left_within(&env.staging, Duration::from_secs(3));
    assert!(left.is_empty(), "left running: {left:?}");
    env.assert_staging_empty();
}

/// fcgiwrap never kills a hung program: with a PACS that stalls, the CGI
/// mode ends itself at `cgi.timeout_secs`, answers (never nginx's 504),
/// and leaves no staging folder and no DCMTK program behind.
#[test]
fn the_web_job_ends_itself_at_cgi_timeout_secs() {
    let source = tempfile::tempdir().expect("source");
    let files = one_study(source.path(), "ACC100", 8);
    let pacs = FakePacs::start("stall", &files, &["--deliver", "2"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\nallow_anonymous = true\ntimeout_secs = 4\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&env.config, &[]);
    let started = Instant::now();
    let response = nginx.get("/api/iso/print?accession_number=ACC100&format=json");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(response.status, 502, "{response:?}\n{}", nginx.error_log());
    assert!(response.json()["detail"].to_string().contains("time"), "{}", response.body);
    assert!(publisher.received_uids().is_empty());
    let left = processes_left_within(&env.staging, Duration::from_secs(3));
    assert!(left.is_empty(), "left running: {left:?}");
    env.assert_staging_empty();
}

/// The publisher's C-ECHO runs beside the lookup, not after it: with a
/// PACS that takes 2 s to answer its C-FIND, the echo reaches the
/// publisher while that C-FIND is still unanswered (the PACS logs its
/// answer as it sends it).
#[test]
fn the_publisher_is_echoed_while_the_lookup_waits() {
    let source = tempfile::tempdir().expect("source");
    let files = one_study(source.path(), "ACC100", 4);
    let pacs = FakePacs::start("normal", &files, &["--find-pause", "2"]);
    let publisher = FakePublisher::storing();
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8"), "--json", "print", "ACC100"])
        .env("HOME", env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The PACS's log at the moment the echo is seen at the publisher.
    let pacs_then = loop {
        let pacs_now = pacs.log();
        if publisher.log().contains("C-ECHO from") {
            break pacs_now;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no C-ECHO came:\n{}", publisher.log());
        std::thread::sleep(Duration::from_millis(10));
    };
    let echoed_after = started.elapsed();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        !pacs_then.contains("C-FIND STUDY"),
        "the echo came only after the lookup was answered ({echoed_after:?}):\n{pacs_then}"
    );
    assert!(echoed_after < Duration::from_millis(1500), "the echo came after {echoed_after:?}");
    // The lookup was answered in the end, 2 s in: the comparison meant something.
    assert!(pacs.log().contains("C-FIND STUDY AccessionNumber=ACC100 -> 1 match"), "{}", pacs.log());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["files_sent"], 4, "{json}");
    assert_eq!(publisher.received_uids().into_iter().collect::<BTreeSet<_>>(), uids(&files));
    env.assert_staging_empty();
}
