//! Hot-folder robots: `print` to an Epson TD Bridge simulator
//! (tests/support/tdbridge_sim.py) and a Primera PTBurn simulator
//! (tests/support/ptburn_sim.py), both written from the documented formats,
//! that check each job file's keys and that its DATA makes a whole disc.
//! A real Orthanc PACS behind; every robot trouble as its exit code and
//! words; Ctrl-C cancelling a placed job; a disc too big for the media.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::data::pacs_with_data;
use crate::harness::{Orthanc, Server, TestEnv, pynetdicom_python, wait_for_ready};

/// Which robot a simulator plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    TdBridge,
    PtBurn,
}

impl Kind {
    fn script(self) -> &'static str {
        match self {
            Kind::TdBridge => "tdbridge_sim.py",
            Kind::PtBurn => "ptburn_sim.py",
        }
    }

    /// The status file (TD Bridge) or folder (PTBurn), in the robot's dir.
    fn status(self) -> &'static str {
        match self {
            Kind::TdBridge => "TDBStatus.txt",
            Kind::PtBurn => "Status",
        }
    }

    /// What a job file in progress ends with.
    fn burning(self) -> &'static str {
        ".INP"
    }
}

/// A simulator, its hot folder, data folder and status in a folder of its
/// own; stopped (with its process group) on drop.
pub struct RobotSim {
    pub dir: TempDir,
    kind: Kind,
    _server: Server,
}

pub type TdBridge = RobotSim;

impl RobotSim {
    fn start(mode: &str, step: f64) -> RobotSim {
        RobotSim::start_kind(Kind::TdBridge, mode, step, &|_| {})
    }

    /// `prepare` runs on the robot's dir once its folders exist, before the
    /// simulator starts (the live page makes them the staging group's).
    pub fn start_kind(kind: Kind, mode: &str, step: f64, prepare: &dyn Fn(&Path)) -> RobotSim {
        let dir = tempfile::tempdir().expect("robot dir");
        for folder in ["jobs", "discs", "state"] {
            std::fs::create_dir(dir.path().join(folder)).expect("folder");
        }
        if kind == Kind::PtBurn {
            std::fs::create_dir(dir.path().join("Status")).expect("status folder");
        }
        prepare(dir.path());
        let ready = dir.path().join("state/ready");
        let log = dir.path().join("state/sim.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(kind.script());
        let server = Server::spawn(
            Command::new(pynetdicom_python())
                .arg(script)
                .arg("--hot")
                .arg(dir.path().join("jobs"))
                .arg("--status")
                .arg(dir.path().join(kind.status()))
                .arg("--state")
                .arg(dir.path().join("state"))
                .args(["--mode", mode, "--step", &step.to_string()])
                .arg("--ready-file")
                .arg(&ready),
            &log,
        );
        wait_for_ready(&ready, kind.script(), &log);
        RobotSim { dir, kind, _server: server }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn section(&self, extra: &str) -> String {
        let (kind, name) = match self.kind {
            Kind::TdBridge => ("epson-tdbridge", "Epson PP-100"),
            Kind::PtBurn => ("primera-ptburn", "Primera Bravo"),
        };
        format!(
            "[cd_publisher]\nkind = \"{kind}\"\nname = \"{name}\"\nhot_folder = {:?}\n\
             data_folder = {:?}\nstatus = {:?}\nwait_secs = 60\ninstitution = \"St. Elsewhere\"\n{extra}",
            self.path("jobs").display().to_string(),
            self.path("discs").display().to_string(),
            self.path(self.kind.status()).display().to_string(),
        )
    }

    /// What the simulator checked, one entry per job (and per cancel).
    pub fn checks(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("state/checks.json"))
            .map(|text| serde_json::from_str(&text).expect("checks.json"))
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("state/sim.log")).unwrap_or_default()
    }

    /// The data folder holds no job's content.
    pub fn assert_data_folder_empty(&self) {
        let left: Vec<_> =
            std::fs::read_dir(self.path("discs")).expect("discs").flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "data folder not empty: {left:?}");
    }
}

