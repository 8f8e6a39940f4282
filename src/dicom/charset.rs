//! SpecificCharacterSet (0008,0005) to text, for every character set of
//! the standard (PS3.3 C.12.1.1.2, PS3.5 6.1): the single-byte sets, UTF-8,
//! GB18030 and GBK, and ISO 2022 with code extensions, where escape
//! sequences switch repertoires inside one value (`Yamada^Tarou=山田^太郎`).
//!
//! The tables come from `encoding_rs` (the WHATWG encodings): EUC-JP holds
//! JIS X 0208 and JIS X 0212, EUC-KR KS X 1001, GB18030 GB 2312, each
//! reached by setting the high bit the way those encodings store the
//! 94x94 sets. What is ours is the ISO 2022 state machine: which set is in
//! G0 and G1, and where the state returns to the value's first set — before
//! each delimiter (`^` and `=` in a person name, `\` between values, and the
//! end of a line), but only while G0 holds a one-byte set, since a byte of
//! a two-byte JIS character may equal a delimiter.
//!
//! Bytes a declared set cannot decode, and non-ASCII bytes under no
//! declared set, are never guessed into some other script (mojibake):
//! they are shown as `\xNN` and the text is marked inexact, so that the
//! caller warns and does not compare it with another spelling.

use encoding_rs::{DecoderResult, Encoding};

/// Decoded text, and whether every byte was decoded by a declared set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    /// False when bytes were shown as `\xNN`, or the value held non-ASCII
    /// bytes under no declared character set (then read as UTF-8 when
    /// they are valid UTF-8, a guess the caller must flag).
    pub exact: bool,
}

/// Where a value's code extensions return to the first set (PS3.5 6.1.2.5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PN: also at the component (`^`) and group (`=`) delimiters.
    PersonName,
    /// Every other text VR: at `\` and at the end of a line.
    Text,
}

/// A one-byte or two-byte set in G0 (bytes 0x21-0x7E).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum G0 {
    Ascii,
    /// JIS X 0201 Romaji (ISO-IR 14): ASCII with an overline at 0x7E.
    Romaji,
    /// JIS X 0208 (ISO-IR 87), two bytes a character.
    Jis0208,
    /// JIS X 0212 (ISO-IR 159), two bytes a character.
    Jis0212,
}

/// A set in G1 (bytes 0xA1-0xFE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum G1 {
    None,
    /// ISO 8859-1: the byte is the code point.
    Latin1,
    /// The upper half of an ISO 8859 part (or TIS 620), from its table.
    High(&'static Encoding),
    /// JIS X 0201 katakana (ISO-IR 13), one byte a character.
    Katakana,
    /// KS X 1001 (ISO-IR 149), two bytes a character.
    Korean,
    /// GB 2312 (ISO-IR 58), two bytes a character.
    Chinese,
}

impl G0 {
    fn two_bytes(self) -> bool {
        matches!(self, G0::Jis0208 | G0::Jis0212)
    }
}

/// A value of SpecificCharacterSet: what it puts in G0 and G1 (the first
/// value's pair is a value's initial state), or a set without code
/// extensions that decodes a whole value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    Sets(Option<G0>, G1),
    Utf8,
    Gb18030,
    Unknown,
}

