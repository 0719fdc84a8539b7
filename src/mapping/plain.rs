//! The HTML bodies of tasks and notes as plain text, for reading them outside
//! HubSpot (`simulate --text`). Handles what [`super::render`] writes: `<p>`
//! paragraphs become blocks separated by a blank line, `<br>` a line break,
//! `<ul>` lists blocks of `- ` lines, and `<strong>` (and any other tag) is
//! dropped with its text kept. Whitespace in the HTML collapses as a browser
//! collapses it, and character references (`&amp;`, `&#39;`, `&#x2192;`) are
//! decoded.

/// `html` as plain text, without a trailing newline.
pub fn html_to_text(html: &str) -> String {
    let mut text = Text::default();
    let mut rest = html;
    let mut searched = 0;
    while let Some(found) = rest[searched..].find('<') {
        let start = searched + found;
        // As in HTML, `<` opens a tag only before a letter, `/` or `!`, and only when closed.
        let opens_tag = rest[start + 1..]
            .starts_with(|next: char| next.is_ascii_alphabetic() || next == '/' || next == '!');
        let Some(length) = rest[start..].find('>').filter(|_| opens_tag) else {
            searched = start + 1;
            continue;
        };
        text.words(&decode_references(&rest[..start]));
        text.tag(&rest[start + 1..start + length]);
        rest = &rest[start + length + 1..];
        searched = 0;
    }
    text.words(&decode_references(rest));
    text.finish()
}

/// The text being built: complete lines, the open one, and the breaks owed
/// before the next visible character.
#[derive(Default)]
struct Text {
    out: String,
    line_open: bool,
    space_owed: bool,
    newlines_owed: usize,
}

impl Text {
    fn words(&mut self, text: &str) {
        for character in text.chars() {
            if character.is_ascii_whitespace() {
                self.space_owed = self.line_open;
            } else {
                self.put(character);
            }
        }
    }

    fn put(&mut self, character: char) {
        self.open_line();
        if self.space_owed {
            self.out.push(' ');
            self.space_owed = false;
        }
        self.out.push(character);
    }

    fn open_line(&mut self) {
        if self.line_open {
            return;
        }
        if !self.out.is_empty() {
            for _ in 0..self.newlines_owed.max(1) {
                self.out.push('\n');
            }
        }
        self.newlines_owed = 0;
        self.space_owed = false;
        self.line_open = true;
    }

    /// Ends the open line; the next text starts `newlines` lines further down at least.
    fn end_line(&mut self, newlines: usize) {
        if self.line_open {
            self.line_open = false;
            self.newlines_owed = newlines;
        } else {
            self.newlines_owed = self.newlines_owed.max(newlines);
        }
        self.space_owed = false;
    }

    fn tag(&mut self, tag: &str) {
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .map(|character| character.to_ascii_lowercase())
            .collect();
        let closing = tag.starts_with('/');
        match name.as_str() {
            "p" | "ul" | "ol" | "div" => self.end_line(2),
            "br" if self.line_open => self.end_line(1),
            // A break on an empty line leaves an empty line.
            "br" => self.newlines_owed += 1,
            "li" if closing => self.end_line(1),
            "li" => {
                self.end_line(1);
                self.open_line();
                self.out.push_str("- ");
            }
            _ => {}
        }
    }

    fn finish(self) -> String {
        self.out.trim_end().to_string()
    }
}

