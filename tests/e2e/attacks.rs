//! Attacked as deployed: a technician prints, a second member of the
//! group and a local user outside it try to read, replace or forge what
//! the job handles. Each test names the attack it makes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dicom_gen::{self, CT_IMAGE, Series, Study, Written};
use crate::harness::{FakePacs, OUTSIDER, STAFF_GROUP, TECHNICIAN, TestEnv, own, require_deployment};

/// One study of 30 CT images of DOE^JOHN, accession ACC100.
fn study(dir: &Path) -> Vec<Written> {
    let study = Study::new("DOE^JOHN", "PID001", "ACC100", vec![Series::new("CT", CT_IMAGE, 30)]);
    dicom_gen::write_study(dir, &study)
}

/// pacs2cd as `user`, in the background, with the environment's config.
fn spawn_as(env: &TestEnv, user: &str, args: &[&str]) -> Child {
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8")])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pacs2cd")
}

/// Waits until a job folder of the staging root holds received images.
fn wait_for_arrivals(staging: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arriving = std::fs::read_dir(staging).into_iter().flatten().flatten().any(|job| {
            std::fs::read_dir(job.path().join("received")).map(|mut e| e.next().is_some()).unwrap_or(false)
        });
        if arriving {
            return;
        }
        assert!(Instant::now() < deadline, "the retrieve never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(child: Child) -> (Option<i32>, String, String) {
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A hospital deployment with a slow PACS (0.1 s an image) and a folder
/// every local user may write, sticky like /tmp (`drop`).
fn deployment(source: &Path) -> (FakePacs, TestEnv, PathBuf) {
    require_deployment();
    let files = study(source);
    let pacs = FakePacs::start("slow", &files, &["--pause", "0.1"]);
    let env = TestEnv::hospital(&pacs.config(""));
    let drop = env.dir.path().join("drop");
    std::fs::create_dir(&drop).expect("drop");
    own(&drop, "root", "root", 0o1777);
    (pacs, env, drop)
}

#[test]
fn a_folder_above_the_shared_root_that_members_may_write_is_refused() {
    require_deployment();
    let env = TestEnv::hospital("[pacs]\nhost = \"127.0.0.1\"\n");
    // The root's parent is the staging group's: a second member could
    // rename the root away mid-job and put one of his in its place.
    own(env.dir.path(), "root", STAFF_GROUP, 0o775);
    let run = env.run_as(TECHNICIAN, Path::new("/"), &["--json", "fetch", "ACC100", "-o", "/nonexistent/x"]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(&env.dir.path().display().to_string()) && detail.contains("0775"), "{detail}");
}

#[test]
fn an_outsider_who_makes_the_output_folder_mid_job_gets_nothing() {
    let source = tempfile::tempdir().expect("source");
    let (_pacs, env, drop) = deployment(source.path());
    let out = drop.join("out");
    let child =
        spawn_as(&env, TECHNICIAN, &["--json", "fetch", "ACC100", "-o", out.to_str().expect("utf-8")]);
    wait_for_arrivals(&env.staging);
    // The outsider makes the folder, open to all, to collect what lands.
    let made = Command::new("setpriv")
        .args(["--reuid", OUTSIDER, "--regid", OUTSIDER, "--init-groups", "--", "mkdir", "-m", "0777"])
        .arg(&out)
        .status()
        .expect("mkdir");
    assert!(made.success());
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(78), "{stdout}{stderr}");
    // Refused at the move: the folder is not the technician's (named, or
    // the sticky folder above it that lets its owner replace it).
    assert!(stdout.contains(&out.display().to_string()), "{stdout}");
    assert_eq!(std::fs::read_dir(&out).expect("out").count(), 0, "something landed in the outsider's folder");
    env.assert_staging_empty();
}

#[test]
fn planted_symlinks_in_an_output_folder_are_never_written_through() {
    let source = tempfile::tempdir().expect("source");
    let files = study(source.path());
    let pacs = FakePacs::start("normal", &files, &[]);
    let viewer = tempfile::tempdir().expect("viewer");
    std::fs::write(viewer.path().join("viewer.exe"), "MZ").expect("viewer");
    let env = TestEnv::new(&format!(
        "{}[tools]\nviewer_dir = {:?}\nviewer_autorun = \"viewer.exe\"\n",
        pacs.config(""),
        viewer.path().display().to_string()
    ));
    let out = env.dir.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let profile = env.dir.path().join("profile");
    let precious = env.dir.path().join("precious.txt");
    std::fs::write(&profile, "PATH=/usr/bin\n").expect("profile");
    std::fs::write(&precious, "precious\n").expect("precious");
    std::os::unix::fs::symlink(&profile, out.join("AUTORUN.INF")).expect("symlink");
    std::os::unix::fs::symlink(&precious, out.join("README.TXT")).expect("symlink");
    for force in [false, true] {
        let mut args = vec!["--json", "fetch", "ACC100", "-o", out.to_str().expect("utf-8")];
        if force {
            args.push("--force");
        }
        let run = env.run(&args);
        run.expect_code(78);
        assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("symbolic link")), "{}", run.stdout);
    }
    assert_eq!(std::fs::read_to_string(&profile).expect("profile"), "PATH=/usr/bin\n");
    assert_eq!(std::fs::read_to_string(&precious).expect("precious"), "precious\n");
    assert!(!out.join("DICOM").exists());
    env.assert_staging_empty();
}

