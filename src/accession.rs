//! Accession numbers: the trust boundary. An accession reaches the PACS as
//! a C-FIND key, where an empty value or a `*` matches every study: one
//! such value would put every patient's images on one disc. `parse_list`
//! is the only way to make an `Accession`.

use std::fmt;

use crate::failure::Failure;

/// A checked accession number: DICOM SH, 1-16 printable ASCII characters,
/// none of `* ?` (C-FIND wildcards) or `\` (the multi-value separator).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accession(String);

impl Accession {
    fn parse(value: &str) -> Result<Accession, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("an accession number cannot be empty".into());
        }
        if value.len() > 16 {
            return Err(format!("{} is longer than 16 characters", shown(value)));
        }
        if let Some(bad) = value.chars().find(|&c| !(' '..='~').contains(&c) || matches!(c, '*' | '?' | '\\'))
        {
            let bad = crate::sanitize::for_terminal(&bad.to_string());
            return Err(format!("{} holds '{bad}', which an accession number may not", shown(value)));
        }
        Ok(Accession(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Accession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value as it may be shown in a message: as typed, control characters
/// visible (`^G`), cut when long.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    format!("{}{}", crate::sanitize::quoted(&cut), if cut.len() < value.len() { "..." } else { "" })
}

/// Reads accession numbers given as repeated values and/or comma-separated
/// lists: trimmed, de-duplicated in order, each checked, at most `max`.
pub fn parse_list<S: AsRef<str>>(values: &[S], max: usize) -> Result<Vec<Accession>, Failure> {
    let mut accessions: Vec<Accession> = Vec::new();
    let mut seen_any = false;
    for value in values {
        for part in value.as_ref().split(',') {
            // "A,,B" or a trailing comma is sloppiness, not a request for
            // everything; a value that is only blanks is refused below.
            if part.is_empty() && value.as_ref().trim() != "" {
                continue;
            }
            seen_any = true;
            let accession = Accession::parse(part).map_err(Failure::invalid_accession)?;
            if !accessions.contains(&accession) {
                accessions.push(accession);
            }
        }
    }
    if !seen_any {
        return Err(Failure::missing_accession());
    }
    if accessions.len() > max {
        return Err(Failure::invalid_accession(format!(
            "{} accession numbers in one request; at most {max} are allowed (cgi.max_accessions)",
            accessions.len()
        )));
    }
    Ok(accessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Class;

    fn list(values: &[&str]) -> Result<Vec<String>, Class> {
        parse_list(values, 20).map(|v| v.into_iter().map(|a| a.0).collect()).map_err(|f| f.class)
    }

    #[test]
    fn repeated_and_comma_separated_are_the_same() {
        assert_eq!(list(&["MR.001,CT.002"]), list(&["MR.001", "CT.002"]));
        assert_eq!(list(&[" MR.001 , CT.002", "MR.001"]), Ok(vec!["MR.001".into(), "CT.002".into()]));
        assert_eq!(list(&["A,,B,"]), Ok(vec!["A".into(), "B".into()]));
    }

    #[test]
    fn wildcards_and_bad_characters_are_refused() {
        for bad in ["*", "ACC00?", "A\\B", "ABCDEFGHIJKLMNOPQ", "A\u{7}", "AÖ", " ", "A\tB"] {
            assert_eq!(list(&[bad]), Err(Class::InvalidAccession), "{bad:?}");
        }
        assert_eq!(list(&["OK", "*"]), Err(Class::InvalidAccession));
        assert_eq!(list(&["ABCDEFGHIJKLMNOP"]), Ok(vec!["ABCDEFGHIJKLMNOP".into()]));
        assert_eq!(list(&["MR 2024 001"]), Ok(vec!["MR 2024 001".into()]));
    }

    #[test]
    fn messages_quote_what_was_typed() {
        let detail = |value: &str| parse_list(&[value], 20).err().map(|f| f.detail).unwrap_or_default();
        assert!(detail("A\\B").contains("\"A\\B\" holds '\\'"), "{}", detail("A\\B"));
        assert!(detail("AB\u{7}").contains("\"AB^G\" holds '^G'"), "{}", detail("AB\u{7}"));
    }

    #[test]
    fn nothing_is_missing() {
        assert_eq!(list(&[]), Err(Class::MissingAccession));
        assert_eq!(list(&[""]), Err(Class::InvalidAccession));
        assert_eq!(list(&[","]), Err(Class::MissingAccession));
    }

    #[test]
    fn at_most_max() {
        let many: Vec<String> = (0..21).map(|i| format!("A{i}")).collect();
        assert_eq!(parse_list(&many, 20).map_err(|f| f.class), Err(Class::InvalidAccession));
        assert!(parse_list(&many[..20], 20).is_ok());
    }
}
