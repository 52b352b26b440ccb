//! Exec plugins: a user's program, run at its schedule on a bundle
//! directory, whose results zftrain logs under `plugins/<name>/...`.
//!
//! The bundle (`hooks/<name>/epoch-EEE/bundle/`, removed once the program
//! ran unless `keep_bundle = true`):
//! - `manifest.json`: `epoch`, `step`, `arch`, `probe_images`, `layers`
//!   (label, 1-based conv number, activation shape), `tensors` (file ->
//!   tensor name -> shape), `out` (the folder to write results to);
//! - `weights.safetensors`: every parameter under its PyTorch name (f32);
//! - `activations.safetensors`: `input` (the probe images as the network
//!   saw them, `[P, 3, H, W]`) and `convL` (the rectified output of each
//!   requested conv layer, `[P, C, H', W']`), f32; `P` is the probe set's
//!   first `images` (64 by default; 0: all).
//!
//! The program is `command` (a list: program and arguments, never a shell
//! line) followed by the bundle path; `ZFTRAIN_BUNDLE` and `ZFTRAIN_OUT` are
//! set too. It runs in a process group of its own and gets `timeout_s`
//! seconds, then the group is killed (anything it left running is killed
//! when it exits too, even what left the group: see [`reaper`]; the run
//! waits at most 6 s more: 2 s each to reap the group, to end what left it and for its stderr to close). Its stderr goes to the log line by line, the last
//! 64 KiB of it, as lossy UTF-8. Into `out/` it may write `scalars.json` (an
//! object of finite numbers: `{"tag": value}`), PNG images and `.txt`/`.md`
//! texts; they become `plugins/<name>/<tag>` summaries at the global step. A
//! non-zero exit, a timeout or unreadable results are the hook's failure
//! (reported; training goes on unless `required`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::files::write_tensors;
use super::reaper;
use crate::kind::{HookKind, TagDoc};
use crate::{Control, HookContext, HookError, Schedule};

/// How long, after the program ended or was killed, its leftovers are
/// given to end and its stderr to close.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How a plugin's run ended.
enum Ended {
    /// It exited by itself.
    Exited(ExitStatus),
    /// Its `timeout_s` passed.
    TimedOut,
    /// The run is stopping.
    Stopped,
}

/// A command line as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Program and arguments (the only accepted form).
    List(Vec<String>),
    /// One string: refused, it would need a shell to split.
    Text(String),
}

/// Settings (`[[hooks]] kind = "exec"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecConfig {
    /// Hook name (also the TensorBoard prefix `plugins/<name>/`).
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Program and arguments.
    pub command: CommandLine,
    /// Conv layers (1-based) whose activations go into the bundle.
    pub layers: Vec<usize>,
    /// The first this many probe images go into the bundle (0: all of
    /// them; the ImageNet configs probe the whole validation set, whose
    /// activations would be tens of GB).
    pub images: usize,
    /// Put the weights into the bundle.
    pub weights: bool,
    /// Seconds before the program is killed.
    pub timeout_s: f64,
    /// Keep the bundle after the program ran (by default it is removed:
    /// the network's weights and the probe set's activations, every
    /// scheduled epoch).
    pub keep_bundle: bool,
    /// Stop training if the plugin fails.
    pub required: bool,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            name: "plugin".into(),
            schedule: Schedule::default(),
            command: CommandLine::List(Vec::new()),
            layers: Vec::new(),
            images: 64,
            weights: true,
            timeout_s: 600.0,
            keep_bundle: false,
            required: false,
        }
    }
}

impl ExecConfig {
    /// The program and its arguments, or why not.
    pub fn argv(&self) -> Result<&[String], HookError> {
        let bad = |message: String| HookError::Config {
            hook: self.name.clone(),
            message,
        };
        match &self.command {
            CommandLine::Text(t) => Err(bad(format!(
                "command = \"{t}\" is one string; give the program and its arguments as a list, e.g. command = [\"python3\", \"plugin.py\"] (zftrain never runs a shell)"
            ))),
            CommandLine::List(v) if v.is_empty() || v[0].is_empty() => {
                Err(bad("command is empty".into()))
            }
            CommandLine::List(v) => {
                if !(self.timeout_s > 0.0 && self.timeout_s.is_finite()) {
                    return Err(bad(format!("timeout_s must be > 0, got {}", self.timeout_s)));
                }
                Ok(v)
            }
        }
    }
}

/// The hook.
#[derive(Debug)]
pub struct ExecHook {
    config: ExecConfig,
}

/// Largest results file read back (scalars, texts), in bytes.
const MAX_RESULT_BYTES: u64 = 1 << 20;