fn env_for(pacs: &Orthanc, robot: &RobotSim, extra: &str) -> TestEnv {
    TestEnv::new(&format!("audit_log = \"audit.log\"\n{}{}", pacs.config(""), robot.section(extra)))
}

#[test]
fn tdbridge_burns_a_proven_disc_and_follows_it_to_done() {
    let (pacs, _data) = pacs_with_data();
    let robot = TdBridge::start("ok", 0.2);
    let env = env_for(
        &pacs,
        &robot,
        "copies = 2\nlabel = \"C:\\\\Labels\\\\pacs2cd.tdd\"\nrobot_name = \"PP-100\"\n",
    );
    let started = Instant::now();
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["files_sent"], 5);
    assert_eq!(json["burn"]["phase"], "done", "{json}");
    assert_eq!(json["burn"]["discs"], 2);
    assert_eq!(json["burn"]["medium"], "CD");
    assert_eq!(json["sender"], "epson-tdbridge");
    eprintln!("print ACC001 to TD Bridge, 2 copies: {:.2} s", started.elapsed().as_secs_f64());
    let checks = robot.checks();
    assert_eq!(checks.len(), 1, "{checks:?}\n{}", robot.log());
    let job = &checks[0];
    assert_eq!(job["problems"], serde_json::json!([]), "{job}");
    let keys = &job["keys"];
    assert_eq!(keys["COPIES"], serde_json::json!(["2"]));
    assert_eq!(keys["DISC_TYPE"], serde_json::json!(["CD"]));
    assert_eq!(keys["VOLUME_LABEL"], serde_json::json!(["ACC001"]));
    assert_eq!(keys["PUBLISHER"], serde_json::json!(["PP-100"]));
    assert_eq!(keys["LABEL"], serde_json::json!(["C:\\Labels\\pacs2cd.tdd"]));
    assert_eq!(job["label"]["PATIENT_NAME"], "DOE, JOHN");
    assert_eq!(job["label"]["PATIENT_ID"], "PID001");
    assert_eq!(job["label"]["ACCESSIONS"], "ACC001");
    assert_eq!(job["label"]["MODALITIES"], "CT");
    assert_eq!(job["label"]["INSTITUTION"], "St. Elsewhere");
    // Done: the robot has finished with the data folder, and it is gone.
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
    let audit = env.audit_lines("audit.log");
    assert_eq!(audit.last().map(|l| l["outcome"].clone()), Some(serde_json::json!("ok")), "{audit:?}");

    // The verdict in words, last.
    let run = env.run(&["print", "ACC002"]);
    run.expect_code(0);
    let last = run.stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("burned 2 discs") && last.contains("on a CD for the Epson PP-100"),
        "{}",
        run.stdout
    );
}

#[test]
fn robot_troubles_are_their_codes_and_words() {
    let (pacs, _data) = pacs_with_data();
    for (mode, code, error, words, placed) in [
        ("out-of-discs", 69, "CD robot not ready", "out of discs", false),
        ("cover-open", 69, "CD robot not ready", "cover open", false),
        ("off", 69, "CD robot not ready", "is TD Bridge running?", false),
        ("refuse", 76, "burn failed", "the robot did not accept the job", true),
        ("disc-rejected", 76, "burn failed", "disc rejected", true),
    ] {
        let robot = TdBridge::start(mode, 0.2);
        let env = env_for(&pacs, &robot, "copies = 2\n");
        let run = env.run(&["--json", "print", "ACC002"]);
        run.expect_code(code);
        let json = run.json();
        assert_eq!(json["error"], error, "{mode}: {json}");
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(words) && detail.contains("Epson PP-100"), "{mode}: {detail}");
        // Before the retrieve: nothing reached the robot.
        assert_eq!(!robot.checks().is_empty(), placed, "{mode}: {:?}", robot.checks());
        robot.assert_data_folder_empty();
        env.assert_staging_empty();
    }
}

