//! The C-MOVE receiver: pacs2cd's own socket on the move port, taking only
//! the PACS's connections, one storescp per association, stopped and
//! reaped on every path — a port taken by another program (IPv4 or IPv6),
//! a forger pushing mid-job, parallel sub-associations, SIGTERM, and
//! SIGKILL of pacs2cd itself (the kernel ends the receivers with it, and
//! the port is free again).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use crate::data::big_pacs;
use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study, Written};
use crate::harness::{FakePacs, Orthanc, Publisher, Storescp, TestEnv, processes_mentioning, push};

fn config(pacs: &Orthanc, publisher: u16) -> String {
    format!("{}{}", pacs.config(""), TestEnv::publisher_section(publisher, "dcmsend", ""))
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8")])
        .args(args)
        .env("HOME", env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until images are arriving in a job folder of the staging root.
fn wait_for_arrivals(staging: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let arriving = || {
        std::fs::read_dir(staging).into_iter().flatten().flatten().any(|job| {
            std::fs::read_dir(job.path().join("received")).map(|mut e| e.next().is_some()).unwrap_or(false)
        })
    };
    while !arriving() {
        assert!(Instant::now() < deadline, "the retrieve never started");
        assert!(child.try_wait().expect("try_wait").is_none(), "pacs2cd ended before the retrieve");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// No receiver left: nothing listens on the move port, no storescp writes
/// into this test's staging root.
fn assert_receiver_gone(env: &TestEnv, pacs: &Orthanc) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let staging = env.staging.display().to_string();
    loop {
        let left: Vec<String> =
            processes_mentioning("storescp").into_iter().filter(|p| p.contains(&staging)).collect();
        let bound = TcpListener::bind(("0.0.0.0", pacs.move_port)).is_err();
        if left.is_empty() && !bound {
            return;
        }
        assert!(Instant::now() < deadline, "the receiver outlived pacs2cd: {left:?}, port bound: {bound}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_move_port_taken_by_another_program_is_busy() {
    let pacs = big_pacs(256);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port));
    let squatter = TcpListener::bind(("127.0.0.1", pacs.move_port)).expect("squat the move port");
    let run = env.run(&["--json", "print", "BIG001"]);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "busy");
    assert!(
        run.json()["detail"].as_str().is_some_and(
            |d| d.contains("in use by another program") && d.contains(&pacs.move_port.to_string())
        ),
        "{}",
        run.stdout
    );
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
    drop(squatter);
    // A squatter on IPv6 alone is seen too (the receiver binds both).
    let v6 = std::net::TcpListener::bind(("::1", pacs.move_port)).expect("squat the move port on IPv6");
    let run = env.run(&["--json", "print", "BIG001"]);
    run.expect_code(75);
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("IPv6")), "{}", run.stdout);
    drop(v6);
}

/// One study of 30 images, the forged image a stranger pushes into it (same
/// study and patient, a series of its own), and their files.
fn study_and_forgery(dir: &Path) -> (Vec<Written>, Vec<Written>) {
    let study = Study::new("DOE^JOHN", "PID001", "ACC100", vec![Series::new("CT", CT_IMAGE, 30)]);
    let files = dicom_gen::write_study(&dir.join("study"), &study);
    let forged = Study { series: vec![Series::new("MR", MR_IMAGE, 1)], ..study };
    (files, dicom_gen::write_study(&dir.join("forged"), &forged))
}

