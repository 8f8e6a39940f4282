//! The audit trail as an audit record repository receives it: Debian's
//! rsyslogd on a loopback TCP port, DICOM audit messages (PS3.15 A.5)
//! checked against the standard's schema and field by field, for print,
//! fetch, relay, a web download, a refused token, an interrupted job, a
//! repository that is down, and a second technician who would rewrite
//! the first one's records.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::data::pacs_with_data;
use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study};
use crate::harness::{
    Nginx, OUR_AE, PACS_AE, PUBLISHER_AE, Publisher, Rsyslog, SECOND_MEMBER, Storescp, SyslogMessage,
    TECHNICIAN, TestEnv, require, uid_of,
};

const STOP: (&str, Option<&str>) = ("110100", Some("110121"));
const QUERY: &str = "110112";
const TRANSFERRED: &str = "110104";
const EXPORT: &str = "110106";
const LOGIN: &str = "110114";

fn kinds(messages: &[SyslogMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m.event() {
            (id, Some(kind)) if id == "110100" => format!("{id}/{kind}"),
            (id, _) => id,
        })
        .collect()
}

/// Until the job's Application Stop has come.
fn stopped(messages: &[SyslogMessage]) -> bool {
    messages.iter().any(|m| m.event() == (STOP.0.into(), STOP.1.map(String::from)))
}

/// Every message is what the ATNA profile carries: APP-NAME pacs2cd,
/// MSGID IHE+RFC-3881, facility authpriv (10), and XML the standard's
/// schema accepts.
fn assert_valid(messages: &[SyslogMessage]) {
    let xmllint = require("xmllint", "libxml2-utils");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audit/dicom-audit-message.rng");
    let dir = tempfile::tempdir().expect("dir");
    for (index, message) in messages.iter().enumerate() {
        assert_eq!((message.app_name.as_str(), message.msgid.as_str()), ("pacs2cd", "IHE+RFC-3881"));
        assert_eq!(message.facility, "10", "authpriv");
        let expected_severity = if message.outcome() == "0" { "5" } else { "4" };
        assert_eq!(message.severity, expected_severity, "{}", message.xml);
        let file = dir.path().join(format!("{index}.xml"));
        std::fs::write(&file, &message.xml).expect("write");
        let out = Command::new(&xmllint)
            .arg("--noout")
            .arg("--relaxng")
            .arg(&schema)
            .arg(&file)
            .output()
            .expect("xmllint runs");
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), message.xml);
    }
}

fn of_kind<'a>(messages: &'a [SyslogMessage], id: &str) -> Vec<&'a SyslogMessage> {
    messages.iter().filter(|m| m.event().0 == id).collect()
}

/// The C-FIND identifier of a Query record, decoded (keys as bytes).
fn query_of(message: &SyslogMessage) -> String {
    let start =
        message.xml.find("<ParticipantObjectQuery>").expect("query") + "<ParticipantObjectQuery>".len();
    let end = message.xml.find("</ParticipantObjectQuery>").expect("end");
    let bytes = base64::engine::general_purpose::STANDARD.decode(&message.xml[start..end]).expect("base64");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn job_of(env: &TestEnv, log: &str) -> String {
    let lines = env.audit_lines(log);
    lines.last().and_then(|l| l["job"].as_str()).expect("a job id in the JSON log").to_string()
}

#[test]
fn print_sends_start_query_retrieve_export_and_stop() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let repository = Rsyslog::start();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}{}",
        repository.config(),
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run_with(
        &[("SUDO_USER", "alice")],
        &["--config", env.config.to_str().expect("utf-8"), "--json", "print", "ACC001,ACC002"],
    );
    run.expect_code(0);
    assert!(run.json()["warnings"].as_array().is_none_or(|w| w.is_empty()), "{}", run.stdout);
    let job = job_of(&env, "audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(
        kinds(&messages),
        ["110100/110120", QUERY, QUERY, TRANSFERRED, EXPORT, "110100/110121"],
        "{messages:#?}"
    );
    assert_valid(&messages);
    assert!(messages.iter().all(|m| m.outcome() == "0"), "{messages:#?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    for message in &messages {
        // The job's id is pacs2cd's UserID; the requester is the real user
        // (root here), and SUDO_USER a note beside it (root may run sudo).
        assert!(message.xml.contains(&format!("UserID=\"{job}\"")), "{}", message.xml);
        assert!(message.xml.contains(&format!("UserID=\"root@{host}\"")), "{}", message.xml);
        assert!(message.xml.contains("(uid 0; SUDO_USER=alice)"), "{}", message.xml);
    }
    // One query per accession, each naming it, at the PACS's AE title.
    let queries = of_kind(&messages, QUERY);
    assert!(query_of(queries[0]).contains("ACC001") && query_of(queries[1]).contains("ACC002"));
    assert!(queries[0].xml.contains(&format!("AlternativeUserID=\"AETITLES={PACS_AE}\"")));
    // The retrieve: the PACS the source, this host the destination, both
    // studies with their classes and counts, the patient.
    let transferred = &of_kind(&messages, TRANSFERRED)[0].xml;
    assert!(transferred.contains(&format!("AETITLES={OUR_AE}")), "{transferred}");
    assert!(
        transferred.contains(&format!("<SOPClass UID=\"{CT_IMAGE}\" NumberOfInstances=\"5\"")),
        "{transferred}"
    );
    assert!(
        transferred.contains(&format!("<SOPClass UID=\"{MR_IMAGE}\" NumberOfInstances=\"3\"")),
        "{transferred}"
    );
    assert!(transferred.contains("<Accession Number=\"ACC001\"/>"), "{transferred}");
    assert!(transferred.contains("ParticipantObjectID=\"PID001\""), "{transferred}");
    assert!(transferred.contains("<ParticipantObjectName>DOE^JOHN</ParticipantObjectName>"), "{transferred}");
    // The export: the publisher's AE title and address, the disc, the same
    // patient and studies.
    let export = &of_kind(&messages, EXPORT)[0].xml;
    assert!(export.contains(&format!("AETITLES={PUBLISHER_AE}")), "{export}");
    assert!(export.contains(&format!("127.0.0.1:{}", publisher.port)), "{export}");
    assert!(export.contains("csd-code=\"110154\""), "Destination Media: {export}");
    assert!(export.contains("NumberOfInstances=\"5\"") && export.contains("PID001"), "{export}");
    assert_eq!(publisher.received_once(), data.uids(&["ACC001", "ACC002"]));
    env.assert_staging_empty();
}