#[test]
fn a_disc_larger_than_the_largest_medium_is_refused() {
    let (pacs, _data) = pacs_with_data();
    let robot = TdBridge::start("ok", 0.2);
    // 1 MB "CDs" only: no disc fits beside its file system.
    let env = env_for(&pacs, &robot, "media = [\"CD\"]\ncd_mb = 1\n");
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(65);
    let json = run.json();
    assert_eq!(json["error"], "too big for one disc");
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("more than the largest medium the robot has (CD, 1 MB)"), "{detail}");
    assert!(robot.checks().is_empty(), "nothing placed");
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
}

/// Ctrl-C at a terminal (SIGINT to the process group) while the robot
/// burns: the job is cancelled with a JCF and the robot's answer said.
#[test]
fn ctrl_c_cancels_the_placed_job() {
    let robot = TdBridge::start("hang", 0.2);
    let checks = interrupt_while_burning(&robot);
    assert!(checks.iter().any(|c| c.get("cancel").is_some()), "{checks:?}");
}

/// Runs `print ACC002` in a process group of its own, sends SIGINT to the
/// group once the job file is in progress, and checks the verdict says the
/// robot confirmed; returns what the simulator recorded.
fn interrupt_while_burning(robot: &RobotSim) -> Vec<serde_json::Value> {
    use std::os::unix::process::CommandExt;
    let (pacs, _data) = pacs_with_data();
    let env = env_for(&pacs, robot, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8"), "--json", "print", "ACC002"])
        .env("HOME", env.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let burning = || {
        std::fs::read_dir(robot.path("jobs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(robot.kind.burning()))
    };
    while !burning() {
        if Instant::now() > deadline || child.try_wait().expect("try_wait").is_some() {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait");
            panic!("the burn never started: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the process group our own child leads.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("the robot confirmed the cancel of job PACS2CD-"), "{detail}");
    // ERR: the robot is done with the data folder.
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
    robot.checks()
}

fn ptburn(mode: &str) -> RobotSim {
    RobotSim::start_kind(Kind::PtBurn, mode, 0.2, &|_| {})
}

#[test]
fn ptburn_burns_a_proven_disc_and_follows_it_to_done() {
    let (pacs, _data) = pacs_with_data();
    let robot = ptburn("ok");
    let env = env_for(
        &pacs,
        &robot,
        "copies = 2\nlabel = \"C:\\\\Labels\\\\pacs2cd.std\"\nrobot_name = \"Bravo 4100\"\n",
    );
    let started = Instant::now();
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["files_sent"], 5);
    assert_eq!(json["burn"]["phase"], "done", "{json}");
    assert_eq!(json["burn"]["discs"], 2);
    assert_eq!(json["sender"], "primera-ptburn");
    eprintln!("print ACC001 to PTBurn, 2 copies: {:.2} s", started.elapsed().as_secs_f64());
    let checks = robot.checks();
    assert_eq!(checks.len(), 1, "{checks:?}\n{}", robot.log());
    let job = &checks[0];
    assert_eq!(job["problems"], serde_json::json!([]), "{job}");
    let keys = &job["keys"];
    assert_eq!(keys["ClientID"], serde_json::json!(["PACS2CD"]));
    assert_eq!(keys["Copies"], serde_json::json!(["2"]));
    assert_eq!(keys["VolumeName"], serde_json::json!(["ACC001"]));
    assert_eq!(keys["RobotName"], serde_json::json!(["Bravo 4100"]));
    assert_eq!(keys["PrintLabel"], serde_json::json!(["C:\\Labels\\pacs2cd.std"]));
    for key in ["CloseDisc", "VerifyDisc", "RejectIfNotBlank"] {
        assert_eq!(keys[key], serde_json::json!(["YES"]), "{key}");
    }
    let merge = keys["MergeField"].as_array().expect("merge fields");
    assert_eq!(merge.len(), 8, "{merge:?}");
    assert_eq!(merge[0], "DOE, JOHN");
    assert_eq!(merge[1], "PID001");
    assert_eq!(merge[5], "ACC001");
    assert_eq!(merge[6], "CT");
    assert_eq!(merge[7], "St. Elsewhere");
    robot.assert_data_folder_empty();
    env.assert_staging_empty();

    // check reads the robot's status the same way.
    let check = env.run(&["--json", "check"]);
    let items = check.json()["checks"].clone();
    let status = items
        .as_array()
        .and_then(|all| all.iter().find(|i| i["item"] == "CD robot status"))
        .cloned()
        .unwrap_or_else(|| panic!("no robot item: {items}"));
    assert_eq!(status["status"], "ok", "{status}");

    let run = env.run(&["print", "ACC002"]);
    run.expect_code(0);
    let last = run.stdout.lines().last().unwrap_or_default().to_string();
    assert!(last.contains("burned 2 discs") && last.contains("for the Primera Bravo"), "{}", run.stdout);
}

#[test]
fn ptburn_troubles_are_their_codes_and_words() {
    let (pacs, _data) = pacs_with_data();
    for (mode, code, error, words, placed) in [
        ("out-of-discs", 69, "CD robot not ready", "out of discs", false),
        ("cover-open", 69, "CD robot not ready", "cover open", false),
        ("printer-offline", 69, "CD robot not ready", "printer offline", false),
        ("off", 69, "CD robot not ready", "is PTBurn running?", false),
        ("refuse", 76, "burn failed", "the robot did not accept the job", true),
        ("disc-rejected", 76, "burn failed", "disc rejected", true),
        ("ink-low", 0, "", "", true),
    ] {
        let robot = ptburn(mode);
        let env = env_for(&pacs, &robot, "copies = 2\n");
        let run = env.run(&["--json", "print", "ACC002"]);
        run.expect_code(code);
        let json = run.json();
        if code == 0 {
            assert_eq!(json["burn"]["discs"], 2, "{mode}: ink low is no stop: {json}");
        } else {
            assert_eq!(json["error"], error, "{mode}: {json}");
            let detail = json["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(words) && detail.contains("Primera Bravo"), "{mode}: {detail}");
        }
        // Before the retrieve: nothing reached the robot.
        assert_eq!(!robot.checks().is_empty(), placed, "{mode}: {:?}", robot.checks());
        if placed {
            assert_eq!(robot.checks()[0]["problems"], serde_json::json!([]), "{mode}");
        }
        robot.assert_data_folder_empty();
        env.assert_staging_empty();
        if mode == "out-of-discs" {
            let check = env.run(&["check"]);
            assert!(
                check.stdout.contains("CD robot status") && check.stdout.contains("out of discs"),
                "{}",
                check.stdout
            );
        }
    }
}

#[test]
fn ptburn_refuses_a_disc_larger_than_the_largest_medium() {
    let (pacs, _data) = pacs_with_data();
    let robot = ptburn("ok");
    let env = env_for(&pacs, &robot, "media = [\"CD\"]\ncd_mb = 1\n");
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(65);
    let json = run.json();
    assert_eq!(json["error"], "too big for one disc");
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("more than the largest medium the robot has (CD, 1 MB)"), "{detail}");
    assert!(robot.checks().is_empty(), "nothing placed");
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
}

/// Ctrl-C while PTBurn burns: a PTM abort (Message=ABORT, our ClientID)
/// and the robot's ERR as its confirmation.
#[test]
fn ctrl_c_aborts_the_ptburn_job() {
    let robot = ptburn("hang");
    let checks = interrupt_while_burning(&robot);
    let abort = checks.iter().find(|c| c.get("abort").is_some()).unwrap_or_else(|| panic!("{checks:?}"));
    assert_eq!(abort["keys"]["Message"], "ABORT", "{abort}");
    assert_eq!(abort["keys"]["ClientID"], "PACS2CD", "{abort}");
}

/// Too big for the largest medium, told by the first images: a PACS that
/// sends one image every 0.1 s is stopped long before its 60th, nothing
/// is placed, nothing is kept.
#[test]
fn a_disc_too_big_stops_the_retrieve_as_soon_as_the_images_tell() {
    use crate::dicom_gen::{self, CT_IMAGE, Series, Study};
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new(
            "DOE^JOHN",
            "PID001",
            "BIG1",
            vec![Series { rows: 128, columns: 128, ..Series::new("CT", CT_IMAGE, 60) }],
        ),
    );
    let pacs = crate::harness::FakePacs::start("slow", &files, &["--pause", "0.1"]);
    let robot = TdBridge::start("ok", 0.2);
    // 5 MB "CDs": the study's 60 images of 32 KB fit; its 60 of 128x128
    // with the file system's 4 MiB do not.
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(""),
        robot.section("media = [\"CD\"]\ncd_mb = 5\n")
    ));
    let started = Instant::now();
    let run = env.run(&["--json", "print", "BIG1"]);
    run.expect_code(65);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("estimated from the first"), "{detail}");
    assert!(started.elapsed() < Duration::from_secs(5), "the retrieve ran on: {:?}", started.elapsed());
    assert!(robot.checks().is_empty(), "nothing placed");
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
}

/// A hot or data folder others may write without the sticky bit is
/// refused before any image moves: another member could rename a placed
/// disc away and put his own in its place.
#[test]
fn a_folder_others_may_swap_a_disc_in_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (pacs, _data) = pacs_with_data();
    let robot = TdBridge::start("ok", 0.2);
    std::fs::set_permissions(robot.path("discs"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let env = env_for(&pacs, &robot, "");
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("cd_publisher.data_folder") && detail.contains("sticky"), "{detail}");
    assert!(robot.checks().is_empty(), "nothing placed");
    // Sticky, it is fine.
    std::fs::set_permissions(robot.path("discs"), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    env.run(&["--json", "print", "ACC001"]).expect_code(0);
    env.assert_staging_empty();
}

/// A `.DON` someone else makes beside the job file is not the robot's:
/// the job follows the file it placed to the robot's own DON, and its disc
/// stays in place until then.
#[test]
fn a_forged_done_beside_the_job_counts_for_nothing() {
    let (pacs, _data) = pacs_with_data();
    let robot = TdBridge::start("ok", 0.5);
    let env = env_for(&pacs, &robot, "");
    let jobs = robot.path("jobs");
    let forger = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let placed = std::fs::read_dir(&jobs).into_iter().flatten().flatten().find_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                [".JDF", ".RJD", ".INP"].iter().find_map(|ext| name.strip_suffix(ext)).map(str::to_string)
            });
            if let Some(id) = placed {
                std::fs::write(jobs.join(format!("{id}.DON")), "").expect("forged DON");
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    let run = env.run(&["--json", "print", "ACC001"]);
    assert!(forger.join().expect("forger"), "the job file was never seen");
    run.expect_code(0);
    let checks = robot.checks();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(
        checks[0]["problems"].as_array().is_none_or(|p| p.is_empty()),
        "the disc was gone before the robot burned it: {checks:?}"
    );
    assert_eq!(run.json()["burn"]["phase"], "done");
    env.assert_staging_empty();
}

/// A FIFO someone makes under the name of the job's error file (PTBurn's
/// `.ERR` is read while following) neither hangs the job nor counts: it
/// follows its own file to the robot's DON.
#[test]
fn a_fifo_beside_the_job_neither_hangs_nor_counts() {
    let (pacs, _data) = pacs_with_data();
    let robot = RobotSim::start_kind(Kind::PtBurn, "ok", 0.5, &|_| {});
    let env = env_for(&pacs, &robot, "");
    let jobs = robot.path("jobs");
    let planter = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let placed = std::fs::read_dir(&jobs).into_iter().flatten().flatten().find_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Whatever phase it is in by now (a loaded machine may
                // see it only once the robot renamed it).
                [".JRQ", ".QRJ", ".INP"].iter().find_map(|ext| name.strip_suffix(ext)).map(str::to_string)
            });
            if let Some(id) = placed {
                let fifo = std::ffi::CString::new(format!("{}/{id}.ERR", jobs.display())).expect("path");
                // SAFETY: mkfifo(3) on a valid NUL-terminated path.
                return unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) } == 0;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    let started = Instant::now();
    let run = env.run(&["--json", "print", "ACC001"]);
    assert!(planter.join().expect("planter"), "the job file was never seen");
    run.expect_code(0);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(run.json()["burn"]["phase"], "done", "{}", run.stdout);
    env.assert_staging_empty();
}

