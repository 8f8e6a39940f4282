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

/// Classes getscu 3.6.7 does not propose (src/dicom/getscu.rs), with the
/// modality each series is given here.
const BEYOND_GETSCU: [(&str, &str); 7] = [
    ("OT", CSA_NON_IMAGE),
    ("SR", "1.2.840.10008.5.1.4.1.1.88.68"), // Radiopharmaceutical Radiation Dose SR
    ("SR", ACQUISITION_CONTEXT_SR),
    ("SR", "1.2.840.10008.5.1.4.1.1.88.73"), // Patient Radiation Dose SR
    ("OT", "1.2.840.10008.5.1.4.1.1.30"),    // Parametric Map
    ("OT", "1.2.840.10008.5.1.4.1.1.104.3"), // Encapsulated STL
    ("CT", "1.2.840.10008.5.1.4.1.1.200.2"), // CT Performed Procedure Protocol
];

/// A study of 2 CT images and one object of each class in `classes`.
fn study_beyond_getscu(accession: &str, classes: &[(&'static str, &'static str)]) -> Study {
    let mut series = vec![Series::new("CT", CT_IMAGE, 2)];
    series.extend(classes.iter().map(|(modality, class)| Series::new(modality, class, 1)));
    Study::new("DOE^JOHN", "PID001", accession, series)
}

/// The files delivered through the move port, by the JSON's delivered_by.
fn moved_files(run: &crate::harness::Run) -> u64 {
    run.json()["delivered_by"].as_array().into_iter().flatten().filter_map(|d| d["files"].as_u64()).sum()
}

/// By C-GET with a move port: a study holding a private object and each
/// newer class getscu cannot take goes by C-MOVE (said in the log), the
/// other study of the job by C-GET; the publisher and the disc get every
/// object, each once, and nothing is asked twice.
#[test]
fn c_get_hands_a_study_getscu_cannot_take_to_c_move() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let beyond =
        dicom_gen::write_study(&source.path().join("a"), &study_beyond_getscu("ACC310", &BEYOND_GETSCU));
    let plain = dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("DOE^JOHN", "PID001", "ACC311", vec![Series::new("CT", CT_IMAGE, 3)]),
    );
    let files: Vec<Written> = beyond.iter().chain(&plain).cloned().collect();
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::Promiscuous);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config("retrieve = \"get\"\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC310", "ACC311"]);
    run.expect_code(0);
    assert_eq!(publisher.received_once(), uids(&files));
    assert_eq!(publisher.received_uids().len(), files.len(), "each object sent once");
    assert!(
        run.stderr.contains("cannot take by C-GET")
            && run.stderr.contains("retrieving it by C-MOVE")
            && run.stderr.contains("Acquisition Context SR Storage")
            && run.stderr.contains("private SOP class 1.3.12.2.1107.5.9.1"),
        "{}",
        run.stderr
    );
    assert_eq!(moved_files(&run), beyond.len() as u64, "only the study C-GET cannot take came by C-MOVE");
    assert!(!run.stderr.contains("twice"), "nothing fetched twice: {}", run.stderr);
    env.assert_staging_empty();

    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "ACC310", "ACC311", "-o", arg(&out)]);
    run.expect_code(0);
    let (on_disc, _) = disc_content(&out);
    assert_eq!(on_disc, uids(&files), "every object on the disc");
    assert!(run.json()["warnings"].to_string().contains("not in its DICOMDIR"), "{}", run.stdout);
    env.assert_staging_empty();
}

