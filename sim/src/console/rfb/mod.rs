//! The simulator's RFB 3.8 server (RFC 6143), what QEMU's VNC server is to a real VM: version
//! handshake (3.3, 3.7 and 3.8), VNC authentication, ServerInit with the VM's name, then Raw
//! framebuffer updates of the VM's shared text screen, drawn in the client's pixel format, and
//! key events that type on it. An incremental update request waits until the screen changes.

pub mod auth;
pub mod pixel;

use super::font::CELL_HEIGHT;
use super::screen::{self, RowSnapshot, Screen};
use pixel::PixelFormat;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

pub const SECURITY_NONE: u8 = 1;
pub const SECURITY_VNC: u8 = 2;
/// The longest ClientCutText the server reads; longer ones end the session.
const MAX_CUT_TEXT: u32 = 1 << 20;
const MAX_ENCODINGS: u16 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("VNC authentication failed")]
    AuthFailed,
    #[error(transparent)]
    PixelFormat(#[from] pixel::PixelFormatError),
}

/// The protocol version both sides settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

impl Version {
    /// `RFB 003.00x\n`; later minor versions speak 3.8, as RFC 6143 §7.1.1 asks.
    pub fn parse(line: &[u8; 12]) -> Option<Self> {
        let text = std::str::from_utf8(line).ok()?;
        let rest = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
        let (major, minor) = rest.split_once('.')?;
        match (major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?) {
            (3, 3 | 5) => Some(Self::V3_3),
            (3, 7) => Some(Self::V3_7),
            (3, m) if m >= 8 => Some(Self::V3_8),
            _ => None,
        }
    }

    pub fn line(self) -> &'static [u8; 12] {
        match self {
            Self::V3_3 => b"RFB 003.003\n",
            Self::V3_7 => b"RFB 003.007\n",
            Self::V3_8 => b"RFB 003.008\n",
        }
    }
}

/// Serves one viewer of `screen` after VNC authentication with `password` (its first 8 bytes).
pub async fn serve<S>(
    mut stream: S,
    password: &str,
    screen: Arc<Screen>,
    name: &str,
) -> Result<(), RfbError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    authenticate(&mut stream, password).await?;
    let _shared = stream.read_u8().await?;
    stream.write_all(&server_init(name)).await?;
    stream.flush().await?;
    let (reader, writer) = tokio::io::split(stream);
    let (requests, inbox) = mpsc::channel(32);
    tokio::select! {
        read = read_messages(reader, &screen, requests) => read,
        written = send_updates(writer, &screen, inbox) => written,
    }
}

/// Version handshake and VNC authentication, up to a successful SecurityResult.
pub async fn authenticate<S>(stream: &mut S, password: &str) -> Result<Version, RfbError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(Version::V3_8.line()).await?;
    stream.flush().await?;
    let mut line = [0u8; 12];
    stream.read_exact(&mut line).await?;
    let version = Version::parse(&line).ok_or_else(|| {
        RfbError::Protocol(format!("bad version {:?}", String::from_utf8_lossy(&line)))
    })?;
    if version == Version::V3_3 {
        stream
            .write_all(&u32::from(SECURITY_VNC).to_be_bytes())
            .await?;
    } else {
        stream.write_all(&[1, SECURITY_VNC]).await?;
        stream.flush().await?;
        let chosen = stream.read_u8().await?;
        if chosen != SECURITY_VNC {
            fail(stream, version, "security type not supported").await?;
            return Err(RfbError::Protocol(format!(
                "client chose security type {chosen}"
            )));
        }
    }
    let challenge: [u8; auth::CHALLENGE_LEN] = rand::random();
    stream.write_all(&challenge).await?;
    stream.flush().await?;
    let mut response = [0u8; auth::CHALLENGE_LEN];
    stream.read_exact(&mut response).await?;
    if response != auth::vnc_response(password.as_bytes(), &challenge) {
        fail(stream, version, "Authentication failed").await?;
        return Err(RfbError::AuthFailed);
    }
    stream.write_all(&0u32.to_be_bytes()).await?;
    stream.flush().await?;
    Ok(version)
}

/// A failed SecurityResult; 3.8 adds the reason.
async fn fail<S: AsyncWrite + Unpin>(
    stream: &mut S,
    version: Version,
    reason: &str,
) -> std::io::Result<()> {
    let mut message = 1u32.to_be_bytes().to_vec();
    if version == Version::V3_8 {
        message.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        message.extend_from_slice(reason.as_bytes());
    }
    stream.write_all(&message).await?;
    stream.flush().await
}