/// Folders owned by another account are refused (it could rename a placed
/// disc away), unless that account is the robot's own, named by
/// `cd_publisher.robot_user`: the robot must rename its job files, which
/// in a sticky folder its owner may.
#[test]
fn the_robots_own_account_may_own_its_folders() {
    use crate::harness::{SECOND_MEMBER, STAFF_GROUP, own};
    let (pacs, _data) = pacs_with_data();
    let robot = RobotSim::start_kind(Kind::TdBridge, "ok", 0.2, &|dir| {
        own(dir, "root", "root", 0o755);
        for shared in ["jobs", "discs"] {
            own(&dir.join(shared), SECOND_MEMBER, STAFF_GROUP, 0o3770);
        }
    });
    let env = env_for(&pacs, &robot, "");
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(SECOND_MEMBER) && detail.contains("robot_user"), "{detail}");
    assert!(robot.checks().is_empty(), "nothing placed");
    let env = env_for(&pacs, &robot, &format!("robot_user = \"{SECOND_MEMBER}\"\n"));
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(0);
    assert_eq!(run.json()["burn"]["phase"], "done", "{}", run.stdout);
    let env = env_for(&pacs, &robot, "robot_user = \"no-such-account\"\n");
    env.run(&["--json", "print", "ACC001"]).expect_code(78);
    env.assert_staging_empty();
}

