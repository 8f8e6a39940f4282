//! `pacs2cd fetch` against a real Orthanc PACS and, where asked, the
//! patient API served from inside the test.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::data::pacs_with_data;
use crate::dicom_gen;
use crate::harness::{Answer, PatientApi, TestEnv, free_port};

fn on_disk(folder: &Path) -> BTreeSet<String> {
    dicom_gen::sop_instance_uids(&folder.join("DICOM")).into_iter().collect()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn one_accession_lands_in_a_media_layout() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC001", "-o", arg(&out)]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["patient_name"], "DOE^JOHN");
    assert_eq!(json["patient_id"], "PID001");
    assert_eq!(json["accessions"], serde_json::json!(["ACC001"]));
    assert_eq!(json["files"], 5);
    assert_eq!(json["studies"][0]["expected"], 5);
    assert_eq!(json["studies"][0]["modalities"], serde_json::json!(["CT"]));
    assert!(json["bytes"].as_u64().is_some_and(|b| b > 5 * 512));
    assert_eq!(on_disk(&out), data.uids(&["ACC001"]));
    // Two series of one study: ST000001/SE000001 (3) and SE000002 (2), in
    // some order; every file ID follows the media rules.
    let mut counts = vec![
        std::fs::read_dir(out.join("DICOM/ST000001/SE000001")).expect("series 1").count(),
        std::fs::read_dir(out.join("DICOM/ST000001/SE000002")).expect("series 2").count(),
    ];
    counts.sort();
    assert_eq!(counts, [2, 3]);
    assert!(out.join("DICOM/ST000001/SE000001/IM000001").is_file());
    // IHE PDI: what the disc holds and for whom, at its root.
    let readme = std::fs::read_to_string(out.join("README.TXT")).expect("README.TXT");
    assert!(readme.contains("Patient: DOE, JOHN\r\nPatient ID: PID001"), "{readme}");
    assert!(readme.contains("ACC001") && readme.contains("(5 images)"), "{readme}");
    assert!(!readme.contains(&env.dir.path().display().to_string()), "no paths of ours: {readme}");
    let index = std::fs::read_to_string(out.join("INDEX.HTM")).expect("INDEX.HTM");
    assert!(index.contains("DOE, JOHN (ID PID001)"), "{index}");
    env.assert_staging_empty();
}

#[test]
fn several_accessions_in_both_spellings() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC001,ACC002", "ACC003", "ACC001", "-o", arg(&out)]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["accessions"], serde_json::json!(["ACC001", "ACC002", "ACC003"]));
    assert_eq!(json["files"], 10);
    assert_eq!(on_disk(&out), data.uids(&["ACC001", "ACC002", "ACC003"]));
    assert!(out.join("DICOM/ST000003/SE000001/IM000002").is_file());
    env.assert_staging_empty();
}

#[test]
fn strategies_and_retrieve_methods_give_the_same_files() {
    let (pacs, data) = pacs_with_data();
    let expected = data.uids(&["ACC001", "ACC002"]);
    for extra in [
        "retrieve = \"move\"\nstrategy = \"study\"",
        "retrieve = \"get\"\nstrategy = \"study\"",
        "retrieve = \"move\"\nstrategy = \"legacy-modalities\"",
        "retrieve = \"get\"\nstrategy = \"legacy-modalities\"",
    ] {
        let env = TestEnv::new(&pacs.config(extra));
        let out = env.dir.path().join("disc");
        let run = env.run(&["--json", "fetch", "ACC001,ACC002", "-o", arg(&out)]);
        run.expect_code(0);
        assert_eq!(on_disk(&out), expected, "{extra}");
        assert_eq!(run.json()["files"], 8, "{extra}");
        env.assert_staging_empty();
    }
}

#[test]
fn a_multi_modality_study_arrives_complete() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config("retrieve = \"get\""));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC004", "-o", arg(&out)]);
    run.expect_code(0);
    assert_eq!(run.json()["files"], 4);
    assert_eq!(on_disk(&out), data.uids(&["ACC004"]));
    let modalities = run.json()["studies"][0]["modalities"].clone();
    for modality in ["CT", "OT", "SR"] {
        assert!(modalities.as_array().is_some_and(|m| m.iter().any(|v| v == modality)), "{modalities}");
    }
}

#[test]
fn unknown_accession_is_not_found() {
    let (pacs, _data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let run = env.run(&["--json", "fetch", "NOPE", "-o", arg(&env.dir.path().join("disc"))]);
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accession_number not found");
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("NOPE")));
    assert!(!env.dir.path().join("disc").exists());
    env.assert_staging_empty();
}

