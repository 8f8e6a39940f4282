//! The association's negotiation results, as dcmsend and storescu print
//! them with `+v`: per presentation context, whether the publisher took it
//! and, when not, whether it refused the SOP class (abstract syntax) or
//! only the transfer syntaxes offered. That is what tells "the publisher
//! does not take MR" from "the publisher does not take JPEG".

use std::collections::HashMap;

use super::log_line;

/// What the publisher said about one presentation context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// The SOP class itself (also when both were unsupported).
    AbstractSyntaxNotSupported,
    TransferSyntaxesNotSupported,
    /// Another rejection (user rejection, no reason).
    Rejected(String),
}

/// The A-ASSOCIATE-AC's presentation contexts by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    contexts: HashMap<u8, Answer>,
}

impl Negotiated {
    pub fn answer(&self, context: u8) -> Option<&Answer> {
        self.contexts.get(&context)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }
}

/// Reads the contexts of the A-ASSOCIATE-AC dump (the RQ before it says
/// only "Proposed").
pub fn parse(log: &[String]) -> Negotiated {
    let mut negotiated = Negotiated::default();
    let mut in_ac = false;
    for (_, text) in log.iter().filter_map(|line| log_line(line)) {
        let text = text.trim();
        if text.contains("BEGIN A-ASSOCIATE-AC") {
            in_ac = true;
        } else if text.contains("END A-ASSOCIATE-AC") {
            in_ac = false;
        } else if in_ac && let Some(rest) = text.strip_prefix("Context ID:") {
            // "Context ID:        7 (Transfer Syntaxes Not Supported)"
            let rest = rest.trim();
            let (id, result) = rest.split_once(' ').unwrap_or((rest, ""));
            let Ok(id) = id.parse::<u8>() else { continue };
            let result = result.trim().trim_start_matches('(').trim_end_matches(')');
            let answer = match result {
                "Accepted" => Answer::Accepted,
                "Abstract Syntax Not Supported" => Answer::AbstractSyntaxNotSupported,
                "Transfer Syntaxes Not Supported" => Answer::TransferSyntaxesNotSupported,
                other => Answer::Rejected(other.to_string()),
            };
            negotiated.contexts.insert(id, answer);
        }
    }
    negotiated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::recorded::out as recorded;

    #[test]
    fn tells_the_class_from_the_syntax() {
        // Plain storescp: every class, uncompressed only.
        let plain = parse(&recorded("relay_plain_dcmsend_pc"));
        assert_eq!(plain.answer(1), Some(&Answer::Accepted));
        assert_eq!(plain.answer(7), Some(&Answer::TransferSyntaxesNotSupported));
        // A CT-only publisher refuses MR as a class.
        let ct_only = parse(&recorded("relay_ctonly_dcmsend_pc"));
        assert_eq!(ct_only.answer(1), Some(&Answer::Accepted));
        assert_eq!(ct_only.answer(3), Some(&Answer::AbstractSyntaxNotSupported));
        assert!(parse(&recorded("dcmsend_ok")).is_empty(), "no +v, no negotiation lines");
    }
}