/// By C-GET without a move port (nothing to hand the study to): the job
/// fails, quoting the PACS's counts, naming the objects' classes, and the
/// ways out. By C-MOVE the same study comes whole.
#[test]
fn objects_c_get_cannot_take_are_named_with_the_way_out() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    let study = study_beyond_getscu("ACC301", &[("SR", ACQUISITION_CONTEXT_SR)]);
    let files = dicom_gen::write_study(source.path(), &study);
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::Promiscuous);
    let without_port =
        pacs.config("retrieve = \"get\"\n").replace(&format!("move_port = {}\n", pacs.move_port), "");
    assert!(!without_port.contains("move_port"), "{without_port}");
    let env =
        TestEnv::new(&format!("{without_port}{}", TestEnv::publisher_section(publisher.port, "dcmsend", "")));
    let run = env.run(&["--json", "print", "ACC301"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("1 failed"), "the PACS's counts: {detail}");
    assert!(
        detail.contains("Acquisition Context SR Storage (1.2.840.10008.5.1.4.1.1.88.71)")
            && detail.contains("set pacs.move_port")
            && detail.contains("pacs.retrieve = \"move\""),
        "the objects and the ways out: {detail}"
    );
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

/// dcmqrscp stores the newer classes (not the private one) but can send
/// them to nobody: its C-MOVE proposes the same 120 classes as getscu
/// (dcmqrdb). Both ways the job fails before anything is sent, with the
/// PACS's counts and the objects that did not come; by C-GET with the way
/// out too (dcmqrscp names no SOP class in its IMAGE-level answers, so the
/// study cannot be steered to C-MOVE ahead, which would not help here).
#[test]
fn dcmqrscp_cannot_send_newer_classes_and_the_job_says_so() {
    let pacs = Dcmqrscp::start();
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(source.path(), &study_beyond_getscu("ACC320", &BEYOND_GETSCU[1..]));
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::Promiscuous);
    for retrieve in ["move", "get"] {
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(&format!("allow_unproven = true\nretrieve = \"{retrieve}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC320"]);
        run.expect_code(75);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("6 failed")
                && detail.contains("2 completed")
                && detail.contains("6 of 8 images")
                && detail.contains("(SR): 1"),
            "{retrieve}: {detail}"
        );
        if retrieve == "get" {
            assert!(detail.contains("pacs.retrieve = \"move\""), "{detail}");
        }
        assert!(publisher.received_uids().is_empty(), "{retrieve}: nothing sent");
        env.assert_staging_empty();
    }
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

/// A PACS that sends a study's last images after its final C-MOVE
/// response, so late that they reach the next job's receiver after that
/// job asked for its own study (fake PACS `late --late-until-next`). The
/// first job says which images did not arrive; the next one drops the
/// earlier job's images with a log line, is whole, and names nothing of
/// them in its verdict.
#[test]
fn late_images_reaching_the_next_jobs_c_move_are_dropped_not_blamed() {
    let source = tempfile::tempdir().expect("source");
    let earlier = dicom_gen::write_study(
        &source.path().join("a"),
        &Study::new("DOE^JOHN", "PID001", "EARLY2", vec![Series::new("CT", CT_IMAGE, 10)]),
    );
    let next = dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("ROE^JANE", "PID002", "NEXT2", vec![Series::new("MR", MR_IMAGE, 5)]),
    );
    let files: Vec<Written> = earlier.iter().chain(&next).cloned().collect();
    let pacs = FakePacs::start("late", &files, &["--late", "3", "--late-once", "--late-until-next"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let first = env.run(&["--json", "print", "EARLY2"]);
    first.expect_code(75);
    let detail = first.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("3 of 10 images"), "the first job reports them: {detail}");
    let next_run = env.run(&["--json", "print", "NEXT2"]);
    next_run.expect_code(0);
    assert!(
        next_run.stderr.contains("3 image(s)")
            && next_run.stderr.contains("arrived late: an earlier job asked for it, this job did not"),
        "{}",
        next_run.stderr
    );
    assert!(pacs.log().contains("the next C-MOVE came"), "{}", pacs.log());
    assert_eq!(next_run.json()["files_sent"], 5, "{}", next_run.stdout);
    assert!(!next_run.stdout.contains("DOE"), "nothing of the earlier patient: {}", next_run.stdout);
    assert_eq!(publisher.received_once(), uids(&next));
    env.assert_staging_empty();
}

/// A PACS whose AE table points PACS2CD at another host or port: it
/// reports the move done while nothing reached pacs2cd. The job says the
/// PACS sent the images elsewhere, what to check in its AE table, and
/// quotes the PACS's status and counts; the legacy loop says the same,
/// not "no image arrived".
#[test]
fn a_move_destination_mapped_elsewhere_is_named() {
    let elsewhere = Storescp::start(Publisher::AcceptAll);
    let pacs = Dcmqrscp::start_sending_to(&[], Some(elsewhere.port));
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "ACC330", vec![Series::new("CT", CT_IMAGE, 3)]),
    );
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::AcceptAll);
    for strategy in ["study", "legacy-modalities"] {
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(&format!("allow_unproven = true\nstrategy = \"{strategy}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC330"]);
        run.expect_code(69);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("sent them elsewhere")
                && detail.contains("AE table must list PACS2CD")
                && detail.contains(&format!("port {}", pacs.move_port))
                && detail.contains("(Success: 0 failed, 3 completed sub-operations)"),
            "{strategy}: {detail}"
        );
        assert!(!detail.contains("no image of study"), "{strategy}: {detail}");
        env.assert_staging_empty();
    }
    // Once per job: the PACS did send them, elsewhere.
    let sent_elsewhere: BTreeSet<String> = elsewhere.received_uids().into_iter().collect();
    assert_eq!(sent_elsewhere, uids(&files));
    assert!(publisher.received_uids().is_empty());
}

