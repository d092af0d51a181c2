//! Tokenizer for RFC 1035 master files.
//!
//! Splits zone file text into logical entries (one record or directive each)
//! and remembers the 1-based line where each entry starts, which hickory's
//! own zone lexer does not expose. An entry ends at a newline outside
//! parentheses; `;` starts a comment; `"` at the start of a token opens a
//! quoted string that must close on the same line; a backslash escapes the
//! next character so that `\;`, `\(` or `\ ` stay inside a token. Tokens
//! borrow the file text and keep escapes undecoded, so lexing allocates
//! nothing but the reused token vector.

/// One token of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token<'a> {
    /// The text as written: escapes undecoded, quotes removed from quoted strings.
    pub text: &'a str,
    /// Whether the token was written as a quoted string.
    pub quoted: bool,
}

/// One logical entry: a record or a directive, possibly spanning lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// 1-based line where the entry starts.
    pub line: u32,
    /// Whether the entry starts with a space or tab, which means the owner
    /// name is inherited from the previous record.
    pub starts_with_blank: bool,
    /// The first syntax error in the entry, with its line; the entry's
    /// tokens are then incomplete and must not be used.
    pub error: Option<(u32, String)>,
}

/// Iterator-like tokenizer over one file's text.
pub(super) struct Lexer<'a> {
    text: &'a str,
    position: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            position: 0,
            line: 1,
        }
    }

    /// Reads the next non-empty entry into `tokens` (cleared first). Returns
    /// `None` at the end of the text. Blank and comment-only lines are skipped.
    pub(super) fn next_entry(&mut self, tokens: &mut Vec<Token<'a>>) -> Option<Entry> {
        let bytes = self.text.as_bytes();
        loop {
            if self.position >= bytes.len() {
                return None;
            }
            tokens.clear();
            let mut entry = Entry {
                line: self.line,
                starts_with_blank: matches!(bytes[self.position], b' ' | b'\t'),
                error: None,
            };
            let mut depth: u32 = 0;
            let mut opened_at = self.line;
            while let Some(&byte) = bytes.get(self.position) {
                match byte {
                    b'\n' => {
                        self.position += 1;
                        self.line = self.line.saturating_add(1);
                        if depth == 0 {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => self.position += 1,
                    b';' => {
                        // The newline itself is left for the `\n` arm, which
                        // decides whether the entry ends here.
                        while bytes.get(self.position).is_some_and(|&byte| byte != b'\n') {
                            self.position += 1;
                        }
                    }
                    b'(' => {
                        if depth == 0 {
                            opened_at = self.line;
                        }
                        depth = depth.saturating_add(1);
                        self.position += 1;
                    }
                    b')' => {
                        if depth == 0 {
                            set_error(
                                &mut entry,
                                self.line,
                                "')' without a matching '('".to_owned(),
                            );
                        } else {
                            depth -= 1;
                        }
                        self.position += 1;
                    }
                    b'"' => self.quoted(tokens, &mut entry),
                    _ => self.unquoted(tokens),
                }
            }
            if depth > 0 {
                set_error(
                    &mut entry,
                    opened_at,
                    format!("'(' opened at line {opened_at} is never closed"),
                );
            }
            if tokens.is_empty() && entry.error.is_none() {
                continue;
            }
            return Some(entry);
        }
    }

    /// Reads a quoted string starting at the opening `"`.
    fn quoted(&mut self, tokens: &mut Vec<Token<'a>>, entry: &mut Entry) {
        let bytes = self.text.as_bytes();
        let start = self.position + 1;
        let mut index = start;
        while let Some(&byte) = bytes.get(index) {
            match byte {
                b'"' => {
                    // Slicing is safe: both ends sit next to an ASCII `"`.
                    tokens.push(Token {
                        text: &self.text[start..index],
                        quoted: true,
                    });
                    self.position = index + 1;
                    return;
                }
                b'\n' => break,
                // An escaped newline would hide the end of the line: stop at it.
                b'\\' if bytes.get(index + 1).is_some_and(|&next| next != b'\n') => index += 2,
                _ => index += 1,
            }
        }
        // Unterminated: the rest of the line belongs to the broken string and
        // the newline (if any) is left to end the entry.
        set_error(
            entry,
            self.line,
            "quoted string is not closed on this line".to_owned(),
        );
        self.position = index.min(bytes.len());
    }

    /// Reads an unquoted token: everything up to whitespace, `;`, `(` or `)`,
    /// where a backslash escapes the next character.
    fn unquoted(&mut self, tokens: &mut Vec<Token<'a>>) {
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut index = start;
        while let Some(&byte) = bytes.get(index) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                b'\\' => match bytes.get(index + 1) {
                    Some(b'\n') | Some(b'\r') | None => {
                        // A trailing backslash stays in the token; decoding
                        // reports it as an incomplete escape.
                        index += 1;
                        break;
                    }
                    Some(_) => index += 2,
                },
                _ => index += 1,
            }
        }
        let end = index.min(bytes.len());
        // Both ends are next to ASCII delimiters (or the text's ends), and an
        // escape skip never stops inside a multi-byte character because the
        // scan continues until an ASCII delimiter.
        tokens.push(Token {
            text: &self.text[start..end],
            quoted: false,
        });
        self.position = end;
    }
}

