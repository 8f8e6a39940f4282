//! The one way an external program is run: an argument vector (never a
//! shell string), stdin closed, stdout and stderr merged and read line by
//! line (lossy UTF-8: names may be Latin-1), `TCP_NODELAY=1` in its
//! environment (DCMTK otherwise waits ~40 ms for a delayed ACK on every
//! C-STORE), a deadline, and a kill on a signal or on the deadline.
//!
//! Every child runs in a process group of its own, so a terminal's Ctrl-C
//! (sent to the whole foreground group) reaches pacs2cd alone: pacs2cd then
//! stops the child itself, after reading what it said, and can report what
//! the child had done. A child outside the terminal's group would outlive a
//! pacs2cd killed with SIGKILL, so the kernel ends it with its parent
//! (`PR_SET_PDEATHSIG`). That signal fires when the *thread* that spawned
//! the child ends: `run` waits on the spawning thread, and `spawn` must be
//! called from a thread that outlives the child (the job's own thread).
//!
//! The exit status is returned but is not the verdict: DCMTK's exit codes
//! lie (DICOM-NOTES 3), the callers parse the lines.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::failure::Failure;
use crate::signals;

/// One program run, before it starts.
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The working folder. Every run gets one (the job's private folder, or
    /// `/`): fcgiwrap starts us in the binary's own folder, which the web
    /// service user cannot write, and a tool that writes there fails.
    pub dir: Option<PathBuf>,
    pub deadline: Duration,
    /// Ends the program at the first line this says yes to (dcmsend `-nh`
    /// would otherwise wait one DIMSE timeout per remaining file).
    pub stop_at: Option<fn(&str) -> bool>,
    /// On a signal, return what was read (`Output::interrupted`) rather than
    /// an error: a sender's lines tell what the publisher already accepted.
    pub keep_on_signal: bool,
    /// Ends the program when this becomes true (within the watchdog's
    /// poll): another thread found that its work is refused anyway.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Said on the log when the program has been running a while without
    /// ending ("the PACS PACS@host to answer"): a screen must never stay
    /// blank while a peer is slow.
    pub waiting_for: Option<String>,
    /// Its standard input instead of /dev/null (the C-MOVE receiver's
    /// storescp --inetd gets the accepted connection there).
    pub stdin: Option<std::os::fd::OwnedFd>,
}

impl Command {
    pub fn new(program: &Path, deadline: Duration) -> Command {
        Command {
            program: program.to_path_buf(),
            args: Vec::new(),
            dir: None,
            deadline,
            stop_at: None,
            keep_on_signal: false,
            cancel: None,
            waiting_for: None,
            stdin: None,
        }
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

    fn expression(&self) -> std::io::Result<duct::Expression> {
        let parent = std::process::id();
        let command = duct::cmd(&self.program, &self.args).env("TCP_NODELAY", "1");
        let command = match &self.stdin {
            Some(fd) => command.stdin_file(fd.try_clone()?),
            None => command.stdin_null(),
        };
        Ok(command
            .stderr_to_stdout()
            .unchecked()
            .dir(self.dir.clone().unwrap_or_else(|| PathBuf::from("/")))
            .before_spawn(move |command| {
                command.process_group(0);
                // SAFETY: the hook runs in the forked child before exec and
                // calls only async-signal-safe functions (prctl, getppid, _exit).
                unsafe {
                    command.pre_exec(move || die_with_parent(parent));
                }
                Ok(())
            }))
    }
}

/// In the child, before exec: be killed when the spawning thread ends. If
/// the parent already died (the child was re-parented), end at once.
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: plain system calls without pointers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// What a finished run printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    /// Exit code; `None` when a signal ended it (our kill, or another's).
    pub code: Option<i32>,
    pub lines: Vec<String>,
    /// Killed by us because the deadline passed.
    pub timed_out: bool,
    /// Killed by us at the line `Command::stop_at` chose.
    pub stopped_at_line: bool,
    /// Killed by us because this signal arrived (`Command::keep_on_signal`).
    pub interrupted: Option<i32>,
    /// Killed by us because `Command::cancel` became true.
    pub cancelled: bool,
}

/// A deadline for the whole job, when it has one (CGI: fcgiwrap never kills
/// a hung program, so it must end itself before nginx gives up on it).
static JOB_DEADLINE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Sets the whole job's deadline; every later run ends by then.
pub fn set_job_deadline(total: Duration) {
    let _ = JOB_DEADLINE.set(Instant::now() + total);
}

/// What is left of the whole job's deadline, when it has one.
pub fn job_remaining() -> Option<Duration> {
    JOB_DEADLINE.get().map(|end| end.saturating_duration_since(Instant::now()))
}