/// Decodes named (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;`) and numeric
/// character references; anything else that starts with `&` is left as written.
fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest[1..]
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| reference(&rest[1..=end]).map(|character| (character, end + 2)));
        match decoded {
            Some((character, length)) => {
                out.push(character);
                rest = &rest[length..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference's name (between `&` and `;`) stands for.
fn reference(name: &str) -> Option<char> {
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        "nbsp" => return Some('\u{a0}'),
        _ => name.strip_prefix('#')?,
    };
    let number = match code.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => code.parse().ok()?,
    };
    char::from_u32(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_blocks_separated_by_a_blank_line() {
        assert_eq!(
            html_to_text("<p>One.</p>\n<p>Two.</p>\n<p>Three.</p>"),
            "One.\n\nTwo.\n\nThree."
        );
    }

    #[test]
    fn a_br_breaks_the_line() {
        assert_eq!(
            html_to_text("<p>Company: A<br>D-U-N-S number: 1<br>Reported: today</p>"),
            "Company: A\nD-U-N-S number: 1\nReported: today"
        );
        assert_eq!(html_to_text("<p>a<br><br>b</p>"), "a\n\nb");
        assert_eq!(html_to_text("<p>a<br/>b<BR />c</p>"), "a\nb\nc");
    }

    #[test]
    fn list_items_are_bullets_and_the_list_a_block() {
        assert_eq!(
            html_to_text(
                "<p><strong>What changed</strong></p>\n<ul>\n<li><strong>Phone</strong>: 1 → 2</li>\n\
                 <li><strong>Name</strong>: A → B</li>\n</ul>\n<p>dnb-hubspot-bridge notification 7</p>"
            ),
            "What changed\n\n- Phone: 1 → 2\n- Name: A → B\n\ndnb-hubspot-bridge notification 7"
        );
    }

    #[test]
    fn strong_is_dropped_and_its_text_kept() {
        assert_eq!(
            html_to_text("<p><strong>What to do:</strong> Call them.</p>"),
            "What to do: Call them."
        );
        assert_eq!(
            html_to_text("<p><strong>D&amp;B alert</strong></p>"),
            "D&B alert"
        );
    }

    #[test]
    fn character_references_are_decoded() {
        assert_eq!(
            html_to_text(
                "<p>A&amp;B &lt;Ltd&gt; &quot;x&quot; this company&#39;s &apos;y&apos; &#x2192; &#8594;</p>"
            ),
            "A&B <Ltd> \"x\" this company's 'y' → →"
        );
        assert_eq!(html_to_text("<p>a&nbsp;b</p>"), "a\u{a0}b");
        // Not references: kept as written.
        assert_eq!(
            html_to_text("<p>R&D &unknown; &#xZZ; &#1114112; &</p>"),
            "R&D &unknown; &#xZZ; &#1114112; &"
        );
    }

    #[test]
    fn a_decoded_angle_bracket_is_text_not_a_tag() {
        assert_eq!(
            html_to_text("<p>&lt;p&gt;not a paragraph&lt;/p&gt;</p>"),
            "<p>not a paragraph</p>"
        );
    }

    #[test]
    fn whitespace_collapses_as_in_a_browser() {
        assert_eq!(
            html_to_text("\n<p>  Several\n   spaces\tand lines  </p>\n\n<p>\n next </p>\n"),
            "Several spaces and lines\n\nnext"
        );
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<p></p><ul></ul>"), "");
    }

    #[test]
    fn text_outside_tags_and_unknown_tags_are_kept_as_text() {
        assert_eq!(html_to_text("plain"), "plain");
        assert_eq!(
            html_to_text("<p>a <em>b</em> <a href=\"x\">c</a></p>"),
            "a b c"
        );
        assert_eq!(html_to_text("<p>1 < 2</p>"), "1 < 2");
        assert_eq!(html_to_text("<p>a <b"), "a <b");
    }

    #[test]
    fn every_rendered_body_reads_as_plain_text() {
        use crate::dnb::Notification;
        use crate::mapping::{Action, plan};
        use serde_json::json;

        let rules = crate::mapping::ActionRules::default();
        let notification = Notification::from_value(&json!({"type": "DELETE",
            "organization": {"duns": "021258997", "primaryName": "Smith & Sons <UK>"},
            "elements": [{"element": "organization.primaryName", "previous": "O'Brien & Co",
                          "current": "Smith & Sons <UK>"}],
            "deliveryTimeStamp": "2024-05-13T08:01:46.951Z"}))
        .unwrap();
        for action in plan(12, &notification, &rules).actions {
            let body = match action {
                Action::CreateTask { body, .. } | Action::CreateNote { body } => body,
                _ => continue,
            };
            let text = html_to_text(&body);
            for html in ["<p", "<br", "<li", "<ul", "<strong", "</", "&amp;", "&#39;"] {
                assert!(!text.contains(html), "{html} in {text}");
            }
            assert!(text.contains("O'Brien & Co"), "{text}");
            assert!(text.contains("Smith & Sons <UK>"), "{text}");
            let marker = format!("\n\n{}", crate::mapping::render::marker(12));
            assert!(text.ends_with(&marker), "{text}");
        }
    }
}
