//! dcmsend (the default sender): one association, `-nh` so one refused
//! file does not stop the rest, lossless compression decompressed on the
//! fly when the publisher wants uncompressed data, and a per-instance
//! report (`+crf`) that is the verdict, read with the negotiation results
//! (`+v`) to tell a refused SOP class from a refused transfer syntax. The
//! exit code is 0 even when every file failed (DICOM-NOTES 3b).
//!
//! The report goes to the output pipe (`+crf /dev/stdout`), after the log:
//! a report file in the staging folder could not be written on a full
//! disk, and the publisher's answers would be lost while it holds the disc.
//! `-v` always: a dcmsend killed by a signal (or stopped at a stalled
//! publisher) writes no report, and then its per-file log lines are the
//! only account of what the publisher had accepted.

use std::collections::HashMap;
use std::ffi::OsString;

use super::negotiation::{self, Answer};
use super::refusal::{Cut, Refusal, class_name, is_lossy, syntax_name};
use super::{
    AssociationProblem, Endpoint, FileOutcome, Problems, StatusClass, StoreLog, Timeouts, log_line, scu_args,
    words,
};

/// Arguments for sending `files` (paths as the report will name them).
pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, files: &[String]) -> Vec<OsString> {
    let options = words(["-nh", "-v", "+v", "+crf", "/dev/stdout"]);
    scu_args(calling, peer, timeouts, options, files.iter().map(OsString::from).collect())
}

/// The report's lines in the output: those after dcmsend says it creates
/// it that are no log lines.
pub fn report_in(lines: &[String]) -> String {
    let start =
        lines.iter().position(|l| l.contains("creating detailed report")).map_or(lines.len(), |i| i + 1);
    let mut report = String::new();
    for line in lines[start..].iter().filter(|line| log_line(line).is_none()) {
        report.push_str(line);
        report.push('\n');
    }
    report
}

/// Files whose C-STORE request went out and got no answer (0 or 1): the
/// publisher may or may not hold it.
pub fn in_flight(log: &[String]) -> usize {
    let sent = log.iter().filter(|l| l.starts_with("I: Sending C-STORE Request")).count();
    let answered =
        log.iter().filter(|l| is_file_done(l) && !l.starts_with("E: No presentation context")).count();
    sent.saturating_sub(answered)
}

/// Files the publisher accepted (Success or Warning), from the log alone.
pub fn accepted_in_log(log: &[String]) -> usize {
    log.iter()
        .filter(|line| {
            line.strip_prefix("I: Received C-STORE Response (")
                .is_some_and(|status| status.starts_with("Success") || status.starts_with("Warning"))
        })
        .count()
}

/// True for the log lines that close one file's store attempt.
pub fn is_file_done(line: &str) -> bool {
    line.starts_with("I: Received C-STORE Response")
        || line.starts_with("E: No presentation context found")
        || line.starts_with("E: Failed receiving DIMSE response")
        || line.starts_with("E: cannot send SOP instance from file")
}

/// The line at the first DIMSE timeout: with `-nh` dcmsend would wait one
/// timeout more for every file left, so the send is stopped here.
pub fn is_stall(line: &str) -> bool {
    line.starts_with("E: Failed receiving DIMSE response") && line.contains("DIMSE No data available")
}

/// One `Number :` block of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    file: String,
    class: String,
    class_uid: String,
    original_syntax: String,
    context: Option<u8>,
    status: String,
}

/// Reads the report (`+crf`) and the log into one account.
pub fn parse(report: &str, log: &[String]) -> StoreLog {
    let negotiated = negotiation::parse(log);
    // "E: cannot send SOP instance from file: PATH: WHY"
    let unreadable: HashMap<&str, &str> = log
        .iter()
        .filter_map(|line| line.strip_prefix("E: cannot send SOP instance from file: "))
        .filter_map(|rest| rest.rsplit_once(": "))
        .collect();
    let files = parse_report(report)
        .into_iter()
        .map(|entry| {
            let outcome = outcome(&entry, &negotiated, unreadable.get(entry.file.as_str()).copied());
            (entry.file, outcome)
        })
        .collect();
    StoreLog { files, problem: parse_log(log) }
}

