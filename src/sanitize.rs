//! Making outside text safe where it goes: control characters escaped
//! before a name reaches a terminal (a file name or a patient name from the
//! PACS could otherwise move the cursor or retitle the window), and names
//! from the PACS or HIS turned into file names that stay where they are put.

/// Shows control characters visibly in caret notation (`^G`, `^[`, `^?`;
/// `<U+0085>` beyond ASCII), keeping everything else as it is: a file name
/// or a patient name from the PACS could otherwise move the cursor or
/// retitle the window.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{0}'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            '\u{7f}' => out.push_str("^?"),
            c if c.is_control() || is_invisible_format(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML content and attribute values (the web pages and
/// the disc's INDEX.HTM): control characters dropped, invisible
/// formatting shown.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c if is_invisible_format(c) => out.push_str(&format!("&lt;U+{:04X}&gt;", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Characters that change how a line reads without showing themselves:
/// bidirectional overrides, embeddings and isolates (a name that reads
/// backwards), zero-width spaces and word joiners. The zero-width
/// (non-)joiners U+200C and U+200D stay: Persian and Indic names need them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// A value in double quotes as the user typed it (no Rust escapes: one
/// backslash stays one), control characters shown visibly.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", for_terminal(text))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a URL
/// path segment, an RFC 5987 header value).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Upper-case `A-Z 0-9 _` only, at most `max` long: ISO 9660 volume labels
/// and DICOM file-set IDs. Never empty: `fallback` stands in.
pub fn d_characters(text: &str, max: usize, fallback: &str) -> String {
    let upper: String = text
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if c.is_ascii_uppercase() || c.is_ascii_digit() { c } else { '_' })
        .take(max)
        .collect();
    let trimmed = upper.trim_matches('_');
    if trimmed.is_empty() { fallback.to_string() } else { trimmed.to_string() }
}

/// A file or folder name from outside text: ASCII letters, digits, `.`,
/// `-` and `_` only (`^`, blanks and other separators become `_`, accented
/// letters lose their accent, anything else is dropped), no leading dot or
/// dash, at most `max` bytes. Never empty: `fallback` stands in.
pub fn file_name(text: &str, max: usize, fallback: &str) -> String {
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            ascii.push_str(transliterate(c));
        }
    }
    tidy(&ascii, max, fallback, |c| c.is_ascii_alphanumeric())
}

/// Like `file_name`, but letters and digits of any script stay as they
/// are: for the UTF-8 name a browser shows (`filename*`).
pub fn unicode_file_name(text: &str, max: usize, fallback: &str) -> String {
    tidy(text, max, fallback, char::is_alphanumeric)
}

fn tidy(text: &str, max: usize, fallback: &str, keep: fn(char) -> bool) -> String {
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match c {
            c if keep(c) => c,
            '.' | '-' | '_' => c,
            '^' | ' ' | '/' | '\\' | ',' | ';' | ':' | '=' | '+' => '_',
            _ => continue,
        };
        // No runs of separators ("__", "..", "._."): a name like "../../x"
        // must not keep its dots together.
        if separator(c) && out.chars().last().is_some_and(separator) {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_start_matches(['.', '-', '_']).trim_end_matches(['.', '_', '-']);
    let mut name: String = trimmed.chars().take(max).collect();
    while name.ends_with(['.', '_', '-']) {
        name.pop();
    }
    if name.is_empty() { fallback.to_string() } else { name }
}

/// The plain-ASCII spelling of a non-ASCII letter with diacritics
/// ("Ü" -> "U", "ß" -> "ss"); other characters give "".
fn transliterate(c: char) -> &'static str {
    match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à'..='å' | 'ā' | 'ă' | 'ą' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Č' => "C",
        'ç' | 'ć' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È'..='Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è'..='ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'Ì'..='Ï' | 'Ī' | 'Į' | 'İ' => "I",
        'ì'..='ï' | 'ī' | 'į' | 'ı' => "i",
        'Ł' => "L",
        'ł' => "l",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ñ' | 'ń' | 'ň' => "n",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ő' => "O",
        'ò'..='ö' | 'ø' | 'ō' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ř' => "R",
        'ř' => "r",
        'Ś' | 'Š' | 'Ş' => "S",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'Ť' | 'Ţ' => "T",
        'ť' | 'ţ' => "t",
        'Ù'..='Ü' | 'Ū' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ù'..='ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'Ý' | 'Ÿ' => "Y",
        'ý' | 'ÿ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        'Þ' => "TH",
        'þ' => "th",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that would read backwards, or hide a space, shows what it
    /// holds; a Persian name keeps its zero-width non-joiner.
    #[test]
    fn invisible_formatting_is_shown() {
        assert_eq!(for_terminal("DOE\u{202E}NHOJ"), "DOE<U+202E>NHOJ");
        assert_eq!(for_terminal("A\u{200B}B"), "A<U+200B>B");
        assert_eq!(
            for_terminal("\u{0645}\u{06CC}\u{200C}\u{0634}\u{0648}\u{062F}"),
            "\u{0645}\u{06CC}\u{200C}\u{0634}\u{0648}\u{062F}"
        );
    }

    #[test]
    fn file_names_stay_put() {
        assert_eq!(file_name("DOE^JOHN", 64, "patient"), "DOE_JOHN");
        assert_eq!(file_name("../../x^<y>", 64, "patient"), "x_y");
        assert_eq!(file_name("MÜLLER^JOSÉ", 64, "patient"), "MULLER_JOSE");
        assert_eq!(file_name("Straße", 64, "patient"), "Strasse");
        assert_eq!(file_name("a\u{0}b\nc/d", 64, "patient"), "abc_d");
        assert_eq!(file_name("..", 64, "patient"), "patient");
        assert_eq!(file_name("王小明", 64, "patient"), "patient");
        assert_eq!(file_name("-rf", 64, "patient"), "rf");
        assert_eq!(file_name("ABCDEFGH_IJ", 9, "patient"), "ABCDEFGH");
        assert_eq!(unicode_file_name("MÜLLER^JOSÉ", 64, "p"), "MÜLLER_JOSÉ");
        assert_eq!(unicode_file_name("../../x^<y>", 64, "p"), "x_y");
        let hostile = file_name("x/../../..^..", 64, "p");
        assert!(!hostile.contains("..") && !hostile.contains('/'), "{hostile}");
    }

    #[test]
    fn shows_controls_visibly_and_nothing_else() {
        assert_eq!(for_terminal("MÜLLER^JOSÉ"), "MÜLLER^JOSÉ");
        assert_eq!(for_terminal("a\u{1b}[2Jb\n"), "a^[[2Jb^J");
        assert_eq!(for_terminal("A\u{7}\u{7f}\u{85}"), "A^G^?<U+0085>");
        assert_eq!(quoted("AB\\CD"), "\"AB\\CD\"");
    }
}
