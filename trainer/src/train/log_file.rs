//! `RUN/train.log`: opened without following a link or waiting on a FIFO
//! planted in the run directory, and written through [`Escaped`], so text
//! that comes from data (an image's file name, a class folder, a plugin's
//! stderr) cannot start a line of its own or carry terminal escapes: every
//! control character but the line's own end is written as an escape.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Opens `path` for appending, creating it: a plain file, never through a
/// link, never blocking on a FIFO; anything else refused by name.
pub fn open_append(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow!(
                "{} is a symbolic link: zftrain does not write through a link in a run directory; remove it",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("opening {}", path.display())),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a plain file: remove it", path.display());
    }
    Ok(file)
}

/// A writer that escapes control characters: each `write` is taken as
/// one log record (tracing's formatter writes a record at once), whose
/// last `\n` is kept; any other `\n`, `\r`, escape or other control
/// character (C0, DEL, C1, and the bidirectional overrides) becomes
/// `\n`, `\r` or `\u{..}`.
#[derive(Debug)]
pub struct Escaped<W>(pub W);

/// `text` with its control characters escaped, its trailing `\n` kept.
pub fn escape_controls(text: &str) -> String {
    let (body, end) = match text.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (text, ""),
    };
    let mut out = String::with_capacity(text.len() + end.len());
    for c in body.chars() {
        match c {
            '\t' => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&c.escape_unicode().to_string())
            }
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

/// `text` (from data: a file name, a decoder's message) as a Markdown
/// code span for TensorBoard's text plugin: control characters escaped,
/// fenced by more backticks than any run inside it, so it can neither end
/// the span nor start a line.
pub fn code_span(text: &str) -> String {
    let text = escape_controls(text.trim_end_matches('\n'));
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    format!("{fence} {text} {fence}")
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(escape_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_newline_or_an_escape_stays_on_its_line() {
        let mut w = Escaped(Vec::new());
        w.write_all(b"skipped bad image a\nINFO forged line \x1b[31mred\r.jpg\n")
            .unwrap();
        let out = String::from_utf8(w.0).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert_eq!(
            out,
            "skipped bad image a\\nINFO forged line \\u{1b}[31mred\\r.jpg\n"
        );
        assert_eq!(
            escape_controls("tab\tok \u{202e}gpj.exe"),
            "tab\tok \\u{202e}gpj.exe"
        );
    }

    #[test]
    fn a_code_span_holds_backticks_and_newlines_from_data() {
        assert_eq!(code_span("a.jpg"), "` a.jpg `");
        assert_eq!(code_span("a``b\n- forged"), "``` a``b\\n- forged ```");
    }

    #[test]
    fn a_link_or_fifo_in_place_of_the_log_is_refused_and_the_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let precious = d.path().join("precious.txt");
        std::fs::write(&precious, "keep").unwrap();
        let log = d.path().join("train.log");
        std::os::unix::fs::symlink(&precious, &log).unwrap();
        let err = open_append(&log).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        std::fs::remove_file(&log).unwrap();
        let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_append(&log).unwrap_err().to_string();
        assert!(
            err.contains("not a plain file") || err.contains("opening"),
            "{err}"
        );
    }
}
