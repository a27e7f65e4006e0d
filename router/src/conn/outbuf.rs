//! The bytes a connection has yet to write: small frames are packed into one buffer, large payloads are kept as
//! the received `Bytes` and written with `writev`, so a big message is never copied on its way through.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Payloads up to this size are copied into the frame buffer (cheaper than an extra iovec).
const COPY_BELOW: usize = 4096;
/// Iovecs per `writev`.
const MAX_SLICES: usize = 64;

#[derive(Debug, Default)]
pub struct OutBuf {
    sealed: VecDeque<Bytes>,
    current: BytesMut,
    len: usize,
}

impl OutBuf {
    /// The buffer to encode frame headers and performatives into.
    pub fn frames(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    /// Append payload bytes after the frame header just encoded.
    pub fn payload(&mut self, bytes: &Bytes) {
        if bytes.len() < COPY_BELOW {
            self.current.extend_from_slice(bytes);
        } else {
            self.seal();
            self.len += bytes.len();
            self.sealed.push_back(bytes.clone());
        }
    }

    fn seal(&mut self) {
        if !self.current.is_empty() {
            let b = self.current.split().freeze();
            self.len += b.len();
            self.sealed.push_back(b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.current.is_empty()
    }

    /// Bytes waiting, including the unsealed buffer.
    pub fn len(&self) -> usize {
        self.len + self.current.len()
    }

    /// One `writev`; returns the bytes written. Cancel-safe: nothing is consumed unless the write happened.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<usize> {
        self.seal();
        let n = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.sealed.iter()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            if count == 0 {
                return Ok(0);
            }
            w.write_vectored(&slices[..count]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.advance(n);
        Ok(n)
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.sealed.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.sealed.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        // Keep the frame buffer's allocation from growing forever after one burst.
        if self.sealed.is_empty() && self.current.capacity() > 4 * 1024 * 1024 {
            self.current = BytesMut::new();
        }
    }

    /// Write everything (used when closing).
    pub async fn flush_all<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<()> {
        while !self.is_empty() {
            self.write_to(w).await?;
        }
        w.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_payloads_are_written_in_order_without_loss() {
        let mut out = OutBuf::default();
        out.frames().extend_from_slice(b"head1");
        out.payload(&Bytes::from(vec![7u8; 10_000]));
        out.frames().extend_from_slice(b"head2");
        out.payload(&Bytes::from_static(b"small"));
        assert_eq!(out.len(), 5 + 10_000 + 5 + 5);
        let mut sink = Vec::new();
        out.flush_all(&mut sink).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(&sink[..5], b"head1");
        assert!(sink[5..10_005].iter().all(|b| *b == 7));
        assert_eq!(&sink[10_005..], b"head2small");
    }
}
