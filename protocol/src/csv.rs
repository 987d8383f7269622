//! CSV (RFC 4180): the agent's inbox files and the collector's gazetteer.

/// RFC 4180 records with the line each starts on (1-based). A quoted field may hold commas,
/// doubled quotes and line breaks.
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    records_with(text, ',')
}

/// Like [`records`], with fields separated by `delimiter` (`;` is what spreadsheet programs
/// write in locales whose decimal mark is a comma, such as Indonesian).
pub fn records_with(text: &str, delimiter: char) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut start_line = 1;
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            c if c == delimiter => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                records.push((start_line, std::mem::take(&mut fields)));
                line += 1;
                start_line = line;
                any = false;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("row {start_line}: a quoted field is not closed"));
    }
    if any {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_commas_and_newlines() {
        let text = "category,title,body\r\nhumas,\"Siaran, pers\",\"Baris satu\nbaris \"\"dua\"\"\"\nhumas,b,c";
        let rows = records(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].1[1], "Siaran, pers");
        assert_eq!(rows[1].1[2], "Baris satu\nbaris \"dua\"");
        assert_eq!(rows[2].0, 4, "the third record starts on line 4");
        assert!(records("a,\"b\n").is_err());
    }

    #[test]
    fn semicolons_separate_fields_when_asked() {
        let rows = records_with("category;title\nhumas;\"a; b, c\"\n", ';').unwrap();
        assert_eq!(rows[1].1, ["humas", "a; b, c"]);
    }
}
