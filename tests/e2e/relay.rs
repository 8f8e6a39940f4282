//! `pacs2cd relay` against a real storescp, with both senders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, SECONDARY_CAPTURE, Series, Study, Written};
use crate::harness::{Publisher, Storescp, TestEnv, require};

const SENDERS: [&str; 2] = ["dcmsend", "storescu"];

/// A study of three SOP classes in two sub-folders: CT x3, MR x2, SC x1.
fn mixed_study(dir: &Path) -> Vec<Written> {
    let study = Study::new(
        "DOE^JOHN",
        "PID001",
        "ACC001",
        vec![Series::new("CT", CT_IMAGE, 3), Series::new("MR", MR_IMAGE, 2)],
    );
    let mut written = dicom_gen::write_study(&dir.join("series/a"), &study);
    let sc = Study { series: vec![Series::new("OT", SECONDARY_CAPTURE, 1)], ..study };
    written.extend(dicom_gen::write_study(&dir.join("series/b"), &sc));
    written
}

fn uids(written: &[Written]) -> Vec<String> {
    let mut uids: Vec<String> = written.iter().map(|w| w.sop_instance_uid.clone()).collect();
    uids.sort();
    uids
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn every_instance_arrives() {
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let env = TestEnv::publisher(publisher.port, sender, "");
        let data = tempfile::tempdir().expect("data");
        let written = mixed_study(data.path());
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(0);
        let json = run.json();
        assert_eq!(json["status"], "ok", "{sender}");
        assert_eq!(json["files_sent"], 6, "{sender}");
        assert_eq!(json["files_skipped"], 0, "{sender}");
        assert_eq!(json["destination"], format!("127.0.0.1:{}", publisher.port));
        assert_eq!(json["sender"], sender);
        assert_eq!(publisher.received_uids(), uids(&written), "{sender}");
        env.assert_staging_empty();
    }
}

#[test]
fn foreign_files_and_the_dicomdir_are_skipped_not_failed() {
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let env = TestEnv::publisher(publisher.port, sender, "");
        let data = tempfile::tempdir().expect("data");
        let written = mixed_study(data.path());
        std::fs::write(data.path().join("README.TXT"), "MicroDicom viewer\n").expect("readme");
        std::fs::write(data.path().join("DICOMDIR"), dicom_gen::fake_dicomdir()).expect("dicomdir");
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(0);
        let json = run.json();
        assert_eq!(json["files_sent"], 6, "{sender}");
        assert_eq!(json["files_skipped"], 2, "{sender}");
        let reasons: Vec<&str> = json["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .filter_map(|s| s["reason"].as_str())
            .collect();
        assert_eq!(reasons, ["DICOMDIR index", "not a DICOM file"], "{sender}");
        assert_eq!(publisher.received_uids(), uids(&written), "{sender}: the DICOMDIR must not be sent");
    }
}

#[test]
fn closed_port_is_publisher_unreachable() {
    for sender in SENDERS {
        let port = crate::harness::free_port();
        let env = TestEnv::publisher(port, sender, "");
        let data = tempfile::tempdir().expect("data");
        mixed_study(data.path());
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(69);
        let json = run.json();
        assert_eq!(json["error"], "CD Publisher unreachable", "{sender}");
        assert_eq!(json["destination"], format!("127.0.0.1:{port}"));
        assert_eq!(
            json["detail"],
            format!("CD Publisher unreachable at 127.0.0.1:{port}: connection refused")
        );
        env.assert_staging_empty();
    }
}

#[test]
fn refused_association_is_relay_failed() {
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::Refusing);
        let env = TestEnv::publisher(publisher.port, sender, "");
        let data = tempfile::tempdir().expect("data");
        mixed_study(data.path());
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(76);
        let json = run.json();
        assert_eq!(json["error"], "DICOM relay failed", "{sender}");
        assert!(json["detail"].as_str().is_some_and(|d| d.starts_with("association rejected")), "{json}");
        assert_eq!(json["files_sent"], 0);
        assert!(publisher.received_uids().is_empty());
    }
}

#[test]
fn publisher_refusing_a_sop_class_gives_partial_relay_with_counts() {
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::CtOnly);
        let env = TestEnv::publisher(publisher.port, sender, "");
        let data = tempfile::tempdir().expect("data");
        let written = mixed_study(data.path());
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(75);
        let json = run.json();
        assert_eq!(json["error"], "partial relay", "{sender}");
        assert_eq!(json["files_sent"], 3, "{sender}");
        assert_eq!(json["files_failed"], 3, "{sender}");
        assert_eq!(json["failures"].as_array().map(Vec::len), Some(3));
        assert!(run.stderr.contains("does not take MR Image Storage"), "{}", run.stderr);
        let ct: Vec<Written> =
            written.into_iter().filter(|w| w.path.to_string_lossy().contains("CT1_")).collect();
        assert_eq!(publisher.received_uids(), uids(&ct), "{sender}");
        env.assert_staging_empty();
    }
}