#[test]
fn only_the_pacs_delivers_to_the_move_port() {
    let source = tempfile::tempdir().expect("source");
    let (files, forged) = study_and_forgery(source.path());
    // The PACS looks like another host: 127.0.0.2.
    let pacs = FakePacs::start_at("127.0.0.2", "slow", &files, &["--pause", "0.1"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let repository = crate::harness::Rsyslog::start();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}{}",
        repository.config(),
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8"), "--json", "print", "ACC100"])
        .env("HOME", env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_arrivals(&env.staging, &mut child);
    // Mid-job, a local user pushes from loopback, and a host elsewhere
    // (127.0.0.3): both are closed without an answer.
    let forgery: Vec<&Path> = forged.iter().map(|f| f.path.as_path()).collect();
    for from in [None, Some("127.0.0.3")] {
        let (code, said) = push(&forgery, pacs.move_port, from);
        assert_eq!(code, Some(1), "{from:?}: {said}");
        assert!(said.contains("closed by the peer"), "{from:?}: {said}");
    }
    // DCMTK's own storescu, as a local user would push.
    let storescu = crate::harness::require("storescu", "dcmtk");
    let pushed = Command::new(storescu)
        .args(["-aet", "PACS", "-aec", "PACS2CD", "127.0.0.1", &pacs.move_port.to_string()])
        .arg(&forged[0].path)
        .output()
        .expect("storescu");
    assert!(!pushed.status.success(), "storescu's push was taken");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let expected: BTreeSet<String> = files.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let received: BTreeSet<String> = publisher.received_uids().into_iter().collect();
    assert_eq!(received, expected, "only the PACS's images reach the publisher");
    assert!(stderr.contains("refused a connection to the move port from 127.0.0.1"), "{stderr}");
    assert!(stderr.contains("refused a connection to the move port from 127.0.0.3"), "{stderr}");
    assert_eq!(json["delivered_by"][0]["peer"], "127.0.0.2", "{json}");
    assert_eq!(json["delivered_by"][0]["files"], 30, "{json}");
    assert!(json["warnings"].to_string().contains("refused 3 connection(s)"), "{json}");
    env.assert_staging_empty();
    // The audit repository has a Security Alert for each address refused
    // (Node Authentication), saying how many were refused in all.
    let job = env.audit_lines("audit.log")[0]["job"].as_str().expect("job").to_string();
    let messages = repository.messages(&job, |m| m.iter().filter(|m| m.event().0 == "110113").count() >= 2);
    let alerts: Vec<&str> =
        messages.iter().filter(|m| m.event().0 == "110113").map(|m| m.xml.as_str()).collect();
    assert_eq!(alerts.len(), 2, "{messages:#?}");
    for (alert, peer) in alerts.iter().zip(["127.0.0.1", "127.0.0.3"]) {
        assert!(alert.contains(&format!("ParticipantObjectID=\"{peer}\"")), "{alert}");
        assert!(alert.contains("csd-code=\"110126\""), "Node Authentication: {alert}");
        assert!(alert.contains("EventOutcomeIndicator=\"4\""), "{alert}");
    }
}

#[test]
fn a_move_over_parallel_sub_associations_arrives_whole() {
    let source = tempfile::tempdir().expect("source");
    let (files, _) = study_and_forgery(source.path());
    let pacs = FakePacs::start("parallel", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(0);
    assert_eq!(run.json()["files_sent"], 30);
    let associations: BTreeSet<String> =
        run.json()["delivered_by"].as_array().into_iter().flatten().map(|d| d["peer"].to_string()).collect();
    assert_eq!(associations.len(), 1, "one peer");
    assert!(pacs.log().contains("parallel"), "{}", pacs.log());
    env.assert_staging_empty();
}

#[test]
fn sigterm_and_sigkill_mid_move_leave_no_receiver() {
    let pacs = big_pacs(256);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port));

    // SIGTERM: 143, everything cleaned up.
    let mut child = spawn(&env, &["print", "BIG001"]);
    wait_for_arrivals(&env.staging, &mut child);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(143), "{}", String::from_utf8_lossy(&output.stderr));
    env.assert_staging_empty();
    assert_receiver_gone(&env, &pacs);
    assert!(publisher.received_uids().is_empty(), "nothing reaches the robot before the disc is proven");

    // SIGKILL: pacs2cd cannot clean up, but its receiver must not live on
    // (it would make every later job "busy").
    let mut child = spawn(&env, &["print", "BIG001"]);
    wait_for_arrivals(&env.staging, &mut child);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_receiver_gone(&env, &pacs);
    // The next job gets the port, and the disc.
    env.run(&["print", "BIG001"]).expect_code(0);
    assert_eq!(publisher.received_uids().len(), 400);
}

