//! Logs: corefit's own lines (stderr, text or JSON) and the workers'
//! output, passed through in whole lines, optionally prefixed with the
//! worker id.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::supervise::config::LogFormat;
use crate::supervise::machine::{Level, Notice};

/// Lines longer than this are passed on in pieces.
const MAX_LINE: usize = 64 * 1024;

/// corefit's own log, to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    pub format: LogFormat,
}

impl Logger {
    pub fn log(&self, level: Level, message: &str) {
        let line = self.render(level, message, now_millis());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// One of the machine's notices: its sentence, and in JSON its fields.
    pub fn notice(&self, notice: &Notice) {
        let line = self.render_notice(notice, now_millis());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    /// One line, with its newline.
    pub fn render(&self, level: Level, message: &str, unix_millis: u128) -> String {
        self.render_with(level, message, serde_json::Map::new(), unix_millis)
    }

    /// A notice's line: the same sentence as text; in JSON, the sentence
    /// as `msg` beside the notice's fields.
    pub fn render_notice(&self, notice: &Notice, unix_millis: u128) -> String {
        let fields = match self.format {
            LogFormat::Json => super::notice::fields(notice),
            LogFormat::Text => serde_json::Map::new(),
        };
        self.render_with(notice.level(), &notice.to_string(), fields, unix_millis)
    }

    fn render_with(
        &self,
        level: Level,
        message: &str,
        fields: serde_json::Map<String, serde_json::Value>,
        unix_millis: u128,
    ) -> String {
        match self.format {
            LogFormat::Text => match level {
                Level::Info => format!("corefit: {message}\n"),
                Level::Warn => format!("corefit: warning: {message}\n"),
                Level::Error => format!("corefit: error: {message}\n"),
            },
            LogFormat::Json => {
                let level = match level {
                    Level::Info => "info",
                    Level::Warn => "warn",
                    Level::Error => "error",
                };
                let mut obj = serde_json::json!({
                    "ts": unix_millis as f64 / 1000.0,
                    "level": level,
                    "source": "corefit",
                    "msg": message,
                });
                if let Some(line) = obj.as_object_mut() {
                    for (k, v) in fields {
                        line.entry(k).or_insert(v);
                    }
                }
                format!("{obj}\n")
            }
        }
    }
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Which of corefit's streams a worker stream goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The prefix put before each line of worker `id`, if prefixes are on.
pub fn prefix(enabled: bool, id: u32) -> String {
    if enabled {
        format!("[worker {id}] ")
    } else {
        String::new()
    }
}

/// Copies `input` to corefit's `stream` line by line until EOF; each line
/// is written with one call, so lines of different workers never mix.
pub async fn pump_lines<R: AsyncRead + Unpin>(input: R, stream: Stream, prefix: String) {
    let mut reader = BufReader::with_capacity(16 * 1024, input);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        line.extend_from_slice(prefix.as_bytes());
        let start = line.len();
        match read_line_capped(&mut reader, &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let _ = match stream {
                    Stream::Stdout => std::io::stdout().lock().write_all(&line),
                    Stream::Stderr => std::io::stderr().lock().write_all(&line),
                };
                debug_assert!(line.len() > start);
            }
            Err(_) => return,
        }
    }
}

/// Reads up to and including `\n`, at most `MAX_LINE` bytes.
async fn read_line_capped<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let room = MAX_LINE.saturating_sub(total).max(1);
        let window = &buf[..buf.len().min(room)];
        let (take, done) = match window.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (window.len(), total + window.len() >= MAX_LINE),
        };
        out.extend_from_slice(&window[..take]);
        reader.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let text = Logger {
            format: LogFormat::Text,
        };
        assert_eq!(text.render(Level::Info, "hi", 0), "corefit: hi\n");
        assert_eq!(text.render(Level::Error, "bad", 0), "corefit: error: bad\n");
        let json = Logger {
            format: LogFormat::Json,
        };
        let line = json.render(Level::Warn, "say \"x\"", 1500);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "say \"x\"");
        assert_eq!(v["ts"], 1.5);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn notices_render_as_text_or_json_with_their_fields() {
        let n = Notice::Ready {
            worker: 2,
            pid: 42,
            after: std::time::Duration::from_millis(250),
        };
        let text = Logger {
            format: LogFormat::Text,
        };
        assert_eq!(
            text.render_notice(&n, 0),
            "corefit: worker 2 (pid 42) ready after 250ms\n"
        );
        let json = Logger {
            format: LogFormat::Json,
        };
        let line = json.render_notice(&n, 1500);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["msg"], "worker 2 (pid 42) ready after 250ms");
        assert_eq!(v["level"], "info");
        assert_eq!(v["event"], "ready");
        assert_eq!(v["worker"], 2);
        assert_eq!(v["pid"], 42);
        assert_eq!(v["after_ms"], 250);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix(true, 3), "[worker 3] ");
        assert_eq!(prefix(false, 3), "");
    }

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let data = b"one\ntwo\nthree".to_vec();
        let mut reader = BufReader::new(&data[..]);
        let mut out = Vec::new();
        read_line_capped(&mut reader, &mut out).await.unwrap();
        assert_eq!(out, b"one\n");
        out.clear();
        read_line_capped(&mut reader, &mut out).await.unwrap();
        assert_eq!(out, b"two\n");
        out.clear();
        read_line_capped(&mut reader, &mut out).await.unwrap();
        assert_eq!(out, b"three");

        let long = vec![b'x'; MAX_LINE + 10];
        let mut reader = BufReader::new(&long[..]);
        let mut out = Vec::new();
        assert_eq!(
            read_line_capped(&mut reader, &mut out).await.unwrap(),
            MAX_LINE
        );
    }
}
