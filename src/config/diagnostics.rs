//! Problems and warnings found while loading a config file, each tied to a
//! byte span of the text and rendered as `FILE:LINE:COLUMN: message`.
//!
//! This module owns the one conversion from byte offsets to line:column and
//! the rewording of toml/serde messages into operator language. It never
//! sees secret values: callers must not put them into a message.

use std::ops::Range;
use std::path::Path;

/// Collects every problem (fatal) and warning (non-fatal) of one load.
pub(crate) struct Diagnostics<'t> {
    file: String,
    text: &'t str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    /// (offset, rendered); offset `None` for problems without a position.
    problems: Vec<(Option<usize>, String)>,
    warnings: Vec<(Option<usize>, String)>,
}

impl<'t> Diagnostics<'t> {
    pub(crate) fn new(path: &Path, text: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Diagnostics {
            file: path.display().to_string(),
            text,
            line_starts,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        // A span may start inside a multi-byte character only if the parser
        // misreports it; fall back to counting bytes rather than panicking.
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    fn render(&self, offset: Option<usize>, message: &str) -> String {
        match offset {
            Some(offset) => {
                let (line, col) = self.line_col(offset);
                format!("{}:{line}:{col}: {message}", self.file)
            }
            None => format!("{}: {message}", self.file),
        }
    }

    /// A fatal problem at `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let rendered = self.render(Some(span.start), &message.into());
        self.problems.push((Some(span.start), rendered));
    }

    /// A non-fatal finding at `span`.
    pub(crate) fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let rendered = self.render(Some(span.start), &message.into());
        self.warnings.push((Some(span.start), rendered));
    }

    /// A toml syntax or type error. `section` is the table the value was
    /// deserialized from, used to name the key the error is about.
    pub(crate) fn toml_error(
        &mut self,
        err: &toml::de::Error,
        section: Option<&toml::de::DeTable<'_>>,
    ) {
        let mut message = reword(err.message());
        if let (Some(span), Some(table)) = (err.span(), section) {
            if let Some(key) = key_of_value(table, &span) {
                if !message.contains(&format!("`{key}`")) {
                    message = format!("`{key}`: {message}");
                }
            }
        }
        match err.span() {
            Some(span) => self.error(span, message),
            None => {
                let rendered = self.render(None, &message);
                self.problems.push((None, rendered));
            }
        }
    }

    /// Syntax errors from the recovering parser. A table header given
    /// twice makes every key below it a "duplicate key" too; those echoes
    /// are dropped, and the rest say which key was duplicated.
    pub(crate) fn syntax_errors(&mut self, errors: &[toml::de::Error]) {
        let mut echo_until = 0;
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            let sliceable =
                self.text.is_char_boundary(span.start) && self.text.get(span.clone()).is_some();
            if e.message() != "duplicate key" || !sliceable {
                self.toml_error(e, None);
                continue;
            }
            if span.start < echo_until {
                continue;
            }
            let line_start = self.text[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = self.text[span.start..]
                .find('\n')
                .map_or(self.text.len(), |i| span.start + i);
            let line = self.text[line_start..line_end].trim();
            let key = self.text.get(span.clone()).unwrap_or("?");
            if line.starts_with('[') {
                echo_until = self.text[line_end..]
                    .find("\n[")
                    .map_or(self.text.len(), |i| line_end + i);
                let header = line.split('#').next().unwrap_or(line).trim();
                self.error(
                    span,
                    format!("table {header} is defined twice: each table may appear only once"),
                );
            } else {
                self.error(
                    span,
                    format!("duplicate key `{key}`: each key may be given only once per table"),
                );
            }
        }
    }

    /// A required key absent from the table `what` (whose span is `span`).
    pub(crate) fn missing(&mut self, span: Range<usize>, what: &str, key: &str, expected: &str) {
        self.error(span, format!("missing key `{key}` in {what} ({expected})"));
    }

    pub(crate) fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Problems in file order (problems without a position first).
    pub(crate) fn into_parts(self) -> (Vec<String>, Vec<String>) {
        (sorted(self.problems), sorted(self.warnings))
    }
}

fn sorted(mut items: Vec<(Option<usize>, String)>) -> Vec<String> {
    // Stable: two findings at one offset keep the order they were found in.
    items.sort_by_key(|(offset, _)| *offset);
    items.into_iter().map(|(_, s)| s).collect()
}

