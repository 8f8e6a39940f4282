//! The staging root and the audit log as the multi-user model wants them:
//! a root or lock that others could write or replace is refused, the audit
//! trail comes first and cannot be skipped.

use std::os::unix::fs::PermissionsExt;

use crate::data::pacs_with_data;
use crate::harness::{Publisher, Storescp, TECHNICIAN, TestEnv, own};

fn config(pacs: &crate::harness::Orthanc, publisher_port: u16) -> String {
    format!("{}{}", pacs.config(""), TestEnv::publisher_section(publisher_port, "dcmsend", ""))
}

#[test]
fn a_hostile_staging_root_is_refused_and_its_lock_target_untouched() {
    crate::harness::require_deployment();
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", config(&pacs, publisher.port)));
    // Another user made the root first, open to all, with the lock aimed
    // at the audit log.
    std::fs::create_dir(&env.staging).expect("staging");
    own(&env.staging, TECHNICIAN, TECHNICIAN, 0o777);
    std::fs::set_permissions(&env.staging, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let audit = env.dir.path().join("audit.log");
    std::fs::write(&audit, "earlier line\n").expect("audit");
    std::os::unix::fs::symlink(&audit, env.staging.join("retrieve.lock")).expect("symlink");
    let run = env.run(&["--json", "print", "ACC001"]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("0777") && detail.contains("3770"), "{detail}");
    assert!(publisher.received_uids().is_empty(), "nothing sent");
    let text = std::fs::read_to_string(&audit).expect("audit");
    assert!(text.starts_with("earlier line\n"), "the lock's target was truncated: {text}");

    // Owned by us but the lock a symlink: refused, target untouched.
    own(&env.staging, "root", "root", 0o700);
    let run =
        env.run(&["--json", "fetch", "ACC001", "-o", env.dir.path().join("disc").to_str().expect("utf-8")]);
    run.expect_code(78);
    assert!(run.json()["detail"].as_str().is_some_and(|d| d.contains("symbolic link")), "{}", run.stdout);
    assert!(std::fs::read_to_string(&audit).expect("audit").starts_with("earlier line\n"));
    assert!(!env.dir.path().join("disc").exists());
}

#[test]
fn the_audit_trail_comes_first() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    // A log that cannot be written: nothing moves.
    let env = TestEnv::new(&format!("audit_log = \"/dev/full\"\n{}", config(&pacs, publisher.port)));
    env.run(&["--json", "print", "ACC002"]).expect_code(78);
    assert!(publisher.received_uids().is_empty());
    // "" is no audit log at all.
    let env = TestEnv::new(&format!("audit_log = \"\"\n{}", config(&pacs, publisher.port)));
    env.run(&["print", "ACC002"]).expect_code(0);
    assert_eq!(publisher.received_uids().len(), 3);
    // Refused requests are recorded too, both lines.
    let env = TestEnv::new(&format!("audit_log = \"audit.log\"\n{}", config(&pacs, publisher.port)));
    env.run(&["print", "ACC*"]).expect_code(64);
    let lines = env.audit_lines("audit.log");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["outcome"], "invalid accession_number");
    assert_eq!(lines[1]["files"], 0);
}