/// The hot folder on another file system than the data folder, and a
/// robot that never takes the job: it is withdrawn (never "taken by the
/// robot"), the verdict is "not ready", and nothing is left in either
/// folder for a robot that starts later.
#[test]
fn a_job_never_taken_across_file_systems_is_withdrawn() {
    crate::harness::require_deployment();
    struct Mount(TempDir);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
        }
    }
    let mount = Mount(tempfile::tempdir().expect("mount point"));
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs"])
        .arg(mount.0.path())
        .status()
        .expect("mount");
    assert!(mounted.success(), "cannot mount a tmpfs (the tests run as root)");
    let (pacs, _data) = pacs_with_data();
    let dir = tempfile::tempdir().expect("robot dir");
    let (hot, data, status) =
        (mount.0.path().join("jobs"), dir.path().join("discs"), dir.path().join("TDBStatus.txt"));
    std::fs::create_dir(&hot).expect("jobs");
    std::fs::create_dir(&data).expect("discs");
    std::fs::write(&status, "[PUBLISHER1]\r\nNAME=PP-100\r\nSTATUS=1\r\nERROR=0\r\n").expect("status");
    let env = TestEnv::new(&format!(
        "{}[cd_publisher]\nkind = \"epson-tdbridge\"\nname = \"Epson PP-100\"\nhot_folder = {:?}\n\
         data_folder = {:?}\nstatus = {:?}\nwait_secs = 3\n",
        pacs.config(""),
        hot.display().to_string(),
        data.display().to_string(),
        status.display().to_string()
    ));
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(69);
    assert!(
        run.json()["detail"].as_str().is_some_and(|d| d.contains("did not take the job")),
        "{}",
        run.stdout
    );
    let left = |folder: &Path| std::fs::read_dir(folder).expect("folder").flatten().count();
    assert_eq!(left(&hot), 0, "a job file is left for a robot that starts later");
    assert_eq!(left(&data), 0, "a disc is left");
    env.assert_staging_empty();
}
