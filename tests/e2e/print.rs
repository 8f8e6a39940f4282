//! `pacs2cd print`: a real Orthanc PACS to a real storescp publisher, and
//! every row of the error table on the way.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::pacs_with_data;
use crate::dicom_gen::{self, CT_IMAGE, Series, Study};
use crate::harness::{
    Answer, FakePacs, Orthanc, PatientApi, Publisher, Storescp, TestEnv, free_port, processes_left_within,
    processes_mentioning, processes_within,
};

fn received(publisher: &Storescp) -> BTreeSet<String> {
    publisher.received_uids().into_iter().collect()
}

fn config(pacs: &Orthanc, publisher_port: u16, extra: &str) -> String {
    let publisher = TestEnv::publisher_section(publisher_port, "dcmsend", "");
    format!("{}{}{extra}", pacs.config(""), publisher)
}

#[test]
fn one_and_three_accessions_reach_the_publisher_whole() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", config(&pacs, publisher.port, "")));
    let run = env.run(&["--json", "print", "ACC002"]);
    run.expect_code(0);
    // The legacy HIS contract: these keys first, in this order.
    let prefix = format!(
        "{{\"status\":\"ok\",\"accessions_sent\":[\"ACC002\"],\"patient_name\":\"DOE^JOHN\",\"destination\":\"127.0.0.1:{}\",\"files_sent\":3,",
        publisher.port
    );
    assert!(run.stdout.starts_with(&prefix), "{}", run.stdout);
    assert_eq!(received(&publisher), data.uids(&["ACC002"]));
    env.assert_staging_empty();

    let publisher = Storescp::start(Publisher::AcceptAll);
    let env3 = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", config(&pacs, publisher.port, "")));
    let run = env3.run(&["print", "ACC001,ACC002", "ACC003"]);
    run.expect_code(0);
    // The verdict is the last line: it stays on the screen.
    assert!(
        run.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("sent 10 files of DOE, JOHN (PID001) to the CD publisher")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("every image checked against the PACS's own list"), "{}", run.stdout);
    assert_eq!(received(&publisher), data.uids(&["ACC001", "ACC002", "ACC003"]));
    env3.assert_staging_empty();
    let audit = std::fs::read_to_string(env3.dir.path().join("audit.log")).expect("audit log");
    let lines: Vec<serde_json::Value> =
        audit.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2, "{audit}");
    let (started, finished) = (&lines[0], &lines[1]);
    assert_eq!((started["event"].as_str(), finished["event"].as_str()), (Some("started"), Some("finished")));
    assert_eq!(started["job"], finished["job"]);
    assert_eq!(started["command"], "print");
    assert_eq!(started["accessions"], serde_json::json!(["ACC001,ACC002", "ACC003"]));
    assert_eq!(finished["patients"][0]["id"], "PID001");
    assert_eq!(finished["files"], 10);
    assert_eq!(finished["outcome"], "ok");
    assert_eq!(finished["proof"], "instance-list");
}

#[test]
fn dry_run_sends_nothing() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port, ""));
    let run = env.run(&["--json", "print", "--dry-run", "ACC001,ACC003"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "dry-run");
    assert_eq!(json["files_expected"], 7);
    assert_eq!(json["studies"].as_array().map(Vec::len), Some(2));
    assert!(received(&publisher).is_empty());
    env.assert_staging_empty();
}

