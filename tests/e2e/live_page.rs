//! The HIS button's live page, through nginx + fcgiwrap as www-data: the
//! page arrives at once and shows the job's progress while a slow PACS
//! (tests/support, `slow`) sends, then the verdict on the same page; a
//! browser (headless Chromium) shows one progress line at a time without
//! JavaScript. JSON clients get one object with the table's status.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::dicom_gen::{self, CT_IMAGE, Series, Study};
use crate::harness::{Browser, FakePacs, Nginx, Publisher, Storescp, TestEnv, free_port};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const TOKEN: (&str, &str) = ("PACS2CD_CGI_TOKEN", "t0ken-for-the-his");
const PAGE: &str = "/send_rimage_multiple.php?accession_number=ACC200&access_token=t0ken-for-the-his";
/// 40 images, 50 ms apart: a job of two seconds or more.
const IMAGES: usize = 40;
const PAUSE: &str = "0.05";

struct Hospital {
    pacs: FakePacs,
    publisher: Storescp,
    env: TestEnv,
    uids: BTreeSet<String>,
}

fn hospital() -> Hospital {
    let source = tempfile::tempdir().expect("source");
    let study = Study {
        latin1: true,
        ..Study::new("MÜLLER^JOSÉ^^DR", "MÜ-77", "ACC200", vec![Series::new("CT", CT_IMAGE, IMAGES)])
    };
    let files = dicom_gen::write_study(source.path(), &study);
    let uids = files.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let pacs = FakePacs::start("slow", &files, &["--pause", PAUSE]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config("retrieve = \"get\"\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "name = \"Rimage 2000i\"\n")
    ));
    Hospital { pacs, publisher, env, uids }
}

/// When (since the request) the body first held `needle`.
fn arrival(pieces: &[(Duration, Vec<u8>)], needle: &str) -> Option<Duration> {
    let mut seen = Vec::new();
    for (at, piece) in pieces {
        seen.extend_from_slice(piece);
        if String::from_utf8_lossy(&seen).contains(needle) {
            return Some(*at);
        }
    }
    None
}

#[test]
fn the_print_page_shows_progress_while_the_job_runs() {
    let hospital = hospital();
    let nginx = Nginx::start(&hospital.env.config, &[TOKEN]);
    let pieces = nginx.stream(PAGE, &[("Accept", BROWSER)]);
    let whole: Vec<u8> = pieces.iter().flat_map(|(_, piece)| piece.clone()).collect();
    let text = String::from_utf8_lossy(&whole).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{}\n{}", &text[..text.len().min(400)], nginx.error_log());
    let top = arrival(&pieces, "Preparing the disc").expect("the page's top");
    let progress = arrival(&pieces, "Retrieving the images from the PACS: ").expect("a progress update");
    let sending = arrival(&pieces, "Sending the images to the Rimage 2000i").expect("the send's progress");
    let verdict = arrival(&pieces, "id=\"verdict\"").expect("the verdict");
    // The PACS alone takes 40 x 50 ms: the top of the page and the first
    // counts came while it sent, not with the verdict at the end.
    assert!(top + Duration::from_secs(1) < verdict, "top at {top:?}, verdict at {verdict:?}");
    assert!(
        progress + Duration::from_millis(500) < verdict,
        "progress at {progress:?}, verdict at {verdict:?}"
    );
    assert!(progress <= sending && sending <= verdict);
    assert!(text.contains("data-status=\"200\""), "{}", &text[text.len().saturating_sub(2000)..]);
    assert!(text.contains("<strong>MÜLLER, JOSÉ</strong>") && text.contains("sent to the Rimage 2000i"));
    let received: BTreeSet<String> = hospital.publisher.received_uids().into_iter().collect();
    assert_eq!(received, hospital.uids, "{}", hospital.pacs.log());
    hospital.env.assert_staging_empty();

    // A JSON client waits for one object with the table's status.
    let json = nginx.request("GET", &PAGE.replace("ACC200&", "ACC200&format=json&"), &[("Accept", BROWSER)]);
    assert_eq!(json.status, 200, "{json:?}");
    assert_eq!(json.json()["files_sent"], IMAGES);

    // Refused before the job starts: the table's status, not a live page.
    let invalid = nginx.request("GET", &PAGE.replace("ACC200", "A*"), &[("Accept", BROWSER)]);
    assert_eq!(invalid.status, 400, "{invalid:?}");
    assert!(invalid.body.contains("data-error=\"invalid accession_number\""), "{}", invalid.body);
    // Found out once the page began: its verdict carries the table's words.
    let unknown = nginx.request("GET", &PAGE.replace("ACC200", "NOPE"), &[("Accept", BROWSER)]);
    assert_eq!(unknown.status, 200, "{unknown:?}");
    assert!(unknown.body.contains("data-status=\"404\" data-error=\"accession_number not found\""));
}

