//! storescp as the receiver of one C-MOVE sub-association (`--inetd`: it
//! serves the connection it gets as its standard input, then ends; see
//! pipeline::receiver). Every storage SOP class it knows and unknown ones
//! too (`-pm`), every transfer syntax (`+xa`), our calling AE as its own,
//! no reverse host lookup (`-dhl`, which can stall on a site's DNS), files
//! under unique names (`+uf`: a repeat never overwrites its first copy).
//!
//! In inetd mode storescp points its stdout and stderr at /dev/null (they
//! would be the socket under inetd), so it logs through a log4cplus
//! configuration (`-lc`) into a file of the job's.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::{RECEIVE_PDU, log_line, words};

/// The arguments for one association's receiver, writing into `into` and
/// logging as `log_config` says.
pub fn inetd_args(
    ae: &str,
    acse: Duration,
    dimse: Duration,
    into: &Path,
    log_config: &Path,
) -> Vec<OsString> {
    let mut args = words(["--inetd", "-aet", ae, "+xa", "-pm", "+uf", "-dhl", "-pdu", RECEIVE_PDU]);
    let seconds = |d: Duration| d.as_secs().max(1).to_string();
    args.extend(words(["-ta", &seconds(acse), "-td", &seconds(dimse), "-ts", &seconds(dimse)]));
    args.push("-od".into());
    args.push(into.into());
    args.push("-lc".into());
    args.push(log_config.into());
    args
}

/// A log4cplus configuration that logs at INFO into `file`, each line as
/// DCMTK's console prints it (`I: ...`), so one parser reads both.
pub fn log_config(file: &Path) -> String {
    format!(
        "log4cplus.rootLogger = INFO, file\n\
         log4cplus.appender.file = log4cplus::FileAppender\n\
         log4cplus.appender.file.File = {}\n\
         log4cplus.appender.file.Append = true\n\
         log4cplus.appender.file.ImmediateFlush = true\n\
         log4cplus.appender.file.layout = log4cplus::PatternLayout\n\
         log4cplus.appender.file.layout.ConversionPattern = %P: %m%n\n",
        file.display()
    )
}

/// The errors a receiver logged (a file it could not write, a broken
/// association), one line each.
pub fn problems(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(log_line)
        .filter(|(level, _)| matches!(level, 'E' | 'F'))
        .map(|(_, text)| text.chars().take(200).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_association_per_run_logging_to_a_file() {
        let args = inetd_args(
            "PACS2CD",
            Duration::from_secs(30),
            Duration::from_secs(60),
            Path::new("/w/incoming/a0001"),
            Path::new("/w/receiver/a0001.cfg"),
        );
        let joined = args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
        assert!(joined.starts_with("--inetd -aet PACS2CD +xa -pm +uf"), "{joined}");
        assert!(joined.contains("-od /w/incoming/a0001 -lc /w/receiver/a0001.cfg"), "{joined}");
        assert!(log_config(Path::new("/w/r/a.log")).contains("File = /w/r/a.log"));
    }

    /// storescp's own logs (recorded with the receiver's options, on the
    /// console, whose lines the log configuration reproduces).
    #[test]
    fn errors_are_read_from_the_log() {
        use crate::dicom::recorded::text;
        // The output folder vanished under it: the file cannot be written
        // (the sender got Refused: OutOfResources).
        assert_eq!(
            problems(&text("storescp_cannot_write.out")),
            [
                "cannot write DICOM file: /DATA/recv/gone/CT.X.1.2.276.0.7230010.3.1.4.8323328.27978.1796694241.307931: \
                 No such file or directory"
            ]
        );
        // Its port held by another program: it never listens.
        assert_eq!(
            problems(&text("storescp_port_in_use.out")),
            ["cannot create network: 0006:031c TCP Initialization Error: Address already in use"]
        );
        // Receptions without a problem: Orthanc's C-MOVE of 3 CT; the same
        // study moved twice (+uf: no overwriting); an MR association the
        // CT-only receiver accepted with no context, and no store.
        for name in ["storescp_receiver", "storescp_receiver_repeat_uf", "storescp_receiver_subop_fail"] {
            let log = text(&format!("{name}.out"));
            assert!(!log.is_empty() && problems(&log).is_empty(), "{name}");
        }
    }
}