/// Kills the child and its process group (anything it started holds the
/// output pipe open too), then reaps it. Only while the child runs: once it
/// is reaped its pid, and so the group id, may belong to someone else.
fn kill(reader: &duct::ReaderHandle) {
    if matches!(reader.try_wait(), Ok(None)) {
        for pid in reader.pids() {
            // SAFETY: kill(2) on the group our own, still running child leads.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
    let _ = reader.kill();
}

/// Kills (and so reaps) the child when the run ends, however it ends; on a
/// finished child this does nothing.
struct KillOnDrop<'a>(&'a duct::ReaderHandle);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        kill(self.0);
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

/// Why the watchdog (or the line reader) ended a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Signal(i32),
    Deadline,
    Line,
    Cancel,
}

/// When a slow peer is first said to be slow, and how often again.
const PATIENCE: Duration = Duration::from_secs(2);
const PATIENCE_AGAIN: Duration = Duration::from_secs(10);

/// How often the watchdog looks at the clock and the signal flag.
const POLL: Duration = Duration::from_millis(50);

/// How long a reader rests once it has drained a tool's output. A verbose
/// tool writes a few lines per file; waking for each cost a relay of 3,000
/// files some 15,000 context switches, most of pacs2cd's own CPU time.
/// Resting lets the lines gather in the pipe (64 KiB, far more than a
/// tool writes in this time) and read in one go.
const GATHER: Duration = Duration::from_millis(3);

/// A reader that rests for `GATHER` after a read that drained the pipe.
struct Gathering<R> {
    inner: R,
    drained: bool,
}

impl<R: Read> Read for Gathering<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.drained {
            std::thread::sleep(GATHER);
        }
        let n = self.inner.read(buf)?;
        self.drained = n < buf.len();
        Ok(n)
    }
}

/// Calls `each` with every line of `reader` (trailing blanks cut) until
/// it ends, reading in gathered batches.
fn each_line<R: Read>(reader: R, mut each: impl FnMut(String)) {
    let mut buffered = BufReader::with_capacity(64 * 1024, Gathering { inner: reader, drained: false });
    let mut line = Vec::new();
    loop {
        line.clear();
        match buffered.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => each(String::from_utf8_lossy(&line).trim_end().to_string()),
        }
    }
}

fn start(command: &Command) -> Result<duct::ReaderHandle, Failure> {
    log::debug!("running {} {}", command.program.display(), shown_args(&command.args));
    command
        .expression()
        .and_then(|expression| expression.reader())
        .map_err(|err| Failure::config(format!("cannot start {}: {err}", command.program.display())))
}

/// Runs `command`, calling `on_line` for each output line as it comes.
/// Errors only when the program cannot start, or a signal arrived and the
/// command does not keep its output on signals.
pub fn run(command: &Command, on_line: &mut dyn FnMut(&str)) -> Result<Output, Failure> {
    let reader = start(command)?;
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
    let stop = |why: Stop| {
        let mut slot = stopped.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(why);
        kill(&reader);
    };
    std::thread::scope(|scope| {
        let watchdog = scope.spawn(|| {
            let mut next_word = PATIENCE;
            while !done.load(Ordering::Acquire) {
                if let Some(what) = &command.waiting_for
                    && started.elapsed() >= next_word
                {
                    log::info!("still waiting for {what} ({} s)", started.elapsed().as_secs());
                    next_word += PATIENCE_AGAIN;
                }
                if let Some(signal) = signals::pending() {
                    return stop(Stop::Signal(signal));
                }
                if started.elapsed() >= deadline {
                    return stop(Stop::Deadline);
                }
                if command.cancel.as_ref().is_some_and(|cancel| cancel.load(Ordering::Acquire)) {
                    return stop(Stop::Cancel);
                }
                std::thread::park_timeout(POLL);
            }
        });
        // Also on a panic in on_line: release the watchdog, or the scope
        // would wait for it until the deadline.
        let _release = Release { done: &done, watchdog: watchdog.thread() };
        let name = command.name();
        each_line(&reader, |text| {
            log::trace!("{name}: {text}");
            on_line(&text);
            if command.stop_at.is_some_and(|stop_here| stop_here(&text)) {
                stop(Stop::Line);
            }
            output.lines.push(text);
        });
    });
    let stopped = stopped.into_inner().unwrap_or_else(|p| p.into_inner());
    output.timed_out = stopped == Some(Stop::Deadline);
    output.stopped_at_line = stopped == Some(Stop::Line);
    output.cancelled = stopped == Some(Stop::Cancel);
    output.code = reap(&reader);
    if let Some(Stop::Signal(signal)) = stopped {
        if !command.keep_on_signal {
            return Err(Failure::interrupted(signal));
        }
        output.interrupted = Some(signal);
    }
    log::debug!(
        "{} ended with {} after {:.2} s",
        command.name(),
        output.code.map_or("a signal".to_string(), |c| format!("exit code {c}")),
        started.elapsed().as_secs_f64()
    );
    Ok(output)
}

