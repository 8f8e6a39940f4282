//! Making outside text safe where it goes: control characters escaped
//! before a name reaches a terminal (a file name or a patient name from the
//! PACS could otherwise move the cursor or retitle the window).

/// Escapes control characters as `\u{..}`, keeping everything else.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_only() {
        assert_eq!(for_terminal("MÜLLER^JOSÉ"), "MÜLLER^JOSÉ");
        assert_eq!(for_terminal("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
    }
}
