//! termproxy, as PVE runs it for `qm terminal`: the client's first message is
//! `<user>:<ticket>\n`, answered `OK`; then `0:<len>:<data>` carries input, `1:<cols>:<rows>:`
//! resizes and `2` pings, and everything the server sends back is raw terminal output. Behind it
//! runs a small line-editing shell with a few builtins.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// termproxy reads at most this much looking for the end of the preamble.
const MAX_PREAMBLE: usize = 4096;
/// The largest input message accepted; more is a broken client.
const MAX_INPUT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermMessage {
    Input(Vec<u8>),
    Resize { cols: u16, rows: u16 },
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    #[error("unknown termproxy message type {0:?}")]
    UnknownType(char),
    #[error("malformed termproxy message: {0}")]
    Malformed(&'static str),
}

/// A stream parser for client messages; they may arrive split or several per chunk.
#[derive(Debug, Default)]
pub struct TermParser {
    buffer: Vec<u8>,
}

impl TermParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<TermMessage>, TermError> {
        let Some(&kind) = self.buffer.first() else {
            return Ok(None);
        };
        let parsed = match kind {
            b'2' => Some((TermMessage::Ping, 1)),
            b'0' => self.input()?,
            b'1' => self.resize()?,
            other => return Err(TermError::UnknownType(char::from(other))),
        };
        let Some((message, used)) = parsed else {
            return Ok(None);
        };
        self.buffer.drain(..used);
        if self.buffer.is_empty() {
            // Give back the memory of a large paste once it is handled.
            self.buffer = Vec::new();
        }
        Ok(Some(message))
    }

    /// `0:<len>:<data>`.
    fn input(&self) -> Result<Option<(TermMessage, usize)>, TermError> {
        let Some((len, start)) = number_field(&self.buffer, 2, 10)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| TermError::Malformed("length"))?;
        if len > MAX_INPUT {
            return Err(TermError::Malformed("input too long"));
        }
        let end = start + len;
        Ok((self.buffer.len() >= end)
            .then(|| (TermMessage::Input(self.buffer[start..end].to_vec()), end)))
    }

    /// `1:<cols>:<rows>:`.
    fn resize(&self) -> Result<Option<(TermMessage, usize)>, TermError> {
        let Some((cols, next)) = number_field(&self.buffer, 2, 5)? else {
            return Ok(None);
        };
        let Some((rows, end)) = number_field(&self.buffer, next, 5)? else {
            return Ok(None);
        };
        let size = |n: u64| u16::try_from(n).map_err(|_| TermError::Malformed("size"));
        Ok(Some((
            TermMessage::Resize {
                cols: size(cols)?,
                rows: size(rows)?,
            },
            end,
        )))
    }
}

/// Checks the `:` after the type byte, then reads decimal digits up to the next `:` starting at
/// `from`. Returns the number and the index after its `:`.
fn number_field(
    buffer: &[u8],
    from: usize,
    max_digits: usize,
) -> Result<Option<(u64, usize)>, TermError> {
    match buffer.get(1) {
        None => return Ok(None),
        Some(b':') => {}
        Some(_) => return Err(TermError::Malformed("missing ':' after type")),
    }
    let rest = buffer.get(from..).unwrap_or_default();
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        if rest.len() > max_digits || !rest.iter().all(u8::is_ascii_digit) {
            return Err(TermError::Malformed("number"));
        }
        return Ok(None);
    };
    let digits = &rest[..colon];
    if digits.is_empty() || digits.len() > max_digits || !digits.iter().all(u8::is_ascii_digit) {
        return Err(TermError::Malformed("number"));
    }
    let value = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(Some((value, from + colon + 1)))
}

/// The shell behind the terminal: one input line, echo, backspace and a few builtins.
#[derive(Debug)]
pub struct Shell {
    host: String,
    line: String,
    cols: u16,
    rows: u16,
    escape: Escape,
    /// Set by `exit`; the session ends after the output is sent.
    pub exited: bool,
}

/// Where the shell is in skipping an escape sequence (arrow keys and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Started,
    Csi,
}

impl Shell {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            line: String::new(),
            cols: 80,
            rows: 24,
            escape: Escape::None,
            exited: false,
        }
    }

    pub fn prompt(&self) -> String {
        format!("root@{}:~# ", self.host)
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.cols = cols;
        self.rows = rows;
    }

    /// Feeds typed input; returns what the terminal shows in answer.
    pub fn input(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = String::new();
        for ch in String::from_utf8_lossy(data).chars() {
            if self.exited {
                break;
            }
            match (self.escape, ch) {
                (Escape::None, '\u{1b}') => self.escape = Escape::Started,
                (Escape::Started, '[') => self.escape = Escape::Csi,
                (Escape::Started, _) => self.escape = Escape::None,
                (Escape::Csi, '\u{40}'..='\u{7e}') => self.escape = Escape::None,
                (Escape::Csi, _) => {}
                (Escape::None, '\r' | '\n') => self.enter(&mut out),
                (Escape::None, '\u{7f}' | '\u{8}') => {
                    if self.line.pop().is_some() {
                        out.push_str("\u{8} \u{8}");
                    }
                }
                (Escape::None, '\u{3}') => {
                    self.line.clear();
                    out.push_str("^C\r\n");
                    out.push_str(&self.prompt());
                }
                (Escape::None, c) if !c.is_control() && self.line.len() < 4096 => {
                    self.line.push(c);
                    out.push(c);
                }
                (Escape::None, _) => {}
            }
        }
        out.into_bytes()
    }

    fn enter(&mut self, out: &mut String) {
        let line = std::mem::take(&mut self.line);
        out.push_str("\r\n");
        if let Some(answer) = self.run(line.trim()) {
            out.push_str(&answer);
            out.push_str("\r\n");
        }
        if !self.exited {
            out.push_str(&self.prompt());
        }
    }

    fn run(&mut self, line: &str) -> Option<String> {
        let mut words = line.split_whitespace();
        let command = words.next()?;
        let args: Vec<&str> = words.collect();
        Some(match (command, args.as_slice()) {
            ("echo", args) => args.join(" "),
            ("hostname", []) => self.host.clone(),
            ("stty", ["size"]) => format!("{} {}", self.rows, self.cols),
            ("uname", []) => "Linux".into(),
            ("uname", ["-a"]) => format!(
                "Linux {} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux",
                self.host
            ),
            ("exit" | "logout", _) => {
                self.exited = true;
                "logout".into()
            }
            (command, _) => format!("bash: {command}: command not found"),
        })
    }
}

