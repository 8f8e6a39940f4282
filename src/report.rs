//! What a job prints: a human summary on stdout, or one JSON object; and a
//! failure as one line on stderr (plus the JSON object on stdout with
//! `--json`). The JSON keys of the legacy HIS contract come first, which is
//! why these are structs (serde keeps field order) and not maps.

use serde::Serialize;

/// `println!` without its panic when stdout is closed (a pipe to `head`,
/// a cron job whose mail failed): the exit code must still be the table's.
macro_rules! outln {
    ($($arg:tt)*) => {{
        crate::report::write_line(&format!($($arg)*));
    }};
}

/// One JSON document on stdout, never wrapped.
macro_rules! jsonln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::check::{CheckItem, Status};
use crate::failure::{Class, Failure};
use crate::patients::Patient;
use crate::pipeline::StudySummary;
use crate::pipeline::fetch::Fetched;
use crate::pipeline::manifest::Proof;
use crate::pipeline::print::{Plan, Printed};
use crate::pipeline::relay::{Relayed, Skipped};
use crate::sanitize::for_terminal;

pub enum Report {
    Relay {
        relayed: Relayed,
        skipped: Vec<Skipped>,
    },
    Fetch(Fetched),
    Print(Printed),
    Plan(Plan),
    Check(Vec<CheckItem>),
    /// A CGI HEAD request: checked, nothing done.
    Probe,
}

impl Report {
    /// A report can still fail the run (`check` with a failing item).
    pub fn failed_class(&self) -> Option<Class> {
        match self {
            Report::Relay { .. } | Report::Fetch(_) | Report::Print(_) | Report::Plan(_) | Report::Probe => {
                None
            }
            Report::Check(items) => items.iter().find_map(|item| item.failed),
        }
    }
}

#[derive(Serialize)]
struct RelayJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    relayed: &'a Relayed,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    skipped: &'a [Skipped],
}

#[derive(Serialize)]
struct FetchJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    fetched: &'a Fetched,
}

#[derive(Serialize)]
struct PrintJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    printed: &'a Printed,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    status: &'static str,
    #[serde(flatten)]
    plan: &'a Plan,
}

#[derive(Serialize)]
struct CheckJson<'a> {
    status: &'static str,
    checks: &'a [CheckItem],
}

/// The JSON object of a result (`status` first).
pub fn json(report: &Report) -> String {
    let value = match report {
        Report::Relay { relayed, skipped } => {
            serde_json::to_string(&RelayJson { status: "ok", relayed, skipped })
        }
        Report::Fetch(fetched) => serde_json::to_string(&FetchJson { status: "ok", fetched }),
        Report::Print(printed) => serde_json::to_string(&PrintJson { status: "ok", printed }),
        Report::Plan(plan) => serde_json::to_string(&PlanJson { status: "dry-run", plan }),
        Report::Probe => Ok("{\"status\":\"ok\"}".to_string()),
        Report::Check(checks) => {
            let status = if report.failed_class().is_some() { "failed" } else { "ok" };
            serde_json::to_string(&CheckJson { status, checks })
        }
    };
    // Plain strings and numbers always serialize; keep stdout valid JSON anyway.
    value.unwrap_or_else(|err| format!("{{\"status\":\"ok\",\"warning\":\"{err}\"}}"))
}

/// A robot job's outcome in words: "burned 2 discs", or how far it was
/// when pacs2cd stopped following.
pub fn burn_words(burn: &crate::publisher::hotfolder::Burn) -> String {
    use crate::publisher::hotfolder::Phase;
    let discs = |n: u32| if n == 1 { "1 disc".to_string() } else { format!("{n} discs") };
    match burn.phase {
        Phase::Done => format!("burned {}", discs(burn.discs)),
        Phase::Placed | Phase::Taken => {
            format!("job {} taken by the robot, {} to burn", burn.job_id, discs(burn.copies))
        }
        Phase::Burning | Phase::Paused | Phase::Failed => format!(
            "job {} still burning ({} of {} done) when pacs2cd stopped following",
            burn.job_id, burn.discs, burn.copies
        ),
    }
}