fn parse_report(report: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut entry: Option<Entry> = None;
    for line in report.lines() {
        let Some((key, value)) = line.split_once(" : ") else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Number" => entry = Some(Entry::default()),
            "Filename" => {
                if let Some(entry) = &mut entry {
                    entry.file = value.to_string();
                }
            }
            // "1.2.840.10008.5.1.4.1.1.4 = MRImageStorage": keep the name;
            // a class DCMTK does not know reads "2.25.42 = unknown", and
            // then the UID is its name.
            "SOP Class" => {
                if let Some(entry) = &mut entry {
                    let name = value.rsplit(" = ").next().unwrap_or(value);
                    entry.class = if name == "unknown" { String::new() } else { name.to_string() };
                    entry.class_uid = value.split(" = ").next().unwrap_or(value).trim().to_string();
                }
            }
            "Original Xfer" => {
                if let Some(entry) = &mut entry {
                    entry.original_syntax = value.split(" = ").next().unwrap_or(value).trim().to_string();
                }
            }
            "Pres. Context" => {
                if let Some(entry) = &mut entry {
                    entry.context = value.parse().ok();
                }
            }
            "DIMSE Status" => {
                if let Some(mut done) = entry.take() {
                    done.status = value.to_string();
                    entries.push(done);
                }
            }
            _ => {}
        }
    }
    entries
}

/// "0x0000 (Success)", "0xa700 (Refused: OutOfResources)",
/// "<no acceptable presentation context>", "<not sent>".
fn outcome(entry: &Entry, negotiated: &negotiation::Negotiated, unreadable: Option<&str>) -> FileOutcome {
    if let Some(hex) = entry.status.strip_prefix("0x") {
        let (code, text) = hex.split_once(' ').unwrap_or((hex, ""));
        let text = text.trim().trim_start_matches('(').trim_end_matches(')').to_string();
        return match u16::from_str_radix(code, 16).map(StatusClass::of) {
            Ok(StatusClass::Success) => FileOutcome::Stored,
            Ok(StatusClass::Warning) => FileOutcome::StoredWithWarning(text),
            _ => FileOutcome::Failed(Refusal::Refused(format!("0x{code}: {text}"))),
        };
    }
    FileOutcome::Failed(match entry.status.trim_start_matches('<').trim_end_matches('>') {
        "no acceptable presentation context" => match entry.context.and_then(|id| negotiated.answer(id)) {
            Some(Answer::AbstractSyntaxNotSupported) => {
                Refusal::SopClass { class: class_name(&entry.class_uid, &entry.class) }
            }
            Some(Answer::TransferSyntaxesNotSupported) => Refusal::TransferSyntax {
                syntax: syntax_name(&entry.original_syntax),
                lossy: is_lossy(&entry.original_syntax),
                sender: "dcmsend",
            },
            _ => Refusal::NoContext { class: class_name(&entry.class_uid, &entry.class) },
        },
        "not sent" => match unreadable {
            Some(why) => Refusal::Unreadable(why.to_lowercase()),
            None => Refusal::NotAttempted(Cut::AssociationEnded),
        },
        other => Refusal::Refused(other.to_string()),
    })
}

