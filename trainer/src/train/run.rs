//! `zftrain train`: the loop. Everything that can be refused (config, data
//! folders, the checkpoint to resume) is checked before the run directory is
//! touched. Then, per epoch: train (logging to TensorBoard and the log
//! file), evaluate on the validation set, checkpoint. A non-finite loss stops
//! the run without a checkpoint; an interrupt checkpoints and stops.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tch::{Device, Kind, Tensor};
use tracing::{info, warn};
use zftrain_checkpoints::atomic::write_file;
use zftrain_checkpoints::Checkpoint;
use zftrain_data::loader::{Batch, LoaderConfig, Shard};
use zftrain_data::{Augment, Dataset, Loader, MeanImage, Transform};
use zftrain_hooks::{Control, Event, HookState};
use zftrain_model::arch::ArchConfig;
use zftrain_model::arch_file::write_arch;
use zftrain_model::Network;
use zftrain_tensorboard::{BackgroundWriter, HParamValue};

use crate::config::RunConfig;
use crate::devices::training_devices;
use crate::engine::{DataParallel, StepOptions};
use crate::train::checkpointing::{find_resume, read_mean_image, restore, save, MEAN_IMAGE_FILE};
use crate::train::cluster;
use crate::train::hooks::{probe_set, HookRunner};
use crate::train::metrics::Running;
use crate::train::prefetch::{to_tensors, Prefetch, Prepared, TensorLayout};
use crate::train::schedule::Schedule;
use crate::train::state::TrainerState;
use crate::weights::{ArchSpec, Model, WeightsInfo};

/// The architecture file a run directory keeps when it trains one.
pub const RUN_ARCH_FILE: &str = "arch.toml";

/// Interrupts requested (Ctrl-C, SIGTERM): the loop checkpoints and stops
/// after the current step when this is non-zero.
pub static STOP: AtomicUsize = AtomicUsize::new(0);

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Stopped by an interrupt (a checkpoint was written).
    pub interrupted: bool,
    /// Final state.
    pub state: TrainerState,
    /// Last validation top-1, if an epoch finished.
    pub val_top1: Option<f64>,
}

/// The data sets of a run, checked.
fn datasets(config: &RunConfig) -> Result<(Dataset, Dataset)> {
    let train = Dataset::open(&config.data.train)?;
    let val = match &config.data.val_list {
        Some(list) => Dataset::list_file(list, &config.data.val, train.classes.clone())?,
        None => Dataset::open(&config.data.val)?,
    };
    if config.data.val_list.is_none() && val.classes != train.classes {
        bail!(
            "the class folders of {} and {} differ ({} vs {} classes); they must be the same",
            config.data.train.display(),
            config.data.val.display(),
            train.classes.len(),
            val.classes.len()
        );
    }
    Ok((train, val))
}

fn loaders(
    config: &RunConfig,
    train: Dataset,
    val: Dataset,
    mean_image: Option<Arc<MeanImage>>,
    shard: Option<Shard>,
) -> Result<(Loader, Loader)> {
    let d = &config.data;
    let transform = |augment| -> Result<Transform> {
        let t = Transform {
            augment,
            resize: d.resize,
            crop: d.crop,
            mean: d.mean,
            std: d.std,
            mean_image: mean_image.clone(),
        };
        t.check()
            .map_err(|e| anyhow::anyhow!("data settings ({augment:?}): {e}"))?;
        Ok(t)
    };
    let base = LoaderConfig {
        batch_size: config.train.batch_size,
        workers: d.workers,
        queue_depth: d.queue_depth,
        shuffle: true,
        drop_last: false,
        seed: config.seed,
        bad_images: d.bad_images,
        max_pixels: d.max_pixels,
        shard: None,
    };
    let val_config = LoaderConfig {
        shuffle: false,
        ..base.clone()
    };
    let train_config = LoaderConfig { shard, ..base };
    Ok((
        Loader::new(train, transform(d.augment)?, train_config),
        Loader::new(val, transform(Augment::Eval)?, val_config),
    ))
}