pub fn print(report: &Report, json: bool) {
    if json {
        jsonln!("{}", self::json(report));
        return;
    }
    match report {
        Report::Relay { relayed, skipped } => {
            let skipped_note = if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped (not DICOM instances)", skipped.len())
            };
            outln!(
                "sent {} files to the CD publisher {}@{} in {:.1} s{skipped_note}",
                relayed.files_sent,
                relayed.called_ae,
                relayed.destination,
                relayed.seconds
            );
            for (file, warning) in &relayed.warnings {
                outln!("  stored with a warning: {}: {}", for_terminal(file), for_terminal(warning));
            }
        }
        Report::Fetch(fetched) => {
            let into = match (&fetched.folder, &fetched.iso) {
                (Some(folder), Some(iso)) => {
                    format!("into {} and the image {}", for_terminal(folder), for_terminal(iso))
                }
                (Some(folder), None) => format!("into {}", for_terminal(folder)),
                (None, Some(iso)) => format!("into the image {}", for_terminal(iso)),
                (None, None) => String::new(),
            };
            // The details first, the verdict last: it stays on the screen.
            print_studies(&fetched.studies);
            if let Some(bytes) = fetched.iso_bytes {
                outln!("  disc image: {:.1} MB", bytes as f64 / 1e6);
            }
            outln!("  {}", proof_words(fetched.proof));
            outln!(
                "{}fetched {} files ({:.1} MB) of {}, {} {}, {into} in {:.1} s",
                partial_prefix(fetched.missing),
                fetched.files,
                fetched.bytes as f64 / 1e6,
                patients_phrase(&fetched.patients),
                fetched.studies.len(),
                if fetched.studies.len() == 1 { "study" } else { "studies" },
                fetched.seconds
            );
        }
        Report::Print(printed) if printed.burn.is_some() => {
            print_studies(&printed.studies);
            outln!("  {}", proof_words(printed.proof));
            if let Some(burn) = &printed.burn {
                outln!(
                    "{}{} files of {} on a {} for the {}: {} ({:.1} s)",
                    partial_prefix(printed.missing),
                    printed.files_sent,
                    patients_phrase(&printed.patients),
                    burn.medium,
                    for_terminal(&printed.publisher),
                    burn_words(burn),
                    printed.seconds
                );
            }
        }
        Report::Print(printed) => {
            print_studies(&printed.studies);
            outln!("  {}", proof_words(printed.proof));
            outln!(
                "{}sent {} files of {} to the {} ({}@{}) in {:.1} s",
                partial_prefix(printed.missing),
                printed.files_sent,
                patients_phrase(&printed.patients),
                for_terminal(&printed.publisher),
                printed.called_ae,
                printed.destination,
                printed.seconds
            );
        }
        Report::Plan(plan) => {
            let files = plan.files_expected.map_or("an unknown number of".to_string(), |n| n.to_string());
            outln!(
                "dry run: would send {files} files of {} to the {} at {}; nothing was retrieved or sent",
                patients_phrase(&plan.patients),
                for_terminal(&plan.publisher),
                plan.destination
            );
            outln!("  {}", proof_words(plan.proof));
            print_studies(&plan.studies);
        }
        Report::Probe => outln!("ok"),
        Report::Check(items) => {
            for item in items {
                let status = match item.status {
                    Status::Ok => "ok  ",
                    Status::Failed => "FAIL",
                    Status::Skipped => "--  ",
                };
                outln!("{status}  {:<22} {}", item.item, for_terminal(&item.detail));
            }
            let failed: Vec<&str> =
                items.iter().filter(|i| i.status == Status::Failed).map(|i| i.item.as_str()).collect();
            if failed.is_empty() {
                outln!("all {} checks passed", items.iter().filter(|i| i.status == Status::Ok).count());
            } else {
                outln!("{} of {} checks FAILED: {}", failed.len(), items.len(), failed.join(", "));
            }
        }
    }
}

