//! storescu (the legacy scripts' sender). By default it proposes only
//! uncompressed transfer syntaxes for a fixed list of SOP classes: a
//! compressed file, or a Segmentation, could not go even to a publisher
//! that takes everything. So each run gets a negotiation profile (`-xf`)
//! written for its files: one presentation context per SOP class and
//! transfer syntax they hold (the file's own syntax, and for uncompressed
//! files the other uncompressed ones). `-nh` so one refused file does not
//! halt the rest, `-v` because without it a refused file prints nothing,
//! `+v` for the negotiation results. A file counts as sent only when its
//! `Sending file:` line is followed by a `Received Store Response
//! (Success…)` or `(Warning…)`. storescu 3.6.7 cannot decompress.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use super::negotiation::{self, Answer};
use super::refusal::{Cut, Refusal, class_name, is_compressed, is_lossy, syntax_name};
use super::{Endpoint, FileOutcome, Problems, StoreLog, Timeouts, log_line, scu_args, words};

/// The profile's name inside the file `profile` writes.
pub const PROFILE: &str = "Send";

/// DICOM allows 128 presentation contexts in one association.
pub const MAX_CONTEXTS: usize = 128;

pub fn args(
    calling: &str,
    peer: &Endpoint,
    timeouts: &Timeouts,
    profile: Option<&Path>,
    files: &[String],
) -> Vec<OsString> {
    let mut options = words(["-nh", "-v", "+v"]);
    if let Some(profile) = profile {
        options.push("-xf".into());
        options.push(profile.into());
        options.push(PROFILE.into());
    }
    scu_args(calling, peer, timeouts, options, files.iter().map(OsString::from).collect())
}

/// What a file holds, as the negotiation sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
}

/// A negotiation profile for these kinds of file (at most `MAX_CONTEXTS`),
/// and the presentation context id each kind gets.
pub fn profile(kinds: &[Kind]) -> (String, HashMap<Kind, u8>) {
    const UNCOMPRESSED: [&str; 3] = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"];
    let mut syntaxes: Vec<Vec<&str>> = Vec::new();
    let mut contexts = String::new();
    let mut ids = HashMap::new();
    for (index, kind) in kinds.iter().enumerate() {
        let own = kind.transfer_syntax_uid.as_str();
        // A compressed image goes as it is (storescu cannot decompress);
        // an uncompressed one in whichever uncompressed syntax is taken.
        let mut group = vec![own];
        if !is_compressed(own) {
            group.extend(UNCOMPRESSED.iter().filter(|ts| **ts != own));
        }
        let number = match syntaxes.iter().position(|known| *known == group) {
            Some(at) => at + 1,
            None => {
                syntaxes.push(group);
                syntaxes.len()
            }
        };
        contexts.push_str(&format!(
            "PresentationContext{} = {}\\TS{number}\n",
            index + 1,
            kind.sop_class_uid
        ));
        ids.insert(kind.clone(), u8::try_from(2 * index + 1).unwrap_or(u8::MAX));
    }
    let mut text = String::from("[[TransferSyntaxes]]\n");
    for (number, group) in syntaxes.iter().enumerate() {
        text.push_str(&format!("[TS{}]\n", number + 1));
        for (at, ts) in group.iter().enumerate() {
            text.push_str(&format!("TransferSyntax{} = {ts}\n", at + 1));
        }
    }
    text.push_str(&format!(
        "[[PresentationContexts]]\n[Contexts]\n{contexts}[[Profiles]]\n[{PROFILE}]\nPresentationContexts = Contexts\n"
    ));
    (text, ids)
}

/// storescu interleaves its transfer dots with log lines ("XMIT: .",
/// "XMIT: W: ...").
fn clean(line: &str) -> &str {
    let mut line = line;
    while let Some(rest) = line.strip_prefix("XMIT:") {
        line = rest.trim_start_matches([' ', '.']);
    }
    line
}

/// True for the log lines that close one file's store attempt.
pub fn is_file_done(line: &str) -> bool {
    let line = clean(line);
    line.starts_with("I: Received Store Response")
        || line.starts_with("E: No presentation context for")
        || line.starts_with("E: Store Failed")
        || line.starts_with("E: Bad DICOM file")
        || line.starts_with("E: No SOP Class or Instance UID in file")
}

/// Files sent and not answered (0 or 1): the publisher may hold it or not.
pub fn in_flight(log: &[String]) -> usize {
    let sent = log.iter().filter(|l| clean(l).starts_with("I: Sending file:")).count();
    sent.saturating_sub(log.iter().filter(|l| is_file_done(l)).count())
}

/// The line at a DIMSE timeout: the publisher stopped answering.
pub fn is_stall(line: &str) -> bool {
    clean(line).contains("DIMSE No data available")
}