#[test]
fn every_error_row_is_reachable_from_print() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);

    // Bad accession: refused before anything else.
    let env = TestEnv::new(&config(&pacs, publisher.port, ""));
    let run = env.run(&["--json", "print", "ACC*"]);
    run.expect_code(64);
    assert_eq!(run.json()["error"], "invalid accession_number");

    // Not found, mixed patients.
    env.run(&["--json", "print", "NOPE"]).expect_code(65);
    let run = env.run(&["--json", "print", "ACC001,ACC004"]);
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accessions belong to different patients");

    // PACS down.
    let down = format!(
        "[pacs]\nhost = \"127.0.0.1\"\nport = {}\n{}",
        free_port(),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    );
    let run = TestEnv::new(&down).run(&["--json", "print", "ACC001"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "PACS unreachable");

    // Patient API down; no data for an accession the HIS knows.
    let api = PatientApi::start(vec![(
        "/patients/GHOST",
        Answer::json(200, r#"{"patient":{"name":"G","mrn":"PID009"}}"#),
    )]);
    let env_api = TestEnv::new(&format!("{}{}", config(&pacs, publisher.port, ""), api.config(None)));
    let run = env_api.run(&["--json", "print", "GHOST"]);
    run.expect_code(66);
    assert_eq!(run.json()["error"], "no DICOM data for accession_number");
    drop(api);
    let run = env_api.run(&["--json", "print", "ACC001"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "patient API unavailable");

    // Publisher down, refusing, refusing a SOP class.
    let closed = free_port();
    let run = TestEnv::new(&config(&pacs, closed, "")).run(&["--json", "print", "ACC001"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "CD Publisher unreachable");
    assert_eq!(run.json()["destination"], format!("127.0.0.1:{closed}"));

    let refusing = Storescp::start(Publisher::Refusing);
    let run = TestEnv::new(&config(&pacs, refusing.port, "")).run(&["--json", "print", "ACC001"]);
    run.expect_code(76);
    assert_eq!(run.json()["error"], "DICOM relay failed");
    assert_eq!(run.json()["destination"], format!("127.0.0.1:{}", refusing.port));

    let ct_only = Storescp::start(Publisher::CtOnly);
    let env_ct = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", config(&pacs, ct_only.port, "")));
    let run = env_ct.run(&["--json", "print", "ACC004"]);
    run.expect_code(75);
    let json = run.json();
    assert_eq!(json["error"], "partial relay");
    assert_eq!((json["files_sent"].as_u64(), json["files_failed"].as_u64()), (Some(2), Some(2)));
    env_ct.assert_staging_empty();
    let audit = std::fs::read_to_string(env_ct.dir.path().join("audit.log")).expect("audit");
    let line: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("line")).expect("json line");
    assert_eq!((line["outcome"].as_str(), line["files"].as_u64()), (Some("partial relay"), Some(2)));
    assert_eq!(line["patients"][0]["id"], "PID002");

    // Busy: another job holds the move port past lock_wait_secs.
    let env_busy = TestEnv::new(&format!("lock_wait_secs = 1\n{}", config(&pacs, publisher.port, "")));
    let _lock = env_busy.hold_retrieve_lock();
    let run = env_busy.run(&["--json", "print", "ACC001"]);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "busy");
    let text = env_busy.run(&["print", "ACC001"]);
    text.expect_code(75);
    assert!(text.stderr.contains("pacs2cd: busy: another job (pid"), "{}", text.stderr);
    assert!(text.stderr.contains("try again in a few minutes"), "{}", text.stderr);
    env_busy.assert_staging_empty();
    assert!(received(&publisher).is_empty(), "no error path sent anything");
}

#[test]
fn sigterm_during_the_retrieve_cleans_up() {
    let pacs = crate::data::big_pacs(128);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port, ""));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8"), "print", "BIG001"])
        .env("HOME", env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until images are arriving in the staging folder.
    let deadline = Instant::now() + Duration::from_secs(30);
    let arriving = |staging: &Path| {
        std::fs::read_dir(staging).into_iter().flatten().flatten().any(|job| {
            std::fs::read_dir(job.path().join("incoming")).map(|mut e| e.next().is_some()).unwrap_or(false)
        })
    };
    while !arriving(&env.staging) {
        assert!(Instant::now() < deadline, "the retrieve never started");
        assert!(child.try_wait().expect("try_wait").is_none(), "pacs2cd ended before the retrieve");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(143), "{}", String::from_utf8_lossy(&output.stderr));
    env.assert_staging_empty();
    let staging = env.staging.display().to_string();
    assert_eq!(processes_mentioning(&staging), Vec::<String>::new(), "a child outlived pacs2cd");
    assert!(received(&publisher).is_empty());
}

