//! Splitting a long reply into parts a platform accepts. Platforms count length differently:
//! Telegram counts UTF-16 code units (an emoji outside the BMP counts 2; [`utf16_units`]),
//! Discord counts Unicode code points ([`code_points`]). The counting function is a parameter.
//!
//! Each part ends at the last break of the best kind that still fits, in this order of
//! preference: a paragraph break (a whitespace run with two or more `\n`, so `\n\n`,
//! `\r\n\r\n` and `\n \n` all count), a line break (a run with one `\n`), any other
//! whitespace, and only then between two chars. Cuts never fall inside a char, so never
//! inside a UTF-16 surrogate pair.
//!
//! What is kept, exactly: where a part ends at whitespace, that whole whitespace run (the
//! separator and the spaces or newlines next to it) is dropped, because Telegram trims each
//! message anyway; where a part ends between two chars (a word longer than a part), nothing
//! is dropped. So `text` equals the parts joined with the dropped runs, and every
//! non-whitespace char of `text` is in exactly one part, in order. No-break spaces
//! (U+00A0, U+2007, U+202F) are not break points.
//!
//! Not handled: Markdown/HTML markup spanning a cut (a code block split in two renders as two
//! broken blocks); callers that send `parse_mode` should split before formatting, or accept it.

/// How a platform measures one char.
pub type Units = fn(char) -> usize;

/// Telegram's measure: UTF-16 code units (1 or 2).
pub fn utf16_units(c: char) -> usize {
    c.len_utf16()
}

/// Discord's measure: one per Unicode code point.
pub fn code_points(_: char) -> usize {
    1
}

/// Split `text` into non-empty parts of at most `max_units` units each, as measured by `units`
/// (see the module doc for where it cuts and what it drops). A text that fits is returned
/// unchanged as one part; an empty text gives no parts. A single char longer than `max_units`
/// still makes a part of its own (a char is never cut).
pub fn split_text(text: &str, max_units: usize, units: Units) -> Vec<String> {
    let max = max_units.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match find_cut(rest, max, units) {
            None => {
                parts.push(rest.to_owned());
                break;
            }
            Some((end, next)) => {
                parts.push(rest[..end].to_owned());
                rest = &rest[next..];
            }
        }
    }
    parts
}

/// Where the first part of `text` ends: `None` when `text` fits in `max_units`, else `(end of
/// the first part, start of the rest)` as byte offsets, cut exactly as [`split_text`] cuts.
/// A stream uses it to finish one message and continue the text in the next.
pub fn first_cut(text: &str, max_units: usize, units: Units) -> Option<(usize, usize)> {
    find_cut(text, max_units.max(1), units)
}

/// Whitespace where a message may be cut.
fn is_break(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{2007}' | '\u{202f}')
}