fn server_init(name: &str) -> Vec<u8> {
    let mut init = Vec::with_capacity(24 + name.len());
    init.extend_from_slice(&screen::WIDTH.to_be_bytes());
    init.extend_from_slice(&screen::HEIGHT.to_be_bytes());
    init.extend_from_slice(&PixelFormat::RGB888.to_wire());
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name.as_bytes());
    init
}

/// A request for the region (x, y, width, height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

/// What the reader hands the update writer.
#[derive(Debug)]
enum Request {
    PixelFormat(PixelFormat),
    Update { incremental: bool, region: Region },
}

/// Reads client messages: keys go to the screen at once, the rest to the update writer.
async fn read_messages<R>(
    mut reader: R,
    screen: &Screen,
    requests: mpsc::Sender<Request>,
) -> Result<(), RfbError>
where
    R: AsyncRead + Unpin,
{
    loop {
        let kind = match reader.read_u8().await {
            Ok(kind) => kind,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let request = match kind {
            0 => {
                let mut body = [0u8; 19];
                reader.read_exact(&mut body).await?;
                let mut wire = [0u8; 16];
                wire.copy_from_slice(&body[3..]);
                Some(Request::PixelFormat(PixelFormat::from_wire(&wire)?))
            }
            2 => {
                let _padding = reader.read_u8().await?;
                let count = reader.read_u16().await?;
                if count > MAX_ENCODINGS {
                    return Err(RfbError::Protocol(format!("{count} encodings")));
                }
                // Raw is always allowed, so the list changes nothing.
                skip(&mut reader, u64::from(count) * 4).await?;
                None
            }
            3 => {
                let incremental = reader.read_u8().await? != 0;
                let region = Region {
                    x: reader.read_u16().await?,
                    y: reader.read_u16().await?,
                    width: reader.read_u16().await?,
                    height: reader.read_u16().await?,
                };
                Some(Request::Update {
                    incremental,
                    region,
                })
            }
            4 => {
                let down = reader.read_u8().await? != 0;
                let _padding = reader.read_u16().await?;
                let keysym = reader.read_u32().await?;
                if down {
                    screen.key(keysym);
                }
                None
            }
            5 => {
                // Buttons and position: a text console has no pointer to move.
                skip(&mut reader, 5).await?;
                None
            }
            6 => {
                skip(&mut reader, 3).await?;
                let length = reader.read_u32().await?;
                if length > MAX_CUT_TEXT {
                    return Err(RfbError::Protocol(format!("cut text of {length} bytes")));
                }
                skip(&mut reader, u64::from(length)).await?;
                None
            }
            other => return Err(RfbError::Protocol(format!("unknown message type {other}"))),
        };
        if let Some(request) = request
            && requests.send(request).await.is_err()
        {
            return Ok(());
        }
    }
}

async fn skip<R: AsyncRead + Unpin>(reader: &mut R, count: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut reader.take(count), &mut tokio::io::sink()).await?;
    if copied < count {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Answers update requests: a full one at once, an incremental one when rows in it changed.
async fn send_updates<W>(
    mut writer: W,
    screen: &Screen,
    mut inbox: mpsc::Receiver<Request>,
) -> Result<(), RfbError>
where
    W: AsyncWrite + Unpin,
{
    let mut format = PixelFormat::RGB888;
    let mut changes = screen.subscribe();
    let mut seen: Option<u64> = None;
    let mut waiting: Option<Region> = None;
    loop {
        tokio::select! {
            request = inbox.recv() => match request {
                None => return Ok(()),
                Some(Request::PixelFormat(new)) => format = new,
                Some(Request::Update { incremental, region }) => {
                    let since = if incremental { seen } else { None };
                    changes.borrow_and_update();
                    let (rows, generation) = screen.rows_since(since);
                    let rects = rectangles(&rows, region);
                    if incremental && rects.is_empty() {
                        waiting = Some(region);
                        continue;
                    }
                    seen = Some(generation);
                    write_update(&mut writer, &rows, &rects, &format).await?;
                }
            },
            changed = changes.changed(), if waiting.is_some() => {
                if changed.is_err() {
                    return Ok(());
                }
                let Some(region) = waiting else { continue };
                let (rows, generation) = screen.rows_since(seen);
                let rects = rectangles(&rows, region);
                if rects.is_empty() {
                    continue;
                }
                waiting = None;
                seen = Some(generation);
                write_update(&mut writer, &rows, &rects, &format).await?;
            }
        }
    }
}

/// The parts of `region` covered by the given rows, consecutive rows merged into one rectangle.
fn rectangles(rows: &[RowSnapshot], region: Region) -> Vec<Region> {
    let x0 = region.x.min(screen::WIDTH);
    let x1 = region.x.saturating_add(region.width).min(screen::WIDTH);
    let y0 = region.y.min(screen::HEIGHT);
    let y1 = region.y.saturating_add(region.height).min(screen::HEIGHT);
    if x0 >= x1 || y0 >= y1 {
        return Vec::new();
    }
    let band = |row: usize| {
        let top = (row * CELL_HEIGHT) as u16;
        // The last text row's band reaches the bottom of the screen.
        let bottom = if row + 1 == screen::ROWS {
            screen::HEIGHT
        } else {
            top + CELL_HEIGHT as u16
        };
        (top.max(y0), bottom.min(y1))
    };
    let mut rects: Vec<Region> = Vec::new();
    let mut previous_row = None;
    for snapshot in rows {
        let (top, bottom) = band(snapshot.row);
        if top >= bottom {
            continue;
        }
        match rects.last_mut() {
            Some(last) if previous_row.is_some_and(|p| p + 1 == snapshot.row) => {
                last.height = bottom - last.y
            }
            _ => rects.push(Region {
                x: x0,
                y: top,
                width: x1 - x0,
                height: bottom - top,
            }),
        }
        previous_row = Some(snapshot.row);
    }
    rects
}

/// One FramebufferUpdate with Raw rectangles, written a text row at a time.
async fn write_update<W>(
    writer: &mut W,
    rows: &[RowSnapshot],
    rects: &[Region],
    format: &PixelFormat,
) -> Result<(), RfbError>
where
    W: AsyncWrite + Unpin,
{
    let mut header = vec![0u8, 0];
    header.extend_from_slice(&(rects.len() as u16).to_be_bytes());
    writer.write_all(&header).await?;
    let (mut ink, mut paper) = (Vec::new(), Vec::new());
    format.encode(screen::FOREGROUND, &mut ink);
    format.encode(screen::BACKGROUND, &mut paper);
    let blank = RowSnapshot {
        row: screen::ROWS,
        text: [b' '; screen::COLS],
        cursor: None,
    };
    let mut buffer = Vec::new();
    for rect in rects {
        let mut head = Vec::with_capacity(12);
        for value in [rect.x, rect.y, rect.width, rect.height] {
            head.extend_from_slice(&value.to_be_bytes());
        }
        head.extend_from_slice(&0i32.to_be_bytes());
        writer.write_all(&head).await?;
        for y in rect.y..rect.y + rect.height {
            let text_row = usize::from(y) / CELL_HEIGHT;
            let row = rows.iter().find(|r| r.row == text_row).unwrap_or(&blank);
            let cell_y = if row.row == screen::ROWS {
                0
            } else {
                usize::from(y) % CELL_HEIGHT
            };
            for x in rect.x..rect.x + rect.width {
                let pixel = if screen::is_ink(row, usize::from(x), cell_y) {
                    &ink
                } else {
                    &paper
                };
                buffer.extend_from_slice(pixel);
            }
            if buffer.len() >= 16 * 1024 {
                writer.write_all(&buffer).await?;
                buffer.clear();
            }
        }
    }
    writer.write_all(&buffer).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize) -> RowSnapshot {
        RowSnapshot {
            row: n,
            text: [b' '; screen::COLS],
            cursor: None,
        }
    }

    const FULL: Region = Region {
        x: 0,
        y: 0,
        width: 800,
        height: 600,
    };

    #[test]
    fn versions_parse_like_rfc_6143_asks() {
        assert_eq!(Version::parse(b"RFB 003.008\n"), Some(Version::V3_8));
        assert_eq!(Version::parse(b"RFB 003.889\n"), Some(Version::V3_8));
        assert_eq!(Version::parse(b"RFB 003.003\n"), Some(Version::V3_3));
        assert_eq!(Version::parse(b"RFB 004.001\n"), None);
        assert_eq!(Version::parse(b"HTTP/1.1 200"), None);
    }

    #[test]
    fn consecutive_changed_rows_merge_into_one_rectangle() {
        let rects = rectangles(&[row(2), row(3), row(7)], FULL);
        assert_eq!(
            rects,
            [
                Region {
                    x: 0,
                    y: 32,
                    width: 800,
                    height: 32
                },
                Region {
                    x: 0,
                    y: 112,
                    width: 800,
                    height: 16
                }
            ]
        );
        let last = rectangles(&[row(screen::ROWS - 1)], FULL);
        assert_eq!(
            last[0].y + last[0].height,
            600,
            "the last band reaches the bottom"
        );
    }

    #[test]
    fn rectangles_are_clipped_to_the_request_and_the_screen() {
        let region = Region {
            x: 700,
            y: 40,
            width: 500,
            height: 10,
        };
        assert_eq!(
            rectangles(&[row(2), row(3)], region),
            [Region {
                x: 700,
                y: 40,
                width: 100,
                height: 10
            }]
        );
        assert!(rectangles(&[row(0)], Region { x: 900, ..FULL }).is_empty());
    }
}
