//! A small SMTP submission client for notifications: one message per connection, STARTTLS
//! (RFC 3207) before anything else is said unless the server is on loopback and the settings
//! allow plain text, AUTH PLAIN (RFC 4616) when a user is set, and a MIME message with a
//! plain-text part and, when there is one, an HTML part (RFC 2045/2046/2047). Blocking, like
//! the rest of the notifier's sending; every read and write has a timeout. TLS is rustls with
//! ring, trusting the given CA file or the public roots.

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// How long any one exchange with the server may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// Plain text without STARTTLS: only for a relay on this machine.
    pub plain_loopback: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
}

/// One message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Without angle brackets; the same for every attempt, so a receiver can drop repeats.
    pub message_id: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// RFC 2822 date.
    pub date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("SMTP server {0}: {1}")]
    Io(String, std::io::Error),
    #[error("SMTP server {server} answered `{reply}` to {step}")]
    Refused {
        server: String,
        step: &'static str,
        reply: String,
    },
    #[error("SMTP server {0} offers no STARTTLS; the collector does not send mail in plain text")]
    NoStartTls(String),
    #[error("SMTP TLS: {0}")]
    Tls(String),
    #[error("the CA file {0} cannot be read or holds no certificate")]
    CaFile(String),
}

/// The TLS settings to reach a mail server: trusting the certificates of `ca_file`, or the
/// public roots when there is none.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, SmtpError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = || SmtpError::CaFile(path.display().to_string());
            for cert in CertificateDer::pem_file_iter(path).map_err(|_| bad())? {
                roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
            }
            if roots.is_empty() {
                return Err(bad());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(pasopati_common::pki::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SmtpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection, before and after STARTTLS.
enum Link {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>),
}

impl Link {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Plain(r) => r.get_mut().write_all(bytes),
            Link::Tls(r) => {
                let s = r.get_mut();
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        // A line longer than this is not SMTP.
        match self {
            Link::Plain(r) => r.by_ref().take(4096).read_line(line),
            Link::Tls(r) => r.by_ref().take(4096).read_line(line),
        }
    }
}

struct Session {
    link: Link,
    server: String,
}

impl Session {
    /// Reads one reply (all its lines); returns its code and its text.
    fn reply(&mut self) -> Result<(u16, String), SmtpError> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .link
                .read_line(&mut line)
                .map_err(|e| SmtpError::Io(self.server.clone(), e))?;
            if n == 0 {
                return Err(SmtpError::Io(
                    self.server.clone(),
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"),
                ));
            }
            let line = line.trim_end();
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            text.push_str(line.get(4..).unwrap_or_default());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    /// Sends a command and expects a reply code in `ok`.
    fn command(&mut self, line: &str, step: &'static str, ok: &[u16]) -> Result<String, SmtpError> {
        self.link
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| SmtpError::Io(self.server.clone(), e))?;
        self.expect(step, ok)
    }

    fn expect(&mut self, step: &'static str, ok: &[u16]) -> Result<String, SmtpError> {
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(SmtpError::Refused {
                server: self.server.clone(),
                step,
                reply: format!("{code} {}", text.trim()),
            })
        }
    }
}

/// Sends one message.
pub fn send(server: &Server, mail: &Mail) -> Result<(), SmtpError> {
    let name = format!("{}:{}", server.host, server.port);
    let io = |e| SmtpError::Io(name.clone(), e);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(server.host.as_str(), server.port))
        .map_err(io)?
        .next()
        .ok_or_else(|| {
            SmtpError::Io(
                name.clone(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            )
        })?;
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut s = Session {
        link: Link::Plain(BufReader::new(stream)),
        server: name.clone(),
    };
    s.expect("the greeting", &[220])?;
    let mut features = s.command("EHLO pasopati-collector", "EHLO", &[250])?;
    let offers = |features: &str, what: &str| {
        features.lines().any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(what))
        })
    };
    if offers(&features, "STARTTLS") {
        s.command("STARTTLS", "STARTTLS", &[220])?;
        let Link::Plain(reader) = s.link else {
            return Err(SmtpError::Tls("STARTTLS twice".into()));
        };
        let tcp = reader.into_inner();
        let host =
            ServerName::try_from(server.host.clone()).map_err(|e| SmtpError::Tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(server.tls.clone(), host)
            .map_err(|e| SmtpError::Tls(e.to_string()))?;
        s.link = Link::Tls(Box::new(BufReader::new(rustls::StreamOwned::new(
            conn, tcp,
        ))));
        features = s.command("EHLO pasopati-collector", "EHLO after STARTTLS", &[250])?;
    } else {
        let loopback = addr.ip().is_loopback();
        if !(server.plain_loopback && loopback) {
            return Err(SmtpError::NoStartTls(name));
        }
    }
    if let (Some(user), Some(password)) = (&server.user, &server.password) {
        let token = base64(format!("\0{user}\0{password}").as_bytes());
        s.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", &[235])?;
    }
    s.command(&format!("MAIL FROM:<{}>", mail.from), "MAIL FROM", &[250])?;
    for to in &mail.to {
        s.command(&format!("RCPT TO:<{to}>"), "RCPT TO", &[250, 251])?;
    }
    s.command("DATA", "DATA", &[354])?;
    let eight_bit = offers(&features, "8BITMIME");
    let message = message(mail, eight_bit);
    s.link
        .write_all(dot_stuffed(&message).as_bytes())
        .map_err(|e| SmtpError::Io(name.clone(), e))?;
    s.command(".", "the end of the message", &[250])?;
    // The message is accepted; a lost QUIT changes nothing.
    let _ = s.command("QUIT", "QUIT", &[221]);
    Ok(())
}