/// Where to cut `text`: `None` when it fits in `max` units, else `(end of this part, start of
/// the rest)`. Scans only up to the first char that does not fit (plus the whitespace run it
/// may be in), so each part costs O(`max`) whatever the length of the text.
fn find_cut(text: &str, max: usize, len: Units) -> Option<(usize, usize)> {
    // The last whitespace run (start, end) that may end a part, by strength: the index is the
    // number of newlines in the run, capped at 2. A run at offset 0 would leave an empty part.
    let mut best: [Option<(usize, usize)>; 3] = [None; 3];
    // The whitespace run being scanned: (start, newlines so far).
    let mut run: Option<(usize, usize)> = None;
    // The first char that does not fit: the fallback cut.
    let mut overflow: Option<usize> = None;
    let mut units = 0;

    for (i, c) in text.char_indices() {
        let fits = units + len(c) <= max;
        if !fits {
            overflow.get_or_insert(i);
        }
        if is_break(c) {
            // A run may go on past the limit: it is dropped at the cut anyway. It can only have
            // started while the text before it fitted, since a non-fitting char stops the scan.
            let newline = usize::from(c == '\n');
            run = Some(match run {
                Some((start, newlines)) => (start, newlines + newline),
                None => (i, newline),
            });
        } else {
            if let Some((start, newlines)) = run.take() {
                if start > 0 {
                    best[newlines.min(2)] = Some((start, i));
                }
            }
            if !fits {
                break;
            }
        }
        units += len(c);
    }
    let overflow = overflow?;
    // The scan ended inside a trailing run: everything after the part is whitespace.
    if let Some((start, newlines)) = run {
        if start > 0 {
            best[newlines.min(2)] = Some((start, text.len()));
        }
    }
    // A first char longer than `max` goes alone rather than making an empty part.
    let overflow = if overflow == 0 {
        text.chars().next().map_or(text.len(), char::len_utf8)
    } else {
        overflow
    };
    Some(best[2].or(best[1]).or(best[0]).unwrap_or((overflow, overflow)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// Every part non-empty and within `max`; the parts appear in `text` in order, separated
    /// only by (possibly empty) runs of break whitespace.
    fn check(text: &str, max: usize) -> Vec<String> {
        let parts = split_text(text, max, utf16_units);
        let mut cursor = 0;
        for (k, part) in parts.iter().enumerate() {
            assert!(!part.is_empty(), "empty part in {parts:?}");
            assert!(units(part) <= max.max(2), "part too long: {part:?} (max {max})");
            if k > 0 {
                // Skip the dropped run: the shortest whitespace gap after which the part matches.
                let gap = text[cursor..]
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len() - cursor])
                    .find(|&i| text[cursor + i..].starts_with(part.as_str()))
                    .unwrap_or_else(|| panic!("part {k} {part:?} not found after {cursor} in {text:?}"));
                assert!(
                    text[cursor..cursor + gap].chars().all(is_break),
                    "dropped non-space in {text:?}"
                );
                cursor += gap;
            }
            assert!(
                text[cursor..].starts_with(part.as_str()),
                "part {k} {part:?} out of place in {text:?}"
            );
            cursor += part.len();
        }
        assert!(text[cursor..].chars().all(is_break), "lost the tail of {text:?}");
        parts
    }

    #[test]
    fn short_and_empty() {
        assert_eq!(check("hello", 4096), vec!["hello"]);
        assert_eq!(check("  padded \n", 4096), vec!["  padded \n"]);
        assert!(split_text("", 4096, utf16_units).is_empty());
    }

    #[test]
    fn prefers_paragraph_then_line_then_space() {
        assert_eq!(
            check("aaa bbb\nccc\n\nddd eee", 14),
            vec!["aaa bbb\nccc", "ddd eee"]
        );
        assert_eq!(check("aaa bbb\nccc ddd", 12), vec!["aaa bbb", "ccc ddd"]);
        assert_eq!(check("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        // A whole run goes, including a paragraph break written with spaces or CRLF.
        assert_eq!(check("aaaa  \n \n  bbbb", 6), vec!["aaaa", "bbbb"]);
        assert_eq!(check("aaaa\r\n\r\nbbbb", 6), vec!["aaaa", "bbbb"]);
    }

    #[test]
    fn separator_just_past_the_limit_still_counts() {
        // The part "abcde" fills the limit exactly; the newline after it is the cut.
        assert_eq!(check("abcde\nfg", 5), vec!["abcde", "fg"]);
        assert_eq!(check("abcde   ", 5), vec!["abcde"]);
    }

    #[test]
    fn long_words_are_cut_between_chars() {
        assert_eq!(check("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(check("ab cdefghij", 4), vec!["ab", "cdef", "ghij"]);
    }

    #[test]
    fn counts_utf16_and_never_splits_a_pair() {
        assert_eq!(check("😀😀😀", 5), vec!["😀😀", "😀"]);
        assert_eq!(check("é😀é😀", 3), vec!["é😀", "é😀"]);
        assert_eq!(check("😀é😀", 3), vec!["😀é", "😀"]);
        let emoji = "😀".repeat(2049); // 4098 units, 2049 chars
        let parts = check(&emoji, 4096);
        assert_eq!(parts.len(), 2);
        assert_eq!(units(&parts[0]), 4096);
        assert_eq!(parts[1], "😀");
        assert_eq!(check(&"😀".repeat(2048), 4096).len(), 1);
        // A pair longer than the limit still goes whole, alone.
        assert_eq!(split_text("😀😀", 1, utf16_units), vec!["😀", "😀"]);
    }

    #[test]
    fn a_long_text_splits_quickly() {
        let text = "word ".repeat(400_000);
        let parts = split_text(&text, 4096, utf16_units);
        assert!(parts.len() > 400);
        assert!(parts.iter().all(|p| units(p) <= 4096));
        // Cut at the spaces, which are dropped; the last part is the tail, kept as it is.
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p.ends_with("word") && p.starts_with("word"))
        );
        assert_eq!(parts.concat().len() + parts.len() - 1, text.len());
    }

    #[test]
    fn no_break_space_is_not_a_break() {
        assert_eq!(check("aa\u{a0}bb cc", 6), vec!["aa\u{a0}bb", "cc"]);
    }

    #[test]
    fn whitespace_only_text_longer_than_a_part() {
        let parts = split_text(&" ".repeat(10), 4, utf16_units);
        assert_eq!(parts, vec!["    ", "    ", "  "]);
    }

    #[test]
    fn pseudo_random_texts_keep_the_invariants() {
        let alphabet = ['a', 'b', ' ', '\n', 'é', '😀', '\u{a0}', '\t', 'ж'];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let len = (next() % 200) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let max = 1 + (next() % 40) as usize;
            check(&text, max);
        }
    }

    #[test]
    fn counts_code_points_for_discord() {
        let emoji = "😀".repeat(2001);
        let parts = split_text(&emoji, 2000, code_points);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].chars().count(), 2000);
        assert_eq!(parts[1], "😀");
        assert_eq!(split_text(&"😀".repeat(2000), 2000, code_points).len(), 1);
        assert_eq!(split_text("abc", 1, code_points), vec!["a", "b", "c"]);
    }
}
