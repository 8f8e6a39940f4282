//! Disc media: the DICOMDIR (dcmmkdir), ISO images (genisoimage, xorriso),
//! names from patients' names, and the image download through nginx.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::data::pacs_with_data;
use crate::dicom_gen;
use crate::harness::{Nginx, TestEnv, require};

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// (record type, referenced file ID) of every record of a DICOMDIR.
fn records(dicomdir: &Path) -> Vec<(String, String)> {
    let dump = Command::new(require("dcmdump", "dcmtk")).arg(dicomdir).output().expect("dcmdump");
    assert!(dump.status.success(), "dcmdump failed");
    let text = String::from_utf8_lossy(&dump.stdout).into_owned();
    let mut records = Vec::new();
    let mut kind = String::new();
    for line in text.lines() {
        let value = || line.split('[').nth(1).and_then(|v| v.split(']').next()).unwrap_or("").to_string();
        if line.contains("DirectoryRecordType") {
            kind = value();
        } else if line.contains("ReferencedFileID") {
            records.push((kind.clone(), value()));
        }
    }
    records
}

/// Every file ID component: at most 8 of `A-Z 0-9 _`.
fn conforms(file_id: &str) -> bool {
    let parts: Vec<&str> = file_id.split(['\\', '/']).collect();
    parts.len() <= 8
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 8
                && p.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn viewer(env: &TestEnv) -> String {
    let viewer = env.dir.path().join("viewer");
    std::fs::create_dir_all(viewer.join("lib")).expect("viewer");
    std::fs::write(viewer.join("mDicom.exe"), b"MZ fake viewer").expect("viewer");
    std::fs::write(viewer.join("lib/readme.txt"), b"viewer help").expect("viewer");
    format!("[tools]\nviewer_dir = {:?}\nviewer_autorun = \"mDicom.exe\"\n", viewer.display().to_string())
}

#[test]
fn the_dicomdir_indexes_every_file() {
    let (pacs, data) = pacs_with_data();
    let scratch = TestEnv::new("");
    let env = TestEnv::new(&format!("{}{}", pacs.config(""), viewer(&scratch)));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC001,ACC004", "--allow-mixed-patients", "-o", arg(&out)]);
    run.expect_code(0);
    let records = records(&out.join("DICOMDIR"));
    assert_eq!(records.len(), 9, "{records:?}");
    let kinds: BTreeSet<&str> = records.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(kinds.contains("IMAGE") && kinds.contains("SR DOCUMENT"), "{kinds:?}");
    for (_, file_id) in &records {
        assert!(conforms(file_id), "{file_id}");
        assert!(out.join(file_id.replace('\\', "/")).is_file(), "{file_id} is not on the disc");
    }
    let referenced: BTreeSet<String> = records
        .iter()
        .filter_map(|(_, id)| dicom_gen::read_sop_instance_uid(&out.join(id.replace('\\', "/"))))
        .collect();
    assert_eq!(referenced, data.uids(&["ACC001", "ACC004"]));
    // A real file-set ID, the viewer and its autorun file.
    let dump = Command::new(require("dcmdump", "dcmtk")).arg(out.join("DICOMDIR")).output().expect("dcmdump");
    assert!(String::from_utf8_lossy(&dump.stdout).contains("[ACC001_ACC004]"));
    assert!(out.join("mDicom.exe").is_file() && out.join("lib/readme.txt").is_file());
    let autorun = std::fs::read_to_string(out.join("AUTORUN.INF")).expect("autorun");
    assert!(autorun.contains("open=mDicom.exe"), "{autorun}");
}

/// Lists an image's files with xorriso (paths as Rock Ridge names them).
fn listing(image: &Path) -> Vec<String> {
    let output = Command::new(require("xorriso", "xorriso"))
        .args(["-indev"])
        .arg(image)
        .args(["-find", "/", "-type", "f"])
        .output()
        .expect("xorriso");
    String::from_utf8_lossy(&output.stdout).lines().map(|l| l.trim_matches('\'').to_string()).collect()
}

/// Extracts an image into a new folder.
fn extract(image: &Path, into: &Path) {
    let status = Command::new(require("xorriso", "xorriso"))
        .args(["-osirrox", "on", "-indev"])
        .arg(image)
        .args(["-extract", "/"])
        .arg(into)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("xorriso");
    assert!(status.success(), "extracting {} failed", image.display());
}

#[test]
fn iso_images_hold_the_disc_with_either_tool() {
    let (pacs, data) = pacs_with_data();
    for tool in ["genisoimage", "xorriso"] {
        let scratch = TestEnv::new("");
        let env = TestEnv::new(&format!("{}{}iso_tool = \"{tool}\"\n", pacs.config(""), viewer(&scratch)));
        let image = env.dir.path().join("disc.iso");
        let run = env.run(&["--json", "fetch", "ACC001,ACC003", &format!("--iso={}", image.display())]);
        run.expect_code(0);
        let json = run.json();
        assert!(json.get("folder").is_none(), "only the image was asked for: {json}");
        assert_eq!(json["iso_bytes"].as_u64(), image.metadata().ok().map(|m| m.len()));
        env.assert_staging_empty();
        let files = listing(&image);
        for expected in [
            "/DICOMDIR",
            "/DICOM/ST000001/SE000001/IM000001",
            "/DICOM/ST000002/SE000001/IM000002",
            "/mDicom.exe",
            "/lib/readme.txt",
            "/AUTORUN.INF",
            "/README.TXT",
            "/INDEX.HTM",
        ] {
            assert!(files.iter().any(|f| f == expected), "{tool}: {expected} not in {files:?}");
        }
        // What the image holds, sent back with storescu, is what the PACS holds.
        let extracted = env.dir.path().join("extracted");
        extract(&image, &extracted);
        let publisher = crate::harness::Storescp::start(crate::harness::Publisher::AcceptAll);
        let dicom: Vec<PathBuf> =
            files.iter().filter(|f| f.starts_with("/DICOM/")).map(|f| extracted.join(&f[1..])).collect();
        let status = Command::new(require("storescu", "dcmtk"))
            .env("TCP_NODELAY", "1")
            .args(["-aec", "CDPUB", "127.0.0.1", &publisher.port.to_string()])
            .args(&dicom)
            .status()
            .expect("storescu");
        assert!(status.success());
        assert_eq!(
            publisher.received_uids().into_iter().collect::<BTreeSet<_>>(),
            data.uids(&["ACC001", "ACC003"]),
            "{tool}"
        );
    }
}

#[test]
fn image_names_come_from_patient_names_safely() {
    let (pacs, _data) = pacs_with_data();
    let env = TestEnv::new(&pacs.config(""));
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    for (accession, expected) in [("ACC007", "MULLER_JOSE-ACC007.iso"), ("ACC005", "x_y-ACC005.iso")] {
        let run = env.run_in(&work, &["--json", "fetch", "--iso", accession]);
        run.expect_code(0);
        assert_eq!(run.json()["iso"], expected);
        assert!(work.join(expected).is_file());
    }
    let entries: Vec<_> = std::fs::read_dir(&work).expect("work").flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries.len(), 2, "nothing but the two images: {entries:?}");
    // The DICOMDIR carries the name as the PACS wrote it (UTF-8 here).
    let out = env.dir.path().join("muller");
    env.run(&["fetch", "ACC007", "-o", arg(&out)]).expect_code(0);
    let dicomdir = std::fs::read(out.join("DICOMDIR")).expect("DICOMDIR");
    let name = "MÜLLER^JOSÉ".as_bytes();
    assert!(dicomdir.windows(name.len()).any(|w| w == name), "the DICOMDIR lacks the UTF-8 name");
    // An existing image is not overwritten without --force.
    let run = env.run_in(&work, &["--json", "fetch", "ACC007", "--iso"]);
    run.expect_code(78);
    env.run_in(&work, &["fetch", "ACC007", "--iso", "--force"]).expect_code(0);
}