fn term(name: &str) -> Term {
    use encoding_rs::{
        ISO_8859_2, ISO_8859_3, ISO_8859_4, ISO_8859_5, ISO_8859_6, ISO_8859_7, ISO_8859_8, ISO_8859_15,
        WINDOWS_874, WINDOWS_1254,
    };
    let name = name.trim();
    // "ISO_IR 100" and "ISO 2022 IR 100" name the same set, without and
    // with code extensions; the machine below reads both alike.
    let number = name.strip_prefix("ISO_IR ").or_else(|| name.strip_prefix("ISO 2022 IR "));
    let high = |encoding| Term::Sets(Some(G0::Ascii), G1::High(encoding));
    match (name, number) {
        ("", _) => Term::Sets(Some(G0::Ascii), G1::None),
        ("GB18030" | "GBK", _) => Term::Gb18030,
        (_, Some("6")) => Term::Sets(Some(G0::Ascii), G1::None),
        (_, Some("100")) => Term::Sets(Some(G0::Ascii), G1::Latin1),
        (_, Some("101")) => high(ISO_8859_2),
        (_, Some("109")) => high(ISO_8859_3),
        (_, Some("110")) => high(ISO_8859_4),
        (_, Some("144")) => high(ISO_8859_5),
        (_, Some("127")) => high(ISO_8859_6),
        (_, Some("126")) => high(ISO_8859_7),
        (_, Some("138")) => high(ISO_8859_8),
        // ISO 8859-9; its upper half equals windows-1254's (only 0x80-0x9F
        // differ, C1 controls here, which are never printed).
        (_, Some("148")) => high(WINDOWS_1254),
        (_, Some("203")) => high(ISO_8859_15),
        // TIS 620; windows-874 is its superset in the upper half.
        (_, Some("166")) => high(WINDOWS_874),
        (_, Some("13")) => Term::Sets(Some(G0::Romaji), G1::Katakana),
        (_, Some("192")) => Term::Utf8,
        (_, Some("87")) => Term::Sets(Some(G0::Jis0208), G1::None),
        (_, Some("159")) => Term::Sets(Some(G0::Jis0212), G1::None),
        (_, Some("149")) => Term::Sets(None, G1::Korean),
        (_, Some("58")) => Term::Sets(None, G1::Chinese),
        _ => Term::Unknown,
    }
}

/// Decodes `value` by `specific_character_set` (the attribute's whole
/// value, `\`-separated). Control characters are kept: the caller decides.
pub fn decode(value: &[u8], specific_character_set: &str, kind: Kind) -> Text {
    let first = specific_character_set.split('\\').next().unwrap_or("");
    let declared = !specific_character_set.trim().is_empty();
    match term(first) {
        Term::Utf8 => whole(value, encoding_rs::UTF_8),
        Term::Gb18030 => whole(value, encoding_rs::GB18030),
        // A two-byte set is never a value's initial state: where a PACS
        // names one first (Orthanc's JapaneseKanji says just "ISO 2022 IR
        // 87"), the value starts in ASCII and escapes switch.
        Term::Sets(g0, g1) if declared || value.is_ascii() => {
            let g0 = g0.filter(|g0| !g0.two_bytes()).unwrap_or(G0::Ascii);
            iso2022(value, (g0, g1), kind)
        }
        Term::Unknown if value.is_ascii() => iso2022(value, (G0::Ascii, G1::None), kind),
        // Nothing declared (the default repertoire is ASCII) yet bytes
        // beyond it, or a set this reader does not know: never a guess at
        // some 8-bit set. Valid UTF-8 is taken as such, flagged.
        Term::Sets(..) | Term::Unknown => Text { exact: false, ..whole(value, encoding_rs::UTF_8) },
    }
}

