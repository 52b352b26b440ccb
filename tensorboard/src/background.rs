//! [`BackgroundWriter`]: a [`SummaryWriter`] on its own thread, so that
//! encoding images and writing files never stalls a training step. Calls
//! queue the event and return at once; a write error on the thread is kept
//! and returned by the next call (or by [`BackgroundWriter::flush`], which
//! waits until everything queued is on disk).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{SummaryWriter, TensorBoardError};

enum Msg {
    Scalar(String, i64, f64),
    Image(String, i64, u32, u32, Vec<u8>),
    Histogram(String, i64, Vec<f64>),
    Text(String, i64, String),
    Restart(i64),
    Hparams(Vec<(String, crate::HParamValue)>, Vec<String>),
    SessionEnd(crate::SessionStatus),
    Layout(crate::Layout),
    Describe(crate::writer::Describe),
    Flush(Sender<()>),
}

/// A summary writer whose file work happens on a background thread.
#[derive(Debug)]
pub struct BackgroundWriter {
    path: PathBuf,
    tx: Option<Sender<Msg>>,
    failure: Arc<Mutex<Option<TensorBoardError>>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundWriter {
    /// Creates the event file (errors here are immediate) and starts the thread.
    pub fn create(logdir: &Path) -> Result<BackgroundWriter, TensorBoardError> {
        let mut writer = SummaryWriter::create(logdir)?;
        let path = writer.path().to_path_buf();
        let (tx, rx) = channel::<Msg>();
        let failure = Arc::new(Mutex::new(None));
        let keep = failure.clone();
        let thread = std::thread::spawn(move || {
            for msg in rx {
                let result = match msg {
                    Msg::Scalar(tag, step, v) => writer.scalar(&tag, step, v),
                    Msg::Image(tag, step, w, h, rgb) => writer.image_rgb(&tag, step, w, h, &rgb),
                    Msg::Histogram(tag, step, values) => writer.histogram(&tag, step, &values),
                    Msg::Text(tag, step, text) => writer.text(&tag, step, &text),
                    Msg::Restart(step) => writer.restart_at(step),
                    Msg::Hparams(h, m) => {
                        writer.hparams(&h, &m.iter().map(String::as_str).collect::<Vec<_>>())
                    }
                    Msg::SessionEnd(status) => writer.session_end(status),
                    Msg::Layout(layout) => writer.custom_scalars(&layout),
                    Msg::Describe(describe) => {
                        writer.set_descriptions(describe);
                        Ok(())
                    }
                    Msg::Flush(done) => {
                        let r = writer.flush();
                        let _ = done.send(());
                        r
                    }
                };
                if let Err(e) = result {
                    let mut slot = keep.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                }
            }
            let _ = writer.flush();
        });
        Ok(BackgroundWriter {
            path,
            tx: Some(tx),
            failure,
            thread: Some(thread),
        })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, msg: Msg) -> Result<(), TensorBoardError> {
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        let gone = || TensorBoardError::Io {
            action: "writing",
            path: self.path.clone(),
            source: std::io::Error::other("the TensorBoard writer thread has stopped"),
        };
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(msg)
            .map_err(|_| gone())
    }

    /// Describes every tag written from now on (see
    /// [`SummaryWriter::set_descriptions`]).
    pub fn set_descriptions(
        &self,
        describe: crate::writer::Describe,
    ) -> Result<(), TensorBoardError> {
        self.send(Msg::Describe(describe))
    }

    /// Queues the custom-scalars layout.
    pub fn custom_scalars(&self, layout: crate::Layout) -> Result<(), TensorBoardError> {
        self.send(Msg::Layout(layout))
    }

    /// Queues the end of the HParams session.
    pub fn session_end(&self, status: crate::SessionStatus) -> Result<(), TensorBoardError> {
        self.send(Msg::SessionEnd(status))
    }

    /// Queues a scalar.
    pub fn scalar(&self, tag: &str, step: i64, value: f64) -> Result<(), TensorBoardError> {
        self.send(Msg::Scalar(tag.into(), step, value))
    }

    /// Queues an RGB image (`height * width * 3` bytes, HWC). Its size is
    /// checked here, before queueing.
    pub fn image_rgb(
        &self,
        tag: &str,
        step: i64,
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    ) -> Result<(), TensorBoardError> {
        let want = width as usize * height as usize * 3;
        if width == 0 || height == 0 || rgb.len() != want {
            return Err(TensorBoardError::Image {
                tag: tag.into(),
                message: format!("{width}x{height} RGB needs {want} bytes, got {}", rgb.len()),
            });
        }
        self.send(Msg::Image(tag.into(), step, width, height, rgb))
    }

    /// Queues a histogram.
    pub fn histogram(
        &self,
        tag: &str,
        step: i64,
        values: Vec<f64>,
    ) -> Result<(), TensorBoardError> {
        self.send(Msg::Histogram(tag.into(), step, values))
    }

    /// Queues a text summary.
    pub fn text(&self, tag: &str, step: i64, text: &str) -> Result<(), TensorBoardError> {
        self.send(Msg::Text(tag.into(), step, text.into()))
    }

    /// Queues the hyper-parameters (see [`SummaryWriter::hparams`]).
    pub fn hparams(
        &self,
        hparams: Vec<(String, crate::HParamValue)>,
        metrics: &[&str],
    ) -> Result<(), TensorBoardError> {
        self.send(Msg::Hparams(
            hparams,
            metrics.iter().map(|m| m.to_string()).collect(),
        ))
    }

    /// Queues a restart marker (see [`SummaryWriter::restart_at`]).
    pub fn restart_at(&self, step: i64) -> Result<(), TensorBoardError> {
        self.send(Msg::Restart(step))
    }

    /// Waits until everything queued is written and flushed; returns any
    /// error the thread met.
    pub fn flush(&self) -> Result<(), TensorBoardError> {
        let (done, wait) = channel();
        self.send(Msg::Flush(done))?;
        let _ = wait.recv();
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_events_reach_the_file_by_flush_and_bad_images_fail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = BackgroundWriter::create(dir.path()).unwrap();
        let before = std::fs::metadata(w.path()).unwrap().len();
        for step in 0..100 {
            w.scalar("train/loss", step, 1.0).unwrap();
        }
        w.flush().unwrap();
        assert!(std::fs::metadata(w.path()).unwrap().len() > before + 100 * 20);
        assert!(w.image_rgb("x", 0, 2, 2, vec![0; 5]).is_err());
    }
}