/// SIGTERM, SIGHUP, and Ctrl-C as a terminal sends it (to the whole
/// process group) in the middle of a C-MOVE and of a C-GET: the exit code
/// of the signal, no staging folder, and no DCMTK program left (movescu,
/// getscu, the receivers).
#[test]
fn every_signal_mid_retrieve_ends_the_dcmtk_children_too() {
    use std::os::unix::process::CommandExt;
    let pacs = crate::data::big_pacs(128);
    let publisher = Storescp::start(Publisher::AcceptAll);
    for retrieve in ["move", "get"] {
        for (signal, code, whole_group) in
            [(libc::SIGTERM, 143, false), (libc::SIGHUP, 129, false), (libc::SIGINT, 130, true)]
        {
            let env = TestEnv::new(&format!(
                "{}{}",
                pacs.config(&format!("retrieve = \"{retrieve}\"\n")),
                TestEnv::publisher_section(publisher.port, "dcmsend", "")
            ));
            let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
                .args(["--config", env.config.to_str().expect("utf-8"), "print", "BIG001"])
                .env("HOME", env.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .expect("spawn");
            let deadline = Instant::now() + Duration::from_secs(30);
            // Until a DCMTK program works in the job's folder.
            let tools = || -> Vec<String> {
                processes_within(&env.staging)
                    .into_iter()
                    .filter(|p| ["movescu", "getscu", "storescp"].iter().any(|t| p.contains(t)))
                    .collect()
            };
            while tools().is_empty() {
                assert!(Instant::now() < deadline, "{retrieve}: the retrieve never started");
                assert!(child.try_wait().expect("try_wait").is_none(), "{retrieve}: pacs2cd ended early");
                std::thread::sleep(Duration::from_millis(5));
            }
            let target = if whole_group { -(child.id() as i32) } else { child.id() as i32 };
            // SAFETY: kill(2) on our own child, or the group it leads.
            assert_eq!(unsafe { libc::kill(target, signal) }, 0);
            let output = child.wait_with_output().expect("wait");
            assert_eq!(
                output.status.code(),
                Some(code),
                "{retrieve} {signal}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let left = processes_left_within(&env.staging, Duration::from_secs(3));
            assert!(left.is_empty(), "{retrieve} {signal}: left running: {left:?}");
            env.assert_staging_empty();
        }
    }
    assert!(received(&publisher).is_empty());
}

/// SIGKILL of pacs2cd in the middle of a slow C-MOVE and of a slow C-GET:
/// pacs2cd cannot clean up, but its movescu or getscu (and the move
/// port's receivers) must not live on; the kernel ends them with it.
#[test]
fn sigkill_mid_retrieve_leaves_no_movescu_or_getscu() {
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "ACC100", vec![Series::new("CT", CT_IMAGE, 30)]),
    );
    // 30 images 0.3 s apart: nine seconds of retrieve to catch.
    let pacs = FakePacs::start("slow", &files, &["--pause", "0.3"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    for (retrieve, tool) in [("move", "movescu"), ("get", "getscu")] {
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(&format!("retrieve = \"{retrieve}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
            .args(["--config", env.config.to_str().expect("utf-8"), "print", "ACC100"])
            .env("HOME", env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(30);
        let running = || -> Vec<String> {
            processes_within(&env.staging).into_iter().filter(|p| p.contains(tool)).collect()
        };
        while running().is_empty() {
            assert!(Instant::now() < deadline, "{retrieve}: {tool} never started");
            assert!(child.try_wait().expect("try_wait").is_none(), "{retrieve}: pacs2cd ended early");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Images are coming: the retrieve is under way, not just starting.
        std::thread::sleep(Duration::from_millis(700));
        assert!(!running().is_empty(), "{retrieve}: {tool} ended before the kill");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let left = processes_left_within(&env.staging, Duration::from_secs(3));
        assert!(left.is_empty(), "{retrieve}: left running after SIGKILL: {left:?}");
    }
    assert!(received(&publisher).is_empty(), "nothing reaches the robot before the disc is proven");
}
