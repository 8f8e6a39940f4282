//! Primera Bravo robots through the PTBurn SDK: a `.JRQ` job file of
//! `Key = Value` lines, its state by extension (JRQ -> QRJ -> INP ->
//! DON/ERR), the `Status/` folder (`SystemStatus.txt` and one file per
//! robot), and a `.PTM` file holding `Message=ABORT` to abort
//! (../shared/ROBOTS.md).
//!
//! The status files as read here (INI text, `Key = Value`):
//! `SystemStatus.txt` has `[System]` with a tick count (`TickCount` or
//! `Tick`) the service advances while it runs, and `[RobotList]` whose
//! values name the robots; `<RobotName>.txt` has `[System]` with
//! `SystemStatus` ("Idle", "Out of Discs", "Ink Low", "Printer Offline",
//! ...), an error number (`SystemError` or `ErrorNumber`) and string
//! (`SystemErrorString` or `ErrorString`). Per-job keys are not documented
//! first-hand (ROBOTS.md: uncertain): a `[<JobID>]` section in a robot's
//! file with `JobState`, `DiscsDone`, `DiscsFailed`, `ErrorNumber` and
//! `ErrorString` is read when present, and an `.ERR` file's own
//! `ErrorNumber`/`ErrorString`; without them the verdict falls back to the
//! robot's state and "error N".
//!
//! PTBurn picks the medium by the bin it takes blanks from (`BinID`), not
//! by a disc-type key: the size is still checked against
//! `cd_publisher.media`, but no medium is written into the job.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::Robot;
use super::hotfolder::{Job, Phase, Report, Vendor, merge_fields, sections, value};
use crate::failure::Failure;

pub struct PtBurn;

/// Who placed the job (`ClientID`): what the abort names too.
pub const CLIENT_ID: &str = "PACS2CD";

/// A status file written longer ago than this may still be live: the
/// robot's PC may keep another clock, so the tick count decides.
const STALE: Duration = Duration::from_secs(60);
/// How long the tick count is watched for a change.
const TICK_WAIT: Duration = Duration::from_secs(8);

/// The system file in the status folder.
const SYSTEM_FILE: &str = "SystemStatus.txt";