/// The per-pixel mean image of a run with `data.pixel_mean`: from the
/// checkpoint when resuming (so a resumed run subtracts exactly the same),
/// else estimated from the training set.
fn pixel_mean(
    config: &RunConfig,
    train_set: &Dataset,
    resumed: Option<&Checkpoint>,
) -> Result<Option<Arc<MeanImage>>> {
    let d = &config.data;
    if !d.pixel_mean {
        return Ok(None);
    }
    if let Some(ck) = resumed {
        let mean = read_mean_image(ck)?.with_context(|| {
            format!(
                "data.pixel_mean is set but checkpoint {} has no {MEAN_IMAGE_FILE}",
                ck.dir().display()
            )
        })?;
        return Ok(Some(Arc::new(mean)));
    }
    let start = Instant::now();
    let est = MeanImage::estimate(
        train_set,
        d.resize,
        d.pixel_mean_images,
        d.max_pixels,
        d.workers.max(1),
    )?;
    for (path, why) in &est.skipped {
        warn!(file = %path.display(), reason = %why, "skipped for the per-pixel mean");
    }
    let means = est.mean.channel_means();
    info!(images = est.used, skipped = est.skipped.len(), seconds = start.elapsed().as_secs_f64(),
          channel_means = ?means, "per-pixel mean estimated");
    println!(
        "per-pixel mean of {} training images ({:.1} s)",
        est.used,
        start.elapsed().as_secs_f64()
    );
    Ok(Some(Arc::new(est.mean)))
}

/// A step's dropout seed: depends only on `(seed, step)`.
fn step_seed(seed: u64, step: u64) -> u64 {
    zftrain_data::rng::SplitMix64::for_stream(&[seed, step, 0xD40F]).next_u64()
}

fn set_up_logging(run_dir: &Path) -> Result<()> {
    let path = run_dir.join("train.log");
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A second run in the same process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}

fn report_skipped(tb: &BackgroundWriter, state: &mut TrainerState, batch: &Batch) -> Result<()> {
    let step = state.global_step as i64;
    if batch.skipped.is_empty() {
        return Ok(());
    }
    state.skipped_images += batch.skipped.len() as u64;
    let mut text = String::new();
    for (path, why) in &batch.skipped {
        warn!(file = %path.display(), reason = %why, "skipped an image that does not decode");
        text.push_str(&format!("- `{}`: {}\n", path.display(), why));
    }
    tb.text("data/skipped_images", step, &text)?;
    tb.scalar(
        "data/skipped_images_total",
        step,
        state.skipped_images as f64,
    )?;
    Ok(())
}

/// The hyper-parameters shown in TensorBoard's HParams dashboard.
fn hparams(config: &RunConfig, arch: &ArchSpec) -> Vec<(String, HParamValue)> {
    vec![
        ("arch".into(), HParamValue::Text(arch.name().to_string())),
        ("init".into(), as_text(&config.model.init)),
        ("lrn".into(), HParamValue::Bool(config.model.lrn)),
        ("dropout".into(), HParamValue::Number(config.model.dropout)),
        ("augment".into(), as_text(&config.data.augment)),
        (
            "epochs".into(),
            HParamValue::Number(config.train.epochs as f64),
        ),
        (
            "batch_size".into(),
            HParamValue::Number(config.train.batch_size as f64),
        ),
        ("precision".into(), as_text(&config.train.precision)),
        (
            "renorm_radius".into(),
            HParamValue::Number(config.train.renorm_radius),
        ),
        (
            "label_smoothing".into(),
            HParamValue::Number(config.train.label_smoothing),
        ),
        ("lr".into(), HParamValue::Number(config.optim.lr)),
        (
            "momentum".into(),
            HParamValue::Number(config.optim.momentum),
        ),
        (
            "weight_decay".into(),
            HParamValue::Number(config.optim.weight_decay),
        ),
        ("schedule".into(), as_text(&config.schedule.kind)),
        ("seed".into(), HParamValue::Number(config.seed as f64)),
    ]
}

/// A serializable value (an enum such as `zf`) as a text hyper-parameter.
fn as_text<T: serde::Serialize>(v: &T) -> HParamValue {
    let json = serde_json::to_string(v).unwrap_or_default();
    HParamValue::Text(json.trim_matches('"').to_string())
}

/// Runs (or resumes) training.
pub fn train(config: RunConfig, resume: Option<&Path>) -> Result<Outcome> {
    train_with_hooks(config, resume, Vec::new())
}

/// Sends `event` to the hooks, if any, at the trainer's position; whether
/// one of them asked to stop.
fn fire(
    hooks: &mut Option<HookRunner>,
    event: Event,
    net: &Network,
    state: &TrainerState,
    run_dir: &Path,
    tb: &BackgroundWriter,
) -> Result<bool> {
    Ok(match hooks {
        Some(h) => {
            h.event(
                event,
                net,
                state.epoch,
                state.global_step,
                run_dir,
                tb,
                false,
            )? == Control::Stop
        }
        None => false,
    })
}