/// A line of the human result on stdout, wrapped to the terminal's width
/// when stdout is one (a line longer than the screen wraps mid-word and
/// pushes the verdict up); as it is for a pipe or a file.
pub fn write_line(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{}", fit(line, 1));
}

/// `line` wrapped to the width of the terminal descriptor `fd` is (1,
/// stdout; 2, stderr), or as it is when `fd` is no terminal.
pub fn fit(line: &str, fd: i32) -> String {
    match terminal_columns(fd) {
        Some(columns) => wrap(line, columns),
        None => line.to_string(),
    }
}

/// The width in columns of `fd` when it is a terminal.
pub fn terminal_columns(fd: i32) -> Option<usize> {
    // SAFETY: isatty and ioctl(TIOCGWINSZ) write only into the winsize
    // given.
    unsafe {
        if libc::isatty(fd) != 1 {
            return None;
        }
        let mut size: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col >= 20)
            .then_some(size.ws_col as usize)
    }
}

/// Columns a character takes on a terminal: none for combining marks and
/// zero-width characters, two for the wide scripts (CJK, Hangul,
/// full-width forms) and emoji, one otherwise.
fn columns_of(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F | 0x200B..=0x200F | 0x2060..=0x2064 | 0xFE00..=0xFE0F | 0xFEFF => 0,
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// `line` in lines of at most `columns`, broken at spaces only: a word (a
/// path, a UID) is never cut, so what is copied from the screen is what
/// was meant, and one longer than a line has a line of its own. The lines
/// after the first are indented two more than the line itself (at most a
/// quarter of the width).
fn wrap(line: &str, columns: usize) -> String {
    let width = |text: &str| text.chars().map(columns_of).sum::<usize>();
    if width(line) <= columns {
        return line.to_string();
    }
    let body = line.trim_start_matches(' ');
    let lead = &line[..line.len() - body.len()];
    let indent = " ".repeat((lead.len() + 2).min(columns / 4));
    let mut out = String::new();
    let mut current = lead.to_string();
    let mut used = width(lead);
    let mut fresh = true;
    // Split at single spaces: a run of spaces inside a name stays a run.
    for word in body.split(' ') {
        let needed = width(word) + usize::from(!fresh);
        if !fresh && used + needed > columns {
            out.push_str(current.trim_end_matches(' '));
            out.push('\n');
            current = indent.clone();
            used = indent.len();
            fresh = true;
        }
        if !fresh {
            current.push(' ');
            used += 1;
        }
        current.push_str(word);
        used += width(word);
        fresh = false;
    }
    out.push_str(current.trim_end_matches(' '));
    out
}

/// A disc accepted short (`--allow-partial`) says so in its first words.
fn partial_prefix(missing: usize) -> String {
    match missing {
        0 => String::new(),
        1 => "PARTIAL DISC, 1 image missing: ".to_string(),
        n => format!("PARTIAL DISC, {n} images missing: "),
    }
}

/// "DOE, JOHN (PID001)", or every patient of a mixed job:
/// "DOE, JOHN (PID001: ACC001) and ROE, JANE (PID002: ACC004)".
fn patients_phrase(patients: &[Patient]) -> String {
    let one = |p: &Patient, with_accessions: bool| {
        let label = for_terminal(&p.label());
        if with_accessions { format!("{label} [{}]", p.accessions.join(", ")) } else { label }
    };
    match patients {
        [] => "no patient".to_string(),
        [patient] => one(patient, false),
        many => {
            let all: Vec<String> = many.iter().map(|p| one(p, true)).collect();
            format!("{} patients: {}", many.len(), all.join(" and "))
        }
    }
}

/// How the disc was proven whole, in words.
pub fn proof_words(proof: &str) -> &'static str {
    match proof {
        "instance-list" => Proof::InstanceList.describe(),
        "series-counts" => Proof::SeriesCounts.describe(),
        "study-count" => Proof::StudyCount.describe(),
        _ => Proof::Unproven.describe(),
    }
}

