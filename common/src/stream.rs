//! Frames on an async byte stream (a QUIC stream in the daemons, a `Vec` in tests): the I/O half
//! of [`crate::frame`]. The codec and its limits are the protocol crate's; this module only moves
//! the bytes it produces and checks the declared length before reading a byte of the body.

use crate::frame::{body_len, decode_value, encode_frame, FrameError};
use bincode::{Decode, Encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes one frame. Refuses (without writing) a frame over the limit.
pub async fn write_frame<W, T>(writer: &mut W, value: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Encode,
{
    writer.write_all(&encode_frame(value)?).await?;
    Ok(())
}

/// Reads one frame. `Ok(None)` when the peer finished the stream cleanly between frames.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: Decode<()>,
{
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; body_len(header)?];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    })?;
    crate::profile::FRAME_DECODE
        .time(|| decode_value(&body))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::hello;
    use crate::frame::{AgentFrame, MAX_FRAME_BYTES};

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &hello()).await.unwrap();
        write_frame(&mut buf, &hello()).await.unwrap();
        let mut reader = &buf[..];
        for _ in 0..2 {
            let f: AgentFrame = read_frame(&mut reader).await.unwrap().unwrap();
            assert_eq!(f, hello());
        }
        assert!(read_frame::<_, AgentFrame>(&mut reader)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading() {
        let mut buf = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&[0; 16]);
        let err = read_frame::<_, AgentFrame>(&mut &buf[..])
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let garbage = [0, 0, 0, 4, 0xff, 0xfe, 0xfd, 0xfc];
        let err = read_frame::<_, AgentFrame>(&mut &garbage[..])
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error_not_a_clean_end() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &hello()).await.unwrap();
        buf.truncate(buf.len() - 1);
        let err = read_frame::<_, AgentFrame>(&mut &buf[..])
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err}");
    }
}