/// Runs (or resumes) training with `extra` hooks of the caller's own
/// (registered after the configured ones; see `examples/custom_hook.rs`).
pub fn train_with_hooks(
    config: RunConfig,
    resume: Option<&Path>,
    extra: Vec<Box<dyn zftrain_hooks::Hook>>,
) -> Result<Outcome> {
    config.validate()?;
    // Devices first: a missing CUDA is an error before anything is written.
    let devices = training_devices(&config.train.gpus.ids(), config.train.cpu_replicas)?;
    let (train_set, val_set) = datasets(&config)?;
    let classes = train_set.classes.len() as i64;
    if config.model.classes != 0 && config.model.classes != classes {
        bail!(
            "config key 'model.classes' is {} but {} has {classes} class folders",
            config.model.classes,
            config.data.train.display()
        );
    }
    let arch_config = ArchConfig {
        classes,
        dropout: config.model.dropout,
        lrn: config.model.lrn,
    };
    let spec = config.model.arch_spec()?;
    let arch = spec.table(&arch_config)?;
    // A file's table is kept with the classes it trains.
    let spec = match spec {
        ArchSpec::Table(_) => ArchSpec::Table(arch.clone()),
        builtin => builtin,
    };
    let crop = config.data.crop as i64;
    if arch.input[1] != crop || arch.input[2] != crop || arch.input[0] != 3 {
        bail!(
            "config key 'data.crop' is {} (RGB crops) but {spec} takes {}x{}x{} input",
            config.data.crop,
            arch.input[0],
            arch.input[1],
            arch.input[2]
        );
    }
    // Several nodes: join them before anything is written.
    let link = cluster::join(&config, &devices, &train_set, &val_set)?;
    let node = config.cluster.node_rank;
    let lead = node == 0;
    // Only node 0 resumes (it sends the state to the others).
    let resume_from = match resume {
        Some(p) if lead => Some(find_resume(p)?),
        _ => None,
    };
    let run_dir = if lead {
        config.run_dir()
    } else {
        config.runs_dir.join(format!("{}.node-{node}", config.name))
    };
    if lead && resume_from.is_none() && run_dir.exists() {
        bail!("run directory {} already exists: pass --resume {} to continue it, or choose another --name", run_dir.display(), run_dir.display());
    }

    // Checks done: from here on the run directory is written.
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    write_file(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;
    if let ArchSpec::Table(table) = &spec {
        // The table as trained, so the run resumes without the user's file.
        write_file(&run_dir.join(RUN_ARCH_FILE), write_arch(table).as_bytes())?;
    }
    write_file(
        &run_dir.join("classes.txt"),
        (train_set.classes.join("\n") + "\n").as_bytes(),
    )?;
    set_up_logging(&run_dir)?;
    if config.train.threads > 0 {
        tch::set_num_threads(config.train.threads as i32);
    }

    let info = WeightsInfo {
        arch: spec.clone(),
        config: arch_config,
        mean: config.data.mean.map(f64::from),
        std: config.data.std.map(f64::from),
        class_names: Some(train_set.classes.clone()),
    };
    tch::manual_seed(config.seed as i64);
    let reducer = cluster::reducer(&config, link.as_ref(), &devices)?;
    info!(reducer = reducer.name(), devices = ?devices, "data parallel");
    if devices.iter().any(|d| d.is_cuda()) {
        tch::Cuda::cudnn_set_benchmark(config.train.cudnn_benchmark);
    }
    let mut dp = DataParallel::new(
        arch,
        config.model.init,
        &devices,
        config.optim.clone(),
        reducer,
    )?;
    if let Some(link) = &link {
        dp.set_link(Arc::clone(link));
    }
    let mut state = TrainerState::default();
    let tb = BackgroundWriter::create(&run_dir)?;
    if let Some((ck, skipped)) = &resume_from {
        for s in skipped {
            warn!("{s}");
            eprintln!("zftrain: {s}");
        }
        state = restore(ck, dp.primary(), &info, dp.primary_sgd())?;
        dp.broadcast_from_first();
        info!(checkpoint = %ck.dir().display(), epoch = state.epoch, step = state.global_step, "resumed");
        println!(
            "resumed from {} (epoch {}, step {})",
            ck.dir().display(),
            state.epoch + 1,
            state.global_step
        );
        tb.restart_at(state.global_step as i64 + 1)?;
    } else {
        tb.text(
            "run/config",
            0,
            &format!("```toml\n{}\n```", config.to_toml()),
        )?;
        let metrics = ["val/top1", "val/top5", "val/loss", "train/loss"];
        tb.hparams(hparams(&config, &spec), &metrics)?;
    }
    let mut schedule = Schedule {
        config: config.schedule.clone(),
        base_lr: config.optim.lr,
        epochs: config.train.epochs,
        state: state.schedule.clone(),
    };
    if let Some(link) = &link {
        // Node 0's weights, momentum and position to every node.
        dp.broadcast_across_nodes()?;
        cluster::share_state(link, &mut state, false)?;
        schedule.state = state.schedule.clone();
    }
    let shard = match &link {
        Some(l) => Some(cluster::shard(
            &*l.lock()
                .map_err(|_| anyhow::anyhow!("the node link is poisoned"))?,
        )),
        None => None,
    };
    let mean_image = pixel_mean(&config, &train_set, resume_from.as_ref().map(|(ck, _)| ck))?;
    let (train_loader, val_loader) =
        loaders(&config, train_set, val_set, mean_image.clone(), shard)?;
    let mut hooks = if !lead || (config.hooks.is_empty() && extra.is_empty()) {
        None
    } else {
        let probe = probe_set(&config, val_loader.dataset(), mean_image.clone())?;
        info!(
            images = probe.images.size()[0],
            hooks = config.hooks.len(),
            "probe set ready"
        );
        let mut runner = HookRunner::new(&config, probe)?;
        runner.device = devices[0];
        for hook in extra {
            runner.hooks.register(hook)?;
        }
        if let Some((ck, _)) = &resume_from {
            runner.restore(ck)?;
        }
        Some(runner)
    };
    // A checkpoint of everything: replica 0's weights and momentum, the
    // trainer state, the mean image and the hooks' states. TensorBoard is
    // flushed first, so every step a checkpoint holds has its points on
    // disk and a resumed curve has no gap.
    let checkpoint = |dp: &DataParallel, state: &TrainerState, hooks: &Option<HookRunner>| {
        tb.flush()?;
        let hook_states: Vec<(String, HookState)> = match hooks {
            Some(h) => h.states()?,
            None => Vec::new(),
        };
        save(
            &run_dir,
            &config,
            dp.primary(),
            &info,
            dp.primary_sgd(),
            state,
            mean_image.as_deref(),
            &hook_states,
        )
    };
    fire(
        &mut hooks,
        Event::TrainStart,
        dp.net(),
        &state,
        &run_dir,
        &tb,
    )?;
    let mut stop_requested = false;
    let per_epoch = train_loader.batches_per_epoch();
    let train_len = train_loader.dataset().len();
    let steps_per_epoch = match config.train.max_steps_per_epoch {
        0 => per_epoch,
        m => per_epoch.min(m as usize),
    };
    info!(run = %run_dir.display(), arch = %spec, classes, train_images = train_loader.dataset().len(),
          val_images = val_loader.dataset().len(), steps_per_epoch, "training");
    let kind = config
        .train
        .precision
        .compute_kind(devices[0] != Device::Cpu);
    if kind == Kind::Half {
        dp.scaler = Some(state.loss_scaler.clone().unwrap_or_default());
    }
    info!(precision = ?kind, "arithmetic (fp32 master weights)");
    let tty = std::io::stdout().is_terminal();
    let mut val_top1 = None;

    while state.epoch < config.train.epochs {
        let epoch = state.epoch;
        let bar = if tty {
            ProgressBar::with_draw_target(
                Some(steps_per_epoch as u64),
                ProgressDrawTarget::stdout(),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} eta {eta}")
                .expect("a valid template"),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, config.train.epochs));
        bar.set_position(state.batch as u64);
        let mut running = Running::default();
        let mut window = (Instant::now(), 0u64);
        let mut epoch_images = (Instant::now(), 0u64);
        let mut interrupted = false;
        let layout = TensorLayout {
            crop: config.data.crop,
            kind,
            channels_last: config.train.channels_last,
            pinned: devices.iter().any(|d| d.is_cuda()),
        };
        let batches = train_loader.epoch(epoch, state.batch);
        for prepared in Prefetch::new(&train_loader, batches, layout) {
            if state.batch >= steps_per_epoch {
                break;
            }
            let Prepared {
                batch,
                images,
                labels,
            } = prepared?;
            report_skipped(&tb, &mut state, &batch)?;
            state.batch += 1;
            // Alone, an all-bad batch is skipped; with other nodes this one
            // still takes part in the step (with no images).
            if batch.is_empty() && link.is_none() {
                continue;
            }
            let first_row = match shard {
                Some(sh) => {
                    let lo = (state.batch - 1) * config.train.batch_size;
                    let nominal = config.train.batch_size.min(train_len - lo);
                    sh.rows(nominal).start as i64
                }
                None => 0,
            };
            let lr = schedule.lr(epoch as f64 + (state.batch - 1) as f64 / steps_per_epoch as f64);
            let log_now = (state.global_step + 1) % config.train.log_every == 0;
            let opts = StepOptions {
                kind,
                label_smoothing: config.train.label_smoothing,
                lr,
                want_grad_norm: log_now,
                dropout_seed: Some(step_seed(config.seed, state.global_step)),
                first_row,
                stop: STOP.load(Ordering::SeqCst) > 0 || stop_requested,
                channels_last: config.train.channels_last,
            };
            let out = dp.step(&images, &labels, &opts)?;
            if out.images == 0.0 {
                // Every node's rows of this batch failed to decode: no step.
                if out.stop {
                    interrupted = true;
                    break;
                }
                continue;
            }
            let stop_everywhere = out.stop;
            let (loss_value, logits, grad_norm) = (out.loss, out.logits, out.grad_norm);
            if out.skipped {
                warn!(
                    step = state.global_step,
                    "fp16 gradients overflowed; step skipped, loss scale halved"
                );
            }
            state.loss_scaler = dp.scaler.clone();
            if !loss_value.is_finite() {
                bail!(
                    "the training loss became {loss_value} at epoch {}, step {}; stopping without a checkpoint (the newest good one stays 'latest'). Try a lower optim.lr or train.renorm_radius = 0.1",
                    epoch + 1,
                    state.global_step
                );
            }
            if config.train.renorm_radius > 0.0 {
                dp.renormalize(config.train.renorm_radius);
            }
            state.global_step += 1;
            tch::no_grad(|| running.add(&logits, &labels, loss_value));
            stop_requested |= fire(&mut hooks, Event::StepEnd, dp.net(), &state, &run_dir, &tb)?;
            window.1 += batch.len() as u64;
            epoch_images.1 += batch.len() as u64;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.3} top1 {:.1}% {:.1} img/s",
                running.mean_loss(),
                100.0 * running.top1(),
                epoch_images.1 as f64 / epoch_images.0.elapsed().as_secs_f64().max(1e-9)
            ));
            if let Some(norm) = grad_norm {
                let step = state.global_step as i64;
                let ips = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
                tb.scalar("train/loss", step, running.mean_loss())?;
                tb.scalar("train/top1", step, running.top1())?;
                tb.scalar("train/lr", step, lr)?;
                tb.scalar("train/images_per_sec", step, ips)?;
                tb.scalar("train/grad_norm", step, norm)?;
                info!(
                    epoch = epoch + 1,
                    step,
                    loss = running.mean_loss(),
                    top1 = running.top1(),
                    lr,
                    images_per_sec = ips,
                    "train"
                );
                window = (Instant::now(), 0);
            }
            let every = config.checkpoint.every_steps;
            if lead && every > 0 && state.global_step % every == 0 && state.batch < steps_per_epoch
            {
                // Within the epoch (its end writes one anyway): bounds what a
                // crash can lose.
                state.schedule = schedule.state.clone();
                let path = checkpoint(&dp, &state, &hooks)?;
                info!(checkpoint = %path.display(), step = state.global_step, "periodic checkpoint");
            }
            let stop = match &link {
                // Every node learns of a stop in the same step.
                Some(_) => stop_everywhere,
                None => STOP.load(Ordering::SeqCst) > 0 || stop_requested,
            };
            if stop {
                interrupted = true;
                break;
            }
        }
        bar.finish_and_clear();
        if interrupted && !lead {
            tb.flush()?;
            println!("node {node}: stopped with node 0 (which writes the checkpoint)");
            return Ok(Outcome {
                run_dir,
                interrupted: STOP.load(Ordering::SeqCst) > 0,
                state,
                val_top1,
            });
        }
        if interrupted {
            state.schedule = schedule.state.clone();
            let path = checkpoint(&dp, &state, &hooks)?;
            info!(checkpoint = %path.display(), "interrupted; checkpoint written");
            // With other nodes, a stop that no hook here asked for came
            // from a signal on some node.
            let signalled = STOP.load(Ordering::SeqCst) > 0 || (link.is_some() && !stop_requested);
            println!(
                "{}: wrote {} (resume with --resume {})",
                if signalled {
                    "interrupted"
                } else {
                    "a hook asked to stop"
                },
                path.display(),
                run_dir.display()
            );
            return Ok(Outcome {
                run_dir,
                interrupted: signalled,
                state,
                val_top1,
            });
        }
        if !lead {
            // Node 0 evaluates, runs the hooks and checkpoints; then sends
            // its state (schedule included).
            let link = link
                .as_ref()
                .expect("only multi-node runs have other nodes");
            tb.flush()?;
            let stop = cluster::share_state(link, &mut state, false)?;
            schedule.state = state.schedule.clone();
            println!(
                "node {node}: epoch {}/{}: train loss {:.4} top1 {:.1}% (on this node's rows)",
                epoch + 1,
                config.train.epochs,
                running.mean_loss(),
                100.0 * running.top1()
            );
            if stop {
                break;
            }
            continue;
        }
        let val = evaluate(
            dp.primary(),
            devices[0],
            &val_loader,
            &config,
            kind,
            &tb,
            &mut state,
        )?;
        let step = state.global_step as i64;
        tb.scalar("val/loss", step, val.mean_loss())?;
        tb.scalar("val/top1", step, val.top1())?;
        tb.scalar("val/top5", step, val.top5())?;
        schedule.epoch_end(val.top1());
        state.schedule = schedule.state.clone();
        state.epoch += 1;
        state.batch = 0;
        if val.top1() > state.best_top1 || state.best_step.is_none() {
            state.best_top1 = val.top1();
            state.best_step = Some(state.global_step);
        }
        val_top1 = Some(val.top1());
        stop_requested |= fire(&mut hooks, Event::EpochEnd, dp.net(), &state, &run_dir, &tb)?;
        let path = checkpoint(&dp, &state, &hooks)?;
        fire(
            &mut hooks,
            Event::Checkpoint,
            dp.net(),
            &state,
            &run_dir,
            &tb,
        )?;
        tb.flush()?;
        if let Some(link) = &link {
            cluster::share_state(link, &mut state, stop_requested)?;
        }
        info!(epoch = epoch + 1, train_loss = running.mean_loss(), train_top1 = running.top1(), val_loss = val.mean_loss(),
              val_top1 = val.top1(), val_top5 = val.top5(), checkpoint = %path.display(), "epoch done");
        println!(
            "epoch {}/{}: train loss {:.4} top1 {:.1}% | val loss {:.4} top1 {:.1}% top5 {:.1}%",
            epoch + 1,
            config.train.epochs,
            running.mean_loss(),
            100.0 * running.top1(),
            val.mean_loss(),
            100.0 * val.top1(),
            100.0 * val.top5()
        );
        if stop_requested {
            println!("a hook asked to stop: wrote {}", path.display());
            break;
        }
    }
    if !stop_requested {
        fire(&mut hooks, Event::TrainEnd, dp.net(), &state, &run_dir, &tb)?;
    }
    tb.flush()?;
    Ok(Outcome {
        run_dir,
        interrupted: false,
        state,
        val_top1,
    })
}

/// Loss, top-1 and top-5 on the validation set (eval mode, no gradients).
fn evaluate(
    model: &Model,
    device: Device,
    loader: &Loader,
    config: &RunConfig,
    kind: Kind,
    tb: &BackgroundWriter,
    state: &mut TrainerState,
) -> Result<Running> {
    let mut r = Running::default();
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        report_skipped(tb, state, &batch)?;
        if batch.is_empty() {
            continue;
        }
        let layout = TensorLayout {
            crop: config.data.crop,
            kind,
            channels_last: config.train.channels_last,
            pinned: false,
        };
        let (images, labels) = to_tensors(&batch, &layout).context("a validation batch")?;
        loader.recycle(batch);
        tch::no_grad(|| {
            let images = images.to_device(device);
            let logits = model
                .net
                .forward(&images, false)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            let loss =
                logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0);
            r.add(&logits, &labels, loss.double_value(&[]));
        });
    }
    if r.n == 0 {
        bail!(
            "no validation image could be decoded ({} files)",
            loader.dataset().len()
        );
    }
    Ok(r)
}