/// A PACS that sends the last images of a C-MOVE late, after the job that
/// asked has ended: they reach the next job on the port, still looking
/// its study up. They are dropped there as an earlier job's, said so, and
/// never held against the next job's own study.
#[test]
fn late_images_of_an_earlier_job_are_dropped_not_blamed() {
    let source = tempfile::tempdir().expect("source");
    let mut files = dicom_gen::write_study(
        &source.path().join("a"),
        &Study::new("DOE^JOHN", "PID001", "EARLY1", vec![Series::new("CT", CT_IMAGE, 10)]),
    );
    files.extend(dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("DOE^JOHN", "PID001", "NEXT1", vec![Series::new("CT", CT_IMAGE, 5)]),
    ));
    let pacs = FakePacs::start(
        "late",
        &files,
        &["--late", "3", "--late-once", "--pause", "0.7", "--find-pause", "1.5"],
    );
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    // The first job: 3 images never come while it waits. It fails, and
    // says how many.
    let first = env.run(&["--json", "print", "EARLY1"]);
    first.expect_code(75);
    // The next job, at once: the 3 come while it looks its study up.
    let next = env.run(&["--json", "print", "NEXT1"]);
    next.expect_code(0);
    assert!(next.stderr.contains("arrived before this job asked for any"), "{}", next.stderr);
    assert_eq!(next.json()["files_sent"], 5, "{}", next.stdout);
    env.assert_staging_empty();
}

/// A PACS cluster: the node asked listens at 127.0.0.2, another node
/// (127.0.0.3) opens the sub-association. That node delivers only when
/// `pacs.move_from` lists it; otherwise it is closed unanswered, and the
/// job's error names it and the key, not the PACS's AE table alone.
#[test]
fn a_cluster_node_delivers_only_when_listed_in_move_from() {
    let source = tempfile::tempdir().expect("source");
    let (files, _) = study_and_forgery(source.path());
    let pacs = FakePacs::start_at("127.0.0.2", "normal", &files, &["--bind", "127.0.0.3"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let config = |extra: &str| {
        TestEnv::new(&format!(
            "{}{}",
            pacs.config(extra),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ))
    };

    let unlisted = config("");
    let run = unlisted.run(&["--json", "print", "ACC100"]);
    // The PACS says its destination did not answer (0xA801): the job
    // names the refused node and the key that would admit it.
    run.expect_code(69);
    let json = run.json();
    assert_eq!(json["error"], "PACS unreachable", "{json}");
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("the move port refused the connection(s) from 127.0.0.3")
            && detail.contains("pacs.move_from"),
        "{detail}"
    );
    assert!(run.stderr.contains("refused a connection to the move port from 127.0.0.3"), "{}", run.stderr);
    assert!(publisher.received_uids().is_empty(), "an unlisted node's images reached the publisher");
    unlisted.assert_staging_empty();

    let listed = config("move_from = [\"127.0.0.3\"]\n");
    let run = listed.run(&["--json", "print", "ACC100"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["delivered_by"][0]["peer"], "127.0.0.3", "{json}");
    assert_eq!(json["delivered_by"][0]["files"], 30, "{json}");
    assert!(!run.stderr.contains("refused a connection"), "{}", run.stderr);
    let expected: BTreeSet<String> = files.iter().map(|f| f.sop_instance_uid.clone()).collect();
    assert_eq!(publisher.received_once(), expected);
    listed.assert_staging_empty();
}

/// `delivered_by` names who delivered: the peer's address, the AE title it
/// called with (the PACS's own, NODE7, not the one pacs2cd calls it by)
/// and how many files came that way.
#[test]
fn delivered_by_names_the_calling_ae_title_the_peer_and_the_count() {
    let source = tempfile::tempdir().expect("source");
    let (files, _) = study_and_forgery(source.path());
    let pacs = FakePacs::start_at("127.0.0.2", "normal", &files, &["--ae", "NODE7"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(
        json["delivered_by"],
        serde_json::json!([{"peer": "127.0.0.2", "calling_ae": "NODE7", "files": 30}]),
        "{json}"
    );
    assert_eq!(publisher.received_once().len(), 30);
    env.assert_staging_empty();
}