/// The exit code of a child whose output has closed, killing it first if
/// it lives on without output.
fn reap(reader: &duct::ReaderHandle) -> Option<i32> {
    let finished = match reader.try_wait() {
        Ok(Some(finished)) => Some(finished.status),
        _ => {
            kill(reader);
            reader.try_wait().ok().flatten().map(|finished| finished.status)
        }
    };
    finished.and_then(|status| status.code())
}

/// A program that runs beside the job (the C-MOVE receiver), its output
/// read on a thread of its own. Stopped, killed and reaped when dropped.
pub struct Running {
    name: String,
    reader: Arc<duct::ReaderHandle>,
    lines: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// Starts `command` and returns at once; `on_line` sees each line on the
/// reading thread. Call it from the job's own thread (see the module
/// comment on `PR_SET_PDEATHSIG`). The deadline and signals are the
/// caller's business: it stops the program when its work is done.
pub fn spawn(command: &Command, mut on_line: Box<dyn FnMut(&str) + Send>) -> Result<Running, Failure> {
    let reader = Arc::new(start(command)?);
    let name = command.name();
    let reading = reader.clone();
    let thread_name = name.clone();
    let lines = std::thread::Builder::new()
        .name(format!("{name} output"))
        .spawn(move || {
            let mut lines = Vec::new();
            each_line(&*reading, |text| {
                log::trace!("{thread_name}: {text}");
                on_line(&text);
                lines.push(text);
            });
            lines
        })
        .map_err(|err| {
            kill(&reader);
            Failure::config(format!("cannot read the output of {name}: {err}"))
        })?;
    Ok(Running { name, reader, lines: Some(lines) })
}

impl Running {
    /// True while the program runs.
    pub fn is_running(&self) -> bool {
        matches!(self.reader.try_wait(), Ok(None))
    }

    /// Stops the program and returns everything it printed.
    pub fn stop(mut self) -> Output {
        self.finish()
    }

    fn finish(&mut self) -> Output {
        kill(&self.reader);
        let lines = self.lines.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default();
        let code = reap(&self.reader);
        log::debug!("{} stopped", self.name);
        Output { code, lines, ..Output::default() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.lines.is_some() {
            self.finish();
        }
    }
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
    fn sets_tcp_nodelay_a_process_group_and_a_working_folder() {
        let cmd = command(
            "sh",
            &["-c", "echo $TCP_NODELAY; pwd; ps -o pgid= -p $$; echo $$"],
            Duration::from_secs(10),
        );
        let output = run(&cmd, &mut |_| {}).expect("run");
        assert_eq!(output.lines[..2], ["1".to_string(), "/".to_string()]);
        // Its own group: the group id is its own pid.
        assert_eq!(output.lines[2].trim(), output.lines[3].trim(), "{:?}", output.lines);
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
    fn stops_at_the_chosen_line() {
        let mut cmd =
            command("sh", &["-c", "echo one; echo STOP; sleep 30; echo never"], Duration::from_secs(60));
        cmd.stop_at = Some(|line| line == "STOP");
        let started = Instant::now();
        let output = run(&cmd, &mut |_| {}).expect("run");
        assert!(output.stopped_at_line && !output.timed_out);
        assert_eq!(output.lines, ["one".to_string(), "STOP".to_string()]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn another_thread_can_cancel_a_run() {
        let mut cmd = command("sh", &["-c", "echo started; sleep 30; echo never"], Duration::from_secs(60));
        let cancel = Arc::new(AtomicBool::new(false));
        cmd.cancel = Some(cancel.clone());
        let started = Instant::now();
        // As another thread would, once the program has begun.
        let output = run(&cmd, &mut |_| cancel.store(true, Ordering::Release)).expect("run");
        assert!(output.cancelled && !output.timed_out && !output.stopped_at_line);
        assert_eq!((output.code, output.lines.as_slice()), (None, ["started".to_string()].as_slice()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_spawned_program_is_stopped_and_its_lines_kept() {
        let cmd = command("sh", &["-c", "echo ready; sleep 30"], Duration::from_secs(60));
        let (sender, receiver) = std::sync::mpsc::channel();
        let running = spawn(&cmd, Box::new(move |line| drop(sender.send(line.to_string())))).expect("spawn");
        assert_eq!(receiver.recv_timeout(Duration::from_secs(5)).as_deref(), Ok("ready"));
        assert!(running.is_running());
        let started = Instant::now();
        let output = running.stop();
        assert_eq!(output.lines, ["ready".to_string()]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_a_configuration_error() {
        let cmd = Command::new(Path::new("/nonexistent/dcmsend"), Duration::from_secs(1));
        let err = run(&cmd, &mut |_| {}).expect_err("missing");
        assert_eq!(err.class, crate::failure::Class::Configuration);
    }
}
