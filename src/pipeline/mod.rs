//! The steps of a job, each `run(..) -> Result<_, Failure>`.

pub mod relay;
