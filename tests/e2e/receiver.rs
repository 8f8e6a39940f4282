//! The C-MOVE receiver: pacs2cd's own storescp on the move port, one for
//! the whole job, stopped and reaped on every path — a port taken by
//! another program, SIGTERM, and SIGKILL of pacs2cd itself (the kernel
//! ends the receiver with its parent, and the port is free again).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::big_pacs;
use crate::harness::{Orthanc, Publisher, Storescp, TestEnv, processes_mentioning};

fn config(pacs: &Orthanc, publisher: u16) -> String {
    format!("{}{}", pacs.config(""), TestEnv::publisher_section(publisher, "dcmsend", ""))
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pacs2cd"))
        .args(["--config", env.config.to_str().expect("utf-8")])
        .args(args)
        .env("HOME", env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until images are arriving in a job folder of the staging root.
fn wait_for_arrivals(staging: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let arriving = || {
        std::fs::read_dir(staging).into_iter().flatten().flatten().any(|job| {
            std::fs::read_dir(job.path().join("received")).map(|mut e| e.next().is_some()).unwrap_or(false)
        })
    };
    while !arriving() {
        assert!(Instant::now() < deadline, "the retrieve never started");
        assert!(child.try_wait().expect("try_wait").is_none(), "pacs2cd ended before the retrieve");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// No receiver left: nothing listens on the move port, no storescp names it.
fn assert_receiver_gone(pacs: &Orthanc) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let port = format!(" {} ", pacs.move_port);
    loop {
        let left: Vec<String> = processes_mentioning("storescp")
            .into_iter()
            .filter(|p| format!("{p} ").contains(&port))
            .collect();
        let bound = TcpListener::bind(("0.0.0.0", pacs.move_port)).is_err();
        if left.is_empty() && !bound {
            return;
        }
        assert!(Instant::now() < deadline, "the receiver outlived pacs2cd: {left:?}, port bound: {bound}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_move_port_taken_by_another_program_is_busy() {
    let pacs = big_pacs(256);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port));
    let squatter = TcpListener::bind(("127.0.0.1", pacs.move_port)).expect("squat the move port");
    let run = env.run(&["--json", "print", "BIG001"]);
    run.expect_code(75);
    assert_eq!(run.json()["error"], "busy");
    assert!(
        run.json()["detail"].as_str().is_some_and(|d| d.contains("in use by another program")),
        "{}",
        run.stdout
    );
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
    drop(squatter);
}

#[test]
fn sigterm_and_sigkill_mid_move_leave_no_receiver() {
    let pacs = big_pacs(256);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&config(&pacs, publisher.port));

    // SIGTERM: 143, everything cleaned up.
    let mut child = spawn(&env, &["print", "BIG001"]);
    wait_for_arrivals(&env.staging, &mut child);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(143), "{}", String::from_utf8_lossy(&output.stderr));
    env.assert_staging_empty();
    assert_receiver_gone(&pacs);
    assert!(publisher.received_uids().is_empty(), "nothing reaches the robot before the disc is proven");

    // SIGKILL: pacs2cd cannot clean up, but its receiver must not live on
    // (it would make every later job "busy").
    let mut child = spawn(&env, &["print", "BIG001"]);
    wait_for_arrivals(&env.staging, &mut child);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_receiver_gone(&pacs);
    // The next job gets the port, and the disc.
    env.run(&["print", "BIG001"]).expect_code(0);
    assert_eq!(publisher.received_uids().len(), 400);
}
