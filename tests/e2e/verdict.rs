//! The verdict matches the robot under the faults a hospital host meets:
//! a full staging disk, hosts that do not resolve, a PACS that aborts or
//! sends elsewhere, a short delivery accepted on purpose, many refused
//! files, a silent PACS; and `check` catches what a job would then fail.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::big_pacs;
use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study, Written};
use crate::harness::{FakePacs, Publisher, Storescp, TestEnv, require_deployment};

/// A tmpfs of `megabytes`, mounted for the test and unmounted after.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Tmpfs {
        require_deployment();
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "cannot mount a tmpfs (the tests run as root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills it to the last block.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M"])
            .arg(format!("of={}", self.path().join("filler").display()))
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn study(dir: &Path, accession: &str, count: usize) -> Vec<Written> {
    let study = Study::new("DOE^JOHN", "PID001", accession, vec![Series::new("CT", CT_IMAGE, count)]);
    dicom_gen::write_study(dir, &study)
}

#[test]
fn a_staging_disk_that_fills_mid_retrieve_is_named_not_blamed_on_the_pacs() {
    // 400 images of 256x256 (52 MB) into 20 MB.
    let pacs = big_pacs(256);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let disk = Tmpfs::mount(20);
    for retrieve in ["move", "get"] {
        let mut env = TestEnv::new(&format!(
            "audit_log = \"audit.log\"\nstaging_min_free_mb = 1\n{}{}",
            pacs.config(&format!("retrieve = \"{retrieve}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let staging = disk.path().join(format!("stage-{retrieve}"));
        env.set_staging(&staging);
        let run = env.run(&["--json", "print", "BIG001"]);
        run.expect_code(74);
        let json = run.json();
        assert_eq!(json["error"], "staging disk full", "{retrieve}: {json}");
        // Stopped by its estimate before the disk filled, not by a write
        // that failed.
        assert!(
            json["detail"].as_str().is_some_and(|d| d.contains("MB free") && d.contains("still to come")),
            "{retrieve}: {json}"
        );
        assert!(publisher.received_uids().is_empty(), "{retrieve}");
        let left: Vec<_> =
            std::fs::read_dir(&staging).expect("staging").flatten().map(|e| e.file_name()).collect();
        // The lock and the record of studies moved to the port stay.
        assert!(
            left.iter().all(|n| n == "retrieve.lock" || n.to_string_lossy().starts_with("moved-")),
            "{retrieve}: {left:?}"
        );
    }
    // A disk short from the start: refused before any traffic, and check
    // says so.
    disk.fill();
    let mut env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    env.set_staging(&disk.path().join("stage-move"));
    let run = env.run(&["--json", "print", "BIG001"]);
    run.expect_code(74);
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("before a retrieve")), "{}", run.stdout);
    let check = env.run(&["check"]);
    let line = check.stdout.lines().find(|l| l.contains("staging space")).unwrap_or_default().to_string();
    assert!(line.starts_with("FAIL"), "{}", check.stdout);
    assert_ne!(check.code, Some(0));
}

/// The retrieve fits, the disc image does not: the disk is named (74,
/// "staging disk full"), not the configuration; nothing is left.
#[test]
fn a_staging_disk_too_small_for_the_image_is_named() {
    let (pacs, _data) = crate::data::pacs_with_data();
    let disk = Tmpfs::mount(20);
    let staging = disk.path().join("stage");
    std::fs::create_dir(&staging).expect("staging");
    // About 2 MB left: the images fit, their image and its margin do not.
    let filler = disk.path().join("filler");
    let status = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=18"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status()
        .expect("dd");
    assert!(status.success());
    let mut env = TestEnv::new(&format!(
        "staging_min_free_mb = 1
{}",
        pacs.config("")
    ));
    env.set_staging(&staging);
    let image = env.dir.path().join("disc.iso");
    let run = env.run(&["--json", "fetch", "ACC001", &format!("--iso={}", image.display())]);
    run.expect_code(74);
    let json = run.json();
    assert_eq!(json["error"], "staging disk full", "{json}");
    assert!(json["detail"].as_str().is_some_and(|d| d.contains("the disc image needs about")), "{json}");
    assert!(!image.exists());
    env.assert_staging_empty();
}

/// The image is in place and the folder cannot follow: the job fails and
/// takes its image back (a failed job leaves no disc), naming the patient
/// in the audit log.
#[test]
fn a_folder_that_cannot_follow_the_image_takes_it_back() {
    let (pacs, _data) = crate::data::pacs_with_data();
    let env = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", pacs.config("")));
    let image = env.dir.path().join("disc.iso");
    let blocked = env.dir.path().join("file");
    std::fs::write(&blocked, "a file, not a folder").expect("write");
    let run = env.run(&[
        "--json",
        "fetch",
        "ACC003",
        &format!("--iso={}", image.display()),
        "-o",
        blocked.join("out").to_str().expect("utf-8"),
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(!image.exists(), "the image of a failed job stayed");
    let finished = env.audit_lines("audit.log").pop().expect("finished");
    assert_eq!(finished["patients"][0]["id"], "PID001", "{finished}");
    env.assert_staging_empty();
}

#[test]
fn a_full_staging_disk_loses_no_answer_of_the_publisher() {
    let data = tempfile::tempdir().expect("data");
    study(data.path(), "ACC001", 120);
    let disk = Tmpfs::mount(4);
    let staging = disk.path().join("stage");
    std::fs::create_dir(&staging).expect("staging");
    disk.fill();
    for sender in ["dcmsend", "storescu"] {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let mut env = TestEnv::publisher(publisher.port, sender, "");
        env.set_staging(&staging);
        let run = env.run(&["--json", "relay", data.path().to_str().expect("utf-8")]);
        let held = publisher.received_uids().len();
        match run.code {
            // The verdict is what the robot holds: every file, or none and
            // the disk named.
            Some(0) => assert_eq!((held, run.json()["files_sent"].as_u64()), (120, Some(120)), "{sender}"),
            Some(74) => {
                assert_eq!(held, 0, "{sender}: {}", run.stdout);
                assert_eq!(run.json()["error"], "staging disk full", "{sender}");
            }
            other => panic!("{sender}: exit {other:?}, publisher holds {held}: {}{}", run.stdout, run.stderr),
        }
    }
}

#[test]
fn a_short_delivery_accepted_on_purpose_says_partial_disc_first() {
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path(), "ACC100", 30);
    let pacs = FakePacs::start("short", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config("allow_unproven = true\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["print", "ACC100", "--allow-partial"]);
    run.expect_code(0);
    let verdict = run.stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("PARTIAL DISC, 5 images missing"), "{}", run.stdout);
    let run = env.run(&["--json", "print", "ACC100", "--allow-partial"]);
    assert_eq!((run.json()["partial"].as_bool(), run.json()["missing"].as_u64()), (Some(true), Some(5)));
    let audit = env.audit_lines("audit.log");
    let last = audit.last().expect("audit");
    assert_eq!(
        (last["outcome"].as_str(), last["missing"].as_u64()),
        (Some("partial disc"), Some(5)),
        "{last}"
    );
}

#[test]
fn many_refused_files_leave_the_verdict_on_the_screen() {
    let data = tempfile::tempdir().expect("data");
    let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("MR", MR_IMAGE, 300)]);
    dicom_gen::write_study(data.path(), &study);
    let publisher = Storescp::start(Publisher::CtOnly);
    let env = TestEnv::publisher(publisher.port, "dcmsend", "");
    let run = env.run(&["relay", data.path().to_str().expect("utf-8")]);
    run.expect_code(76);
    let lines: Vec<&str> = run.stderr.lines().collect();
    // A 24-row terminal: the verdict is the last line, well within it.
    assert!(lines.len() <= 12, "{} lines:\n{}", lines.len(), run.stderr);
    let last = lines.last().unwrap_or(&"");
    assert!(last.starts_with("pacs2cd:") && last.contains("300"), "{}", run.stderr);
    assert!(run.stderr.contains("300 files:"), "{}", run.stderr);
    // --json keeps every file.
    let run = env.run(&["--json", "relay", data.path().to_str().expect("utf-8")]);
    assert_eq!(run.json()["failures"].as_array().map(Vec::len), Some(300));
}

#[test]
fn advice_comes_from_the_real_cause() {
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path(), "ACC100", 30);
    let publisher = Storescp::start(Publisher::AcceptAll);
    // A PACS host that does not resolve (no DNS packet: glibc refuses an
    // empty label), and a publisher host alike: both 69, said so.
    let env = TestEnv::new(&format!(
        "[pacs]\nhost = \"pacs..invalid\"\n{}",
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(69);
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("does not resolve")), "{}", run.stdout);
    let pacs = FakePacs::start("normal", &files, &[]);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "").replace("127.0.0.1", "publisher..invalid")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "CD Publisher unreachable");
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("does not resolve")), "{}", run.stdout);

    // A PACS that aborts mid-retrieve: how many came, and no AE advice.
    let pacs = FakePacs::start("abort", &files, &["--deliver", "4"]);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("ended the association during the C-MOVE")
            && detail.contains("26 of 30 images")
            && !detail.contains("known to it"),
        "{detail}"
    );

    // A PACS that does not know our AE as a move destination: its AE
    // table, not a retry.
    let pacs = FakePacs::start("normal", &files, &[]);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config("").replace("calling_ae = \"PACS2CD\"", "calling_ae = \"STRANGER\""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(69);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("does not know AE STRANGER as a move destination"), "{detail}");

    // A PACS whose AE table points us elsewhere: it says Success, nothing
    // came, and the job says where to look.
    let elsewhere = Storescp::start(Publisher::AcceptAll);
    let pacs =
        FakePacs::start("normal", &files, &["--peer", &format!("PACS2CD=127.0.0.1:{}", elsewhere.port)]);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC100"]);
    run.expect_code(69);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("sent them elsewhere") && detail.contains("AE table"), "{detail}");
    assert!(publisher.received_uids().is_empty(), "nothing reached the robot through us");
}