#[test]
fn an_outsider_watching_never_opens_a_patient_file() {
    let source = tempfile::tempdir().expect("source");
    let (_pacs, env, drop) = deployment(source.path());
    let out = drop.join("disc");
    let iso = drop.join("disc.iso");
    // The outsider walks the staging root and the shared folder over and
    // over and opens every file it finds, for the whole job.
    let watcher = Command::new("setpriv")
        .args(["--reuid", OUTSIDER, "--regid", OUTSIDER, "--init-groups", "--", "/usr/bin/python3", "-c"])
        .arg(
            "import os, sys, time\n\
             until = time.time() + float(sys.argv[1]); opened = set(); seen = set()\n\
             while time.time() < until:\n\
             \x20   for root in sys.argv[2:]:\n\
             \x20       for folder, _, files in os.walk(root):\n\
             \x20           for name in files:\n\
             \x20               path = os.path.join(folder, name); seen.add(path)\n\
             \x20               try:\n\
             \x20                   open(path, 'rb').read(1); opened.add(path)\n\
             \x20               except OSError:\n\
             \x20                   pass\n\
             print('seen', len(seen))\n\
             print('\\n'.join(sorted(opened)))\n",
        )
        .arg("8")
        .arg(&env.staging)
        .arg(&drop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("watcher");
    let child = spawn_as(
        &env,
        TECHNICIAN,
        &[
            "--json",
            "fetch",
            "ACC100",
            "-o",
            out.to_str().expect("utf-8"),
            &format!("--iso={}", iso.display()),
        ],
    );
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let watched = watcher.wait_with_output().expect("watcher");
    assert!(watched.status.success(), "the watcher did not run: {watched:?}");
    let said = String::from_utf8_lossy(&watched.stdout).into_owned();
    let seen: usize =
        said.lines().next().and_then(|l| l.strip_prefix("seen ")).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(seen > 0, "the watcher saw nothing at all: {said}");
    let opened: BTreeSet<&str> = said.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert!(opened.is_empty(), "the outsider opened {opened:?}");
    assert!(iso.is_file() && out.join("DICOMDIR").is_file());
}

#[test]
fn a_viewer_folder_others_can_change_is_refused_and_check_says_so() {
    let viewer = tempfile::tempdir().expect("viewer");
    let program = viewer.path().join("viewer.exe");
    std::fs::write(&program, "MZ").expect("viewer");
    let env = TestEnv::new(&format!(
        "[pacs]\nhost = \"127.0.0.1\"\n[tools]\nviewer_dir = {:?}\n",
        viewer.path().display().to_string()
    ));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let run =
        env.run(&["--json", "fetch", "ACC100", "-o", env.dir.path().join("x").to_str().expect("utf-8")]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("viewer.exe") && detail.contains("others"), "{detail}");
    let check = env.run(&["check"]);
    let line = check.stdout.lines().find(|l| l.contains("viewer folder")).unwrap_or_default().to_string();
    assert!(line.starts_with("FAIL") && line.contains("viewer.exe"), "{}", check.stdout);
}

#[test]
fn an_audit_fifo_is_refused_at_once() {
    let env = TestEnv::new("audit_log = \"audit.log\"\n[pacs]\nhost = \"127.0.0.1\"\n");
    let fifo = env.dir.path().join("audit.log");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let run = env.run(&["--json", "print", "ACC100", "--to", "CDPUB@127.0.0.1:9"]);
    run.expect_code(78);
    assert!(
        run.json()["detail"].as_str().is_some_and(|d| d.contains("not a regular file")),
        "{}",
        run.stdout
    );
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
}

#[test]
fn an_output_under_a_folder_an_outsider_owns_is_refused() {
    let source = tempfile::tempdir().expect("source");
    let (_pacs, env, drop) = deployment(source.path());
    // /tmp/discs, made by the outsider, open to all: he could replace the
    // finished disc after the job.
    let theirs = drop.join("discs");
    let made = Command::new("setpriv")
        .args(["--reuid", OUTSIDER, "--regid", OUTSIDER, "--init-groups", "--", "mkdir", "-m", "0777"])
        .arg(&theirs)
        .status()
        .expect("mkdir");
    assert!(made.success());
    let out = theirs.join("disc");
    let iso = theirs.join("disc.iso");
    let iso_arg = format!("--iso={}", iso.display());
    for args in [vec!["-o", out.to_str().expect("utf-8")], vec![iso_arg.as_str()]] {
        let mut all = vec!["--json", "fetch", "ACC100"];
        all.extend(args);
        let run = env.run_as(TECHNICIAN, Path::new("/"), &all);
        run.expect_code(78);
        assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("discs")), "{}", run.stdout);
    }
    assert_eq!(std::fs::read_dir(&theirs).expect("theirs").count(), 0);
}
