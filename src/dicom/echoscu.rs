//! echoscu: the C-ECHO behind `check`. Success needs the echo response, not
//! just exit code 0.

use std::ffi::OsString;

use super::{AssociationProblem, Endpoint, Problems, Timeouts, log_line, scu_args, words};

pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts) -> Vec<OsString> {
    scu_args(calling, peer, timeouts, words(["-v"]), Vec::new())
}

/// `Ok` when the peer answered the echo with Success.
pub fn parse(log: &[String]) -> Result<(), AssociationProblem> {
    let mut problems = Problems::new("peer");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text.starts_with("Received Echo Response (Success") {
            return Ok(());
        }
        problems.read(level, text);
    }
    Err(problems.into_problem().unwrap_or(AssociationProblem::Aborted("no echo response".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dicom::recorded::out as recorded;

    #[test]
    fn recorded_cases() {
        assert_eq!(parse(&recorded("echoscu_ok")), Ok(()));
        assert_eq!(
            parse(&recorded("echoscu_unreachable")),
            Err(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(
            parse(&recorded("echoscu_rejected")),
            Err(AssociationProblem::Rejected("No Reason".into()))
        );
        assert!(parse(&[]).is_err());
    }
}