/// Keeps the first error of an entry: later ones are usually consequences.
fn set_error(entry: &mut Entry, line: u32, message: String) {
    if entry.error.is_none() {
        entry.error = Some((line, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, starts with blank, error, token texts with quotes kept).
    type Lexed = (u32, bool, Option<(u32, String)>, Vec<String>);

    fn lex(text: &str) -> Vec<Lexed> {
        let mut lexer = Lexer::new(text);
        let mut tokens = Vec::new();
        let mut entries = Vec::new();
        while let Some(entry) = lexer.next_entry(&mut tokens) {
            let texts = tokens
                .iter()
                .map(|token| {
                    if token.quoted {
                        format!("\"{}\"", token.text)
                    } else {
                        token.text.to_owned()
                    }
                })
                .collect();
            entries.push((entry.line, entry.starts_with_blank, entry.error, texts));
        }
        entries
    }

    #[test]
    fn splits_lines_and_skips_comments_and_blank_lines() {
        let entries = lex("a A 1 ; comment\n\n   ; only comment\n\tA 2\r\n");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            (1, false, None, vec!["a".into(), "A".into(), "1".into()])
        );
        assert_eq!(entries[1], (4, true, None, vec!["A".into(), "2".into()]));
    }

    #[test]
    fn parentheses_join_lines() {
        let entries = lex("@ SOA ns ( 1 ; serial\n 2\n 3 )\nnext A 1\n");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, 1);
        assert_eq!(entries[0].3, vec!["@", "SOA", "ns", "1", "2", "3"]);
        assert_eq!(entries[1].0, 4);
    }

    #[test]
    fn quoted_strings_keep_escapes_and_semicolons() {
        let entries = lex(r#"t TXT "a \"b\" ; c" d\;e "" x"#);
        assert_eq!(
            entries[0].3,
            vec!["t", "TXT", r#""a \"b\" ; c""#, r"d\;e", r#""""#, "x"]
        );
    }

    #[test]
    fn reports_syntax_errors_with_lines() {
        let entries = lex("a TXT \"open\nb A 1\nc A )\nd A (\n1\n");
        assert_eq!(
            entries[0].2,
            Some((1, "quoted string is not closed on this line".into()))
        );
        assert_eq!(entries[1].2, None);
        assert_eq!(entries[2].2, Some((3, "')' without a matching '('".into())));
        assert_eq!(
            entries[3].2,
            Some((4, "'(' opened at line 4 is never closed".into()))
        );
    }

    #[test]
    fn never_slices_inside_multibyte_characters() {
        let entries = lex("é\\é \"\\é\" ü\\");
        assert_eq!(entries[0].3, vec!["é\\é", "\"\\é\"", "ü\\"]);
    }
}
