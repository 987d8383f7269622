//! What the command-line tools print for people: text from sites, media and users is shown with
//! its control characters made visible (an escape sequence in a report title must not drive the
//! admin's terminal), and output into a closed pipe (`… | head -1`) ends the command quietly
//! instead of panicking.
//!
//! Both CLIs print through [`outln!`](crate::outln) and [`errln!`](crate::errln), or write through
//! [`Terminal`], never with `println!`.

use std::borrow::Cow;
use std::io::{self, Write};

/// `text` with every control character except line break and tab written as `\u{…}`, and the
/// Unicode line and paragraph separators likewise.
pub fn escape(text: &str) -> Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
    };
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that escapes control characters (see [`escape`]) in everything written to it.
///
/// Each `write` must receive whole UTF-8 text, which `write!` and `writeln!` guarantee (they
/// write the pieces of a format string, each a whole `str`); bytes that are not UTF-8 are
/// written as replacement characters.
pub struct Terminal<W: Write> {
    inner: W,
}

impl<W: Write> Terminal<W> {
    pub fn new(inner: W) -> Terminal<W> {
        Terminal { inner }
    }
}

impl Terminal<io::BufWriter<io::StdoutLock<'static>>> {
    /// Buffered, escaping standard output.
    pub fn stdout() -> Self {
        Terminal::new(io::BufWriter::new(io::stdout().lock()))
    }
}

impl<W: Write> Write for Terminal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(escape(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `error` is a write into a closed pipe: the command's own output closed (`… | head`),
/// where the command returns the write's `io::Error` as it is. A broken pipe found deeper in an
/// error's chain is a peer's (a daemon that closed its control socket) and is reported like any
/// other failure, never taken for a reader that went away.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// An error and its causes as one line, `outer: cause: cause`, as a CLI prints it. A cause whose
/// words its outer error already quotes (`the certificate cannot be parsed: {cause}`) is not
/// repeated, so keeping an error's source never prints its text twice.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        current = cause.source();
    }
    text
}

/// Writes one escaped line to standard output. When the reader went away (a closed pipe), the
/// command has nothing left to do: it exits at once with status 0, as `head` expects.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    let mut out = Terminal::new(io::stdout().lock());
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Writes one escaped line to standard error; a closed standard error is ignored.
pub fn eprint_line(args: std::fmt::Arguments<'_>) {
    let mut out = Terminal::new(io::stderr().lock());
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// `println!` for the CLIs: escaped, and quiet on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::terminal::print_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::terminal::print_line(format_args!($($arg)*)) };
}

/// `eprintln!` for the CLIs: escaped, and never a panic.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::terminal::eprint_line(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(escape("judul biasa\nbaris\tdua"), "judul biasa\nbaris\tdua");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("\u{9b}31m\r"), "\\u{9b}31m\\u{d}");
        let mut out = Terminal::new(Vec::new());
        let bell = '\u{7}';
        write!(out, "x{bell}y").unwrap();
        assert_eq!(out.inner, b"x\\u{7}y");
    }

    #[test]
    fn an_error_line_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("the file cannot be read: {0}")]
        struct Quoting(#[source] io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("loading the configuration")]
        struct Context(#[source] Quoting);
        let e = Context(Quoting(io::Error::other("disk gone")));
        assert_eq!(
            error_text(&e),
            "loading the configuration: the file cannot be read: disk gone"
        );
    }

    #[test]
    fn only_our_own_closed_output_is_a_broken_pipe() {
        let e = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert!(is_broken_pipe(&e));
        let other = io::Error::other("disk");
        assert!(!is_broken_pipe(&other));
        // A daemon that closed its socket under a request: a failure to report.
        #[derive(Debug, thiserror::Error)]
        #[error("the daemon did not answer")]
        struct Peer(#[source] io::Error);
        assert!(!is_broken_pipe(&Peer(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "pipe"
        ))));
    }
}