/// Reads a child's stderr lines with the time each came.
fn timed_lines(mut child: std::process::Child) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let stderr = child.stderr.take().expect("stderr");
    let lines: Vec<(Duration, String)> =
        BufReader::new(stderr).lines().map_while(Result::ok).map(|line| (started.elapsed(), line)).collect();
    let _ = child.wait();
    lines
}

#[test]
fn a_silent_pacs_never_leaves_the_screen_blank() {
    // A "PACS" that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let env = TestEnv::new(&format!(
        "[pacs]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_acse_secs = 4\n[cd_publisher]\nhost = \"127.0.0.1\"\nport = 9\n"
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args([
            "--config",
            env.config.to_str().expect("utf-8"),
            "--no-progress",
            "print",
            "ACC100",
            "--dry-run",
        ])
        .env("HOME", env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let lines = timed_lines(child);
    let (first_at, first) = lines.first().cloned().unwrap_or_default();
    assert!(first_at < Duration::from_millis(300), "first line after {first_at:?}: {first}");
    assert!(first.contains("looking up ACC100 at the PACS"), "{lines:?}");
    assert!(lines.iter().any(|(_, l)| l.contains("still waiting for the PACS")), "{lines:?}");
    drop(silent);
}

#[test]
fn check_catches_what_a_job_would_fail() {
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path(), "ACC100", 3);
    let pacs = FakePacs::start("normal", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}[cgi]\nallow_anonymous = false\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    // The move port held by another program.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", pacs.move_port)).expect("squat");
    let check = env.run(&["check"]);
    assert_ne!(check.code, Some(0), "{}", check.stdout);
    let failed = |item: &str| check.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains(item));
    assert!(failed("move port"), "{}", check.stdout);
    assert!(check.stdout.lines().last().is_some_and(|l| l.contains("FAILED")), "{}", check.stdout);
    drop(squatter);
    // A dry run with the publisher switched off fails as the job would.
    drop(publisher);
    let run = env.run(&["--json", "print", "--dry-run", "ACC100"]);
    run.expect_code(69);
    assert_eq!(run.json()["error"], "CD Publisher unreachable");
}