/// The key in `table` whose value contains `span`.
fn key_of_value(table: &toml::de::DeTable<'_>, span: &Range<usize>) -> Option<String> {
    table
        .iter()
        .find(|(_, v)| {
            let vs = v.span();
            vs.start <= span.start && span.end <= vs.end
        })
        .map(|(k, _)| k.get_ref().to_string())
}

/// Serde speaks in Rust types; operators read TOML types. A string value
/// serde quotes in its message (`invalid type: string "…"`) is left out: it
/// may be a secret pasted into the wrong key.
fn reword(message: &str) -> String {
    let mut m = redact_quoted_string(message);
    for (from, to) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected an integer"),
        ("expected u32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: map", "invalid type: table"),
        ("invalid type: sequence", "invalid type: array"),
        ("expected struct ", "expected a table "),
    ] {
        m = m.replace(from, to);
    }
    m
}

/// `…: string "VALUE", expected …` → `…: a string, expected …`.
fn redact_quoted_string(message: &str) -> String {
    for marker in ["invalid type: string \"", "invalid value: string \""] {
        if let Some(start) = message.find(marker) {
            let value_start = start + marker.len();
            let end = message[value_start..]
                .rfind("\", expected")
                .map(|i| value_start + i + 1)
                .or_else(|| {
                    message
                        .rfind('"')
                        .filter(|&i| i >= value_start)
                        .map(|i| i + 1)
                });
            if let Some(end) = end {
                let head = &marker[..marker.len() - "string \"".len()];
                return format!("{}{head}a string{}", &message[..start], &message[end..]);
            }
            return format!(
                "{}{}a string",
                &message[..start],
                &marker[..marker.len() - "string \"".len()]
            );
        }
    }
    message.to_string()
}

/// The closest candidate to `word`, if it is close enough to be a typo.
/// `; did you mean "…"?` when [`suggest`] finds a close candidate, else
/// nothing.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("; did you mean {s:?}?"),
        None => String::new(),
    }
}

pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    let close = |c: &str| {
        let c_lower = c.to_ascii_lowercase();
        let d = edit_distance(&word_lower, &c_lower);
        // `zone_id` for `zone`, `secret_access_key_path` for `..._file`:
        // a known key plus a suffix is a likely mix-up too.
        let extends = c_lower.len() >= 4
            && (word_lower.starts_with(&c_lower) || c_lower.starts_with(&word_lower));
        (d <= (c.chars().count() / 3).max(1))
            .then_some(d)
            .or(extends.then_some(d + 100))
    };
    candidates
        .into_iter()
        .filter_map(|c| close(c).map(|d| (d, c)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `a, b, c` for messages.
pub(crate) fn list(items: &[&str]) -> String {
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values_are_not_echoed_in_type_errors() {
        assert_eq!(
            reword(r#"invalid type: string "s3cr\"et, expected", expected f64"#),
            "invalid type: a string, expected a number"
        );
        assert_eq!(
            reword(r#"invalid value: string "abc", expected one of `a`"#),
            "invalid value: a string, expected one of `a`"
        );
        assert_eq!(
            reword(r#"invalid type: string "abc"#),
            "invalid type: a string"
        );
        assert_eq!(
            reword("invalid type: integer `5`, expected a string"),
            "invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn line_col_is_one_based_and_counts_characters() {
        let text = "a = 1\nzone = \"ä\" x\n";
        let d = Diagnostics::new(Path::new("f.toml"), text);
        assert_eq!(d.line_col(0), (1, 1));
        assert_eq!(d.line_col(6), (2, 1));
        let x = text.find(" x").unwrap() + 1;
        assert_eq!(d.line_col(x), (2, 12));
        assert_eq!(d.line_col(text.len()), (3, 1));
    }

    #[test]
    fn problems_come_out_in_file_order() {
        let text = "a\nb\nc\n";
        let mut d = Diagnostics::new(Path::new("f.toml"), text);
        d.error(4..5, "third");
        d.error(0..1, "first");
        d.error(2..3, "second");
        let (p, _) = d.into_parts();
        assert_eq!(
            p,
            [
                "f.toml:1:1: first",
                "f.toml:2:1: second",
                "f.toml:3:1: third"
            ]
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["timezone", "log_format", "state_path"];
        assert_eq!(suggest("timzone", keys), Some("timezone"));
        assert_eq!(suggest("logformat", keys), Some("log_format"));
        assert_eq!(suggest("retention", keys), None);
        assert_eq!(suggest("zone_id", ["zone", "access_key_id"]), Some("zone"));
    }
}
