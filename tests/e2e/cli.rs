//! The command line itself: usage errors, help, configuration errors, `check`.

use crate::harness::{Publisher, Storescp, TestEnv};

#[test]
fn usage_errors_exit_64_help_and_version_exit_0() {
    let env = TestEnv::new("");
    env.run(&["--help"]).expect_code(0);
    env.run(&["relay", "--help"]).expect_code(0);
    env.run(&["--version"]).expect_code(0);
    env.run(&[]).expect_code(64);
    env.run(&["frobnicate"]).expect_code(64);
    env.run(&["relay"]).expect_code(64);
    let run = env.run(&["relay", "/tmp", "--to", "127.0.0.1:104"]);
    run.expect_code(64);
    assert!(run.stderr.contains("AE@HOST:PORT"), "{}", run.stderr);
}

#[test]
fn configuration_errors_name_file_line_and_key() {
    let env = TestEnv::new("[cd_publisher]\nhost = \"127.0.0.1\"\nprot = 104\n");
    let run = env.run(&["--json", "relay", "/tmp"]);
    run.expect_code(78);
    let detail = run.json()["detail"].as_str().expect("detail").to_string();
    // Line 5: the harness writes staging_dir and audit_syslog first.
    assert!(detail.contains("config.toml line 5") && detail.contains("prot"), "{detail}");

    let env = TestEnv::new("");
    let run = env.run(&["relay", "/tmp"]);
    run.expect_code(78);
    assert!(run.stderr.contains("cd_publisher.host"), "{}", run.stderr);

    // A file named by PACS2CD_CONFIG must exist; the variable is read.
    let missing = env.dir.path().join("nope.toml");
    let run = env.run_with(&[("PACS2CD_CONFIG", missing.to_str().expect("utf-8"))], &["relay", "/tmp"]);
    run.expect_code(78);
    assert!(run.stderr.contains("nope.toml (from PACS2CD_CONFIG)"), "{}", run.stderr);
    let run = env.run_with(&[("PACS2CD_CONFIG", env.config.to_str().expect("utf-8"))], &["relay", "/tmp"]);
    assert!(run.stderr.contains("cd_publisher.host"), "{}", run.stderr);
}

#[test]
fn check_reports_each_item_and_creates_nothing() {
    let pacs = crate::harness::Orthanc::start();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["check"]);
    run.expect_code(0);
    for item in [
        "config",
        "dcmsend",
        "storescu",
        "echoscu",
        "findscu",
        "storescp",
        "C-ECHO CD publisher",
        "C-FIND PACS",
        "staging folder",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with("ok") && l.contains(item)),
            "{item}:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("v3.6"), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l.starts_with("--") && l.contains("patient API")), "{}", run.stdout);
    assert!(!env.staging.exists(), "check created the staging folder");

    // The publisher down: that line fails, the rest still print, exit 69.
    drop(publisher);
    let run = env.run(&["--json", "check"]);
    run.expect_code(69);
    let json = run.json();
    assert_eq!(json["status"], "failed");
    let checks = json["checks"].as_array().expect("checks");
    let echo = checks.iter().find(|c| c["item"] == "C-ECHO CD publisher").expect("echo item");
    assert_eq!(echo["status"], "failed");
    assert!(echo["detail"].as_str().is_some_and(|d| d.contains("connection refused")), "{echo}");
    assert!(checks.iter().any(|c| c["item"] == "staging folder" && c["status"] == "ok"));

    // A calling AE the PACS refuses queries from (a C-ECHO would pass).
    let publisher = Storescp::start(Publisher::AcceptAll);
    let stranger = pacs.config("").replace("calling_ae = \"PACS2CD\"", "calling_ae = \"STRANGER\"");
    let env =
        TestEnv::new(&format!("{stranger}{}", TestEnv::publisher_section(publisher.port, "dcmsend", "")));
    let run = env.run(&["check"]);
    run.expect_code(69);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("C-FIND PACS") && l.contains("STRANGER")),
        "{}",
        run.stdout
    );

    // No configuration file at all (or the package's, with the site values
    // unset): not a working setup, and the output says what to fill in.
    let run = env.run_with(&[], &["check"]);
    run.expect_code(78);
    assert!(
        run.stdout.contains("no configuration file found") || run.stdout.contains("pacs.host"),
        "{}",
        run.stdout
    );

    // A broken configuration is reported as the first and only item.
    let env = TestEnv::new("bogus = 1\n");
    let run = env.run(&["check"]);
    run.expect_code(78);
    assert!(run.stdout.starts_with("FAIL  config"), "{}", run.stdout);
}