/// `check` asks the PACS to move a study to this AE while nothing listens
/// on the move port (under the retrieve lock): an AE the PACS's table
/// lacks is named; one it knows passes; one it maps elsewhere is named;
/// nothing reaches pacs2cd or the publisher. Without an accession, a
/// study that does not exist proves nothing on dcmqrscp, and check says so.
#[test]
fn check_probes_whether_the_pacs_knows_this_ae_as_a_move_destination() {
    use crate::harness::Dcmqrscp;
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path(), "ACC100", 3);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let line = |run: &crate::harness::Run| {
        run.stdout.lines().find(|l| l.contains("C-MOVE destination")).unwrap_or_default().to_string()
    };
    let pacs = Dcmqrscp::start();
    pacs.load(&files);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    // An outsider who sees movescu start and tries to take the move port
    // to receive the probe's study: the probe holds it the whole time.
    let squatted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saw_movescu = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let squatter = {
        let (squatted, saw, done, port, pacs_port) =
            (squatted.clone(), saw_movescu.clone(), done.clone(), pacs.move_port, pacs.dicom_port);
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let running = crate::harness::processes_mentioning("movescu")
                    .iter()
                    .any(|line| line.contains(&format!(" {pacs_port} ")));
                if running {
                    saw.store(true, std::sync::atomic::Ordering::Relaxed);
                    if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
                        squatted.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let known = env.run(&["check", "ACC100"]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    squatter.join().expect("squatter");
    assert!(saw_movescu.load(std::sync::atomic::Ordering::Relaxed), "the probe's movescu was never seen");
    assert!(
        !squatted.load(std::sync::atomic::Ordering::Relaxed),
        "another program took the move port mid-probe"
    );
    assert!(
        line(&known).starts_with("ok")
            && line(&known).contains("knows AE PACS2CD")
            && line(&known).contains("called port"),
        "{}",
        known.stdout
    );
    let unproven = env.run(&["check"]);
    assert!(line(&unproven).contains("proves nothing"), "{}", unproven.stdout);
    let stranger = TestEnv::new(&format!(
        "{}{}",
        pacs.config("").replace("calling_ae = \"PACS2CD\"", "calling_ae = \"NOBODY\""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let unknown = stranger.run(&["check", "ACC100"]);
    assert_ne!(unknown.code, Some(0), "{}", unknown.stdout);
    assert!(
        line(&unknown).starts_with("FAIL")
            && line(&unknown).contains("does not know AE NOBODY as a move destination"),
        "{}",
        unknown.stdout
    );
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
    // A PACS whose table maps PACS2CD to another port: the probe's images
    // went there, and check names the table.
    let elsewhere = Storescp::start(Publisher::AcceptAll);
    let mapped = Dcmqrscp::start_sending_to(&[], Some(elsewhere.port));
    mapped.load(&files);
    let env = TestEnv::new(&format!(
        "{}{}",
        mapped.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["check", "ACC100"]);
    assert!(
        line(&run).starts_with("FAIL") && line(&run).contains("maps PACS2CD to another host or port"),
        "{}",
        run.stdout
    );
    env.assert_staging_empty();
}

/// The image fits the staging disk but not the output's (another file
/// system): the output disk is named (74), not the configuration; with
/// --force the old image stays whole, and no partial image ever has its
/// name.
#[test]
fn a_full_output_disk_is_named_and_keeps_the_old_image() {
    let (pacs, _data) = crate::data::pacs_with_data();
    let disk = Tmpfs::mount(2);
    let image = disk.path().join("disc.iso");
    // 1.8 of 2 MB taken: the 0.4 MB image does not fit beside it.
    let old = vec![7u8; 1_800_000];
    std::fs::write(&image, &old).expect("old image");
    let env = TestEnv::new(&pacs.config(""));
    let run = env.run(&["--json", "fetch", "ACC001", "--force", &format!("--iso={}", image.display())]);
    run.expect_code(74);
    let json = run.json();
    assert_eq!(json["error"], "staging disk full", "{json}");
    assert!(json["detail"].as_str().is_some_and(|d| d.contains("output disk full")), "{json}");
    assert_eq!(
        std::fs::read(&image).expect("the old image"),
        old,
        "the old image was replaced by a partial one"
    );
    let left: Vec<_> =
        std::fs::read_dir(disk.path()).expect("disk").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "only the old image: {left:?}");
    env.assert_staging_empty();
}
