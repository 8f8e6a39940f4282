//! The one way an external program is run: an argument vector (never a
//! shell string), stdin closed, stdout and stderr merged and read line by
//! line (lossy UTF-8: names may be Latin-1), `TCP_NODELAY=1` in its
//! environment (DCMTK otherwise waits ~40 ms for a delayed ACK on every
//! C-STORE), a deadline, and a kill on a signal or on the deadline.
//!
//! The exit status is returned but is not the verdict: DCMTK's exit codes
//! lie (DICOM-NOTES 3), the callers parse the lines.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::failure::Failure;
use crate::signals;

/// One program run, before it starts.
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub dir: Option<PathBuf>,
    pub deadline: Duration,
}

impl Command {
    pub fn new(program: &Path, deadline: Duration) -> Command {
        Command { program: program.to_path_buf(), args: Vec::new(), dir: None, deadline }
    }

    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Command {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(&mut self, args: I) -> &mut Command {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn name(&self) -> String {
        self.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// What a finished run printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    /// Exit code; `None` when a signal ended it (our kill, or another's).
    pub code: Option<i32>,
    pub lines: Vec<String>,
    /// Killed by us because the deadline passed.
    pub timed_out: bool,
}

/// A deadline for the whole job, when it has one (CGI: fcgiwrap never kills
/// a hung program, so it must end itself before nginx gives up on it).
static JOB_DEADLINE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Sets the whole job's deadline; every later run ends by then.
pub fn set_job_deadline(total: Duration) {
    let _ = JOB_DEADLINE.set(Instant::now() + total);
}

/// Kills (and so reaps) the child when the run ends, however it ends; on a
/// finished child this does nothing.
struct KillOnDrop<'a>(&'a duct::ReaderHandle);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Tells the watchdog the reading is over.
struct Release<'a> {
    done: &'a AtomicBool,
    watchdog: &'a std::thread::Thread,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        self.watchdog.unpark();
    }
}

/// Why the watchdog ended a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Signal(i32),
    Deadline,
}

/// What is left of the whole job's deadline, when it has one.
pub fn job_remaining() -> Option<Duration> {
    JOB_DEADLINE.get().map(|end| end.saturating_duration_since(Instant::now()))
}

/// How often the watchdog looks at the clock and the signal flag.
const POLL: Duration = Duration::from_millis(50);

/// Runs `command`, calling `on_line` for each output line as it comes.
/// Errors only when the program cannot start or a signal arrived.
pub fn run(command: &Command, on_line: &mut dyn FnMut(&str)) -> Result<Output, Failure> {
    log::debug!("running {} {}", command.program.display(), shown_args(&command.args));
    let mut expression = duct::cmd(&command.program, &command.args)
        .env("TCP_NODELAY", "1")
        .stdin_null()
        .stderr_to_stdout()
        .unchecked();
    if let Some(dir) = &command.dir {
        expression = expression.dir(dir);
    }
    let reader = expression
        .reader()
        .map_err(|err| Failure::config(format!("cannot start {}: {err}", command.program.display())))?;
    // duct 1.x only reaps a dropped handle's child later: kill it, so an
    // early return or a panic below cannot leave the program running.
    let _kill_on_drop = KillOnDrop(&reader);
    let started = Instant::now();
    let deadline = match JOB_DEADLINE.get() {
        Some(end) => command.deadline.min(end.saturating_duration_since(started)),
        None => command.deadline,
    };
    let mut output = Output::default();
    // The lines are read here; a watchdog thread ends the program on a
    // signal or at the deadline (killing it closes the pipe, which ends the
    // reading). Reading on this thread costs no wake-up per line.
    let done = AtomicBool::new(false);
    let stopped: Mutex<Option<Stop>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let watchdog = scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let stop = match signals::pending() {
                    Some(signal) => Some(Stop::Signal(signal)),
                    None if started.elapsed() >= deadline => Some(Stop::Deadline),
                    None => None,
                };
                if let Some(stop) = stop {
                    *stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
                    let _ = reader.kill();
                    return;
                }
                std::thread::park_timeout(POLL);
            }
        });
        // Also on a panic in on_line: release the watchdog, or the scope
        // would wait for it until the deadline.
        let _release = Release { done: &done, watchdog: watchdog.thread() };
        let mut buffered = BufReader::new(&reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match buffered.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    log::trace!("{}: {text}", command.name());
                    on_line(&text);
                    output.lines.push(text);
                }
            }
        }
    });
    let stopped = stopped.into_inner().unwrap_or_else(|p| p.into_inner());
    output.timed_out = stopped == Some(Stop::Deadline);
    let finished = match reader.try_wait() {
        Ok(Some(finished)) => Some(finished.status),
        // Output closed but the program lives on: end it.
        _ => {
            let _ = reader.kill();
            reader.try_wait().ok().flatten().map(|finished| finished.status)
        }
    };
    output.code = finished.and_then(|status| status.code());
    if let Some(Stop::Signal(signal)) = stopped {
        return Err(Failure::interrupted(signal));
    }
    log::debug!(
        "{} ended with {} after {:.2} s",
        command.name(),
        output.code.map_or("a signal".to_string(), |c| format!("exit code {c}")),
        started.elapsed().as_secs_f64()
    );
    Ok(output)
}

/// The arguments for a debug line, shortened: a relay lists every file.
fn shown_args(args: &[OsString]) -> String {
    let mut shown: Vec<String> = args.iter().take(24).map(|a| a.to_string_lossy().into_owned()).collect();
    if args.len() > shown.len() {
        shown.push(format!("... ({} more)", args.len() - shown.len()));
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(program: &str, args: &[&str], deadline: Duration) -> Command {
        let path = which::which(program).expect("coreutils");
        let mut command = Command::new(&path, deadline);
        command.args(args.iter().copied());
        command
    }

    #[test]
    fn captures_both_streams_and_the_code() {
        let cmd = command("sh", &["-c", "echo out; echo err >&2; exit 3"], Duration::from_secs(10));
        let mut seen = 0;
        let output = run(&cmd, &mut |_| seen += 1).expect("run");
        assert_eq!(output.code, Some(3));
        assert_eq!(seen, 2);
        assert!(output.lines.contains(&"out".to_string()) && output.lines.contains(&"err".to_string()));
        assert!(!output.timed_out);
    }

    #[test]
    fn sets_tcp_nodelay() {
        let cmd = command("sh", &["-c", "echo $TCP_NODELAY"], Duration::from_secs(10));
        let output = run(&cmd, &mut |_| {}).expect("run");
        assert_eq!(output.lines, vec!["1".to_string()]);
    }

    #[test]
    fn kills_at_the_deadline() {
        let cmd = command("sleep", &["30"], Duration::from_millis(300));
        let started = Instant::now();
        let output = run(&cmd, &mut |_| {}).expect("run");
        assert!(output.timed_out);
        assert_eq!(output.code, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_a_configuration_error() {
        let cmd = Command::new(Path::new("/nonexistent/dcmsend"), Duration::from_secs(1));
        let err = run(&cmd, &mut |_| {}).expect_err("missing");
        assert_eq!(err.class, crate::failure::Class::Configuration);
    }
}