/// Serves one termproxy session: checks the preamble against the proxy's user and ticket, then
/// runs the shell until the client goes away or types `exit`.
pub async fn serve<S>(mut stream: S, user: &str, ticket: &str, host: &str) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut parser = TermParser::default();
    let leftover = read_preamble(&mut stream, user, ticket).await?;
    stream.write_all(b"OK").await?;
    let mut shell = Shell::new(host);
    stream.write_all(shell.prompt().as_bytes()).await?;
    stream.flush().await?;
    parser.push(&leftover);
    let mut chunk = vec![0u8; 4096];
    loop {
        while let Some(message) = parser.next_message()? {
            match message {
                TermMessage::Input(data) => {
                    let output = shell.input(&data);
                    stream.write_all(&output).await?;
                    stream.flush().await?;
                    if shell.exited {
                        return Ok(());
                    }
                }
                TermMessage::Resize { cols, rows } => shell.resize(cols, rows),
                TermMessage::Ping => {}
            }
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        parser.push(&chunk[..read]);
    }
}

/// Reads `<user>:<ticket>\n` and returns any bytes that followed it.
async fn read_preamble<S>(stream: &mut S, user: &str, ticket: &str) -> anyhow::Result<Vec<u8>>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 512];
    let newline = loop {
        if let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            break at;
        }
        anyhow::ensure!(buffer.len() < MAX_PREAMBLE, "termproxy preamble too long");
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "connection closed before the termproxy preamble");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let expected = format!("{user}:{ticket}");
    anyhow::ensure!(
        &buffer[..newline] == expected.as_bytes(),
        "termproxy authentication failed"
    );
    Ok(buffer[newline + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Result<Vec<TermMessage>, TermError> {
        let mut parser = TermParser::default();
        let mut messages = Vec::new();
        for chunk in chunks {
            parser.push(chunk);
            while let Some(message) = parser.next_message()? {
                messages.push(message);
            }
        }
        Ok(messages)
    }

    #[test]
    fn parser_reads_input_resize_and_ping_in_any_chunking() {
        let expected = vec![
            TermMessage::Input("héllo".as_bytes().to_vec()),
            TermMessage::Resize {
                cols: 132,
                rows: 43,
            },
            TermMessage::Ping,
            TermMessage::Input(b"a:b".to_vec()),
        ];
        let stream = "0:6:héllo1:132:43:20:3:a:b".as_bytes();
        assert_eq!(parse_all(&[stream]), Ok(expected.clone()));
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), Ok(expected));
    }

    #[test]
    fn parser_rejects_garbage() {
        assert_eq!(parse_all(&[b"x"]), Err(TermError::UnknownType('x')));
        assert!(parse_all(&[b"0:abc:"]).is_err());
        assert!(parse_all(&[b"1:80:99999999:"]).is_err());
        assert!(parse_all(&[b"0;3:abc"]).is_err());
        assert!(parse_all(&[b"0:99999999999:"]).is_err());
        assert_eq!(parse_all(&[b"0:10:abc"]), Ok(vec![]), "waits for the rest");
    }

    #[test]
    fn shell_echoes_edits_and_runs_builtins() {
        let mut shell = Shell::new("web-1");
        assert_eq!(shell.prompt(), "root@web-1:~# ");
        assert_eq!(shell.input(b"ecko"), b"ecko");
        assert_eq!(shell.input(b"\x7f\x08"), b"\x08 \x08\x08 \x08");
        let out = String::from_utf8(shell.input(b"ho  hi  there\r")).unwrap_or_default();
        assert_eq!(out, "ho  hi  there\r\nhi there\r\nroot@web-1:~# ");
        shell.resize(132, 43);
        let out = String::from_utf8(shell.input(b"stty size\r")).unwrap_or_default();
        assert!(out.contains("\r\n43 132\r\n"), "{out:?}");
        let out = String::from_utf8(shell.input(b"\x1b[Afrob\r")).unwrap_or_default();
        assert!(out.contains("bash: frob: command not found"), "{out:?}");
        let out = String::from_utf8(shell.input(b"uname -a\rhostname\r")).unwrap_or_default();
        assert!(
            out.contains("Linux web-1 6.1.0") && out.contains("\r\nweb-1\r\n"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn session_needs_the_right_preamble() {
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move { serve(server, "u@pve", "PVEVNC:1::s", "vm").await });
        client.write_all(b"u@pve:PVEVNC:1::x\n").await.ok();
        assert!(task.await.map(|r| r.is_err()).unwrap_or(false));
    }
}