fn print_studies(studies: &[StudySummary]) {
    for study in studies {
        outln!(
            "  {}: {}({} files) {}",
            for_terminal(&study.accession),
            match study.modalities.is_empty() {
                true => String::new(),
                false => format!("{} ", for_terminal(&study.modalities.join("/"))),
            },
            study.files,
            study.study_instance_uid
        );
    }
}

#[derive(Serialize)]
struct FailureJson<'a> {
    error: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_sent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_failed: Option<usize>,
    /// Sent when the job was cut short and never answered: the publisher
    /// may hold them (counted in files_failed, not in files_sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    files_in_doubt: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failures: Vec<FailedFile<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<FailedFile<'a>>,
    /// Whose images the job handled: each patient of a refused job of
    /// several (the web answer leaves them out).
    #[serde(skip_serializing_if = "<[Patient]>::is_empty")]
    patients: &'a [Patient],
}

#[derive(Serialize)]
struct FailedFile<'a> {
    file: &'a str,
    reason: &'a str,
}

/// How many reasons a terminal is shown (JSON has every file): with the
/// headline, well within a 24-row screen.
const SHOWN_REASONS: usize = 8;

pub fn print_failure(failure: &Failure, json: bool) {
    // The files' reasons first, grouped, and the verdict last: the line a
    // technician must see stays on the screen however many files failed.
    if let Some(counts) = &failure.relay {
        for line in grouped_reasons(&counts.failures) {
            eprintln!("{}", fit(&format!("  {}", for_terminal(&line)), 2));
        }
    }
    // "busy" is the word a technician acts on (wait, try again); the
    // detail says what holds the port.
    let class = if failure.class == Class::Busy { "busy: " } else { "" };
    eprintln!("{}", fit(&format!("pacs2cd: {class}{}", for_terminal(&failure.detail)), 2));
    if json {
        jsonln!("{}", failure_json(failure));
    }
}

/// "41 files: the publisher accepts no MRImageStorage (e.g. MR.2.25.1)",
/// most frequent first, at most `SHOWN_REASONS` lines.
fn grouped_reasons(failures: &[(String, String)]) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (file, reason) in failures {
        match groups.iter_mut().find(|(r, _)| *r == reason.as_str()) {
            Some((_, files)) => files.push(file),
            None => groups.push((reason, vec![file])),
        }
    }
    groups.sort_by_key(|group| std::cmp::Reverse(group.1.len()));
    let mut lines: Vec<String> = groups
        .iter()
        .take(SHOWN_REASONS)
        .map(|(reason, files)| match files.as_slice() {
            [one] => format!("{one}: {reason}"),
            many => format!("{} files: {reason} (e.g. {})", many.len(), many[0]),
        })
        .collect();
    if groups.len() > SHOWN_REASONS {
        let rest: usize = groups[SHOWN_REASONS..].iter().map(|(_, files)| files.len()).sum();
        lines.push(format!(
            "... and {rest} more files for {} other reasons (--json lists each)",
            groups.len() - SHOWN_REASONS
        ));
    }
    lines
}