/// Association-level problems, from the `F:` and `E:` lines.
pub fn parse_log(log: &[String]) -> Option<AssociationProblem> {
    let mut problems = Problems::new("publisher");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        // A file it cannot read is that file's problem, not the association's.
        if (level == 'F' || level == 'E') && !text.starts_with("cannot send SOP instance from file") {
            problems.read(level, text);
        }
    }
    problems.into_problem()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> (String, Vec<String>) {
        use crate::dicom::recorded;
        (recorded::text(&format!("{name}.report")), recorded::lines(&format!("{name}.out")))
    }

    fn stored(log: &StoreLog) -> usize {
        log.files.iter().filter(|(_, o)| o.stored()).count()
    }

    fn refusal<'a>(log: &'a StoreLog, file: &str) -> &'a Refusal {
        match log.files.iter().find(|(name, _)| name.ends_with(file)) {
            Some((_, FileOutcome::Failed(refusal))) => refusal,
            other => panic!("{file}: {other:?}"),
        }
    }

    #[test]
    fn all_sent() {
        let (report, log) = recorded("dcmsend_ok");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.files.len(), 5);
        assert_eq!(stored(&parsed), 5);
        assert_eq!(parsed.files[0].0, "/DATA/CT1.dcm");
        assert_eq!(parsed.problem, None);
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
        assert_eq!(accepted_in_log(&log), 5);
    }

    /// The corpus of unusual files to an uncompressed-only publisher: each
    /// refusal says why, from the report and the negotiation.
    #[test]
    fn reasons_for_an_uncompressed_only_publisher() {
        let (report, log) = recorded("relay_plain_dcmsend_pc");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, None);
        // Lossless compression is decompressed and goes.
        for file in [
            "C03_MR_jpeg_lossless.dcm",
            "C05_CT_jpegls_lossless.dcm",
            "C08_MR_rle.dcm",
            "C10_CT_big_endian.dcm",
        ] {
            assert!(parsed.files.iter().any(|(f, o)| f.ends_with(file) && o.stored()), "{file}");
        }
        assert!(matches!(
            refusal(&parsed, "C04_SC8_jpeg_baseline.dcm"),
            Refusal::TransferSyntax { lossy: true, .. }
        ));
        assert!(matches!(
            refusal(&parsed, "C06_CT_jpegls_near.dcm"),
            Refusal::TransferSyntax { lossy: true, .. }
        ));
        assert!(
            matches!(refusal(&parsed, "C11_CT_truncated.dcm"), Refusal::Unreadable(why) if why.contains("premature end"))
        );
    }

    #[test]
    fn a_publisher_that_takes_ct_only_refuses_classes() {
        let (report, log) = recorded("relay_ctonly_dcmsend_pc");
        let parsed = parse(&report, &log);
        assert!(
            matches!(refusal(&parsed, "C02_MR.dcm"), Refusal::SopClass { class } if class == "MR Image Storage")
        );
    }

    #[test]
    fn refused_files() {
        let (report, log) = recorded("dcmsend_refused");
        let parsed = parse(&report, &log);
        assert_eq!(stored(&parsed), 0);
        assert!(
            matches!(&parsed.files[0].1, FileOutcome::Failed(Refusal::Refused(why)) if why.contains("OutOfResources"))
        );
    }

    #[test]
    fn unreachable_rejected_stalled() {
        let (report, log) = recorded("dcmsend_unreachable");
        assert_eq!(
            parse(&report, &log).problem,
            Some(AssociationProblem::Unreachable("connection refused".into()))
        );
        let (report, log) = recorded("dcmsend_rejected");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, Some(AssociationProblem::Rejected(String::new())));
        assert!(parsed.files.is_empty());
        let (report, log) = recorded("dcmsend_stalled");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, Some(AssociationProblem::Stalled));
        assert_eq!(stored(&parsed), 0);
        assert_eq!(log.iter().filter(|l| is_stall(l)).count(), 5);
    }

    #[test]
    fn skipped_non_dicom_input_is_not_a_problem() {
        let (report, log) = recorded("dcmsend_nondicom");
        let parsed = parse(&report, &log);
        assert_eq!(parsed.problem, None);
        assert_eq!(stored(&parsed), 3);
    }

    /// The relay corpus (16 files, tests/data/recorded/README.md, Q6) to
    /// four publishers: what the parse counts as stored is what the
    /// publisher wrote (`.files`), and every file has its verdict.
    #[test]
    fn the_corpus_to_each_publisher() {
        for name in [
            "relay_xa_dcmsend_v",
            "relay_xa_dcmsend_pc",
            "relay_xapm_dcmsend_pc",
            "relay_plain_dcmsend_v",
            "relay_plain_dcmsend_pc",
            "relay_plain_dcmsend_debug",
            "relay_ctonly_dcmsend_v",
            "relay_ctonly_dcmsend_pc",
        ] {
            let (report, log) = recorded(name);
            let parsed = parse(&report, &log);
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            assert_eq!((parsed.files.len(), stored(&parsed)), (16, written), "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert_eq!(in_flight(&log), 0, "{name}");
            // At -d the INFO lines lose their status; the report has it.
            if !name.ends_with("_debug") {
                assert_eq!(accepted_in_log(&log), written, "{name}");
            }
            // The truncated file is unreadable, whatever the publisher.
            assert!(
                matches!(refusal(&parsed, "C11_CT_truncated.dcm"), Refusal::Unreadable(why) if why.contains("premature end")),
                "{name}"
            );
        }
    }

    /// A class DCMTK does not know: the report names it "unknown", the
    /// words must name its UID (only a publisher with -pm took it).
    #[test]
    fn a_private_sop_class_is_named_by_its_uid() {
        let (report, log) = recorded("relay_plain_dcmsend_pc");
        let private = "2.25.424242424242";
        assert!(
            matches!(refusal(&parse(&report, &log), "C15_PRIVATE_CLASS.dcm"), Refusal::SopClass { class } if class == private)
        );
        // Without +v the negotiation does not say why; the UID still names it.
        let (report, log) = recorded("relay_ctonly_dcmsend_v");
        assert!(
            matches!(refusal(&parse(&report, &log), "C15_PRIVATE_CLASS.dcm"), Refusal::NoContext { class } if class == private)
        );
        let (report, log) = recorded("relay_xapm_dcmsend_pc");
        assert!(
            parse(&report, &log)
                .files
                .iter()
                .any(|(f, o)| f.ends_with("C15_PRIVATE_CLASS.dcm") && o.stored())
        );
    }

    /// dcmsend exits 0 for each of these: the report decides.
    #[test]
    fn partial_converted_mismatched_and_skipped() {
        // A CT-only publisher: 2 CT stored, MR and SC without a context.
        let (report, log) = recorded("dcmsend_partial");
        let parsed = parse(&report, &log);
        assert_eq!((parsed.files.len(), stored(&parsed)), (5, 2));
        assert!(
            matches!(refusal(&parsed, "MR1.dcm"), Refusal::NoContext { class } if class == "MR Image Storage")
        );
        assert!(matches!(refusal(&parsed, "SC1.dcm"), Refusal::NoContext { .. }));
        assert_eq!(parsed.problem, None);
        // JPEG Lossless decompressed for an uncompressed-only publisher.
        let (report, log) = recorded("dcmsend_jpeg_to_uncompressed");
        assert_eq!(stored(&parse(&report, &log)), 1);
        // A data set whose class differs from its meta header's: sent.
        let (report, log) = recorded("dcmsend_sopclass_mismatch");
        let parsed = parse(&report, &log);
        assert_eq!((parsed.files.len(), stored(&parsed), parsed.problem), (2, 2, None));
        // A DICOMDIR among the files is skipped and missing from the
        // report: the caller counts its files against the report's.
        let (report, log) = recorded("dcmsend_dicomdir");
        let parsed = parse(&report, &log);
        assert_eq!((parsed.files.len(), stored(&parsed), parsed.problem), (2, 2, None));
        assert!(!parsed.files.iter().any(|(f, _)| f.ends_with("DICOMDIR")));
    }

    #[test]
    fn a_killed_dcmsend_leaves_its_log() {
        let log = crate::dicom::recorded::lines("relay_killed_dcmsend.out");
        assert_eq!(accepted_in_log(&log), 4);
    }
}
