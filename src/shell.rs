//! POSIX shell words: quoting for remote commands and scripts, and splitting of
//! `NIX_SSHOPTS`/`NIX_SUDOOPTS`. All quoting in rb goes through [`quote`].

/// Quotes one word so that any POSIX shell reads it back unchanged. (fish reads it the same
/// way unless the word holds a backslash, which fish takes as an escape in single quotes.)
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if plain {
        word.to_string()
    } else {
        // Inside single quotes nothing is special but the quote itself, which is written
        // as '\'' : close, an escaped quote, reopen.
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes and joins words into one command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a string into words the way a shell would (quotes and backslashes; no expansion).
pub fn split(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {input:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {input:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {input:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("nix-env"), "nix-env");
        assert_eq!(quote("/nix/store/abc-x"), "/nix/store/abc-x");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(
            quote("nixosConfigurations.\"x\""),
            "'nixosConfigurations.\"x\"'"
        );
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split(r#"-o "ProxyJump a b" -p 22 'x y'z \"q"#).unwrap(),
            ["-o", "ProxyJump a b", "-p", "22", "x yz", "\"q"]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("''").unwrap(), [""]);
        assert!(split("'open").is_err());
    }

    #[test]
    fn split_inverts_join() {
        let words = [
            "a b",
            "it's",
            "",
            "$x",
            "\"",
            "\\",
            "tab\there",
            "new\nline",
        ];
        assert_eq!(split(&join(&words)).unwrap(), words);
    }
}