#[test]
fn jpeg_lossless_reaches_an_uncompressed_only_publisher_with_dcmsend() {
    let dcmcjpeg = require("dcmcjpeg", "dcmtk");
    let plain = tempfile::tempdir().expect("plain");
    let study = Study::new("DOE^JANE", "PID002", "ACC002", vec![Series::new("MR", MR_IMAGE, 4)]);
    let written = dicom_gen::write_study(plain.path(), &study);
    let data = tempfile::tempdir().expect("jpeg");
    for file in &written {
        let out = data.path().join(file.path.file_name().expect("name"));
        let status = Command::new(&dcmcjpeg).arg("+e1").arg(&file.path).arg(&out).status().expect("dcmcjpeg");
        assert!(status.success(), "dcmcjpeg failed");
    }
    let publisher = Storescp::start(Publisher::UncompressedOnly);
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    env.run(&["--json", "relay", arg(data.path())]).expect_code(0);
    assert_eq!(publisher.received_uids(), uids(&written));

    // storescu cannot decompress it: nothing is accepted (76), and each
    // file says why and what to do.
    let publisher = Storescp::start(Publisher::UncompressedOnly);
    let env = TestEnv::publisher(publisher.port, "storescu", "");
    let run = env.run(&["--json", "relay", arg(data.path())]);
    run.expect_code(76);
    assert_eq!(run.json()["files_failed"], 4);
    let reason = run.json()["failures"][0]["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains("JPEG Lossless") && reason.contains("sender = \"dcmsend\""), "{reason}");
    assert!(publisher.received_uids().is_empty());
}

#[test]
fn a_folder_without_dicom_is_no_data() {
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    let data = tempfile::tempdir().expect("data");
    let run = env.run(&["--json", "relay", arg(data.path())]);
    run.expect_code(66);
    assert_eq!(run.json()["error"], "no DICOM data for accession_number");
    std::fs::write(data.path().join("notes.txt"), "x").expect("write");
    env.run(&["relay", arg(data.path())]).expect_code(66);
    env.run(&["relay", arg(&data.path().join("missing"))]).expect_code(66);
}

#[test]
fn a_stalled_publisher_ends_within_the_timeout() {
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::Stalling(30));
        let env = TestEnv::publisher(publisher.port, sender, "");
        // Shorter DIMSE timeout than the test defaults.
        let config = std::fs::read_to_string(&env.config)
            .expect("config")
            .replace("timeout_dimse_secs = 5", "timeout_dimse_secs = 1");
        std::fs::write(&env.config, config).expect("config");
        let data = tempfile::tempdir().expect("data");
        let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 2)]);
        dicom_gen::write_study(data.path(), &study);
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(76);
        let json = run.json();
        assert_eq!(json["error"], "DICOM relay failed", "{sender}");
        assert!(json["detail"].as_str().is_some_and(|d| d.contains("stopped answering")), "{json}");
        // Two files at one second each plus the release: nowhere near the 30 s sleep.
        assert!(run.elapsed < Duration::from_secs(20), "{sender} took {:?}", run.elapsed);
        env.assert_staging_empty();
    }
}

#[test]
fn a_total_deadline_kills_the_sender() {
    let publisher = Storescp::start(Publisher::Stalling(30));
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    let config = std::fs::read_to_string(&env.config)
        .expect("config")
        .replace("timeout_total_secs = 120", "timeout_total_secs = 2")
        .replace("timeout_dimse_secs = 5", "timeout_dimse_secs = 60");
    std::fs::write(&env.config, config).expect("config");
    let data = tempfile::tempdir().expect("data");
    dicom_gen::write_study(data.path(), &Study::new("A^B", "P", "A1", vec![Series::new("CT", CT_IMAGE, 1)]));
    let run = env.run(&["--json", "relay", arg(data.path())]);
    run.expect_code(76);
    assert!(
        run.json()["detail"].as_str().is_some_and(|d| d.contains("timeout_total_secs")),
        "{}",
        run.stdout
    );
    assert!(run.elapsed < Duration::from_secs(15), "took {:?}", run.elapsed);
    env.assert_staging_empty();
}

#[test]
fn a_missing_sender_is_a_configuration_error_naming_the_package() {
    for sender in SENDERS {
        let empty = tempfile::tempdir().expect("empty");
        let env = TestEnv::publisher(
            104,
            sender,
            &format!("[tools]\ndcmtk_dir = {:?}\n", empty.path().display().to_string()),
        );
        let data = tempfile::tempdir().expect("data");
        mixed_study(data.path());
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(78);
        let json = run.json();
        assert_eq!(json["error"], "configuration error");
        let detail = json["detail"].as_str().expect("detail");
        assert!(detail.contains(sender) && detail.contains("dcmtk"), "{detail}");
    }
}