/// The PACS knows our AE title at a port where nothing listens: every
/// sub-operation fails, nothing arrives, and the job points at the AE
/// table. A PACS that does not know our AE title at all ("Refused: Move
/// Destination unknown"): the legacy loop says so too, never "no image
/// of study ... arrived".
#[test]
fn a_move_destination_unreachable_or_unknown_is_named_in_either_strategy() {
    let closed = crate::harness::free_port();
    let pacs = Dcmqrscp::start_sending_to(&[], Some(closed));
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "ACC331", vec![Series::new("CT", CT_IMAGE, 2)]),
    );
    pacs.load(&files);
    let publisher = Storescp::start(Publisher::AcceptAll);
    for strategy in ["study", "legacy-modalities"] {
        let config = format!(
            "{}{}",
            pacs.config(&format!("allow_unproven = true\nstrategy = \"{strategy}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        );
        let env = TestEnv::new(&config);
        let run = env.run(&["--json", "print", "ACC331"]);
        run.expect_code(69);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("could not deliver")
                && detail.contains("AE table must list PACS2CD")
                && detail.contains("2 failed"),
            "{strategy}: {detail}"
        );
        assert!(!detail.contains("no image of study"), "{strategy}: {detail}");
        env.assert_staging_empty();

        let stranger = TestEnv::new(&config.replace("calling_ae = \"PACS2CD\"", "calling_ae = \"STRANGER\""));
        let run = stranger.run(&["--json", "print", "ACC331"]);
        run.expect_code(69);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("does not know AE STRANGER as a move destination")
                && detail.contains("Move Destination unknown"),
            "{strategy}: {detail}"
        );
        assert!(!detail.contains("no image of study"), "{strategy}: {detail}");
        stranger.assert_staging_empty();
    }
}

/// The same across accounts, as deployed: a technician's job leaves the
/// late images, a second technician's job drops them. The record the
/// first leaves in the shared root is its own (0640), holds digests, not
/// StudyInstanceUIDs, and the second member can neither rewrite it nor
/// read a UID from it.
#[test]
fn late_images_of_another_technicians_job_are_dropped_and_the_record_tells_nothing() {
    use crate::harness::{SECOND_MEMBER, TECHNICIAN, own};
    use std::os::unix::fs::MetadataExt;
    let source = tempfile::tempdir().expect("source");
    let earlier = dicom_gen::write_study(
        &source.path().join("a"),
        &Study::new("DOE^JOHN", "PID001", "EARLY3", vec![Series::new("CT", CT_IMAGE, 10)]),
    );
    let next = dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("ROE^JANE", "PID002", "NEXT3", vec![Series::new("MR", MR_IMAGE, 5)]),
    );
    let files: Vec<Written> = earlier.iter().chain(&next).cloned().collect();
    let pacs = FakePacs::start("late", &files, &["--late", "3", "--late-once", "--late-until-next"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let home = env.dir.path().join("homes");
    std::fs::create_dir(&home).expect("homes");
    own(&home, "root", "root", 0o755);
    for user in [TECHNICIAN, SECOND_MEMBER] {
        let dir = home.join(user);
        std::fs::create_dir(&dir).expect("home");
        own(&dir, user, user, 0o700);
    }
    env.run_as(TECHNICIAN, &home.join(TECHNICIAN), &["--json", "print", "EARLY3"]).expect_code(75);
    let records: Vec<_> = std::fs::read_dir(&env.staging)
        .expect("root")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("moved-"))
        .collect();
    assert_eq!(records.len(), 1, "one record, the technician's");
    let record = records[0].path();
    let meta = std::fs::metadata(&record).expect("record");
    assert_eq!(meta.mode() & 0o777, 0o640, "its owner's alone to write");
    assert_eq!(crate::harness::uid_of(TECHNICIAN), meta.uid());
    let text = std::fs::read_to_string(&record).expect("record");
    // Digests only: no UID (dotted digits) in it.
    assert!(!text.is_empty() && !text.contains('.'), "a StudyInstanceUID in the record: {text}");
    assert!(text.lines().all(|line| line.split_once(' ').is_some_and(|(_, key)| key.len() == 64)), "{text}");
    let status = Command::new("setpriv")
        .args(["--reuid", SECOND_MEMBER, "--regid", SECOND_MEMBER, "--init-groups", "--"])
        .args(["sh", "-c", &format!(": > '{}'", record.display())])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh");
    assert!(!status.success(), "the second member emptied the technician's record");
    let run = env.run_as(SECOND_MEMBER, &home.join(SECOND_MEMBER), &["--json", "print", "NEXT3"]);
    run.expect_code(0);
    assert!(run.stderr.contains("arrived late: an earlier job asked for it"), "{}", run.stderr);
    assert_eq!(publisher.received_once(), uids(&next));
    env.assert_staging_empty();
}
