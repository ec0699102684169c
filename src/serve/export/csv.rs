//! CSV records as RFC 4180 writes them: fields separated by commas, records
//! ended by CRLF, a field quoted when it holds a comma, a double quote, CR
//! or LF, and its double quotes doubled inside the quotes.

/// Appends one record of `fields` to `out`.
pub fn push_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field);
    }
    out.push_str("\r\n");
}

fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        for c in field.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut out = String::new();
        push_record(&mut out, fields.iter().copied());
        out
    }

    #[test]
    fn plain_fields_are_written_as_they_are() {
        assert_eq!(record(&["a", "b c", "", "0.5"]), "a,b c,,0.5\r\n");
        assert_eq!(record(&[]), "\r\n");
        assert_eq!(record(&["only"]), "only\r\n");
    }

    #[test]
    fn separators_quotes_and_line_breaks_are_quoted() {
        assert_eq!(record(&["a,b", "c"]), "\"a,b\",c\r\n");
        assert_eq!(record(&["say \"hi\""]), "\"say \"\"hi\"\"\"\r\n");
        assert_eq!(record(&["1. Eyes\n2. Mouth"]), "\"1. Eyes\n2. Mouth\"\r\n");
        assert_eq!(record(&["cr\rhere"]), "\"cr\rhere\"\r\n");
        assert_eq!(record(&["\""]), "\"\"\"\"\r\n");
        assert_eq!(record(&["ünïcødé, too"]), "\"ünïcødé, too\"\r\n");
    }

    /// A reader of RFC 4180 (quoted fields, doubled quotes, CRLF) gets the
    /// fields back.
    #[test]
    fn records_parse_back_into_their_fields() {
        let fields = [
            "plain",
            "a,b",
            "q\"u\"o",
            "line\r\nbreak",
            "",
            "'; DROP TABLE verdicts; --",
        ];
        let text = record(&fields);
        assert_eq!(parse(&text), fields);
    }

    fn parse(text: &str) -> Vec<String> {
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut chars = text.strip_suffix("\r\n").unwrap().chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (false, ',') => fields.push(String::new()),
                (false, '"') => quoted = true,
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    fields.last_mut().unwrap().push('"');
                }
                (true, '"') => quoted = false,
                (_, c) => fields.last_mut().unwrap().push(c),
            }
        }
        fields
    }
}
