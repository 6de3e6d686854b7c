//! Fronting a real VNC server (DESIGN §8), as `qm vncproxy` fronts QEMU's: the simulator runs VNC
//! authentication with the client itself, then connects to the VM's real server
//! (`host:port` or `unix:/path`), completes that server's handshake with security None, and
//! passes bytes through both ways. The client's ClientInit and everything after it reach the
//! real server untouched.

use super::rfb::{self, SECURITY_NONE, Version};
use anyhow::{Context as _, bail};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub async fn serve<S>(mut client: S, password: &str, backend: &str) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    rfb::authenticate(&mut client, password).await?;
    match backend.strip_prefix("unix:") {
        Some(path) => {
            let mut server = connect_unix(path).await?;
            handshake_without_security(&mut server).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
        None => {
            let mut server = tokio::net::TcpStream::connect(backend)
                .await
                .with_context(|| format!("connecting to VNC server {backend}"))?;
            server.set_nodelay(true)?;
            handshake_without_security(&mut server).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
    }
    Ok(())
}

#[cfg(unix)]
async fn connect_unix(path: &str) -> anyhow::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| format!("connecting to VNC socket {path}"))
}

#[cfg(not(unix))]
async fn connect_unix(path: &str) -> anyhow::Result<tokio::net::TcpStream> {
    bail!("unix sockets are not available here: {path}")
}

/// The real server's version and security handshake, choosing None, up to just before
/// ClientInit.
async fn handshake_without_security<S>(server: &mut S) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = [0u8; 12];
    server.read_exact(&mut line).await?;
    let version = Version::parse(&line)
        .with_context(|| format!("VNC server version {:?}", String::from_utf8_lossy(&line)))?;
    server.write_all(version.line()).await?;
    server.flush().await?;
    if version == Version::V3_3 {
        let security = server.read_u32().await?;
        if security != u32::from(SECURITY_NONE) {
            bail!("VNC server wants security type {security}; configure it without a password");
        }
        return Ok(());
    }
    let count = server.read_u8().await?;
    if count == 0 {
        let reason = read_reason(server).await?;
        bail!("VNC server refused the connection: {reason}");
    }
    let mut types = vec![0u8; usize::from(count)];
    server.read_exact(&mut types).await?;
    if !types.contains(&SECURITY_NONE) {
        bail!(
            "VNC server offers security types {types:?}, not None; configure it without a password"
        );
    }
    server.write_all(&[SECURITY_NONE]).await?;
    server.flush().await?;
    if version == Version::V3_8 {
        let result = server.read_u32().await?;
        if result != 0 {
            let reason = read_reason(server).await?;
            bail!("VNC server refused security None: {reason}");
        }
    }
    Ok(())
}

async fn read_reason<S: AsyncRead + Unpin>(server: &mut S) -> anyhow::Result<String> {
    let len = server.read_u32().await?.min(4096);
    let mut reason = vec![0u8; len as usize];
    server.read_exact(&mut reason).await?;
    Ok(String::from_utf8_lossy(&reason).into_owned())
}
