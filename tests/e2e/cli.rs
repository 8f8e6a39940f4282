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
