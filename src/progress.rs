//! Progress of a count of files: an indicatif bar on a terminal, a few
//! log lines otherwise (cron mail, nginx error log), nothing when quiet.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Log,
    Off,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    mode: Mode,
    what: String,
    total: u64,
    done: u64,
    last_log: Instant,
}

/// Log mode writes at most one line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn start(mode: Mode, what: &str, total: u64) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files ({elapsed})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_string());
            bar
        });
        if mode == Mode::Log {
            log::info!("{what}: {total} files");
        }
        Progress {
            bar,
            mode,
            what: what.to_string(),
            total,
            done: 0,
            last_log: Instant::now(),
        }
    }

    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        } else if self.mode == Mode::Log && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            log::info!("{}: {} of {} files", self.what, self.done, self.total);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