#[test]
fn to_overrides_the_configured_publisher() {
    let publisher = Storescp::start(Publisher::AcceptAll);
    // The configured publisher is a closed port; --to names the live one.
    let env = TestEnv::publisher(crate::harness::free_port(), "dcmsend", "");
    let data = tempfile::tempdir().expect("data");
    let written = mixed_study(data.path());
    let to = format!("CDPUB@127.0.0.1:{}", publisher.port);
    let run = env.run(&["relay", arg(data.path()), "--to", &to]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("sent 6 files to the CD publisher CDPUB@127.0.0.1:"), "{}", run.stdout);
    assert_eq!(publisher.received_uids(), uids(&written));
}

#[test]
fn thousands_of_long_names_still_go_in_one_run() {
    // More bytes of file names than one command line should carry: the
    // files go by short names, and every one still arrives.
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    let data = tempfile::tempdir().expect("data");
    let deep = data.path().join("a-rather-long-folder-name-as-some-archives-write-them-000");
    let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 2500)]);
    let written = dicom_gen::write_study(&deep, &study);
    let run = env.run(&["--json", "relay", arg(data.path())]);
    run.expect_code(0);
    assert_eq!(run.json()["files_sent"], 2500);
    assert_eq!(publisher.received_uids(), uids(&written));
    env.assert_staging_empty();
}

/// Ctrl-C at a terminal: SIGINT to the whole foreground process group, as
/// the terminal sends it. pacs2cd (alone: its senders run in a group of
/// their own) stops the send itself and says how many files the publisher
/// had accepted, which must be what the publisher holds, or one less (the
/// file in flight).
#[test]
fn ctrl_c_mid_send_says_what_the_publisher_holds() {
    use std::os::unix::process::CommandExt;
    for sender in SENDERS {
        let publisher = Storescp::start(Publisher::Slow(1));
        let env = TestEnv::new(&format!(
            "audit_log = \"audit.log\"\n{}",
            TestEnv::publisher_section(publisher.port, sender, "")
        ));
        let data = tempfile::tempdir().expect("data");
        let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 8)]);
        dicom_gen::write_study(data.path(), &study);
        let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
            .args(["--config", arg(&env.config), "--json", "relay", arg(data.path())])
            .env("HOME", env.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A shell puts a job in a process group of its own; the
            // terminal signals that group.
            .process_group(0)
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while publisher.received_uids().len() < 2 {
            if std::time::Instant::now() > deadline || child.try_wait().expect("try_wait").is_some() {
                let _ = child.kill();
                let output = child.wait_with_output().expect("wait");
                panic!(
                    "{sender}: the send never started: {}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the process group our own child leads.
        assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
        let started = std::time::Instant::now();
        let _ = child.try_wait();
        let output = child.wait_with_output().expect("wait");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{sender}: took {:?} to stop",
            started.elapsed()
        );
        assert_eq!(output.status.code(), Some(130), "{sender}: {}", String::from_utf8_lossy(&output.stderr));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let reported = json["files_sent"].as_u64().expect("files_sent") as usize;
        // Give the robot a moment for the file in flight.
        std::thread::sleep(Duration::from_millis(1500));
        let held = publisher.received_uids().len();
        // The file in flight is said as such: what the robot holds is what
        // was reported, plus the file pacs2cd says may be there.
        let in_doubt = json["files_in_doubt"].as_u64().unwrap_or(0) as usize;
        assert!(held >= reported && held <= reported + in_doubt, "{sender}: holds {held}: {json}");
        if in_doubt > 0 {
            let detail = json["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(&format!("{reported} or {}", reported + 1)), "{sender}: {detail}");
        }
        assert!(reported >= 1, "{sender}: {json}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("partial disc job"), "{sender}: {stderr}");
        let audit = env.audit_lines("audit.log");
        assert_eq!(audit.last().map(|l| l["files"].clone()), Some(serde_json::json!(reported)), "{audit:?}");
        assert_eq!(audit.last().map(|l| l["outcome"].clone()), Some(serde_json::json!("interrupted")));
        env.assert_staging_empty();
        let left = crate::harness::processes_left_within(data.path(), Duration::from_secs(3));
        assert!(left.is_empty(), "{sender}: the sender outlived pacs2cd: {left:?}");
    }
}

/// Real-world kinds of file: classes storescu's default list lacks, lossless
/// and lossy compression, deflate, big endian, a damaged file. Each file that
/// does not arrive says why, in the words of the fixed set.
fn corpus(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    const SEGMENTATION: &str = "1.2.840.10008.5.1.4.1.1.66.4";
    let plain = tempfile::tempdir().expect("plain");
    let one = |name: &str, modality: &'static str, class: &'static str, eight_bit: bool| {
        let study = Study::new(
            "DOE^JOHN",
            "PID001",
            "ACC900",
            vec![Series { eight_bit, rows: 32, columns: 32, ..Series::new(modality, class, 1) }],
        );
        let written = dicom_gen::write_study(&plain.path().join(name), &study);
        written[0].path.clone()
    };
    let convert = |tool: &str, args: &[&str], from: &Path, to: &Path| {
        let status = Command::new(require(tool, "dcmtk")).args(args).arg(from).arg(to).status().expect(tool);
        assert!(status.success(), "{tool} {args:?} failed");
    };
    let mut files = Vec::new();
    let mut add = |name: &'static str, source: PathBuf, tool: Option<(&str, &[&str])>| {
        let target = dir.join(name);
        match tool {
            Some((tool, args)) => convert(tool, args, &source, &target),
            None => {
                std::fs::copy(&source, &target).expect("copy");
            }
        }
        files.push((name, target));
    };
    add("C01_CT.dcm", one("c01", "CT", CT_IMAGE, false), None);
    add("C02_MR_jpeg_lossless.dcm", one("c02", "MR", MR_IMAGE, false), Some(("dcmcjpeg", &["+e1"])));
    add("C03_SC_jpeg_baseline.dcm", one("c03", "OT", SECONDARY_CAPTURE, true), Some(("dcmcjpeg", &["+eb"])));
    add("C04_CT_jpegls_lossless.dcm", one("c04", "CT", CT_IMAGE, false), Some(("dcmcjpls", &["+el"])));
    add("C05_CT_jpegls_near.dcm", one("c05", "CT", CT_IMAGE, false), Some(("dcmcjpls", &["+en"])));
    add("C06_MR_rle.dcm", one("c06", "MR", MR_IMAGE, false), Some(("dcmcrle", &[])));
    add("C07_CT_deflated.dcm", one("c07", "CT", CT_IMAGE, false), Some(("dcmconv", &["+td"])));
    add("C08_CT_big_endian.dcm", one("c08", "CT", CT_IMAGE, false), Some(("dcmconv", &["+tb"])));
    add("C09_SEG.dcm", one("c09", "SEG", SEGMENTATION, true), None);
    let damaged = one("c10", "CT", CT_IMAGE, false);
    let bytes = std::fs::read(&damaged).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() - 600]).expect("truncate");
    add("C10_CT_truncated.dcm", damaged, None);
    files
}

