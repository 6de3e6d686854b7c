//! A small RFB client, for the tests and benchmarks of the simulator and the daemon: version and
//! security handshake (None or VNC authentication), ServerInit, Raw framebuffer updates kept in a
//! local framebuffer, key and pointer events. It runs over any `AsyncRead + AsyncWrite`; [`ws`]
//! opens a WebSocket (pveproxy's `vncwebsocket` or the daemon's console) and turns its binary
//! frames into such a byte stream. [`TermClient`] speaks termproxy's protocol.
//!
//! ```no_run
//! # async fn demo(stream: tokio::io::DuplexStream) -> Result<(), porthole_sim::rfb_client::RfbError> {
//! use porthole_sim::rfb_client::{RfbClient, Security, keysym};
//! let mut vnc = RfbClient::connect(stream, Security::VncAuth("secret".into())).await?;
//! vnc.refresh().await?;
//! let before = vnc.framebuffer_hash();
//! vnc.type_text("root\n").await?;
//! vnc.update(true).await?;
//! assert_ne!(before, vnc.framebuffer_hash());
//! # let _ = keysym::RETURN; Ok(()) }
//! ```

mod term;
pub mod ws;

pub use crate::console::rfb::pixel::PixelFormat;
pub use term::TermClient;

use crate::console::rfb::{SECURITY_NONE, SECURITY_VNC, Version, auth};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// X11 keysyms for keys that are not characters.
pub mod keysym {
    pub const RETURN: u32 = 0xff0d;
    pub const BACKSPACE: u32 = 0xff08;
    pub const TAB: u32 = 0xff09;
    pub const ESCAPE: u32 = 0xff1b;
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Security type 1, what the daemon offers browsers.
    None,
    /// Security type 2 with this password (only its first 8 bytes count).
    VncAuth(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("server refused: {0}")]
    Refused(String),
    #[error("server offers security types {offered:?}, not {wanted}")]
    Security { offered: Vec<u8>, wanted: u8 },
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The server answered the WebSocket upgrade with this HTTP status instead of 101.
    #[error("websocket upgrade refused with HTTP {status}")]
    Http { status: u16 },
}

/// The server's description of its desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub pixel_format: PixelFormat,
    pub name: String,
}

/// Rectangles with other encodings would need decoders this client does not have.
const ENCODING_RAW: i32 = 0;
/// Framebuffers larger than this are refused rather than allocated.
const MAX_PIXELS: usize = 8192 * 8192;