#[test]
fn a_failure_after_the_page_began_is_its_verdict() {
    let hospital = hospital();
    // The publisher is switched off: found after the page began.
    let off = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        hospital.pacs.config("retrieve = \"get\"\n"),
        TestEnv::publisher_section(free_port(), "dcmsend", "")
    ));
    let nginx = Nginx::start(&off.config, &[TOKEN]);
    let page = nginx.request("GET", PAGE, &[("Accept", BROWSER)]);
    assert_eq!(page.status, 200, "a streamed page's status is sent before the verdict");
    assert!(
        page.body.contains("data-status=\"502\" data-error=\"CD Publisher unreachable\""),
        "{}",
        &page.body[page.body.len().saturating_sub(2000)..]
    );
    assert!(page.body.contains("switched on and connected"), "advice in the HIS user's words");
    let verdict = &page.body[page.body.find("id=\"verdict\"").expect("a verdict")..];
    for internal in ["127.0.0.1", "@", "dcmsend", "cd_publisher.", "CD Publisher unreachable at"] {
        assert!(!verdict.contains(internal), "the page shows {internal:?}: {verdict}");
    }
    assert!(
        !page.body.contains("--allow") && !page.body.contains("--to"),
        "no command-line flag on a web page"
    );
    let json = nginx.request("GET", &PAGE.replace("ACC200&", "ACC200&format=json&"), &[]);
    assert_eq!(json.status, 502, "{json:?}");
    assert_eq!(json.json()["error"], "CD Publisher unreachable");
    off.assert_staging_empty();
}

#[test]
fn a_browser_sees_one_progress_line_then_the_verdict() {
    let hospital = hospital();
    let nginx = Nginx::start(&hospital.env.config, &[TOKEN]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}{PAGE}", nginx.port));
    browser.wait_for_text("Retrieving the images from the PACS", Duration::from_secs(30));
    // A moment later (the PACS needs two seconds): a count on the bar.
    std::thread::sleep(Duration::from_millis(700));
    let during = browser.visible_text();
    let picture = browser.screenshot("live-page-during-the-job.png");
    assert_eq!(during.matches("Retrieving the images").count(), 1, "one progress line at a time:\n{during}");
    assert!(!during.contains("Looking up"), "older updates are hidden:\n{during}");
    assert!(!during.contains("Sent to the CD publisher"), "the verdict came too soon:\n{during}");
    let after = browser.wait_for_text("Sent to the CD publisher", Duration::from_secs(60));
    let verdict = browser.screenshot("live-page-verdict.png");
    assert!(!after.contains("Preparing the disc") && !after.contains("Retrieving"), "{after}");
    assert!(after.contains("MÜLLER, JOSÉ") && after.contains("40 images"), "{after}");
    eprintln!("screenshots: {} and {}", picture.display(), verdict.display());
    drop(browser);
    let received: BTreeSet<String> = hospital.publisher.received_uids().into_iter().collect();
    assert_eq!(received, hospital.uids);
    hospital.env.assert_staging_empty();
}