#[test]
fn every_file_that_does_not_arrive_says_why() {
    let data = tempfile::tempdir().expect("data");
    let files = corpus(data.path());
    // (publisher, sender) -> the reason each file fails with (substring);
    // files not listed arrive.
    type Failing = &'static [(&'static str, &'static str)];
    let cases: [(Publisher, &str, Failing); 4] = [
        (Publisher::AcceptAll, "dcmsend", &[("C10", "cannot be read")]),
        (Publisher::AcceptAll, "storescu", &[("C10", "cannot be read")]),
        (
            Publisher::UncompressedOnly,
            "dcmsend",
            &[
                ("C03", "lossy image cannot be converted"),
                ("C05", "lossy image cannot be converted"),
                ("C10", "cannot be read"),
            ],
        ),
        (
            Publisher::UncompressedOnly,
            "storescu",
            &[
                ("C02", "storescu cannot decompress"),
                ("C03", "lossy image cannot be converted"),
                ("C04", "storescu cannot decompress"),
                ("C05", "lossy image cannot be converted"),
                ("C06", "storescu cannot decompress"),
                ("C10", "cannot be read"),
            ],
        ),
    ];
    for (behaviour, sender, failing) in cases {
        let publisher = Storescp::start(behaviour);
        let env = TestEnv::publisher(publisher.port, sender, "");
        let run = env.run(&["--json", "relay", arg(data.path())]);
        run.expect_code(75);
        let json = run.json();
        let failures: Vec<(String, String)> = json["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| {
                (f["file"].as_str().unwrap_or("").to_string(), f["reason"].as_str().unwrap_or("").to_string())
            })
            .collect();
        let case = format!("{behaviour:?} {sender}");
        assert_eq!(failures.len(), failing.len(), "{case}: {failures:#?}");
        for (prefix, reason) in failing {
            let (file, why) = failures
                .iter()
                .find(|(file, _)| file.starts_with(prefix))
                .unwrap_or_else(|| panic!("{case}: {prefix} not failed: {failures:#?}"));
            assert!(why.contains(reason), "{case}: {file}: {why}");
        }
        assert_eq!(json["files_sent"].as_u64(), Some((files.len() - failing.len()) as u64), "{case}");
        assert_eq!(
            publisher.received_uids().len(),
            files.len() - failing.len(),
            "{case}: the publisher holds what was reported"
        );
        env.assert_staging_empty();
    }
}
