//! Progress of a count of files: an indicatif bar on a terminal, a few
//! log lines otherwise (cron mail, nginx error log), the live web page of
//! the HIS button, nothing when quiet. A retrieve of several accessions
//! also counts each one (its parts): each file is identified as it
//! arrives, so the count says which study is coming in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub enum Mode {
    Bar,
    Log,
    Off,
    /// Every count goes to a listener (which throttles as it needs).
    Listener(Arc<dyn Listener>),
}

/// The part of a job a count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Images arriving from the PACS.
    Retrieve,
    /// Images accepted by the CD publisher.
    Send,
    /// Waiting for another job's retrieve to finish (no count).
    Wait,
    /// Discs a hot-folder robot has burned, of the copies asked for.
    Burn,
}

/// Tells whoever shows the job's progress that it waits for another job:
/// the live page says so (a terminal gets the log line).
pub fn waiting(mode: &Mode, message: &str) {
    log::info!("{message}");
    if let Mode::Listener(listener) = mode {
        listener.update(Stage::Wait, 0, None, &[]);
    }
}

/// One accession's share of a count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub label: String,
    pub done: u64,
    pub total: Option<u64>,
}

/// The parts in one line (`ACC001 120/300, ACC002 0/122`), or `None` when
/// there are fewer than two: one accession's count is the whole count.
pub fn parts_line(parts: &[Part]) -> Option<String> {
    (parts.len() > 1).then(|| {
        let each: Vec<String> = parts
            .iter()
            .map(|part| match part.total {
                Some(total) => format!("{} {}/{total}", part.label, part.done),
                None => format!("{} {}", part.label, part.done),
            })
            .collect();
        each.join(", ")
    })
}

/// Hears every count of a job (the live page of the CGI mode).
pub trait Listener: Send + Sync {
    fn update(&self, stage: Stage, done: u64, total: Option<u64>, parts: &[Part]);
}

pub struct Progress {
    bar: Option<ProgressBar>,
    mode: Mode,
    stage: Stage,
    what: String,
    total: Option<u64>,
    done: u64,
    parts: Vec<Part>,
    last_log: Instant,
}

/// Log mode writes at most one line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// `total` is `None` when the count is not known beforehand (a PACS
    /// that does not report NumberOfStudyRelatedInstances); `parts` are
    /// counted too (labels and totals; counts from zero), none for one.
    pub fn start(mode: Mode, stage: Stage, what: &str, total: Option<u64>, parts: Vec<Part>) -> Progress {
        let bar = matches!(mode, Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            bar.set_style(style(total.is_some()));
            bar
        });
        match &mode {
            Mode::Log => match total {
                Some(total) => log::info!("{what}: {total} files"),
                None => log::info!("{what}"),
            },
            Mode::Listener(listener) => listener.update(stage, 0, total, &parts),
            Mode::Bar | Mode::Off => {}
        }
        let progress = Progress {
            bar,
            mode,
            stage,
            what: what.to_string(),
            total,
            done: 0,
            parts,
            last_log: Instant::now(),
        };
        progress.show_parts();
        progress
    }

    /// A part's total became known.
    pub fn set_part_total(&mut self, part: usize, total: Option<u64>) {
        if let Some(part) = self.parts.get_mut(part) {
            part.total = total;
        }
        self.show_parts();
    }

    /// The total became known (the PACS's list arrived).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_style(style(true));
            bar.set_length(total);
        }
        self.show_parts();
        if let Mode::Listener(listener) = &self.mode {
            listener.update(self.stage, self.done, self.total, &self.parts);
        }
    }

    /// One more file.
    pub fn inc(&mut self) {
        self.inc_part(None);
    }

    /// One more file, of `part` when it is known.
    pub fn inc_part(&mut self, part: Option<usize>) {
        self.done += 1;
        if let Some(part) = part.and_then(|part| self.parts.get_mut(part)) {
            part.done += 1;
        }
        match &self.mode {
            Mode::Bar => {
                // The counts are in the message, set in one call: a frame
                // drawn between two calls never shows a total that the
                // accessions' counts do not add up to.
                self.show_parts();
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Mode::Log if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                let parts = parts_line(&self.parts).map(|line| format!(" ({line})")).unwrap_or_default();
                match self.total {
                    Some(total) => log::info!("{}: {} of {total} files{parts}", self.what, self.done),
                    None => log::info!("{}: {} files{parts}", self.what, self.done),
                }
            }
            Mode::Listener(listener) => listener.update(self.stage, self.done, self.total, &self.parts),
            Mode::Log | Mode::Off => {}
        }
    }

    /// The bar's message (`retrieving 7/12 files (ACC001 3/5, ACC002 4/7)
    /// from the PACS ...`): the phase and the counts first, since a narrow
    /// terminal cuts the message's end, and the peer's address matters
    /// least.
    fn show_parts(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(bar_message(&self.what, self.done, self.total, &self.parts));
        }
    }
}

