//! The steps of a job, each `run(..) -> Result<_, Failure>`.

pub mod disc;
pub mod fetch;
pub mod lookup;
pub mod patient_api;
pub mod relay;
pub mod retrieve;

use std::time::{Duration, Instant};

/// A job's total deadline: every tool run gets what is left of it, so a
/// PACS that stalls or answers Pending forever cannot hang the job.
pub struct Deadline {
    end: Instant,
}

/// The deadline has passed.
pub struct Expired;

impl Deadline {
    pub fn after(total: Duration) -> Deadline {
        Deadline { end: Instant::now() + total }
    }

    pub fn remaining(&self) -> Result<Duration, Expired> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(Expired) } else { Ok(left) }
    }
}