impl ExecHook {
    /// A hook with a checked `config`.
    pub fn new(config: ExecConfig) -> Result<ExecHook, HookError> {
        config.argv()?;
        Ok(ExecHook { config })
    }

    fn fail(&self, message: impl std::fmt::Display) -> HookError {
        HookError::failed(&self.config.name, message)
    }

    /// Writes the bundle; returns its folder and the results folder.
    fn bundle(&self, ctx: &HookContext<'_>) -> Result<(PathBuf, PathBuf), HookError> {
        let (bundle, out) = self.fresh_dirs(ctx)?;
        let mut tensors_meta = serde_json::Map::new();
        if self.config.weights {
            let named: Vec<(String, Tensor)> = ctx
                .net
                .named_parameters()
                .into_iter()
                .map(|(name, t)| {
                    (
                        name,
                        t.detach().to_kind(Kind::Float).to_device(tch::Device::Cpu),
                    )
                })
                .collect();
            tensors_meta.insert("weights.safetensors".into(), shapes(&named));
            write_tensors(&bundle.join("weights.safetensors"), &named)?;
        }
        let (named, layers) = self.activations(ctx)?;
        tensors_meta.insert("activations.safetensors".into(), shapes(&named));
        write_tensors(&bundle.join("activations.safetensors"), &named)?;
        let manifest = serde_json::json!({
            "epoch": ctx.epoch,
            "step": ctx.step,
            "arch": ctx.net.arch().name,
            "probe_images": named[0].1.size()[0],
            "layers": layers,
            "tensors": tensors_meta,
            "out": out,
        });
        let path = bundle.join("manifest.json");
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| self.fail(e))?;
        std::fs::write(&path, text).map_err(HookError::io(&path))?;
        Ok((bundle, out))
    }

    /// This epoch's `bundle/` and `out/`, empty, never reached through a
    /// link planted in the run directory.
    fn fresh_dirs(&self, ctx: &HookContext<'_>) -> Result<(PathBuf, PathBuf), HookError> {
        let c = &self.config;
        let base = ctx
            .output_dir(&c.name)?
            .join(format!("epoch-{:03}", ctx.epoch));
        let (bundle, out) = (base.join("bundle"), base.join("out"));
        ctx.plain_dir(&c.name, &base)?;
        for d in [&bundle, &out] {
            if std::fs::symlink_metadata(d).is_ok() {
                ctx.plain_dir(&c.name, d)?;
                std::fs::remove_dir_all(d).map_err(HookError::io(d))?;
            }
            std::fs::create_dir_all(d).map_err(HookError::io(d))?;
        }
        Ok((bundle, out))
    }

    /// The probe images (`input`) and the chosen layers' rectified outputs
    /// (`convL`), in fp32 on the CPU, with the manifest's layer entries.
    #[allow(clippy::type_complexity)]
    fn activations(
        &self,
        ctx: &HookContext<'_>,
    ) -> Result<(Vec<(String, Tensor)>, Vec<serde_json::Value>), HookError> {
        let c = &self.config;
        let arch = ctx.net.arch();
        let convs = arch.conv_indices();
        let top = c
            .layers
            .iter()
            .map(|&l| {
                convs
                    .get(l.wrapping_sub(1))
                    .map(|&i| arch.tap_index(i))
                    .ok_or_else(|| {
                        self.fail(format!(
                            "layers: conv{l} does not exist ({} conv layers)",
                            convs.len()
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut inputs = Vec::new();
        let mut acts: Vec<Vec<Tensor>> = c.layers.iter().map(|_| Vec::new()).collect();
        let wanted: Vec<usize> = match c.images {
            0 => (0..ctx.probe.len()).collect(),
            n => (0..n.min(ctx.probe.len())).collect(),
        };
        for batch in ctx.probe.stream(Some(&wanted)) {
            let batch = batch?.images.to_device(ctx.device);
            inputs.push(batch.to_kind(Kind::Float).to_device(tch::Device::Cpu));
            if let Some(&last) = top.iter().max() {
                let taps = tch::no_grad(|| ctx.net.forward_taps_to(&batch, false, last + 1));
                for (j, &l) in c.layers.iter().enumerate() {
                    acts[j].push(
                        taps.convs[l - 1]
                            .to_kind(Kind::Float)
                            .to_device(tch::Device::Cpu),
                    );
                }
            }
        }
        let mut named = vec![("input".to_string(), Tensor::cat(&inputs, 0))];
        let mut layers = Vec::new();
        for (j, &l) in c.layers.iter().enumerate() {
            let t = Tensor::cat(&acts[j], 0);
            layers.push(
                serde_json::json!({ "label": format!("conv{l}"), "conv": l, "shape": t.size() }),
            );
            named.push((format!("conv{l}"), t));
        }
        Ok((named, layers))
    }

    /// Runs the program on `bundle` within the time limit, in a process
    /// group of its own: at the timeout, and after it exits, the whole
    /// group is killed (no grandchild outlives it or holds its stderr open),
    /// and so is what it orphaned ([`reaper`]). Its stderr is kept as bytes,
    /// the last [`STDERR_KEPT`] of them, and logged as lossy UTF-8.
    fn execute(
        &self,
        bundle: &Path,
        out: &Path,
        stopping: &dyn Fn() -> bool,
    ) -> Result<(), HookError> {
        // Orphans the program leaves come back to zftrain to be ended.
        reaper::become_subreaper();
        let mark = reaper::mark();
        let mut child = self.spawn(bundle, out, &mark)?;
        let group = child.id() as libc::pid_t;
        let running = reaper::Running::new(group);
        let stderr = self.log_stderr(child.stderr.take());
        let ended = self.wait(&mut child, stopping)?;
        // SAFETY: signals the program's own process group (its id is the
        // child's pid, set by process_group(0)); ESRCH when none is left.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = child.wait();
        drop(running);
        self.end_leftovers(group, &mark);
        let tail = self.stderr_tail(&stderr);
        match ended {
            Ended::Stopped => Err(self.fail("killed: the run is stopping")),
            Ended::TimedOut => Err(self.fail(format!(
                "timed out after {} s and was killed",
                self.config.timeout_s
            ))),
            Ended::Exited(s) if !s.success() => {
                Err(self.fail(format!("exited with {s}; stderr: {tail}")))
            }
            Ended::Exited(_) => Ok(()),
        }
    }

    /// Starts the program on `bundle`, in a process group of its own,
    /// marked as this run's (`mark`), its stderr piped.
    fn spawn(&self, bundle: &Path, out: &Path, mark: &str) -> Result<Child, HookError> {
        use std::os::unix::process::CommandExt;
        let argv = self.config.argv()?;
        Command::new(&argv[0])
            .args(&argv[1..])
            .arg(bundle)
            .env("ZFTRAIN_BUNDLE", bundle)
            .env("ZFTRAIN_OUT", out)
            .env(reaper::MARK_VAR, mark)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.fail(format!("starting {:?}: {e}", argv[0])))
    }

    /// Reads `stderr` on a thread of its own, logs its kept tail line by
    /// line, and sends the text when the pipe closes.
    fn log_stderr(&self, stderr: Option<ChildStderr>) -> Receiver<String> {
        let name = self.config.name.clone();
        let (sent, read) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (text, total) = stderr.map(read_tail).unwrap_or_default();
            if total > text.len() {
                tracing::warn!(plugin = %name, "stderr: {total} bytes, the last {} kept", text.len());
            }
            for line in text.lines() {
                tracing::info!(plugin = %name, "{line}");
            }
            let _ = sent.send(text);
        });
        read
    }

    /// Waits for the program until it exits, its time is up or the run
    /// is stopping (then it is killed now, not at its deadline).
    fn wait(&self, child: &mut Child, stopping: &dyn Fn() -> bool) -> Result<Ended, HookError> {
        let limit = Duration::from_secs_f64(self.config.timeout_s);
        let start = Instant::now();
        loop {
            match child.try_wait().map_err(|e| self.fail(e))? {
                Some(status) => return Ok(Ended::Exited(status)),
                None if start.elapsed() >= limit => return Ok(Ended::TimedOut),
                None if stopping() => return Ok(Ended::Stopped),
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// After the group was killed: reaps it, and ends what left it and was
    /// orphaned (a daemon in a session of its own).
    fn end_leftovers(&self, group: libc::pid_t, mark: &str) {
        reaper::reap_group(group, PIPE_GRACE);
        let ended = reaper::end_orphans(mark, PIPE_GRACE);
        if ended > 0 {
            tracing::warn!(plugin = %self.config.name, "ended {ended} process(es) the plugin left running");
        }
    }

    /// The last 5 lines of stderr, joined. The deadline holds on the pipe
    /// too: a descendant that escaped and keeps it open is not waited for.
    fn stderr_tail(&self, stderr: &Receiver<String>) -> String {
        let text = stderr.recv_timeout(PIPE_GRACE).unwrap_or_else(|_| {
            tracing::warn!(
                plugin = %self.config.name,
                "a process the plugin started still holds its stderr open; not waiting for it"
            );
            String::new()
        });
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Logs what the program wrote into `out`.
    fn collect(&self, ctx: &HookContext<'_>, out: &Path) -> Result<(), HookError> {
        let prefix = format!("plugins/{}", self.config.name);
        let step = ctx.step as i64;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(out)
            .map_err(HookError::io(out))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).map_err(HookError::io(&path))?;
            if !meta.is_file() {
                continue;
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let small = || -> Result<Vec<u8>, HookError> {
                if meta.len() > MAX_RESULT_BYTES {
                    return Err(self.fail(format!(
                        "{} is larger than {MAX_RESULT_BYTES} bytes",
                        path.display()
                    )));
                }
                std::fs::read(&path).map_err(HookError::io(&path))
            };
            match ext.as_str() {
                "json" if stem == "scalars" => {
                    let value: serde_json::Value = serde_json::from_slice(&small()?)
                        .map_err(|e| self.fail(format!("{}: {e}", path.display())))?;
                    let map = value.as_object().ok_or_else(|| {
                        self.fail(format!("{}: expected an object of numbers", path.display()))
                    })?;
                    for (tag, v) in map {
                        let x = v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                            self.fail(format!(
                                "{}: '{tag}' is not a finite number",
                                path.display()
                            ))
                        })?;
                        ctx.sink.scalar(&format!("{prefix}/{tag}"), step, x)?;
                    }
                }
                "png" => {
                    let mut reader =
                        image::ImageReader::open(&path).map_err(HookError::io(&path))?;
                    let mut limits = image::Limits::default();
                    limits.max_image_width = Some(16384);
                    limits.max_image_height = Some(16384);
                    limits.max_alloc = Some(512 << 20);
                    reader.limits(limits);
                    let img = reader
                        .decode()
                        .map_err(|e| self.fail(format!("{}: {e}", path.display())))?
                        .to_rgb8();
                    ctx.sink.image(&format!("{prefix}/{stem}"), step, &img)?;
                }
                "txt" | "md" => {
                    let text = String::from_utf8_lossy(&small()?).into_owned();
                    ctx.sink.text(&format!("{prefix}/{stem}"), step, &text)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let (bundle, out) = self.bundle(ctx)?;
        let ran = self.execute(&bundle, &out, &|| ctx.stopping());
        // Whatever the program did, its bundle goes unless asked to stay.
        let removed = match self.config.keep_bundle {
            true => Ok(()),
            false => std::fs::remove_dir_all(&bundle).map_err(HookError::io(&bundle)),
        };
        ran?;
        removed?;
        let collected = self.collect(ctx, &out);
        // What the program left in out/ that is not a plain file or folder
        // (a link, a FIFO, a socket) goes: a run directory holds nothing
        // else, and a resume refuses one that does.
        let dropped = drop_special_files(&out, 0);
        if dropped > 0 {
            tracing::warn!(plugin = %self.config.name, "removed {dropped} link(s) or special file(s) the plugin left in {}", out.display());
        }
        collected?;
        Ok(Control::Continue)
    }
}

/// `{name: shape}` of named tensors.
fn shapes(named: &[(String, Tensor)]) -> serde_json::Value {
    named
        .iter()
        .map(|(n, t)| (n.clone(), serde_json::json!(t.size())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl super::Needs for ExecHook {}

scheduled_hook!(ExecHook);

/// Bytes of a plugin's stderr kept (the end of it) for the log and errors.
pub const STDERR_KEPT: usize = 64 * 1024;

/// Reads `stream` to its end keeping only the last [`STDERR_KEPT`] bytes:
/// those as lossy UTF-8 (a stray byte does not lose the message), and how
/// many bytes there were in all.
/// Removes, below `dir`, every entry that is not a plain file or folder
/// (without following links; folders deeper than 8 levels go whole); how
/// many were removed.
fn drop_special_files(dir: &Path, depth: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut dropped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < 8 {
            dropped += drop_special_files(&path, depth + 1);
        } else if kind.is_dir() {
            dropped += usize::from(std::fs::remove_dir_all(&path).is_ok());
        } else if !kind.is_file() {
            dropped += usize::from(std::fs::remove_file(&path).is_ok());
        }
    }
    dropped
}

fn read_tail(mut stream: impl Read) -> (String, usize) {
    let mut kept: Vec<u8> = Vec::new();
    let mut total = 0;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > STDERR_KEPT {
        kept.drain(..kept.len() - STDERR_KEPT);
    }
    (String::from_utf8_lossy(&kept).into_owned(), total)
}

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[(
    "plugins/**",
    "Written by an exec plugin (see its own documentation).",
)];

impl HookKind for ExecConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        Ok(Box::new(ExecHook::new(self.clone())?))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }

    fn program(&self) -> Option<String> {
        Some(match &self.command {
            CommandLine::List(argv) => format!("'{}' (command = {argv:?})", self.name),
            CommandLine::Text(text) => format!("'{}' (command = {text:?})", self.name),
        })
    }
}