/// The message: headers, and a plain-text part with an HTML alternative when there is one.
/// Bodies go as 8-bit UTF-8 when the server takes it and no line is longer than SMTP allows
/// (998 bytes; generated HTML is one long line), else base64.
pub fn message(mail: &Mail, eight_bit: bool) -> String {
    let boundary = format!(
        "pasopati-{}",
        pasopati_common::hex(&pasopati_common::sha256(mail.message_id.as_bytes())[..8])
    );
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", mail.from));
    out.push_str(&format!("To: {}\r\n", mail.to.join(", ")));
    out.push_str(&format!("Subject: {}\r\n", encoded_word(&mail.subject)));
    out.push_str(&format!("Date: {}\r\n", mail.date));
    out.push_str(&format!("Message-ID: <{}>\r\n", mail.message_id));
    out.push_str("MIME-Version: 1.0\r\n");
    let part = |content_type: &str, body: &str| -> String {
        if eight_bit && body.lines().all(|l| l.len() <= MAX_LINE) {
            format!(
                "Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
                crlf(body)
            )
        } else {
            format!(
                "Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                wrapped_base64(crlf(body).as_bytes())
            )
        }
    };
    match &mail.html {
        None => out.push_str(&part("text/plain", &mail.text)),
        Some(html) => {
            out.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            out.push_str(&format!(
                "--{boundary}\r\n{}",
                part("text/plain", &mail.text)
            ));
            out.push_str(&format!("--{boundary}\r\n{}", part("text/html", html)));
            out.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    out
}

/// The longest line SMTP carries, without its CRLF (RFC 5321, 4.5.3.1.6).
const MAX_LINE: usize = 998;

/// Lines end in CRLF.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// A line beginning with a dot gets another (RFC 5321, 4.5.2).
fn dot_stuffed(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// A header text as an RFC 2047 encoded word when it is not plain ASCII.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

fn wrapped_base64(bytes: &[u8]) -> String {
    let encoded = base64(bytes);
    let mut out = String::new();
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_encoded_words_follow_the_rfcs() {
        // RFC 4648, section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(encoded_word("Ringkasan pagi"), "Ringkasan pagi");
        assert_eq!(
            encoded_word("Ringkasan — pagi"),
            "=?UTF-8?B?UmluZ2thc2FuIOKAlCBwYWdp?="
        );
    }

    #[test]
    fn a_message_has_both_parts_and_its_dots_are_stuffed() {
        let mail = Mail {
            from: "pasopati@pusat.example".into(),
            to: vec!["humas@pusat.example".into()],
            message_id: "notification-7@pasopati".into(),
            subject: "12 laporan mendesak".into(),
            text: "baris satu\n.baris bertitik".into(),
            html: Some("<p>baris satu</p>".into()),
            date: "Wed, 02 Dec 2026 06:30:00 +0700".into(),
        };
        let m = dot_stuffed(&message(&mail, true));
        assert!(m.contains("Message-ID: <notification-7@pasopati>\r\n"));
        assert!(m.contains("Content-Type: multipart/alternative; boundary="));
        assert!(m.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(m.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(m.contains("\r\n..baris bertitik\r\n"), "{m}");
        assert!(!m.contains("\n\n") || m.contains("\r\n\r\n"));
        let b = message(&mail, false);
        assert!(
            b.contains(
                "Content-Transfer-Encoding: base64\r\n\r\nYmFyaXMgc2F0dQ0KLmJhcmlzIGJlcnRpdGlr\r\n"
            ),
            "{b}"
        );
        // A line longer than SMTP carries goes as base64 even where 8-bit is offered.
        let long = Mail {
            html: Some(format!("<p>{}</p>", "panjang ".repeat(200))),
            ..mail
        };
        let m = message(&long, true);
        assert!(m.contains("text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"));
        assert!(m.contains("text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"));
        assert!(m.lines().all(|l| l.len() <= 998));
    }
}
