//! One line of RFC 4180 CSV (quoted fields may hold commas and doubled quotes; a quoted field
//! spanning lines is not needed for the gazetteer).

/// Splits one CSV line into fields.
pub fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field).trim().to_owned());
                was_quoted = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field.trim().to_owned());
    Ok(fields)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_and_commas() {
        assert_eq!(
            super::split_line(r#"a,"b, c","d ""e""",f"#).unwrap(),
            ["a", "b, c", "d \"e\"", "f"]
        );
        assert!(super::split_line(r#"a,"b"#).is_err());
    }
}