#[test]
fn bad_accessions_are_refused_before_any_association() {
    // A listener standing in for the PACS: it must never see a connection.
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let env = TestEnv::new(&format!("[pacs]\nhost = \"127.0.0.1\"\nport = {port}\n"));
    for bad in ["*", "ACC00?", "", "ABCDEFGHIJKLMNOPQ", "ACC\\001", "ACC\u{1}01", "ACC001,*"] {
        let run = env.run(&["--json", "fetch", bad]);
        run.expect_code(64);
        assert_eq!(run.json()["error"], "invalid accession_number", "{bad:?}");
    }
    let run = env.run(&["--json", "fetch"]);
    run.expect_code(64);
    assert_eq!(run.json()["error"], "missing accession_number");
    assert!(listener.accept().is_err(), "pacs2cd connected to the PACS with a bad accession");
}

#[test]
fn mixed_patients_are_refused_unless_allowed() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC001,ACC004", "-o", arg(&out)]);
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accessions belong to different patients");
    let detail = run.json()["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("PID001") && detail.contains("PID002"), "{detail}");
    assert!(!out.exists());
    let run = env.run(&["--json", "fetch", "ACC001,ACC004", "--allow-mixed-patients", "-o", arg(&out)]);
    run.expect_code(0);
    assert_eq!(on_disk(&out), data.uids(&["ACC001", "ACC004"]));
}

#[test]
fn pacs_down_or_refusing_us_is_pacs_unreachable() {
    let env = TestEnv::new(&format!(
        "[pacs]\nhost = \"127.0.0.1\"\nport = {}\ncalled_ae = \"PACS\"\n",
        free_port()
    ));
    let run = env.run(&["--json", "fetch", "ACC001"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "PACS unreachable");
    assert!(
        run.json()["detail"].as_str().is_some_and(|d| d.contains("connection refused")),
        "{}",
        run.stdout
    );
    env.assert_staging_empty();

    let (pacs, _data) = pacs_with_data();
    let config = pacs.config("").replace("calling_ae = \"PACS2CD\"", "calling_ae = \"STRANGER\"");
    let env = TestEnv::new(&config);
    let run = env.run(&["--json", "fetch", "ACC001"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "PACS unreachable");
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("STRANGER")), "{}", run.stdout);
}