impl Vendor for PtBurn {
    fn software(&self) -> &'static str {
        "PTBurn"
    }

    fn job_extension(&self) -> &'static str {
        "JRQ"
    }

    fn phase(&self, extension: &str) -> Option<Phase> {
        Some(match extension {
            "JRQ" => Phase::Placed,
            "QRJ" => Phase::Taken,
            "INP" => Phase::Burning,
            "DON" => Phase::Done,
            "ERR" => Phase::Failed,
            _ => return None,
        })
    }

    fn job_file(&self, robot: &Robot, job: &Job) -> String {
        let yes = |b: bool| if b { "YES" } else { "NO" };
        let mut lines = vec![format!("JobID = {}", job.id), format!("ClientID = {CLIENT_ID}")];
        // One Data line per entry at the disc's root: a folder is burned as
        // a folder of that name, a file as a file at the root.
        for entry in super::hotfolder::top_entries(&job.disc) {
            lines.push(format!("Data = {}", robot.robot_spelling(&job.disc.join(&entry))));
        }
        lines.push(format!("Copies = {}", robot.copies));
        lines.push(format!("VolumeName = {}", job.info.label));
        lines.push("CloseDisc = YES".into());
        lines.push(format!("VerifyDisc = {}", yes(robot.verify)));
        // A disc that is not blank would get a second session: refused.
        lines.push("RejectIfNotBlank = YES".into());
        if let Some(label) = &robot.label {
            lines.push(format!("PrintLabel = {label}"));
            for (_, value) in merge_fields(&job.info, &job.info.institution) {
                lines.push(format!("MergeField = {value}"));
            }
        }
        if let Some(name) = &robot.robot_name {
            lines.push(format!("RobotName = {name}"));
        }
        lines.push(String::new());
        lines.join("\r\n")
    }

    fn preflight(&self, robot: &Robot) -> Result<(), Failure> {
        let not_ready = |why: String| Failure::robot_not_ready(&robot.name, &why);
        let system = robot.status.join(SYSTEM_FILE);
        let text = read(&system).map_err(|err| {
            not_ready(format!("cannot read its status file {} ({err}): is PTBurn running?", system.display()))
        })?;
        alive(&system, &text).map_err(not_ready)?;
        let robots = robot_files(robot, &text).map_err(not_ready)?;
        let mut reasons = Vec::new();
        for name in robots {
            let path = robot.status.join(format!("{name}.txt"));
            match read(&path) {
                Ok(text) => match robot_ready(&text) {
                    Ok(()) => return Ok(()),
                    Err(why) => reasons.push(if reasons.is_empty() { why } else { format!("{name}: {why}") }),
                },
                Err(err) => reasons.push(format!("cannot read {} ({err})", path.display())),
            }
        }
        Err(not_ready(reasons.join("; ")))
    }

    fn report(&self, robot: &Robot, job_id: &str) -> Report {
        let system = read(&robot.status.join(SYSTEM_FILE)).unwrap_or_default();
        let names = robot_files(robot, &system).unwrap_or_default();
        let texts: Vec<String> = names
            .iter()
            .map(|name| read(&robot.status.join(format!("{name}.txt"))).unwrap_or_default())
            .collect();
        let finished = read(&robot.hot_folder.join(format!("{job_id}.ERR"))).unwrap_or_default();
        report_of(&texts, &finished, job_id)
    }

    fn cancel_file(&self, job_id: &str) -> (String, String) {
        (format!("{job_id}.PTM"), format!("Message = ABORT\r\nClientID = {CLIENT_ID}\r\n"))
    }
}

fn read(path: &Path) -> Result<String, String> {
    super::hotfolder::read_file(path)
}

fn tick(text: &str) -> Option<u64> {
    let all = sections(text);
    let (_, pairs) = all.iter().find(|(name, _)| name.eq_ignore_ascii_case("System"))?;
    value(pairs, "TickCount").or_else(|| value(pairs, "Tick"))?.parse().ok()
}

/// The service runs: its file was written lately, or its tick count moves.
fn alive(system: &Path, text: &str) -> Result<(), String> {
    let age = std::fs::metadata(system)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age <= STALE {
        return Ok(());
    }
    let first = tick(text);
    let watching = Instant::now();
    while watching.elapsed() < TICK_WAIT {
        std::thread::sleep(Duration::from_millis(500));
        let now = read(system).ok().and_then(|t| tick(&t));
        if now.is_some() && now != first {
            return Ok(());
        }
    }
    Err(format!(
        "its status file {} was last written {} s ago and its tick count stands still: PTBurn is not running",
        system.display(),
        age.as_secs()
    ))
}

/// The robots whose files to read: the configured one, else all listed.
fn robot_files(robot: &Robot, system: &str) -> Result<Vec<String>, String> {
    let all = sections(system);
    let listed: Vec<String> = all
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("RobotList"))
        .map(|(_, pairs)| pairs.iter().map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    // A robot's name becomes a file name: nothing that leaves the folder.
    let safe = |name: &String| !name.contains(['/', '\\']) && name != ".." && name != ".";
    match &robot.robot_name {
        Some(name) if listed.iter().any(|l| l == name) => Ok(vec![name.clone()]),
        Some(name) => Err(format!("PTBurn lists no robot named {name}: is it switched on and connected?")),
        None if listed.iter().any(safe) => Ok(listed.into_iter().filter(|n| safe(n)).collect()),
        None => Err("PTBurn lists no robot: is it switched on and connected?".into()),
    }
}