/// The bar's words: the phase (the first word of `what`), the counts, each
/// accession's share, then the rest of `what`.
fn bar_message(what: &str, done: u64, total: Option<u64>, parts: &[Part]) -> String {
    let (phase, rest) = what.split_once(' ').unwrap_or((what, ""));
    let count = match total {
        Some(total) => format!("{done}/{total} files"),
        None => format!("{done} files"),
    };
    let parts = parts_line(parts).map(|line| format!(" ({line})")).unwrap_or_default();
    format!("{phase} {count}{parts} {rest}").trim_end().to_string()
}

/// The bar's look. The message gives way (truncated) so that the line fits
/// any terminal, 80 columns included: a wrapped bar redraws as a scroll.
fn style(known_total: bool) -> ProgressStyle {
    // Below 50 columns the bar and the clock would leave the message no
    // room (the template alone is 32 wide): the words alone, cut to fit.
    let narrow = crate::report::terminal_columns(2).is_some_and(|columns| columns < 50);
    let template = match (narrow, known_total) {
        (true, _) => "{wide_msg}",
        (false, true) => "{wide_msg} [{bar:20}] {elapsed}",
        (false, false) => "{wide_msg} {spinner} {elapsed}",
    };
    ProgressStyle::with_template(template)
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn part(label: &str, done: u64, total: Option<u64>) -> Part {
        Part { label: label.into(), done, total }
    }

    #[test]
    fn parts_are_shown_for_two_accessions_or_more() {
        assert_eq!(parts_line(&[part("ACC001", 3, Some(300))]), None);
        assert_eq!(
            parts_line(&[part("ACC001", 300, Some(300)), part("ACC002", 12, None)]).as_deref(),
            Some("ACC001 300/300, ACC002 12")
        );
    }

    /// At 60 columns the template leaves the message 28: the phase and
    /// the count come first, so they stay.
    #[test]
    fn the_bar_leads_with_the_phase_and_the_counts() {
        let what = "retrieving from the PACS PACS@pacs.example.org:104 (C-MOVE)";
        let message = bar_message(what, 120, Some(300), &[]);
        assert!(message.starts_with("retrieving 120/300 files"), "{message}");
        let message =
            bar_message(what, 7, Some(12), &[part("ACC001", 3, Some(5)), part("ACC002", 4, Some(7))]);
        assert_eq!(
            message,
            "retrieving 7/12 files (ACC001 3/5, ACC002 4/7) from the PACS PACS@pacs.example.org:104 (C-MOVE)"
        );
        assert_eq!(
            bar_message("sending to the CD publisher", 3, None, &[]),
            "sending 3 files to the CD publisher"
        );
    }

    #[derive(Default)]
    struct Heard(Mutex<Vec<(u64, Vec<Part>)>>);

    impl Listener for Heard {
        fn update(&self, _: Stage, done: u64, _: Option<u64>, parts: &[Part]) {
            self.0.lock().expect("heard").push((done, parts.to_vec()));
        }
    }

    #[test]
    fn each_file_counts_for_its_accession_and_the_whole() {
        let heard = Arc::new(Heard::default());
        let mode = Mode::Listener(heard.clone());
        let parts = vec![part("ACC001", 0, None), part("ACC002", 0, Some(2))];
        let mut progress = Progress::start(mode, Stage::Retrieve, "retrieving", None, parts);
        progress.inc_part(Some(1));
        progress.set_part_total(0, Some(5));
        progress.inc_part(Some(0));
        progress.inc_part(None);
        let heard = heard.0.lock().expect("heard");
        let (done, parts) = heard.last().expect("an update");
        assert_eq!(*done, 3);
        assert_eq!(parts, &vec![part("ACC001", 1, Some(5)), part("ACC002", 1, Some(2))]);
    }
}
