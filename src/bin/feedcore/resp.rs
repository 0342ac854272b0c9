//! A minimal Redis client for the baseline: RESP2 commands written into a buffer and
//! sent in one go (a pipeline), replies read back in order. Only ever connects to
//! 127.0.0.1; no TLS, no auth, no pub/sub.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::Duration;

/// A reply, as much of RESP2 as the baseline needs.
#[derive(Debug)]
pub(crate) enum Reply {
    Simple,
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub(crate) fn bulk(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }
}

pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
    queued: usize,
}

fn io(e: std::io::Error) -> String {
    format!("redis connection: {e}")
}

impl Conn {
    /// Connects to 127.0.0.1:`port`.
    pub(crate) fn connect(port: u16) -> Result<Conn, String> {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let stream =
            TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io)?;
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone().map_err(io)?),
            writer: stream,
            out: Vec::with_capacity(1 << 16),
            queued: 0,
        })
    }

    /// Queues one command (sent at the next [`Conn::send`]).
    pub(crate) fn cmd(&mut self, args: &[&[u8]]) {
        // *<n>\r\n then $<len>\r\n<bytes>\r\n per argument.
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.queued += 1;
    }

    /// Commands queued and not sent yet.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Sends the queued commands and reads their replies; an error reply is an error.
    pub(crate) fn send(&mut self) -> Result<Vec<Reply>, String> {
        self.writer.write_all(&self.out).map_err(io)?;
        self.out.clear();
        let n = std::mem::take(&mut self.queued);
        (0..n).map(|_| self.reply()).collect()
    }

    /// Sends the queued commands and skips their replies (checking for errors).
    pub(crate) fn send_discard(&mut self) -> Result<(), String> {
        self.writer.write_all(&self.out).map_err(io)?;
        self.out.clear();
        let n = std::mem::take(&mut self.queued);
        for _ in 0..n {
            self.reply()?;
        }
        Ok(())
    }

    /// One command, one reply.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        self.cmd(args);
        Ok(self.send()?.pop().expect("one command queued, one reply"))
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(io)?;
        if n == 0 {
            return Err("redis closed the connection".into());
        }
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        Ok(line)
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || -> Result<i64, String> {
            rest.parse()
                .map_err(|_| format!("redis sent a bad length or number: {line:?}"))
        };
        match kind {
            "+" => Ok(Reply::Simple),
            "-" => Err(format!("redis error: {rest}")),
            ":" => Ok(Reply::Int(number()?)),
            "$" => {
                let len = number()?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut buf).map_err(io)?;
                buf.truncate(len as usize);
                Ok(Reply::Bulk(Some(buf)))
            }
            "*" => {
                let len = number()?;
                if len < 0 {
                    return Ok(Reply::Array(None));
                }
                let items = (0..len).map(|_| self.reply()).collect::<Result<_, _>>()?;
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(format!("redis sent an unknown reply: {line:?}")),
        }
    }
}