/// Whether a robot can burn now, from its file; the reason in words.
pub fn robot_ready(text: &str) -> Result<(), String> {
    let all = sections(text);
    let Some((_, pairs)) = all.iter().find(|(name, _)| name.eq_ignore_ascii_case("System")) else {
        return Err("its status file has no [System] section".into());
    };
    let status = value(pairs, "SystemStatus").unwrap_or("").to_string();
    let number = value(pairs, "SystemError").or_else(|| value(pairs, "ErrorNumber")).unwrap_or("0").trim();
    let string =
        value(pairs, "SystemErrorString").or_else(|| value(pairs, "ErrorString")).unwrap_or("").trim();
    match trouble(&status) {
        Some(words) => Err(words),
        // Ink low is a warning, not a stop.
        None if status.to_ascii_lowercase().contains("ink low") => Ok(()),
        None if number != "0" && !number.is_empty() => Err(error_words(number, string)),
        None => Ok(()),
    }
}

/// A `SystemStatus` text that stops a burn, in our words.
fn trouble(status: &str) -> Option<String> {
    known_trouble(status).or_else(|| {
        status.to_ascii_lowercase().contains("error").then(|| format!("in error ({})", status.trim()))
    })
}

/// A trouble with words of our own (out of discs, cover open, ...).
fn known_trouble(status: &str) -> Option<String> {
    let lower = status.to_ascii_lowercase();
    let words = if lower.contains("out of disc") || lower.contains("no disc") || lower.contains("bin empty") {
        "out of discs"
    } else if lower.contains("cover open") || lower.contains("door open") {
        "cover open"
    } else if lower.contains("printer offline") {
        "printer offline"
    } else if lower.contains("ink empty") || lower.contains("out of ink") {
        "ink empty"
    } else if lower.contains("offline") || lower.contains("not connected") || lower.contains("disconnected") {
        "off or not connected"
    } else {
        return None;
    };
    Some(words.to_string())
}

/// An error number and string in words.
fn error_words(number: &str, string: &str) -> String {
    match (string.is_empty(), known_trouble(string)) {
        (_, Some(words)) => words,
        (true, None) => format!("error {number}"),
        (false, None) => format!("{} (error {number})", string.to_lowercase()),
    }
}

/// What the robots' files (and the job's `.ERR` file) say of a job.
pub fn report_of(robot_texts: &[String], finished: &str, job_id: &str) -> Report {
    let mut report = Report::default();
    let mut any_ready = false;
    for text in robot_texts {
        let all = sections(text);
        match robot_ready(text) {
            Ok(()) => any_ready = true,
            Err(why) => report.robot_error = report.robot_error.or(Some(why)),
        }
        let Some((_, pairs)) = all.iter().find(|(name, _)| name == job_id) else { continue };
        report.discs_done = value(pairs, "DiscsDone").and_then(|v| v.parse().ok());
        report.discs_failed = value(pairs, "DiscsFailed").and_then(|v| v.parse().ok());
        report.job_error = job_error(pairs);
    }
    if any_ready {
        report.robot_error = None;
    }
    if report.job_error.is_none() {
        let all = sections(&format!("[Job]\n{finished}"));
        report.job_error = all.first().and_then(|(_, pairs)| job_error(pairs));
    }
    report
}

