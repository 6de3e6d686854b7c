//! The VNC server behind the bench VM: a minimal RFB 3.8 source with security None that answers
//! every FramebufferUpdateRequest at once with one Raw rectangle of the requested size, from a
//! buffer it never redraws. It costs next to nothing per byte, so the paths in front of it (the
//! relay with the simulator's node side, or websockify) are what the numbers measure. Both the
//! simulator (fronting it as `vnc_backend`) and websockify connect to it over plain TCP.

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Large enough for any rectangle the bench asks for (4 bytes per pixel).
pub const WIDTH: u16 = 1024;
pub const HEIGHT: u16 = 1024;
/// Pixels are sent from this many bytes at a time.
const PATTERN: usize = 256 * 1024;

/// Binds 127.0.0.1:0 and serves every connection until the process ends.
pub async fn start() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pattern = Bytes::from((0..PATTERN).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let pattern = pattern.clone();
            tokio::spawn(async move {
                // A client going away mid-message is how every session ends.
                let _ = serve(stream, pattern).await;
            });
        }
    });
    Ok(addr)
}

async fn serve(stream: TcpStream, pattern: Bytes) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    reader.read_exact(&mut version).await?;
    writer.write_all(&[1, 1]).await?; // one security type: None
    let _chosen = reader.read_u8().await?;
    writer.write_all(&0u32.to_be_bytes()).await?;
    let _shared = reader.read_u8().await?;
    let mut init = Vec::new();
    init.extend_from_slice(&WIDTH.to_be_bytes());
    init.extend_from_slice(&HEIGHT.to_be_bytes());
    // 32 bpp, depth 24, little endian, true colour, max 255 each, shifts 16/8/0.
    init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&5u32.to_be_bytes());
    init.extend_from_slice(b"bench");
    writer.write_all(&init).await?;
    loop {
        match reader.read_u8().await? {
            0 => skip(&mut reader, 19).await?,
            2 => {
                let _pad = reader.read_u8().await?;
                let count = reader.read_u16().await?;
                skip(&mut reader, u64::from(count) * 4).await?;
            }
            3 => {
                let mut body = [0u8; 9];
                reader.read_exact(&mut body).await?;
                let width = u16::from_be_bytes([body[5], body[6]]).min(WIDTH);
                let height = u16::from_be_bytes([body[7], body[8]]).min(HEIGHT);
                let mut head = vec![0u8, 0, 0, 1, 0, 0, 0, 0];
                head.extend_from_slice(&width.to_be_bytes());
                head.extend_from_slice(&height.to_be_bytes());
                head.extend_from_slice(&0i32.to_be_bytes());
                let mut left = usize::from(width) * usize::from(height) * 4;
                // Small updates go out in one write, as a VNC server's would.
                let first = left.min(PATTERN);
                head.extend_from_slice(&pattern[..first]);
                left -= first;
                writer.write_all(&head).await?;
                while left > 0 {
                    let n = left.min(PATTERN);
                    writer.write_all(&pattern[..n]).await?;
                    left -= n;
                }
            }
            4 => skip(&mut reader, 7).await?,
            5 => skip(&mut reader, 5).await?,
            6 => {
                skip(&mut reader, 3).await?;
                let length = reader.read_u32().await?;
                skip(&mut reader, u64::from(length)).await?;
            }
            other => {
                return Err(std::io::Error::other(format!("message type {other}")));
            }
        }
    }
}

async fn skip<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, count: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut reader.take(count), &mut tokio::io::sink()).await?;
    if copied < count {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