#[test]
fn patient_api_contract_and_its_failures() {
    let (pacs, data) = pacs_with_data();
    let ok = Answer::json(200, r#"{"patient":{"name":"DOE^JOHN Q","mrn":"PID001"}}"#);
    let api = PatientApi::start(vec![
        ("/patients/ACC001", ok.clone()),
        ("/patients/ACC002", ok),
        ("/patients/ERR", Answer::json(500, "{}")),
        ("/patients/BAD", Answer::json(200, "<html>oops</html>")),
        ("/patients/NOFIELD", Answer::json(200, r#"{"patient":{}}"#)),
        ("/patients/SLOW", Answer { delay: Duration::from_secs(4), ..Answer::json(200, "{}") }),
        ("/patients/ACC004", Answer::json(200, r#"{"patient":{"name":"ROE^JANE","mrn":"PID002"}}"#)),
        // The HIS files ACC003 under another patient than the PACS does.
        ("/patients/ACC003", Answer::json(200, r#"{"patient":{"name":"DOE^JOHN","mrn":"PID999"}}"#)),
    ]);
    let env = TestEnv::new(&format!("{}{}", pacs.config(""), api.config(Some("PACS2CD_TEST_TOKEN"))));
    let token = [("PACS2CD_TEST_TOKEN", "s3cret")];
    let config = ["--config", arg(&env.config)];
    let fetch = |accessions: &str| {
        let out = env.dir.path().join(format!("disc-{}", accessions.replace(',', "-")));
        env.run_with(&token, &[&config[..], &["--json", "fetch", accessions, "-o", arg(&out)]].concat())
    };
    let out = env.dir.path().join("disc-ACC001-ACC002");

    let run = fetch("ACC001,ACC002");
    run.expect_code(0);
    assert_eq!(run.json()["patient_name"], "DOE^JOHN Q", "the name comes from the HIS");
    assert_eq!(on_disk(&out), data.uids(&["ACC001", "ACC002"]));
    assert!(api.hits().iter().all(|(_, auth)| auth == "Bearer s3cret"), "{:?}", api.hits());

    let run = fetch("MISSING");
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accession_number not found");
    for (accession, why) in
        [("ERR", "HTTP 500"), ("BAD", "not JSON"), ("NOFIELD", "/patient/name"), ("SLOW", "in time")]
    {
        let run = fetch(accession);
        run.expect_code(69);
        assert_eq!(run.json()["error"], "patient API unavailable", "{accession}");
        let detail = run.json()["detail"].as_str().expect("detail").to_string();
        assert!(detail.contains(why), "{accession}: {detail}");
        assert!(!detail.contains("s3cret"));
    }
    // The API's timeout is 2 s (patient.api.timeout_secs): not the PACS's.
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);

    let run = fetch("ACC001,ACC004");
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accessions belong to different patients");
    let run = fetch("ACC003");
    run.expect_code(65);
    let detail = run.json()["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("PID999") && detail.contains("PID001"), "{detail}");

    // Without the token in the environment: a configuration error, no request.
    let hits = api.hits().len();
    let run = env.run(&["--json", "fetch", "ACC001", "-o", arg(&env.dir.path().join("x"))]);
    run.expect_code(78);
    assert_eq!(api.hits().len(), hits);
    drop(api);
    let run = fetch("ACC001");
    run.expect_code(69);
}

#[test]
fn concurrent_fetches_share_the_move_port_one_at_a_time() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    // Hold the port lock ourselves for a moment, so both jobs must wait.
    let lock = env.hold_retrieve_lock();
    let config = env.config.clone();
    let spawn = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
            .args(["--config", arg(&config), "--json", "fetch", "ACC001", "-o", arg(out)])
            .env("HOME", env.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (out_a, out_b) = (env.dir.path().join("a"), env.dir.path().join("b"));
    let (a, b) = (spawn(&out_a), spawn(&out_b));
    std::thread::sleep(Duration::from_millis(1500));
    lock.unlock().expect("unlock");
    for (child, out) in [(a, &out_a), (b, &out_b)] {
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("waiting for another job"), "{stderr}");
        assert_eq!(on_disk(out), data.uids(&["ACC001"]));
    }
    env.assert_staging_empty();

    // Held longer than lock_wait_secs: busy.
    let env = TestEnv::new(&format!("lock_wait_secs = 1\n{}", pacs.config("")));
    let _lock = env.hold_retrieve_lock();
    let run = env.run(&["--json", "fetch", "ACC001", "-o", arg(&env.dir.path().join("c"))]);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "busy");
}

#[test]
fn a_hostile_patient_name_stays_inside_the_working_folder() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let work = env.dir.path().join("work/deeper");
    std::fs::create_dir_all(&work).expect("work");
    let run = env.run_in(&work, &["--json", "fetch", "ACC005"]);
    run.expect_code(0);
    assert_eq!(run.json()["folder"], "x_y-ACC005");
    assert_eq!(on_disk(&work.join("x_y-ACC005")), data.uids(&["ACC005"]));
    let entries: Vec<_> = std::fs::read_dir(env.dir.path().join("work")).expect("read").flatten().collect();
    assert_eq!(entries.len(), 1, "nothing written outside the working folder");
}

#[test]
fn an_occupied_output_folder_needs_force_and_loses_its_old_images() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let out = env.dir.path().join("disc");
    std::fs::create_dir_all(out.join("DICOM/ST000009")).expect("old");
    std::fs::write(out.join("DICOM/ST000009/IM000001"), "someone else's image").expect("old");
    let run = env.run(&["--json", "fetch", "ACC003", "-o", arg(&out)]);
    run.expect_code(78);
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("--force")));
    env.run(&["fetch", "ACC003", "-o", arg(&out), "--force"]).expect_code(0);
    assert!(!out.join("DICOM/ST000009").exists());
    assert_eq!(on_disk(&out), data.uids(&["ACC003"]));
}

#[test]
fn a_lost_image_makes_the_fetch_incomplete() {
    let (pacs, data) = pacs_with_data();
    pacs.lose_one_image();
    let env = TestEnv::new(&pacs.config(""));
    // Which accession lost it is unknown: fetch them all.
    let all = data.accessions().join(",");
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", &all, "--allow-mixed-patients", "-o", arg(&out)]);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "DICOM fetch incomplete");
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains(" of ")), "{}", run.stdout);
    assert!(!out.exists(), "no half-filled disc folder");
    env.assert_staging_empty();

    // One accession at a time with --allow-partial: the one that lost the
    // image either keeps what arrived (with a warning) or, when nothing of
    // it arrived (Orthanc stops at its first failed sub-operation), still
    // fails: a study of which nothing came is never a partial success.
    let mut affected = 0;
    for accession in data.accessions() {
        let out = env.dir.path().join(accession);
        let run = env.run(&["--json", "fetch", accession, "--allow-partial", "-o", arg(&out)]);
        let expected = data.uids(&[accession]);
        match run.code {
            Some(0) if run.json().get("warnings").is_none() => assert_eq!(on_disk(&out), expected),
            Some(0) => {
                affected += 1;
                let kept = on_disk(&out);
                assert!(kept.len() < expected.len() && kept.is_subset(&expected), "{accession}");
            }
            Some(75) => {
                affected += 1;
                assert!(!out.exists(), "{accession}: no folder for a study of which nothing came");
            }
            other => panic!("{accession}: exit {other:?}\n{}\n{}", run.stdout, run.stderr),
        }
    }
    assert_eq!(affected, 1, "exactly one accession lost an image");
    env.assert_staging_empty();
}
