//! Plain-text tables for human-readable output.

/// Prints rows under headers, each column as wide as its widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

/// Text from the network, made safe for a terminal: control characters
/// (escape sequences) and bidirectional overrides are shown escaped rather
/// than interpreted.
pub fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let unsafe_char = c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            let shown: Vec<char> = if unsafe_char { c.escape_unicode().collect() } else { vec![c] };
            shown
        })
        .collect()
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "─".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Shortens a did or id for a table cell.
pub fn short(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if text.starts_with("did:key:") && chars.len() > 18 {
        let head: String = chars[8..14].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        return format!("did:key:{head}…{tail}");
    }
    chars.into_iter().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_shown_not_run() {
        assert_eq!(clean("ok\u{1b}]52;c;x\u{7}"), "ok\\u{1b}]52;c;x\\u{7}");
        assert_eq!(clean("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(clean("Zoë €"), "Zoë €");
        assert_eq!(short("ünïcödé-and-more"), "ünïcödé-and-");
    }

    #[test]
    fn columns_align() {
        let text = render(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(text, "a    bb\n───  ──\nxxx  y\n");
    }
}