pub struct RfbClient<S> {
    stream: S,
    init: ServerInit,
    /// 0x00RRGGBB, row-major, `width * height`.
    pixels: Vec<u32>,
    /// Pixels the rectangles of the last FramebufferUpdate carried.
    last_update_area: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RfbClient<S> {
    /// Handshakes up to ServerInit, asking for a shared session, and sets Raw encoding.
    pub async fn connect(mut stream: S, security: Security) -> Result<Self, RfbError> {
        let version = negotiate_version(&mut stream).await?;
        authenticate(&mut stream, version, &security).await?;
        stream.write_all(&[1]).await?;
        stream.flush().await?;
        let init = read_server_init(&mut stream).await?;
        let pixels = usize::from(init.width) * usize::from(init.height);
        if pixels > MAX_PIXELS {
            return Err(RfbError::Protocol(format!(
                "{}x{} framebuffer",
                init.width, init.height
            )));
        }
        let mut client = Self {
            stream,
            init,
            pixels: vec![0; pixels],
            last_update_area: 0,
        };
        client.set_encodings(&[ENCODING_RAW]).await?;
        Ok(client)
    }

    pub fn server_init(&self) -> &ServerInit {
        &self.init
    }

    pub fn name(&self) -> &str {
        &self.init.name
    }

    pub async fn set_encodings(&mut self, encodings: &[i32]) -> Result<(), RfbError> {
        let mut message = vec![2, 0];
        message.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
        for encoding in encodings {
            message.extend_from_slice(&encoding.to_be_bytes());
        }
        self.send(&message).await
    }

    /// Asks for the whole screen.
    pub async fn request_update(&mut self, incremental: bool) -> Result<(), RfbError> {
        let mut message = vec![3, u8::from(incremental), 0, 0, 0, 0];
        message.extend_from_slice(&self.init.width.to_be_bytes());
        message.extend_from_slice(&self.init.height.to_be_bytes());
        self.send(&message).await
    }

    /// Reads server messages until a FramebufferUpdate has been applied; returns its rectangle
    /// count. Bell, cut text and colour-map messages are skipped.
    pub async fn read_update(&mut self) -> Result<usize, RfbError> {
        loop {
            match self.stream.read_u8().await? {
                0 => return self.read_rectangles().await,
                1 => {
                    let mut head = [0u8; 5];
                    self.stream.read_exact(&mut head).await?;
                    let count = u16::from_be_bytes([head[3], head[4]]);
                    self.skip(u64::from(count) * 6).await?;
                }
                2 => {}
                3 => {
                    let mut head = [0u8; 3];
                    self.stream.read_exact(&mut head).await?;
                    let len = self.stream.read_u32().await?;
                    self.skip(u64::from(len)).await?;
                }
                other => return Err(RfbError::Protocol(format!("server message type {other}"))),
            }
        }
    }

    /// Requests an update and reads it.
    pub async fn update(&mut self, incremental: bool) -> Result<usize, RfbError> {
        self.request_update(incremental).await?;
        self.read_update().await
    }

    /// A full (non-incremental) update of the whole screen.
    pub async fn refresh(&mut self) -> Result<usize, RfbError> {
        self.update(false).await
    }

    pub async fn key(&mut self, keysym: u32, down: bool) -> Result<(), RfbError> {
        let mut message = vec![4, u8::from(down), 0, 0];
        message.extend_from_slice(&keysym.to_be_bytes());
        self.send(&message).await
    }

    /// Presses and releases a key for each character; `\n` is Return, `\u{8}` BackSpace.
    pub async fn type_text(&mut self, text: &str) -> Result<(), RfbError> {
        for ch in text.chars() {
            let keysym = match ch {
                '\n' => keysym::RETURN,
                '\u{8}' => keysym::BACKSPACE,
                '\t' => keysym::TAB,
                c => u32::from(c),
            };
            self.key(keysym, true).await?;
            self.key(keysym, false).await?;
        }
        Ok(())
    }

    pub async fn pointer(&mut self, buttons: u8, x: u16, y: u16) -> Result<(), RfbError> {
        let mut message = vec![5, buttons];
        message.extend_from_slice(&x.to_be_bytes());
        message.extend_from_slice(&y.to_be_bytes());
        self.send(&message).await
    }

    /// The framebuffer as 0x00RRGGBB pixels, row-major.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// How many pixels the rectangles of the last FramebufferUpdate carried: a full update of a
    /// server that sends disjoint rectangles covers `width * height`.
    pub fn last_update_area(&self) -> usize {
        self.last_update_area
    }

    /// SHA-256 of the framebuffer, hex: equal screens hash equal.
    pub fn framebuffer_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for pixel in &self.pixels {
            hasher.update(pixel.to_le_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Gives back the stream, e.g. to check how the server closes it.
    pub fn into_inner(self) -> S {
        self.stream
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), RfbError> {
        self.stream.write_all(message).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn skip(&mut self, count: u64) -> Result<(), RfbError> {
        let copied =
            tokio::io::copy(&mut (&mut self.stream).take(count), &mut tokio::io::sink()).await?;
        if copied < count {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Ok(())
    }

    async fn read_rectangles(&mut self) -> Result<usize, RfbError> {
        let _padding = self.stream.read_u8().await?;
        let count = usize::from(self.stream.read_u16().await?);
        let format = self.init.pixel_format;
        let bpp = format.bytes_per_pixel();
        let (fb_width, fb_height) = (usize::from(self.init.width), usize::from(self.init.height));
        let mut row = Vec::new();
        self.last_update_area = 0;
        for _ in 0..count {
            let mut head = [0u8; 12];
            self.stream.read_exact(&mut head).await?;
            let field = |i: usize| usize::from(u16::from_be_bytes([head[i], head[i + 1]]));
            let (x, y, width, height) = (field(0), field(2), field(4), field(6));
            let encoding = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            if encoding != ENCODING_RAW {
                return Err(RfbError::Protocol(format!("rectangle encoding {encoding}")));
            }
            if x + width > fb_width || y + height > fb_height {
                return Err(RfbError::Protocol(format!(
                    "rectangle {width}x{height}+{x}+{y} outside the screen"
                )));
            }
            self.last_update_area += width * height;
            row.resize(width * bpp, 0);
            for line in y..y + height {
                self.stream.read_exact(&mut row).await?;
                let target = &mut self.pixels[line * fb_width + x..line * fb_width + x + width];
                for (pixel, bytes) in target.iter_mut().zip(row.chunks_exact(bpp)) {
                    *pixel = format.decode(bytes);
                }
            }
        }
        Ok(count)
    }
}

async fn negotiate_version<S>(stream: &mut S) -> Result<Version, RfbError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = [0u8; 12];
    stream.read_exact(&mut line).await?;
    let version = Version::parse(&line).ok_or_else(|| {
        RfbError::Protocol(format!(
            "server version {:?}",
            String::from_utf8_lossy(&line)
        ))
    })?;
    stream.write_all(version.line()).await?;
    stream.flush().await?;
    Ok(version)
}

async fn authenticate<S>(
    stream: &mut S,
    version: Version,
    security: &Security,
) -> Result<(), RfbError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let wanted = match security {
        Security::None => SECURITY_NONE,
        Security::VncAuth(_) => SECURITY_VNC,
    };
    if version == Version::V3_3 {
        let offered = stream.read_u32().await?;
        if offered == 0 {
            return Err(RfbError::Refused(read_reason(stream).await?));
        }
        if offered != u32::from(wanted) {
            return Err(RfbError::Security {
                offered: vec![offered as u8],
                wanted,
            });
        }
    } else {
        let count = stream.read_u8().await?;
        if count == 0 {
            return Err(RfbError::Refused(read_reason(stream).await?));
        }
        let mut offered = vec![0u8; usize::from(count)];
        stream.read_exact(&mut offered).await?;
        if !offered.contains(&wanted) {
            return Err(RfbError::Security { offered, wanted });
        }
        stream.write_all(&[wanted]).await?;
        stream.flush().await?;
    }
    if let Security::VncAuth(password) = security {
        let mut challenge = [0u8; auth::CHALLENGE_LEN];
        stream.read_exact(&mut challenge).await?;
        stream
            .write_all(&auth::vnc_response(password.as_bytes(), &challenge))
            .await?;
        stream.flush().await?;
    }
    // RFB 3.3 and 3.7 send no SecurityResult for None.
    if wanted == SECURITY_NONE && version != Version::V3_8 {
        return Ok(());
    }
    match stream.read_u32().await? {
        0 => Ok(()),
        _ if version == Version::V3_8 => Err(RfbError::Refused(read_reason(stream).await?)),
        _ => Err(RfbError::Refused("authentication failed".into())),
    }
}

async fn read_reason<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, RfbError> {
    let len = stream.read_u32().await?.min(64 * 1024);
    let mut reason = vec![0u8; len as usize];
    stream.read_exact(&mut reason).await?;
    Ok(String::from_utf8_lossy(&reason).into_owned())
}

async fn read_server_init<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ServerInit, RfbError> {
    let width = stream.read_u16().await?;
    let height = stream.read_u16().await?;
    let mut wire = [0u8; 16];
    stream.read_exact(&mut wire).await?;
    let pixel_format = PixelFormat::from_wire(&wire)
        .map_err(|err| RfbError::Protocol(format!("server pixel format: {err}")))?;
    let len = stream.read_u32().await?;
    if len > 64 * 1024 {
        return Err(RfbError::Protocol(format!("desktop name of {len} bytes")));
    }
    let mut name = vec![0u8; len as usize];
    stream.read_exact(&mut name).await?;
    Ok(ServerInit {
        width,
        height,
        pixel_format,
        name: String::from_utf8_lossy(&name).into_owned(),
    })
}