/// Reads the log of sending `files`; `kinds` (by path as passed) and `ids`
/// (from `profile`) say which presentation context each file needed. A
/// file storescu never got to is refused by the negotiation when its
/// context was (no context at all accepted ends the association first).
pub fn parse(
    log: &[String],
    files: &[String],
    kinds: &HashMap<String, Kind>,
    ids: &HashMap<Kind, u8>,
) -> StoreLog {
    let negotiated = negotiation::parse(log);
    let mut parsed = StoreLog::default();
    // Index into parsed.files of the file being sent.
    let mut current: Option<usize> = None;
    let mut problems = Problems::new("publisher");
    let no_context = |file: &str, class: &str| -> Refusal {
        let kind = kinds.get(file);
        let answer = kind.and_then(|kind| ids.get(kind)).and_then(|id| negotiated.answer(*id));
        match (answer, kind) {
            (Some(Answer::AbstractSyntaxNotSupported), _) => {
                Refusal::SopClass { class: class_name(class, "") }
            }
            (Some(Answer::TransferSyntaxesNotSupported), Some(kind)) => Refusal::TransferSyntax {
                syntax: syntax_name(&kind.transfer_syntax_uid),
                lossy: is_lossy(&kind.transfer_syntax_uid),
                sender: "storescu",
            },
            _ => Refusal::NoContext { class: class_name(class, "") },
        }
    };
    for (level, text) in log.iter().filter_map(|line| log_line(clean(line))) {
        if let Some(file) = text.strip_prefix("Sending file: ") {
            parsed
                .files
                .push((file.to_string(), FileOutcome::Failed(Refusal::NotAttempted(Cut::AssociationEnded))));
            current = Some(parsed.files.len() - 1);
            continue;
        }
        let verdict = if let Some(status) = text.strip_prefix("Received Store Response (") {
            let status = status.trim_end_matches(')');
            Some(if status.starts_with("Success") {
                FileOutcome::Stored
            } else if status.starts_with("Warning") {
                FileOutcome::StoredWithWarning(status.to_string())
            } else {
                FileOutcome::Failed(Refusal::Refused(status.to_string()))
            })
        } else if let Some(class) = text.strip_prefix("No presentation context for: (") {
            // "(SG) 1.2.840.10008.5.1.4.1.1.66.4" or "(unknown SOP class) 2.25.42"
            let uid = class.rsplit(' ').next().unwrap_or(class);
            let file = current.map(|i| parsed.files[i].0.clone()).unwrap_or_default();
            Some(FileOutcome::Failed(no_context(&file, uid)))
        } else if let Some(rest) = text.strip_prefix("Bad DICOM file: ") {
            let why = rest.rsplit_once(": ").map_or("not a DICOM file", |(_, why)| why).to_lowercase();
            Some(FileOutcome::Failed(Refusal::Unreadable(why)))
        } else if text.starts_with("No SOP Class or Instance UID in file: ") {
            // A DICOMDIR, or a data set without its UIDs: read, not sent.
            Some(FileOutcome::Failed(Refusal::Unreadable("it has no SOP Class or Instance UID".into())))
        } else {
            None
        };
        if let Some(verdict) = verdict {
            if let Some(index) = current.take() {
                parsed.files[index].1 = verdict;
            }
            continue;
        }
        if let Some(from) = text.split("unable to convert dataset from '").nth(1) {
            let syntax = from.split('\'').next().unwrap_or(from).to_string();
            if let Some(index) = current {
                let lossy =
                    syntax.contains("Baseline") || syntax.contains("Lossy") || syntax.contains("2000");
                parsed.files[index].1 =
                    FileOutcome::Failed(Refusal::TransferSyntax { syntax, lossy, sender: "storescu" });
            }
        } else if problems.read(level, text)
            && text.contains("DIMSE No data available")
            && let Some(index) = current.take()
        {
            parsed.files[index].1 = FileOutcome::Failed(Refusal::NotAttempted(Cut::NoAnswer));
        }
    }
    let mentioned: std::collections::HashSet<String> = parsed.files.iter().map(|(f, _)| f.clone()).collect();
    for file in files.iter().filter(|f| !mentioned.contains(*f)) {
        let refused = kinds
            .get(file)
            .and_then(|kind| ids.get(kind))
            .and_then(|id| negotiated.answer(*id))
            .is_some_and(|answer| *answer != Answer::Accepted);
        if refused {
            let class = kinds.get(file).map(|k| k.sop_class_uid.clone()).unwrap_or_default();
            parsed.files.push((file.clone(), FileOutcome::Failed(no_context(file, &class))));
        }
    }
    parsed.problem = problems.into_problem();
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::AssociationProblem;

    use crate::dicom::recorded::out as recorded;

    fn stored(log: &StoreLog) -> usize {
        log.files.iter().filter(|(_, o)| o.stored()).count()
    }

    fn read(name: &str) -> StoreLog {
        parse(&recorded(name), &[], &HashMap::new(), &HashMap::new())
    }

    #[test]
    fn all_sent() {
        let log = recorded("storescu_ok");
        let parsed = read("storescu_ok");
        assert_eq!((parsed.files.len(), stored(&parsed)), (5, 5));
        assert_eq!(parsed.problem, None);
        assert_eq!(log.iter().filter(|l| is_file_done(l)).count(), 5);
    }

    #[test]
    fn no_presentation_context() {
        let parsed = read("storescu_partial");
        assert_eq!((parsed.files.len(), stored(&parsed)), (5, 2));
        assert!(
            matches!(&parsed.files[4].1, FileOutcome::Failed(Refusal::NoContext { .. })),
            "{:?}",
            parsed.files[4]
        );
    }

    #[test]
    fn refused_rejected_stalled_unreadable() {
        let refused = read("storescu_refused");
        assert!(
            matches!(&refused.files[0].1, FileOutcome::Failed(Refusal::Refused(why)) if why.contains("OutOfResources"))
        );
        assert_eq!(
            read("storescu_unreachable").problem,
            Some(AssociationProblem::Unreachable("connection refused".into()))
        );
        assert_eq!(read("storescu_rejected").problem, Some(AssociationProblem::Rejected("No Reason".into())));
        let stalled = read("storescu_stalled");
        assert_eq!(stalled.problem, Some(AssociationProblem::Stalled));
        assert_eq!((stalled.files.len(), stored(&stalled)), (5, 0));
        assert!(recorded("storescu_stalled").iter().any(|l| is_stall(l)));
        let bad = read("storescu_nondicom");
        assert!(
            bad.files.iter().any(|(f, o)| f.ends_with("README.TXT")
                && matches!(o, FileOutcome::Failed(Refusal::Unreadable(_))))
        );
    }

    /// A DICOMDIR among the files: storescu reads it, finds no SOP
    /// Instance UID and goes on. It is that file's verdict (unreadable),
    /// never an association that ended, and nothing is left in flight.
    #[test]
    fn a_file_without_uids_is_unreadable() {
        let log = recorded("storescu_dicomdir");
        let parsed = read("storescu_dicomdir");
        assert_eq!((parsed.files.len(), stored(&parsed), parsed.problem.clone()), (3, 2, None));
        assert!(
            matches!(&parsed.files[0], (f, FileOutcome::Failed(Refusal::Unreadable(_))) if f == "/DATA/DICOMDIR"),
            "{:?}",
            parsed.files[0]
        );
        assert_eq!(in_flight(&log), 0);
        // A data set whose class differs from its meta header's: sent.
        let mismatch = read("storescu_sopclass_mismatch");
        assert_eq!((mismatch.files.len(), stored(&mismatch), mismatch.problem), (2, 2, None));
    }

    /// The relay corpus (16 files, tests/data/recorded/README.md, Q6):
    /// what the parse counts as stored is what the publisher wrote
    /// (`.files`). `-R` (which pacs2cd does not use) drops the truncated
    /// and the private-class file at its check, unsent and unmentioned.
    #[test]
    fn the_corpus_to_each_publisher() {
        for name in [
            "relay_xa_storescu_v",
            "relay_xa_storescu_pc",
            "relay_xa_storescu_R_pc",
            "relay_xa_storescu_RC_pc",
            "relay_plain_storescu_v",
            "relay_plain_storescu_pc",
            "relay_plain_storescu_R_pc",
            "relay_plain_storescu_RC_pc",
            "relay_ctonly_storescu_v",
            "relay_ctonly_storescu_pc",
            "relay_ctonly_storescu_R_pc",
            "relay_ctonly_storescu_RC_pc",
        ] {
            let log = recorded(name);
            let parsed = read(name);
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            let tried = if name.contains("_R") { 14 } else { 16 };
            assert_eq!((parsed.files.len(), stored(&parsed)), (tried, written), "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert_eq!(in_flight(&log), 0, "{name}");
            // storescu cannot decompress: JPEG Lossless fails to convert
            // (a CT-only publisher refuses the MR class first).
            if !name.contains("ctonly") {
                let jpeg = parsed.files.iter().find(|(f, _)| f.ends_with("C03_MR_jpeg_lossless.dcm"));
                assert!(
                    matches!(
                        jpeg,
                        Some((_, FileOutcome::Failed(Refusal::TransferSyntax { lossy: false, .. })))
                    ),
                    "{name}: {jpeg:?}"
                );
            }
        }
    }

    #[test]
    fn jpeg_it_cannot_convert() {
        let parsed = read("storescu_jpeg_to_uncompressed");
        assert!(matches!(
            &parsed.files[0].1,
            FileOutcome::Failed(Refusal::TransferSyntax { sender: "storescu", lossy: false, .. })
        ));
    }

    #[test]
    fn a_profile_for_the_files() {
        let kinds = [
            Kind {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            },
            Kind {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.4.70".into(),
            },
            Kind {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.66.4".into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            },
        ];
        let (text, ids) = profile(&kinds);
        assert_eq!(ids[&kinds[1]], 3);
        assert!(text.contains("PresentationContext2 = 1.2.840.10008.5.1.4.1.1.4\\TS2\n"), "{text}");
        assert!(text.contains("PresentationContext3 = 1.2.840.10008.5.1.4.1.1.66.4\\TS1\n"), "{text}");
        assert!(text.contains("[TS2]\nTransferSyntax1 = 1.2.840.10008.1.2.4.70\n[["), "{text}");
    }
}
