//! Progress of a count of files: an indicatif bar on a terminal, a few
//! log lines otherwise (cron mail, nginx error log), the live web page of
//! the HIS button, nothing when quiet.

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
}

/// Hears every count of a job (the live page of the CGI mode).
pub trait Listener: Send + Sync {
    fn update(&self, stage: Stage, done: u64, total: Option<u64>);
}

pub struct Progress {
    bar: Option<ProgressBar>,
    mode: Mode,
    stage: Stage,
    what: String,
    total: Option<u64>,
    done: u64,
    last_log: Instant,
}

/// Log mode writes at most one line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// `total` is `None` when the count is not known beforehand (a PACS
    /// that does not report NumberOfStudyRelatedInstances).
    pub fn start(mode: Mode, stage: Stage, what: &str, total: Option<u64>) -> Progress {
        let bar = matches!(mode, Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            bar.set_style(style(total.is_some()));
            bar.set_message(what.to_string());
            bar
        });
        match &mode {
            Mode::Log => match total {
                Some(total) => log::info!("{what}: {total} files"),
                None => log::info!("{what}"),
            },
            Mode::Listener(listener) => listener.update(stage, 0, total),
            Mode::Bar | Mode::Off => {}
        }
        Progress { bar, mode, stage, what: what.to_string(), total, done: 0, last_log: Instant::now() }
    }

    /// The total became known (the PACS's list arrived).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_style(style(true));
            bar.set_length(total);
        }
        if let Mode::Listener(listener) = &self.mode {
            listener.update(self.stage, self.done, self.total);
        }
    }

    pub fn inc(&mut self) {
        self.done += 1;
        match &self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Mode::Log if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                match self.total {
                    Some(total) => log::info!("{}: {} of {total} files", self.what, self.done),
                    None => log::info!("{}: {} files", self.what, self.done),
                }
            }
            Mode::Listener(listener) => listener.update(self.stage, self.done, self.total),
            Mode::Log | Mode::Off => {}
        }
    }
}

/// The bar's look. The message gives way (truncated) so that the line fits
/// any terminal, 80 columns included: a wrapped bar redraws as a scroll.
fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{wide_msg} [{bar:20}] {pos}/{len} files {elapsed}"
    } else {
        "{wide_msg} {spinner} {pos} files {elapsed}"
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