#[test]
fn several_accessions_are_counted_each() {
    let source = tempfile::tempdir().expect("source");
    let mut files = Vec::new();
    for accession in ["ACC300", "ACC301"] {
        let study = Study::new("DOE^JANE", "P300", accession, vec![Series::new("CT", CT_IMAGE, 12)]);
        files.extend(dicom_gen::write_study(&source.path().join(accession), &study));
    }
    let pacs = FakePacs::start("slow", &files, &["--pause", PAUSE]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config("retrieve = \"get\"\n"),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    let page = "/send_rimage_multiple.php?accession_number=ACC300,ACC301&access_token=t0ken-for-the-his";
    let pieces = nginx.stream(page, &[("Accept", BROWSER)]);
    let whole: Vec<u8> = pieces.iter().flat_map(|(_, piece)| piece.clone()).collect();
    let text = String::from_utf8_lossy(&whole).into_owned();
    assert!(text.contains("data-status=\"200\""), "{}", &text[text.len().saturating_sub(2000)..]);
    // Each retrieve update with a count shows each accession's share, and
    // the shares add up to the whole.
    let updates: Vec<&str> =
        text.split("<div id=\"u").filter(|u| u.contains("Retrieving the images from the PACS: ")).collect();
    assert!(!updates.is_empty(), "{text}");
    let number = |text: &str, after: &str| -> u64 {
        let rest = &text[text.find(after).unwrap_or_else(|| panic!("{after:?} in {text}")) + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).expect("a number")
    };
    for update in &updates {
        assert!(update.contains("class=\"parts\""), "{update}");
        let done = number(update, "Retrieving the images from the PACS: ");
        let (first, second) = (number(update, "ACC300: "), number(update, "ACC301: "));
        assert_eq!(done, first + second, "{update}");
        assert!(
            update.contains(&format!("ACC300: {first} of 12"))
                && update.contains(&format!("ACC301: {second} of 12")),
            "a total per accession: {update}"
        );
    }
    assert!(
        updates.iter().any(|u| number(u, "ACC300: ") + number(u, "ACC301: ") > 0),
        "a count while the PACS sent: {updates:?}"
    );
    assert_eq!(publisher.received_uids().len(), 24);
    env.assert_staging_empty();
}

/// The HIS button with a hot-folder robot (the PTBurn simulator): the
/// job runs as www-data, its disc and job file go to folders of the staging
/// group (setgid, so technicians' jobs and the web service's share them),
/// and the page shows the burn disc by disc, then the verdict.
#[test]
fn the_print_page_follows_a_robot_burn() {
    use crate::harness::{STAFF_GROUP, own};
    use crate::robots::{Kind, RobotSim};
    let source = tempfile::tempdir().expect("source");
    let study = Study::new("DOE^JANE", "P400", "ACC200", vec![Series::new("CT", CT_IMAGE, 8)]);
    let files = dicom_gen::write_study(source.path(), &study);
    let pacs = FakePacs::start("slow", &files, &["--pause", PAUSE]);
    // Half a second a disc: each disc's update reaches the page.
    let robot = RobotSim::start_kind(Kind::PtBurn, "ok", 0.5, &|dir| {
        own(dir, "root", "root", 0o755);
        for shared in ["jobs", "discs"] {
            own(&dir.join(shared), "root", STAFF_GROUP, 0o3770);
        }
        own(&dir.join("Status"), "root", "root", 0o755);
    });
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config("retrieve = \"get\"\n"),
        robot.section("copies = 2\n")
    ));
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    let pieces = nginx.stream(PAGE, &[("Accept", BROWSER)]);
    let whole: Vec<u8> = pieces.iter().flat_map(|(_, piece)| piece.clone()).collect();
    let text = String::from_utf8_lossy(&whole).into_owned();
    assert!(
        text.contains("data-status=\"200\""),
        "{}\n{}\n{}",
        &text[text.len().saturating_sub(2000)..],
        nginx.error_log(),
        robot.log()
    );
    let first = arrival(&pieces, "Burning: disc 1 of 2").expect("disc 1 of 2 on the page");
    let second = arrival(&pieces, "Burning: disc 2 of 2").expect("disc 2 of 2 on the page");
    let verdict = arrival(&pieces, "id=\"verdict\"").expect("the verdict");
    assert!(first < second && second < verdict, "{first:?} {second:?} {verdict:?}");
    assert!(
        text.contains("Disc burned: take it from the robot"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    assert!(text.contains("burned 2 discs"), "{}", &text[text.len().saturating_sub(2000)..]);
    let checks = robot.checks();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["problems"], serde_json::json!([]), "{checks:?}");
    // In the group's folders, the job is the group's: a technician's next
    // job may sweep it, the robot's share user reads it.
    assert_eq!(checks[0]["modes"], serde_json::json!({"job_dir": "0o2750", "job_file": "0o640"}));
    robot.assert_data_folder_empty();
    env.assert_staging_empty();
}