fn job_error(pairs: &[(String, String)]) -> Option<String> {
    let number = value(pairs, "ErrorNumber").unwrap_or("0").trim();
    let string = value(pairs, "ErrorString").unwrap_or("").trim();
    let state = value(pairs, "JobState").unwrap_or("").to_ascii_lowercase();
    let error =
        (!(number == "0" || number.is_empty()) || !string.is_empty()).then(|| error_words(number, string));
    if state.contains("reject") || state.contains("refused") {
        return Some(match error {
            Some(words) => format!("the robot did not accept the job: {words}"),
            None => "the robot did not accept the job".into(),
        });
    }
    if state.contains("abort") {
        return Some(error.unwrap_or_else(|| "aborted".into()));
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROBOT: &str = "[System]\r\nSystemStatus = Idle\r\nSystemError = 0\r\nSystemErrorString = \r\n\
                         [PACS2CD-1]\r\nJobState = Burning\r\nDiscsDone = 1\r\nDiscsFailed = 0\r\n";

    #[test]
    fn an_idle_robot_is_ready_and_counts_discs() {
        assert_eq!(robot_ready(ROBOT), Ok(()));
        let report = report_of(&[ROBOT.to_string()], "", "PACS2CD-1");
        assert_eq!((report.discs_done, report.job_error, report.robot_error), (Some(1), None, None));
    }

    #[test]
    fn troubles_are_said_in_words() {
        let with = |status: &str, number: &str, string: &str| {
            ROBOT
                .replace("Idle", status)
                .replace("SystemError = 0", &format!("SystemError = {number}"))
                .replace("SystemErrorString = ", &format!("SystemErrorString = {string}"))
        };
        assert_eq!(robot_ready(&with("Out of Discs", "0", "")), Err("out of discs".into()));
        assert_eq!(robot_ready(&with("Printer Offline", "0", "")), Err("printer offline".into()));
        assert_eq!(robot_ready(&with("Ink Low", "0", "")), Ok(()));
        assert_eq!(robot_ready(&with("Ink Low", "12", "Ink Low")), Ok(()));
        assert_eq!(robot_ready(&with("Idle", "7", "Cover open")), Err("cover open".into()));
        assert_eq!(robot_ready(&with("Idle", "42", "")), Err("error 42".into()));
        assert_eq!(robot_ready(&with("Idle", "42", "Gripper Jam")), Err("gripper jam (error 42)".into()));
        assert!(robot_ready("").is_err());
        let rejected = ROBOT.replace(
            "JobState = Burning",
            "JobState = Error\r\nErrorNumber = 5\r\nErrorString = Disc rejected",
        );
        assert_eq!(
            report_of(&[rejected], "", "PACS2CD-1").job_error.as_deref(),
            Some("disc rejected (error 5)")
        );
        let refused = ROBOT.replace("JobState = Burning", "JobState = Rejected");
        assert_eq!(
            report_of(&[refused], "", "PACS2CD-1").job_error.as_deref(),
            Some("the robot did not accept the job")
        );
        // No job section: the ERR file's own keys.
        let err = "JobID = PACS2CD-2\r\nErrorNumber = 3\r\nErrorString = Write error\r\n";
        assert_eq!(
            report_of(&[ROBOT.into()], err, "PACS2CD-2").job_error.as_deref(),
            Some("write error (error 3)")
        );
    }

    #[test]
    fn the_tick_count_is_read() {
        assert_eq!(tick("[System]\r\nTickCount = 1234\r\n[RobotList]\r\nRobot0 = Bravo\r\n"), Some(1234));
        assert_eq!(tick("[System]\r\nTick=9\r\n"), Some(9));
        assert_eq!(tick("[RobotList]\r\nTick=9\r\n"), None);
    }

    #[test]
    fn the_robots_to_read_are_named_by_the_list() {
        let mut section = crate::config::CdPublisher {
            kind: crate::config::PublisherKind::PrimeraPtburn,
            hot_folder: Some("/srv/jobs".into()),
            data_folder: Some("/srv/discs".into()),
            status: Some("/srv/Status".into()),
            ..crate::config::CdPublisher::default()
        };
        let system = "[System]\r\nTickCount = 1\r\n[RobotList]\r\nRobot0 = Bravo 4100\r\nRobot1 = ..\r\n";
        let robot = Robot::of(&section).expect("robot").expect("hot folder");
        assert_eq!(robot_files(&robot, system), Ok(vec!["Bravo 4100".to_string()]));
        section.robot_name = Some("Bravo SE".into());
        let robot = Robot::of(&section).expect("robot").expect("hot folder");
        assert!(robot_files(&robot, system).is_err_and(|e| e.contains("named Bravo SE")));
        assert!(robot_files(&robot, "").is_err());
    }
}
