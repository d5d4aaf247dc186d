//! Whether a stream's draft is complete markup yet. A draft cut off mid-sentence is often
//! mid-markup too (`**bo`, `<b>bo`), and a platform refuses a message whose markup does not
//! parse (Telegram: "can't parse entities"); sending such drafts with their format would cost
//! a refused call and a plain retry each time, so they go as plain text and only the final
//! text (and each finished message) carries the format.
//!
//! The checks are conservative (a draft they doubt goes plain; nothing is lost, it only
//! shows its markup until the next draft) and cheap (one pass, no allocation but a small
//! tag stack).

use crate::channels::TextFormat;

/// Telegram MarkdownV2 characters that must be escaped outside code and not used as markup.
const MARKDOWN_RESERVED: &str = "#+-={}.!>";

/// Whether `text` is complete markup in `format` (plain text always is).
pub fn is_complete(text: &str, format: TextFormat) -> bool {
    match format {
        TextFormat::Plain => true,
        TextFormat::Markdown => markdown_complete(text),
        TextFormat::Html => html_complete(text),
    }
}

/// Markdown: every code block and code span closed, `*`, `_`, `~`, `||` paired, links
/// `[..](..)` closed, reserved characters escaped, no dangling `\`.
fn markdown_complete(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    // Open delimiters outside code: `*`, `_`, `~`, `|` (for `||`).
    let mut open = [false; 4];
    let (mut brackets, mut parens) = (0i32, 0i32);
    let mut in_block = false;
    let mut in_span = false;
    let mut ticks = 0;
    while let Some(c) = chars.next() {
        if c == '`' {
            ticks += 1;
            if chars.peek() == Some(&'`') {
                continue;
            }
            match (ticks, in_block, in_span) {
                (3.., _, false) => in_block = !in_block,
                (1, false, _) => in_span = !in_span,
                _ => {}
            }
            ticks = 0;
            continue;
        }
        ticks = 0;
        if c == '\\' {
            if chars.next().is_none() {
                return false;
            }
            continue;
        }
        if in_block || in_span {
            continue;
        }
        match c {
            '*' => open[0] = !open[0],
            '_' => open[1] = !open[1],
            '~' => open[2] = !open[2],
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                open[3] = !open[3];
            }
            '|' => return false,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            '(' => parens += 1,
            ')' => parens -= 1,
            c if MARKDOWN_RESERVED.contains(c) => return false,
            _ => {}
        }
        if brackets < 0 || parens < 0 {
            return false;
        }
    }
    !in_block && !in_span && open.iter().all(|o| !o) && brackets == 0 && parens == 0
}

/// HTML: every tag closed with `>`, opened and closed tags nested properly, every `&` an
/// entity ending in `;`.
fn html_complete(text: &str) -> bool {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&']) {
        let after = &rest[i + 1..];
        if rest.as_bytes()[i] == b'&' {
            let Some(end) = after.find(';') else {
                return false;
            };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#') {
                return false;
            }
            rest = &after[end + 1..];
            continue;
        }
        let Some(end) = after.find('>') else {
            return false;
        };
        let tag = &after[..end];
        rest = &after[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop() != Some(name.trim()) {
                return false;
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if name.is_empty() {
                return false;
            }
            stack.push(name);
        }
    }
    stack.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(s: &str) -> bool {
        is_complete(s, TextFormat::Markdown)
    }

    fn html(s: &str) -> bool {
        is_complete(s, TextFormat::Html)
    }

    #[test]
    fn markdown_drafts_cut_mid_markup_are_incomplete() {
        assert!(md("plain words"));
        assert!(md("*bold* and _italic_ and ~gone~ and ||hidden||"));
        assert!(!md("*bol"));
        assert!(!md("a _half"));
        assert!(!md("||spoi"));
        assert!(md("[link](https://example\\.com)"));
        assert!(!md("[link](https://exa"));
        assert!(!md("[li"));
        assert!(md("`code with * and _`"));
        assert!(!md("`code"));
        assert!(md("```\nfn main() { * }\n```"));
        assert!(!md("```\nfn main() {"));
        assert!(!md("ends with \\"));
        assert!(md("escaped \\* star and a dot\\."));
        assert!(
            !md("an unescaped dot."),
            "Telegram refuses a bare reserved character"
        );
        assert!(md(""));
    }

    #[test]
    fn html_drafts_cut_mid_markup_are_incomplete() {
        assert!(html("plain"));
        assert!(html("<b>bold</b> <a href=\"x\">link</a> &amp; &#38;"));
        assert!(!html("<b>bold"));
        assert!(!html("<b>bold</"));
        assert!(!html("<b"));
        assert!(!html("a &am"));
        assert!(!html("<b><i>x</b></i>"));
        assert!(!html("a < b"), "a bare < must be &lt;");
        assert!(!html("fish & chips"));
        assert!(html("<pre><code>x &lt; y</code></pre>"));
    }

    #[test]
    fn plain_is_always_complete() {
        assert!(is_complete("<b *unbalanced", TextFormat::Plain));
    }
}