/// The SPEC error object: `{"error":…, "detail":…, "destination":…}`.
pub fn failure_json(failure: &Failure) -> String {
    let counts = failure.relay.as_ref();
    let object = FailureJson {
        error: failure.class.error_str(),
        detail: &failure.detail,
        destination: failure.destination.as_deref(),
        files_sent: counts.map(|c| c.files_sent),
        files_failed: counts.map(|c| c.files_failed),
        files_in_doubt: counts.map(|c| c.files_in_doubt).filter(|n| *n > 0),
        failures: counts
            .map(|c| c.failures.iter().map(|(file, reason)| FailedFile { file, reason }).collect())
            .unwrap_or_default(),
        skipped: counts
            .map(|c| c.skipped.iter().map(|(file, reason)| FailedFile { file, reason }).collect())
            .unwrap_or_default(),
        patients: &failure.patients,
    };
    // Serializing plain strings and numbers cannot fail; keep a valid
    // object on stdout all the same.
    serde_json::to_string(&object)
        .unwrap_or_else(|_| format!("{{\"error\":\"{}\"}}", failure.class.error_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line fits the terminal, broken at spaces only and indented
    /// under its first line; a word (a path, a UID) is never cut; wide
    /// characters count two, combining marks none.
    #[test]
    fn lines_fit_the_terminal() {
        let line =
            "sent 60 files of DEMO, PATIENT (DEMO001) to the CD publisher (CDPUB@127.0.0.1:30523) in 0.1 s";
        for columns in [60, 80] {
            let wrapped = wrap(line, columns);
            assert!(wrapped.lines().all(|l| l.chars().count() <= columns), "{columns}:\n{wrapped}");
            assert_eq!(
                wrapped.split_whitespace().collect::<Vec<_>>(),
                line.split_whitespace().collect::<Vec<_>>()
            );
            assert!(wrapped.lines().skip(1).all(|l| l.starts_with("  ")), "{wrapped}");
        }
        assert_eq!(wrap("short", 80), "short");
        let path = "fetched 3 files into /home/alice/DOE_JOHN-ACC1/DICOM/ST000001/SE000001 in 0.1 s";
        let wrapped = wrap(path, 30);
        assert!(wrapped.contains("/home/alice/DOE_JOHN-ACC1/DICOM/ST000001/SE000001"), "{wrapped}");
        // A run of spaces where no break falls stays a run.
        assert_eq!(wrap("a  b c d e f g h i j k l", 14), "a  b c d e f g\n  h i j k l");
        let wide = "sent 3 files of 山田^太郎 山田^太郎 山田^太郎 山田^太郎 to the CD publisher";
        let wrapped = wrap(wide, 30);
        assert!(wrapped.lines().all(|l| l.chars().map(columns_of).sum::<usize>() <= 30), "{wrapped}");
        assert_eq!(columns_of('\u{0301}'), 0);
        assert_eq!(columns_of('😀'), 2);
        // Leading space wider than the terminal: no line per character.
        let deep = format!("{}word another word", " ".repeat(40));
        assert!(wrap(&deep, 20).lines().count() <= 4, "{}", wrap(&deep, 20));
    }

    #[test]
    fn reasons_are_grouped_and_fit_a_screen() {
        let mut failures: Vec<(String, String)> = (0..300)
            .map(|n| (format!("MR.{n}"), "the publisher accepts no MRImageStorage".to_string()))
            .collect();
        failures.push(("CT.1".into(), "the publisher answered 0xA700".into()));
        failures.extend((0..20).map(|n| (format!("X.{n}"), format!("reason {n}"))));
        let lines = grouped_reasons(&failures);
        assert!(lines.len() <= SHOWN_REASONS + 1, "{lines:?}");
        assert_eq!(lines[0], "300 files: the publisher accepts no MRImageStorage (e.g. MR.0)");
        assert!(lines.last().is_some_and(|l| l.contains("more files")), "{lines:?}");
    }
    use crate::failure::RelayCounts;

    #[test]
    fn failure_json_shape() {
        let counts = RelayCounts {
            files_sent: 2,
            files_failed: 1,
            failures: vec![("IM3".into(), "refused".into())],
            ..RelayCounts::default()
        };
        let failure = Failure::partial_relay("127.0.0.1:104", "1 of 3 files were not accepted", counts);
        let value: serde_json::Value = serde_json::from_str(&failure_json(&failure)).expect("json");
        assert_eq!(value["error"], "partial relay");
        assert_eq!(value["destination"], "127.0.0.1:104");
        assert_eq!(value["files_sent"], 2);
        assert_eq!(value["files_failed"], 1);
        assert_eq!(value["failures"][0]["file"], "IM3");
        let text = failure_json(&Failure::config("x"));
        assert!(text.starts_with("{\"error\":\"configuration error\",\"detail\":\"x\"}"), "{text}");
    }
}