#[test]
fn fetch_exports_to_the_folder_and_the_image() {
    let (pacs, _data) = pacs_with_data();
    let repository = Rsyslog::start();
    let env = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}{}", repository.config(), pacs.config("")));
    let out = env.dir.path().join("disc");
    let image = env.dir.path().join("disc.iso");
    env.run(&["fetch", "ACC007", "-o", out.to_str().expect("utf-8"), &format!("--iso={}", image.display())])
        .expect_code(0);
    let job = job_of(&env, "audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(
        kinds(&messages),
        ["110100/110120", QUERY, TRANSFERRED, EXPORT, EXPORT, "110100/110121"],
        "{messages:#?}"
    );
    assert_valid(&messages);
    let exports: Vec<&str> = of_kind(&messages, EXPORT).iter().map(|m| m.xml.as_str()).collect();
    // file:// URIs of the image and the folder, the patient by name.
    assert!(exports[0].contains(&format!("UserID=\"file://{}\"", image.display())), "{}", exports[0]);
    assert!(exports[1].contains(&format!("UserID=\"file://{}\"", out.display())), "{}", exports[1]);
    for export in exports {
        assert!(export.contains("MÜLLER^JOSÉ") && export.contains("PID005"), "{export}");
    }
}

#[test]
fn relay_names_the_patients_of_its_files_and_the_publisher() {
    let publisher = Storescp::start(Publisher::AcceptAll);
    let repository = Rsyslog::start();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        repository.config(),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let data = tempfile::tempdir().expect("data");
    let study = Study::new("MÜLLER^JOSÉ", "PID005", "ACC007", vec![Series::new("CT", CT_IMAGE, 20)]);
    dicom_gen::write_study(data.path(), &study);
    let run = env.run(&["--json", "relay", data.path().to_str().expect("utf-8")]);
    run.expect_code(0);
    assert_eq!(run.json()["patients"][0]["name"], "MÜLLER^JOSÉ", "{}", run.stdout);
    // The JSON log too: whose, from which folder, to which AE title.
    let lines = env.audit_lines("audit.log");
    assert_eq!(lines[0]["folder"], data.path().to_str().expect("utf-8"));
    assert_eq!(lines[1]["patients"][0]["id"], "PID005", "{lines:?}");
    assert_eq!(lines[1]["called_ae"], PUBLISHER_AE, "{lines:?}");
    let job = job_of(&env, "audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(kinds(&messages), ["110100/110120", EXPORT, "110100/110121"], "{messages:#?}");
    assert_valid(&messages);
    let export = &of_kind(&messages, EXPORT)[0].xml;
    assert!(export.contains(&format!("AETITLES={PUBLISHER_AE}")), "{export}");
    assert!(export.contains("MÜLLER^JOSÉ") && export.contains(&study.study_uid), "{export}");
    assert!(export.contains(&format!("<SOPClass UID=\"{CT_IMAGE}\" NumberOfInstances=\"20\"")), "{export}");
}

/// Through nginx as www-data: a download is exported to the client's
/// address once written, the requester is the client with the token's
/// label; wrong tokens are failed logins, five per client at most.
#[test]
fn a_web_download_and_refused_tokens() {
    let (pacs, _data) = pacs_with_data();
    let repository = Rsyslog::start();
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\ntoken_label = \"HIS-PROD\"\n",
        repository.config(),
        pacs.config("")
    ));
    let nginx = Nginx::start(&env.config, &[("PACS2CD_CGI_TOKEN", "t0ken")]);
    let response = nginx.get_bytes("/api/iso/download?accession_numbers=ACC003&access_token=t0ken");
    assert_eq!(response.status, 200, "{:?}\n{}", response.headers, nginx.error_log());
    let job = job_of(&env, "audit/audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(
        kinds(&messages),
        ["110100/110120", QUERY, TRANSFERRED, EXPORT, "110100/110121"],
        "{messages:#?}"
    );
    assert_valid(&messages);
    let export = &of_kind(&messages, EXPORT)[0].xml;
    assert!(export.contains("UserID=\"HIS-PROD\"") && export.contains("web client at 127.0.0.1"), "{export}");
    assert!(export.contains("NetworkAccessPointID=\"127.0.0.1\""), "{export}");
    assert!(export.contains("csd-code=\"110027\"") || export.contains("110154"), "{export}");
    env.assert_staging_empty();

    // Seven wrong tokens from one client: five failed logins recorded.
    for _ in 0..7 {
        let refused = nginx.request("GET", "/api/iso/print?accession_number=ACC001&access_token=wrong", &[]);
        assert_eq!(refused.status, 401);
    }
    let logins =
        || -> Vec<SyslogMessage> { repository.all().into_iter().filter(|m| m.event().0 == LOGIN).collect() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while logins().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let logins = logins();
    assert_eq!(logins.len(), 5, "{logins:#?}");
    assert_valid(&logins);
    assert!(logins.iter().all(|m| m.outcome() == "4" && m.xml.contains("127.0.0.1")));
    assert!(logins.iter().all(|m| m.xml.contains("csd-code=\"110122\"")), "Login");
}

/// Ctrl-C mid-retrieve: the job's Stop says it was interrupted, the
/// retrieve's record says it failed.
#[test]
fn an_interrupted_job_still_sends_its_records() {
    use std::os::unix::process::CommandExt;
    // A PACS that sends one image every 0.2 s: the signal lands in the
    // retrieve however fast the machine is (Orthanc sent 400 images in
    // under 0.3 s on a fresh one).
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "BIG001", vec![Series::new("CT", CT_IMAGE, 20)]),
    );
    let pacs = crate::harness::FakePacs::start("slow", &files, &["--pause", "0.2"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let repository = Rsyslog::start();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}{}",
        repository.config(),
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8"), "print", "BIG001"])
        .env("HOME", env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&env.staging).map_or(0, |d| d.count()) == 0
        || !repository.all().iter().any(|m| m.event().0 == QUERY)
    {
        assert!(Instant::now() < deadline, "the retrieve never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the process group our own child leads.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let job = job_of(&env, "audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(kinds(&messages), ["110100/110120", QUERY, TRANSFERRED, "110100/110121"], "{messages:#?}");
    assert_valid(&messages);
    let stop = messages.last().expect("stop");
    assert_eq!(stop.outcome(), "8", "{}", stop.xml);
    assert!(stop.xml.contains("interrupted"), "{}", stop.xml);
    assert_eq!(of_kind(&messages, TRANSFERRED)[0].outcome(), "8");
    env.assert_staging_empty();
}

/// A repository that is down: the job's outcome is what the PACS and the
/// publisher made it, and the job says its records were lost there.
#[test]
fn a_repository_that_is_down_leaves_the_outcome_and_says_so() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    // A port nothing listens on.
    let down = crate::harness::free_port();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\naudit_syslog = [\"tcp://127.0.0.1:{down}\"]\n{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let started = Instant::now();
    let run = env.run(&["--json", "print", "ACC003"]);
    run.expect_code(0);
    assert!(started.elapsed() < Duration::from_secs(30));
    let json = run.json();
    assert_eq!(json["status"], "ok");
    let warnings = json["warnings"].to_string();
    assert!(warnings.contains(&format!("did not reach tcp://127.0.0.1:{down}")), "{warnings}");
    assert!(run.stderr.contains("did not reach"), "{}", run.stderr);
    assert_eq!(publisher.received_once(), data.uids(&["ACC003"]));
    // check says so first.
    let check = env.run(&["check"]);
    assert!(check.stdout.contains(&format!("tcp://127.0.0.1:{down}")), "{}", check.stdout);
}

/// One technician's job, recorded; another member of the group cannot
/// rewrite the repository's records (nor forge SUDO_USER into them).
#[test]
fn a_second_member_cannot_rewrite_the_first_ones_records() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let repository = Rsyslog::start();
    let env = TestEnv::hospital(&format!(
        "{}{}{}",
        repository.config(),
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let home = tempfile::tempdir().expect("home");
    crate::harness::own(home.path(), TECHNICIAN, TECHNICIAN, 0o700);
    let config = env.config.to_str().expect("utf-8");
    let run = Command::new("setpriv")
        .args(["--reuid", TECHNICIAN, "--regid", TECHNICIAN, "--init-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", config, "print", "ACC003"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        // Forged: a technician is not root, so this is nobody's word.
        .env("SUDO_USER", "alice")
        .current_dir(home.path())
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let job = job_of(&env, "audit/audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(
        kinds(&messages),
        ["110100/110120", QUERY, TRANSFERRED, EXPORT, "110100/110121"],
        "{messages:#?}"
    );
    let uid = uid_of(TECHNICIAN);
    for message in &messages {
        assert!(message.xml.contains(&format!("{TECHNICIAN} (uid {uid})")), "{}", message.xml);
        assert!(!message.xml.contains("alice"), "{}", message.xml);
    }
    let lines = env.audit_lines("audit/audit.log");
    assert!(lines.iter().all(|l| !l.to_string().contains("alice")), "{lines:?}");
    // The second member tries what the review tried on the JSON log.
    let file = repository.file();
    let before = std::fs::read(&file).expect("records");
    for attempt in [
        format!("echo forged >> {}", file.display()),
        format!(": > {}", file.display()),
        format!("grep -v {TECHNICIAN} {0} > /tmp/t.$$; cat /tmp/t.$$ > {0}", file.display()),
    ] {
        let status = Command::new("setpriv")
            .args(["--reuid", SECOND_MEMBER, "--regid", SECOND_MEMBER, "--init-groups", "--"])
            .args(["sh", "-c", &attempt])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stderr(Stdio::null())
            .status()
            .expect("sh");
        assert!(!status.success(), "{SECOND_MEMBER} could: {attempt}");
    }
    assert!(std::fs::read(&file).expect("records").starts_with(&before));
    let kept: BTreeSet<String> = repository.messages(&job, |_| true).iter().map(|m| m.xml.clone()).collect();
    assert_eq!(kept.len(), 5);
}

/// A repository that takes connections and never reads, and one that
/// sends a byte every 300 ms and never closes: the job ends in seconds
/// with its outcome, and says its records were not confirmed.
#[test]
fn a_repository_that_never_closes_costs_seconds_and_is_said() {
    use std::io::Write as _;
    let (pacs, data) = pacs_with_data();
    for trickle in [false, true] {
        let publisher = Storescp::start(Publisher::AcceptAll);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(true).expect("nonblocking");
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                if trickle {
                    for stream in &mut held {
                        let _ = stream.write_all(b"x");
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let env = TestEnv::new(&format!(
            "audit_syslog = [\"tcp://127.0.0.1:{port}\"]\n{}{}",
            pacs.config(""),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "ACC003"]);
        run.expect_code(0);
        // Five records: one wait for the close (1 s), not one per record.
        assert!(run.elapsed < Duration::from_secs(8), "trickle {trickle}: took {:?}", run.elapsed);
        let warnings = run.json()["warnings"].to_string();
        assert!(warnings.contains("not confirmed"), "trickle {trickle}: {warnings}");
        assert_eq!(publisher.received_once(), data.uids(&["ACC003"]));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        server.join().expect("server");
    }
}

/// A send that stopped after 3 of 10 files: the Export still says what
/// may be on a disc (the patient, the study, its class and count) and
/// that it failed.
#[test]
fn a_failed_send_still_exports_what_may_be_on_a_disc() {
    let publisher = crate::harness::FakePublisher::start(3);
    let repository = Rsyslog::start();
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        repository.config(),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
            .replace("timeout_dimse_secs = 5", "timeout_dimse_secs = 2")
    ));
    let data = tempfile::tempdir().expect("data");
    let study = Study::new("DOE^JOHN", "PID001", "ACC001", vec![Series::new("CT", CT_IMAGE, 10)]);
    dicom_gen::write_study(data.path(), &study);
    env.run(&["relay", data.path().to_str().expect("utf-8")]).expect_code(75);
    let job = job_of(&env, "audit.log");
    let messages = repository.messages(&job, stopped);
    assert_eq!(kinds(&messages), ["110100/110120", EXPORT, "110100/110121"], "{messages:#?}");
    assert_valid(&messages);
    let export = of_kind(&messages, EXPORT)[0];
    assert_eq!(export.outcome(), "8", "{}", export.xml);
    assert!(export.xml.contains("partial relay"), "{}", export.xml);
    assert!(export.xml.contains(&study.study_uid) && export.xml.contains("PID001"), "{}", export.xml);
    assert!(export.xml.contains("NumberOfInstances=\"10\""), "{}", export.xml);
}