/// An identifier (PatientID, IssuerOfPatientID) as text to compare: as
/// `decode` gives it when every byte decodes; otherwise the bytes read as
/// UTF-8 when they are valid UTF-8, else as Latin-1. Identifiers are
/// compared, not shown: a PACS that sends `M\xDC-77` undeclared in its
/// answer and declared as ISO_IR 100 in its files means one id.
pub fn lenient(value: &[u8], specific_character_set: &str) -> String {
    let decoded = decode(value, specific_character_set, Kind::Text);
    if decoded.exact {
        return decoded.text;
    }
    match std::str::from_utf8(value) {
        Ok(text) => text.to_string(),
        Err(_) => value.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A value in a set without code extensions (UTF-8, GB18030).
fn whole(value: &[u8], encoding: &'static Encoding) -> Text {
    let mut text = Text { text: String::with_capacity(value.len()), exact: true };
    decode_run(encoding, value, &mut text);
    text
}

/// Decodes `bytes` with `encoding`, showing what it cannot decode as `\xNN`.
fn decode_run(encoding: &'static Encoding, bytes: &[u8], out: &mut Text) {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut rest = bytes;
    loop {
        let needed = decoder.max_utf8_buffer_length_without_replacement(rest.len()).unwrap_or(rest.len() * 4);
        out.text.reserve(needed);
        let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut out.text, true);
        match result {
            DecoderResult::InputEmpty => return,
            DecoderResult::OutputFull => rest = &rest[read..],
            DecoderResult::Malformed(bad, pending) => {
                // The malformed bytes end `pending` bytes before `read`.
                let end = read.saturating_sub(usize::from(pending));
                let start = end.saturating_sub(usize::from(bad));
                escape(&rest[start..end], out);
                // The decoder goes on after the malformed bytes by itself.
                rest = &rest[read..];
            }
        }
    }
}

fn escape(bytes: &[u8], out: &mut Text) {
    for byte in bytes {
        out.text.push_str(&format!("\\x{byte:02X}"));
    }
    out.exact = false;
}

/// The ISO 2022 machine, from the first value's sets.
fn iso2022(value: &[u8], initial: (G0, G1), kind: Kind) -> Text {
    let (mut g0, mut g1) = initial;
    let mut out = Text { text: String::with_capacity(value.len()), exact: true };
    let mut at = 0;
    while at < value.len() {
        let byte = value[at];
        if byte == 0x1B {
            match designation(&value[at + 1..]) {
                Some((length, set)) => {
                    match set {
                        Designated::G0(set) => g0 = set,
                        Designated::G1(set) => g1 = set,
                    }
                    at += 1 + length;
                }
                None => {
                    escape(&[byte], &mut out);
                    at += 1;
                }
            }
            continue;
        }
        if byte < 0x80 {
            if g0.two_bytes() && (0x21..=0x7E).contains(&byte) {
                let pair = value.get(at..at + 2).filter(|p| (0x21..=0x7E).contains(&p[1]));
                match pair {
                    Some(pair) if g0 == G0::Jis0208 => {
                        decode_run(encoding_rs::EUC_JP, &[pair[0] | 0x80, pair[1] | 0x80], &mut out)
                    }
                    Some(pair) => {
                        decode_run(encoding_rs::EUC_JP, &[0x8F, pair[0] | 0x80, pair[1] | 0x80], &mut out)
                    }
                    None => escape(&value[at..(at + 2).min(value.len())], &mut out),
                }
                at += 2;
                continue;
            }
            // A one-byte position: a delimiter returns to the first set
            // before it is read.
            if delimiter(byte, kind) {
                (g0, g1) = initial;
            }
            out.text.push(match (g0, byte) {
                (G0::Romaji, 0x7E) => '\u{203E}',
                _ => char::from(byte),
            });
            at += 1;
            continue;
        }
        match g1 {
            G1::Latin1 => out.text.push(char::from(byte)),
            // 0x80-0x9F are C1 controls in every ISO 8859 part.
            G1::High(_) if byte < 0xA0 => out.text.push(char::from(byte)),
            G1::High(encoding) => decode_run(encoding, &[byte], &mut out),
            G1::Katakana if (0xA1..=0xDF).contains(&byte) => {
                out.text.push(char::from_u32(0xFF61 + u32::from(byte - 0xA1)).unwrap_or('\u{FFFD}'))
            }
            G1::Korean | G1::Chinese => {
                let encoding = if g1 == G1::Korean { encoding_rs::EUC_KR } else { encoding_rs::GB18030 };
                match value.get(at..at + 2) {
                    Some(pair) if pair.iter().all(|b| (0xA1..=0xFE).contains(b)) => {
                        decode_run(encoding, pair, &mut out);
                        at += 1;
                    }
                    _ => escape(&[byte], &mut out),
                }
            }
            G1::Katakana | G1::None => escape(&[byte], &mut out),
        }
        at += 1;
    }
    out
}

fn delimiter(byte: u8, kind: Kind) -> bool {
    match kind {
        Kind::PersonName => matches!(byte, b'^' | b'=' | b'\\' | b'\r' | b'\n' | b'\t' | 0x0C),
        Kind::Text => matches!(byte, b'\\' | b'\r' | b'\n' | b'\t' | 0x0C),
    }
}

enum Designated {
    G0(G0),
    G1(G1),
}

/// The escape sequence at the start of `after` (the bytes after ESC):
/// its length and what it designates (PS3.3 Tables C.12-3 and C.12-4).
fn designation(after: &[u8]) -> Option<(usize, Designated)> {
    use encoding_rs::{
        ISO_8859_2, ISO_8859_3, ISO_8859_4, ISO_8859_5, ISO_8859_6, ISO_8859_7, ISO_8859_8, ISO_8859_15,
        WINDOWS_874, WINDOWS_1254,
    };
    let three = |set| Some((3, set));
    let two = |set| Some((2, set));
    match after {
        [b'$', b'(', b'D', ..] => three(Designated::G0(G0::Jis0212)),
        [b'$', b')', b'C', ..] => three(Designated::G1(G1::Korean)),
        [b'$', b')', b'A', ..] => three(Designated::G1(G1::Chinese)),
        // ESC $ @ is the 1978 edition of JIS X 0208; decoded alike.
        [b'$', b'B' | b'@', ..] => two(Designated::G0(G0::Jis0208)),
        [b'(', b'B', ..] => two(Designated::G0(G0::Ascii)),
        [b'(', b'J', ..] => two(Designated::G0(G0::Romaji)),
        [b')', b'I', ..] => two(Designated::G1(G1::Katakana)),
        [b'-', last, ..] => {
            let set = match last {
                b'A' => G1::Latin1,
                b'B' => G1::High(ISO_8859_2),
                b'C' => G1::High(ISO_8859_3),
                b'D' => G1::High(ISO_8859_4),
                b'L' => G1::High(ISO_8859_5),
                b'G' => G1::High(ISO_8859_6),
                b'F' => G1::High(ISO_8859_7),
                b'H' => G1::High(ISO_8859_8),
                b'M' => G1::High(WINDOWS_1254),
                b'b' => G1::High(ISO_8859_15),
                b'T' => G1::High(WINDOWS_874),
                _ => return None,
            };
            two(Designated::G1(set))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pn(bytes: &[u8], charset: &str) -> Text {
        decode(bytes, charset, Kind::PersonName)
    }

    /// PS3.5 Annexes H, I and J, and the single-byte examples, as the
    /// standard prints them (the files pydicom ships: tests/data/charset).
    #[test]
    fn the_standards_examples_read_as_printed() {
        let cases = [
            ("chrArab.dcm", "قباني^لنزار"),
            ("chrFren.dcm", "Buc^Jérôme"),
            ("chrGerm.dcm", "Äneas^Rüdiger"),
            ("chrGreek.dcm", "Διονυσιος"),
            ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
            ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
            ("chrHbrw.dcm", "שרון^דבורה"),
            ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),
            ("chrJapMulti.dcm", "やまだ^たろう"),
            ("chrJapMultiExplicitIR6.dcm", "やまだ^たろう"),
            ("chrKoreanMulti.dcm", "김희중"),
            ("chrRuss.dcm", "Люкceмбypг"),
            ("chrX1.dcm", "Wang^XiaoDong=王^小東="),
            ("chrX2.dcm", "Wang^XiaoDong=王^小东="),
        ];
        for (file, expected) in cases {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charset").join(file);
            let data = crate::dicom::part10::read(&path, true).expect("read").expect("a data set");
            let name = data.text_checked(crate::dicom::part10::tag::PATIENT_NAME).text;
            assert_eq!(name, expected, "{file}");
        }
    }

    #[test]
    fn single_byte_sets() {
        assert_eq!(pn(b"M\xdcLLER", "ISO_IR 100").text, "MÜLLER");
        assert_eq!(pn(b"\xbb\xee\xda", "ISO_IR 144").text, "Люк");
        assert_eq!(pn(b"\xc4\xe9", "ISO_IR 126").text, "Δι");
        assert_eq!(pn(b"\xdd\xfe", "ISO_IR 148").text, "İş");
        assert_eq!(pn(b"\xa4", "ISO_IR 203").text, "€");
        assert_eq!(pn(b"\xa1", "ISO_IR 166").text, "ก");
        assert_eq!(pn(b"\xa9", "ISO_IR 101").text, "Š");
        // ISO_IR 13 alone: katakana in G1, Romaji in G0.
        assert_eq!(pn(b"\xd4\xcf\xc0\xde^~", "ISO_IR 13").text, "ﾔﾏﾀﾞ^\u{203E}");
    }

    #[test]
    fn code_extensions_switch_and_return_at_delimiters() {
        // Latin-1 by escape inside a Cyrillic value, back at `^`.
        let mixed = pn(b"\xbb\x1b-A\xdc^\xbb", "ISO 2022 IR 144\\ISO 2022 IR 100");
        assert_eq!(mixed.text, "ЛÜ^Л");
        // A JIS byte that equals `^` (ま = 0x245E) is no delimiter.
        assert_eq!(pn(b"\x1b$B$d$^$@\x1b(B", "\\ISO 2022 IR 87").text, "やまだ");
        // JIS X 0212 (a character JIS X 0208 lacks).
        assert_eq!(pn(b"\x1b$(D\x30\x21\x1b(B", "\\ISO 2022 IR 159").text, "丂");
        // GB 2312 in G1.
        assert_eq!(pn(b"\x1b$)A\xcd\xf5", "\\ISO 2022 IR 58").text, "王");
        // A text VR returns at `\` but not at `^`; after `\` nothing is
        // in G1 until an escape designates it again.
        let text = decode(b"\x1b-L\xbb^\xbb\\\xbb", "ISO 2022 IR 6\\ISO 2022 IR 144", Kind::Text);
        assert_eq!(text.text, "Л^Л\\\\xBB");
    }

    #[test]
    fn what_cannot_be_decoded_is_shown_and_flagged() {
        // Non-ASCII under no declared set: never read as Latin-1.
        let undeclared = pn(b"M\xdcLLER", "");
        assert_eq!(undeclared, Text { text: "M\\xDCLLER".into(), exact: false });
        // Valid UTF-8 under no declared set: read, but flagged as a guess.
        assert_eq!(pn("MÜLLER".as_bytes(), ""), Text { text: "MÜLLER".into(), exact: false });
        assert!(pn(b"DOE^JOHN", "").exact);
        // Broken UTF-8 and GB18030.
        assert_eq!(pn(b"A\xff", "ISO_IR 192").text, "A\\xFF");
        assert!(!pn(b"\x81", "GB18030").exact);
        // An unknown escape, and a G1 byte with nothing in G1.
        assert_eq!(pn(b"\x1b%G", "\\ISO 2022 IR 87").text, "\\x1B%G");
        assert_eq!(pn(b"\xe9", "ISO 2022 IR 6").text, "\\xE9");
        assert_eq!(pn(b"x", "ISO_IR 999"), Text { text: "x".into(), exact: true });
        assert!(!pn(b"\xe9", "ISO_IR 999").exact);
        // A two-byte set named first starts in ASCII all the same.
        assert_eq!(
            pn(b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "ISO 2022 IR 87").text,
            "Yamada^Tarou=山田^太郎"
        );
        // Identifiers compare alike however they were (un)declared.
        assert_eq!(lenient(b"M\xdc-77", ""), lenient(b"M\xdc-77", "ISO_IR 100"));
        assert_eq!(lenient("MÜ-77".as_bytes(), ""), "MÜ-77");
        // A truncated two-byte character.
        assert_eq!(pn(b"\x1b$B$", "\\ISO 2022 IR 87").text, "\\x24");
    }
}