#[test]
fn the_mkiso_button_downloads_the_image() {
    let (pacs, data) = pacs_with_data();
    let env = TestEnv::hospital(&format!("{}[cgi]\nallow_anonymous = true\n", pacs.config("")));
    let nginx = Nginx::start(&env.config, &[]);
    let response = nginx.get_bytes("/mkiso_multiple.php?accession_number=ACC007");
    assert_eq!(response.status, 200, "{:?}", response.headers);
    assert_eq!(response.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(
        response.header("Content-Disposition"),
        Some(
            "attachment; filename=\"MULLER_JOSE-ACC007.iso\"; filename*=UTF-8''M%C3%9CLLER_JOS%C3%89-ACC007.iso"
        )
    );
    assert_eq!(response.header("Content-Length").and_then(|l| l.parse().ok()), Some(response.body.len()));
    let image = env.dir.path().join("downloaded.iso");
    std::fs::write(&image, &response.body).expect("write image");
    let extracted = env.dir.path().join("extracted");
    extract(&image, &extracted);
    let got: BTreeSet<String> = dicom_gen::sop_instance_uids(&extracted.join("DICOM")).into_iter().collect();
    assert_eq!(got, data.uids(&["ACC007"]));
    env.assert_staging_empty();

    let two = nginx.get_bytes("/api/iso/download?accession_numbers=ACC001,ACC003");
    assert_eq!(two.status, 200);
    assert!(two.header("Content-Disposition").is_some_and(|d| d.contains("DOE_JOHN-ACC001_ACC003.iso")));

    // Errors before the first byte are the table's JSON.
    let missing = nginx.get("/mkiso_multiple.php?accession_number=NOPE");
    assert_eq!((missing.status, missing.json()["error"].as_str()), (404, Some("accession_number not found")));
    let head = nginx.request("HEAD", "/mkiso_multiple.php?accession_number=ACC001", &[]);
    assert_eq!(head.status, 200);
    env.assert_staging_empty();
    let audit = env.audit_lines("audit/audit.log");
    assert!(
        audit.iter().any(|l| l["command"] == "cgi iso" && l["patients"][0]["id"] == "PID005"),
        "{audit:?}"
    );
}