/// Every option a man page shows is one the program lists in its --help
/// (and so accepts), for the main page and each subcommand's.
#[test]
fn man_pages_match_the_help() {
    let env = TestEnv::new("");
    let man = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut pages = 0;
    for entry in std::fs::read_dir(&man).expect("man/") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|n| n.to_str()).expect("page name").to_string();
        let sub = name.strip_prefix("pacs2cd-");
        let help = match sub {
            Some(sub) => env.run(&[sub, "--help"]),
            None => env.run(&["--help"]),
        };
        help.expect_code(0);
        let text = std::fs::read_to_string(&path).expect("page").replace("\\-", "-");
        let options: Vec<String> = text
            .split("\\fB")
            .skip(1)
            .filter_map(|piece| piece.split("\\fR").next())
            .filter(|word| word.starts_with('-'))
            .map(str::to_string)
            .collect();
        assert!(!options.is_empty(), "{name}: no options found");
        for option in options {
            assert!(
                help.stdout
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .map(|w| w.trim_end_matches("..."))
                    .any(|w| w == option || w.starts_with(&format!("{option}="))),
                "{name}: the man page shows {option}, --help does not:\n{}",
                help.stdout
            );
        }
        // The version flag belongs to the program, not to its subcommands.
        if sub.is_some() {
            assert!(!text.contains("--version"), "{name} shows --version");
        }
        assert!(
            text.contains("129") || sub == Some("check") || sub == Some("cgi"),
            "{name}: exit codes incomplete"
        );
        pages += 1;
    }
    assert_eq!(pages, 6);
}

/// The lines a terminal shows, as the terminal gets them: each frame the
/// progress bar draws (after a carriage return) and each output line, with
/// the escape sequences taken out.
fn frames(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut frames = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters, then a final byte in @..~.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\n' => frames.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    frames.push(current);
    frames.into_iter().filter(|f| !f.trim().is_empty()).collect()
}

/// Progress and result in a real terminal (a pty, as `script` gives one)
/// of 60 and 80 columns: every frame within the width, the phase always
/// shown, the accessions' counts adding up to the total in every frame
/// that shows them whole, and the result lines wrapped to the width.
#[test]
fn progress_fits_the_terminal_and_adds_up() {
    use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study};
    let script = crate::harness::require("script", "util-linux");
    let source = tempfile::tempdir().expect("source");
    let mut files = dicom_gen::write_study(
        &source.path().join("a"),
        &Study::new("DOE^JOHN", "PID001", "ACC1", vec![Series::new("CT", CT_IMAGE, 12)]),
    );
    files.extend(dicom_gen::write_study(
        &source.path().join("b"),
        &Study::new("DOE^JOHN", "PID001", "ACC2", vec![Series::new("MR", MR_IMAGE, 12)]),
    ));
    let pacs = crate::harness::FakePacs::start("slow", &files, &["--pause", "0.05"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    for columns in [30, 60, 80] {
        let line = format!(
            "stty cols {columns} rows 24; exec {} --config {} print ACC1 ACC2",
            env!("CARGO_BIN_EXE_pacs2cd"),
            env.config.display()
        );
        let out = std::process::Command::new(&script)
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("HOME", env.dir.path())
            .env("TERM", "xterm")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script");
        let frames = frames(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{frames:#?}");
        let bars: Vec<&String> =
            frames.iter().filter(|f| f.starts_with("retrieving ") || f.starts_with("sending ")).collect();
        assert!(bars.len() >= 3, "{columns} columns: too few progress frames: {frames:#?}");
        if columns == 30 {
            // The words alone: the phase and the count still show.
            assert!(bars.iter().any(|b| b.contains("/24 files")), "{bars:#?}");
            continue;
        }
        for frame in &frames {
            assert!(frame.chars().count() <= columns, "{columns} columns: {frame:?}");
        }
        let mut whole = 0;
        for bar in bars.iter().filter(|b| b.starts_with("retrieving ")) {
            let count = bar["retrieving ".len()..].split('/').next().and_then(|n| n.parse::<u64>().ok());
            let Some(total) = count else { panic!("no count in {bar:?}") };
            let Some(parts) = bar.split_once(" (").and_then(|(_, rest)| rest.split_once(')')).map(|(p, _)| p)
            else {
                continue;
            };
            let sum: u64 = parts
                .split(", ")
                .filter_map(|part| part.split_whitespace().nth(1)?.split('/').next()?.parse::<u64>().ok())
                .sum();
            assert_eq!(sum, total, "{columns} columns: the accessions' counts against the total: {bar:?}");
            whole += 1;
        }
        if columns == 80 {
            assert!(whole >= 2, "no frame showed both accessions' counts: {bars:#?}");
        }
        let last = frames.last().expect("the verdict");
        assert!(frames.iter().any(|f| f.starts_with("sent 24 files of DOE, JOHN")), "{frames:#?}\n{last}");
    }
    env.assert_staging_empty();
}

/// A PACS that does not give ModalitiesInStudy: the result names the
/// modalities the files carry, on the screen and in JSON.
#[test]
fn modalities_come_from_the_files_when_the_pacs_gives_none() {
    use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study};
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new(
            "DOE^JOHN",
            "PID001",
            "ACC1",
            vec![Series::new("CT", CT_IMAGE, 2), Series::new("MR", MR_IMAGE, 1)],
        ),
    );
    let pacs = crate::harness::FakePacs::start("normal", &files, &["--no-modalities"]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ACC1"]);
    run.expect_code(0);
    assert_eq!(run.json()["studies"][0]["modalities"], serde_json::json!(["CT", "MR"]), "{}", run.stdout);
    let run = env.run(&["print", "ACC1"]);
    run.expect_code(0);
    assert!(run.stdout.contains("  ACC1: CT/MR (3 files) "), "{}", run.stdout);
    env.assert_staging_empty();
}
