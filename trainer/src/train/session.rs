//! The training session: a [`Trainer`] is set up once ([`Trainer::new`]:
//! everything that can be refused is checked before the run directory is
//! touched), then [`Trainer::fit`] runs epochs, [`Trainer::train_epoch`]
//! runs steps and [`Trainer::step`] takes one. The loop only steps,
//! validates and tells its [callbacks](crate::train::callbacks) what
//! happened; they log, checkpoint, draw progress and run the hooks. A
//! non-finite loss stops the run without a checkpoint; a stop (the
//! [`StopHandle`], or a callback's request) checkpoints and stops.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use tch::{Device, Kind};
use tracing::{info, warn};
use zftrain_checkpoints::Checkpoint;
use zftrain_data::loader::Shard;
use zftrain_data::{Dataset, Loader, MeanImage};
use zftrain_hooks::{Hook, HookSpec, HookState, Hooks};
use zftrain_model::Arch;
use zftrain_tensorboard::{BackgroundWriter, SessionStatus};

use crate::config::RunConfig;
use crate::train::callbacks::{
    self, Callback, CheckpointKind, Context, EpochReport, HooksAdapter, Pace, Requests, StepReport,
};
use crate::train::checkpointing::{restore, save, Snapshot};
use crate::train::checks::Checked;
use crate::train::cluster;
use crate::train::evaluate::evaluate;
use crate::train::hooks::{read_states, HookRunner};
use crate::train::lock::RunLock;
use crate::train::metrics::Running;
use crate::train::prefetch::{Prefetch, Prepared, TensorLayout};
use crate::train::probe::LoaderProbe;
use crate::train::role::Role;
use crate::train::schedule::LrSchedule;
use crate::train::setup;
use crate::train::state::TrainerState;
use crate::train::stop::StopHandle;
use crate::train::ticker::Ticker;
use crate::train::transfer::{LayerPolicy, StartWeights};
use crate::weights::{ArchSpec, WeightsInfo};
use zftrain_hooks::ProbeSet;
use zftrain_parallel::{DataParallel, StepOptions, StepOutput};

/// How to run a session besides its configuration.
#[derive(Default)]
pub struct TrainOptions {
    /// A run directory or checkpoint to resume.
    pub resume: Option<PathBuf>,
    /// Asks the session to checkpoint and stop after its current step.
    pub stop: StopHandle,
    /// Hooks of the caller's own, registered after the configured ones (see
    /// `examples/custom_hook.rs`).
    pub hooks: Vec<Box<dyn Hook>>,
    /// Callbacks of the caller's own, after the standard ones.
    pub callbacks: Vec<Box<dyn Callback>>,
    /// Start a run directory that has no checkpoint over from the
    /// beginning (one with checkpoints is never started over).
    pub restart: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Stopped by a signal (a checkpoint was written).
    pub interrupted: bool,
    /// Final state.
    pub state: TrainerState,
    /// Last validation top-1, if an epoch finished.
    pub val_top1: Option<f64>,
}

/// Runs (or resumes) training: [`Trainer::new`] then [`Trainer::fit`].
pub fn train(config: RunConfig, options: TrainOptions) -> Result<Outcome> {
    Trainer::new(config, options)?.fit()
}

/// Whether training goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Take the next step.
    Next,
    /// Stop (every node stops in the same step).
    Stop,
}

/// What stays the same through a run's steps.
struct Plan {
    steps_per_epoch: usize,
    layout: TensorLayout,
    /// This node's devices; replica 0's first.
    devices: Vec<Device>,
    device: Device,
    train_len: usize,
}

impl Plan {
    fn new(config: &RunConfig, devices: &[Device], train: &Loader) -> Result<Plan> {
        let per_epoch = train.batches_per_epoch();
        let gpu = devices.iter().any(|d| d.is_cuda());
        Ok(Plan {
            steps_per_epoch: match config.train.max_steps_per_epoch {
                0 => per_epoch,
                m => per_epoch.min(m as usize),
            },
            layout: TensorLayout {
                crop: config.data.crop,
                kind: config
                    .train
                    .precision
                    .compute_kind(devices[0] != Device::Cpu)?,
                channels_last: config.train.channels_last,
                pinned: gpu,
            },
            devices: devices.to_vec(),
            device: devices[0],
            train_len: train.dataset().len(),
        })
    }
}

/// Everything of a session but its callbacks (which see it through a
/// [`Context`]).
struct Core {
    config: RunConfig,
    run_dir: PathBuf,
    role: Role,
    stop: StopHandle,
    dp: DataParallel,
    state: TrainerState,
    schedule: LrSchedule,
    train_loader: Loader,
    val_loader: Loader,
    shard: Option<Shard>,
    tb: BackgroundWriter,
    info: WeightsInfo,
    mean_image: Option<Arc<MeanImage>>,
    plan: Plan,
    /// A callback asked to stop.
    asked_to_stop: bool,
    pace: Pace,
    val_top1: Option<f64>,
    /// Held to the end of the session (one writer per run directory).
    _lock: RunLock,
}

/// A training session.
pub struct Trainer {
    core: Core,
    callbacks: Vec<Box<dyn Callback>>,
    /// The callbacks' states from before an epoch's end that a stop cut
    /// short: what the stop checkpoint saves.
    rollback: Option<Vec<(String, HookState)>>,
}

/// How an epoch's end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EpochEnd {
    /// Done; the next epoch follows.
    Next,
    /// Done, and a hook (or node 0) asked to stop.
    Stop,
    /// A stop was requested before it was done; it is redone on resume.
    Interrupted,
}

impl Trainer {
    /// Sets a run up: checks the configuration, devices, data and the
    /// checkpoint to resume, joins the other nodes, then writes the run
    /// directory and builds the engine, loaders and callbacks.
    pub fn new(config: RunConfig, options: TrainOptions) -> Result<Trainer> {
        let c = Checked::new(
            &config,
            options.hooks,
            &options.callbacks,
            (options.resume.as_deref(), options.restart),
        )?;
        // Checks done: from here on the run directory is written.
        open_run(&config, &c)?;
        let mut dp = engine(&config, &c.role, &c.pre.devices, c.pre.arch)?;
        let start_checkpoint = start_weights(&mut dp, &c.pre.policy, c.place.start_weights)?;
        let tb = crate::train::tags::open_writer(&c.place.run_dir)?;
        let resumed = c.place.resume_from.as_ref().map(|(ck, _)| ck);
        let mut state = match &c.place.resume_from {
            Some((ck, skipped)) => resume(ck, skipped, &mut dp, &c.pre.info, &tb)?,
            None => TrainerState::default(),
        };
        c.role.share_start(&mut dp, &mut state)?;
        let shard = c.role.shard()?;
        let starts = (resumed, start_checkpoint.as_ref());
        let sets = (c.pre.train_set, c.pre.val_set);
        let (mean_image, train_loader, val_loader) = data(&config, sets, starts, shard)?;
        let plan = Plan::new(&config, &c.pre.devices, &train_loader)?;
        if c.place.resume_from.is_none() {
            start_history(
                &tb,
                &config,
                (&c.pre.spec, c.pre.info.config.classes),
                &plan,
            )?;
        }
        let hooks = match c.role.keeps_the_run() {
            true => {
                let data = (train_loader.dataset(), &val_loader);
                hooks_adapter(
                    &config,
                    c.pre.hooks,
                    data,
                    &mean_image,
                    &plan,
                    &options.stop,
                )?
            }
            false => None,
        };
        let callbacks = session_callbacks(&config, &c.role, hooks, options.callbacks, resumed)?;
        // fp16's loss scale: the engine owns it from here.
        dp.scaler =
            (plan.layout.kind == Kind::Half).then(|| state.loss_scaler.clone().unwrap_or_default());
        info!(run = %c.place.run_dir.display(), arch = %c.pre.spec, classes = c.pre.info.config.classes,
              train_images = plan.train_len, val_images = val_loader.dataset().len(),
              steps_per_epoch = plan.steps_per_epoch, precision = ?plan.layout.kind, "training (fp32 master weights)");
        let core = Core {
            schedule: LrSchedule::of(&config),
            config,
            run_dir: c.place.run_dir,
            role: c.role,
            stop: options.stop,
            dp,
            state,
            train_loader,
            val_loader,
            shard,
            tb,
            info: c.pre.info,
            mean_image,
            plan,
            asked_to_stop: false,
            pace: Pace::start(&TrainerState::default()),
            val_top1: None,
            _lock: c.lock,
        };
        Ok(Trainer {
            core,
            callbacks,
            rollback: None,
        })
    }

    /// Trains until the configured epochs are done or something stops it.
    /// TensorBoard's HParams dashboard gets the end: success when all the
    /// epochs are done, failure on an error; a stop (to be resumed) leaves
    /// the session open.
    pub fn fit(mut self) -> Result<Outcome> {
        match self.epochs() {
            Ok(false) => {}
            Ok(true) => return self.stopped(),
            Err(e) => {
                let e = self.checkpoint_after_lost_node(e);
                let _ = self.core.tb.session_end(SessionStatus::Failure);
                let _ = self.core.tb.flush();
                return Err(e);
            }
        }
        if !self.core.asked_to_stop {
            self.tell(|cb, ctx| cb.on_train_end(ctx))?;
        }
        if self.core.stop.requested() {
            // The end-of-training hooks were cut short; the last checkpoint
            // holds the finished training, and a resume runs them again.
            self.core.tb.flush()?;
            println!(
                "interrupted during the end of training: resume with --resume {} to run its hooks again",
                self.core.run_dir.display()
            );
            return Ok(self.core.outcome(true));
        }
        if self.core.state.epoch >= self.core.config.train.epochs {
            self.core.tb.session_end(SessionStatus::Success)?;
        }
        self.core.tb.flush()?;
        Ok(self.core.outcome(false))
    }

    /// The epochs left; `true` when a stop ended them early.
    fn epochs(&mut self) -> Result<bool> {
        // From here a stop ends with a checkpoint (before, there is none to write).
        self.core.stop.arm();
        self.core.pace = Pace::start(&self.core.state);
        let asked = self.emit(|cb, ctx| cb.on_train_start(ctx))?;
        self.core.asked_to_stop |= asked.stop;
        while self.core.state.epoch < self.core.config.train.epochs {
            let Some(running) = self.train_epoch()? else {
                return Ok(true);
            };
            match self.end_epoch(&running)? {
                EpochEnd::Next => {}
                EpochEnd::Stop => break,
                EpochEnd::Interrupted => return Ok(true),
            }
        }
        Ok(false)
    }

    /// One epoch's training pass, from the state's batch cursor; its
    /// running loss and accuracy, or `None` when it stopped early.
    pub fn train_epoch(&mut self) -> Result<Option<Running>> {
        let c = &mut self.core;
        c.pace.epoch_started(&c.state);
        self.tell(|cb, ctx| cb.on_epoch_start(ctx))?;
        let c = &self.core;
        let batches = c.train_loader.epoch(c.state.epoch, c.state.batch);
        let prefetch = Prefetch::new(&c.train_loader, batches, c.plan.layout);
        // The epoch's steps before a resume count too.
        let mut running = c.state.epoch_running.clone();
        let mut flow = Flow::Next;
        for prepared in prefetch {
            if self.core.state.batch >= self.core.plan.steps_per_epoch {
                break;
            }
            flow = self.step(prepared?, &mut running)?;
            if flow == Flow::Stop {
                break;
            }
        }
        self.tell(|cb, ctx| cb.on_train_epoch_end(ctx))?;
        Ok((flow == Flow::Next).then_some(running))
    }

    /// One optimizer step on a prepared batch (every node takes part, even
    /// with no image of its own), its result added to `running`.
    pub fn step(&mut self, prepared: Prepared, running: &mut Running) -> Result<Flow> {
        let Prepared {
            batch,
            images,
            labels,
        } = prepared;
        self.report_skipped(&batch.skipped)?;
        self.core.state.batch += 1;
        if batch.is_empty() && self.core.role.skips_empty_batches() {
            return Ok(Flow::Next);
        }
        let opts = self.core.step_options();
        let out = self.core.dp.step(&images, &labels, &opts)?;
        if out.images == 0.0 {
            // Every node's rows of this batch failed to decode: no step.
            return Ok(if out.stop { Flow::Stop } else { Flow::Next });
        }
        let clipped = self.core.after_step(&out)?;
        tch::no_grad(|| running.add(&out.logits, &labels, out.loss));
        self.core.state.epoch_running = running.clone();
        let report = StepReport {
            loss: out.loss,
            lr: opts.lr,
            running,
            images: batch.len(),
            logged: opts.want_grad_norm,
            grad_norm: out.grad_norm,
            // Read (a wait for the device) only on the steps that log.
            renorm_clipped: clipped
                .filter(|_| opts.want_grad_norm)
                .map(|t| t.int64_value(&[]) as u64),
        };
        let asked = self.emit(|cb, ctx| cb.on_step_end(ctx, &report))?;
        self.act(asked, CheckpointKind::Periodic)?;
        let c = &self.core;
        let here = c.stop.requested() || c.asked_to_stop;
        Ok(match c.role.stops_after_step(out.stop, here) {
            true => Flow::Stop,
            false => Flow::Next,
        })
    }

    /// After an epoch's training pass: validation, the schedule, the
    /// callbacks, the checkpoint, node 0's state to the others. Whether to
    /// go on; a stop requested during validation or the callbacks (the
    /// hooks' passes) leaves the epoch's end undone, to be redone on resume.
    fn end_epoch(&mut self, running: &Running) -> Result<EpochEnd> {
        if !self.core.role.keeps_the_run() {
            return Ok(match self.follow_epoch(running)? {
                true => EpochEnd::Stop,
                false => EpochEnd::Next,
            });
        }
        // What the stop checkpoint holds if the epoch's end is cut short
        // (taken before validation, which counts the images it skips).
        let before = self.core.state.clone();
        let Some(val) = self.validate()? else {
            self.core.state = before;
            return self.interrupted_epoch_end("validation");
        };
        let states = self.callback_states()?;
        let c = &mut self.core;
        c.schedule.epoch_end(&mut c.state.schedule, val.top1());
        c.state.epoch += 1;
        c.state.batch = 0;
        c.state.epoch_running = Running::default();
        c.state.record_val(val.top1());
        c.val_top1 = Some(val.top1());
        let report = EpochReport {
            epoch: c.state.epoch,
            train: running,
            val: Some(&val),
        };
        let Some(asked) = self.emit_unless_stopped(|cb, ctx| cb.on_epoch_end(ctx, &report))? else {
            self.core.state = before;
            self.rollback = Some(states);
            return self.interrupted_epoch_end("the epoch's hooks");
        };
        let path = self.act(asked, CheckpointKind::EpochEnd)?;
        let c = &mut self.core;
        c.tb.flush()?;
        let stop = c.role.share_epoch_end(&mut c.state, c.asked_to_stop)?;
        if stop {
            match path {
                Some(path) => println!("a hook asked to stop: wrote {}", path.display()),
                None => println!("a hook asked to stop"),
            }
        }
        Ok(match stop {
            true => EpochEnd::Stop,
            false => EpochEnd::Next,
        })
    }

    /// A stop during `phase` of the epoch's end: the other nodes are told,
    /// and the stop checkpoint holds the epoch's last step with its end to
    /// do, so a resume validates and runs the hooks again.
    fn interrupted_epoch_end(&mut self, phase: &str) -> Result<EpochEnd> {
        info!(phase, "stop requested: the epoch's end is redone on resume");
        println!("stopping during {phase}: it is redone on resume");
        let c = &mut self.core;
        c.role.share_epoch_end(&mut c.state, true)?;
        Ok(EpochEnd::Interrupted)
    }

    /// Every callback's state, as a checkpoint holds it.
    fn callback_states(&self) -> Result<Vec<(String, HookState)>> {
        states_of(&self.callbacks)
    }

    /// A follower's epoch end: node 0's state (and whether to stop).
    fn follow_epoch(&mut self, running: &Running) -> Result<bool> {
        let c = &mut self.core;
        c.tb.flush()?;
        let stop = c.role.share_epoch_end(&mut c.state, false)?;
        let report = EpochReport {
            epoch: c.state.epoch,
            train: running,
            val: None,
        };
        self.emit(|cb, ctx| cb.on_epoch_end(ctx, &report))?;
        Ok(stop)
    }

    /// Loss, top-1 and top-5 on the validation set; `None` when a stop
    /// was requested before it was done.
    fn validate(&mut self) -> Result<Option<Running>> {
        let c = &self.core;
        let layout = TensorLayout {
            pinned: false,
            ..c.plan.layout
        };
        let images = c.val_loader.dataset().len();
        let mut ticker = Ticker::new("validation", images, c.config.train.log_every_s);
        let Some((val, skipped)) = evaluate(
            c.dp.primary(),
            c.plan.device,
            &c.val_loader,
            &layout,
            &mut ticker,
            &c.stop,
        )?
        else {
            return Ok(None);
        };
        ticker.finish();
        self.report_skipped(&skipped)?;
        Ok(Some(val))
    }

    /// Node 0, when another node was lost (it closed its connection, went
    /// silent past `cluster.timeout_s`, or a collective failed): the
    /// replicas still hold the weights of the last whole step (the failed
    /// step never reached the optimizer), so they are checkpointed, and
    /// the error says where. Any other error is returned as it is.
    fn checkpoint_after_lost_node(&mut self, e: anyhow::Error) -> anyhow::Error {
        use zftrain_parallel::ParallelError;
        let lost = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<ParallelError>(),
                Some(ParallelError::Link(_) | ParallelError::Nccl(_))
            )
        });
        if !lost || !self.core.role.keeps_the_run() || self.core.role.link().is_none() {
            return e;
        }
        match self.checkpoint(CheckpointKind::Stop) {
            Ok(path) => e.context(format!(
                "a node was lost; node 0 wrote {} (resume from it once every node is back)",
                path.display()
            )),
            Err(c) => e.context(format!(
                "a node was lost, and the checkpoint failed too: {c:#}"
            )),
        }
    }

    /// A stop within an epoch: the node that keeps the run checkpoints.
    fn stopped(mut self) -> Result<Outcome> {
        let signalled = self.core.stop.requested();
        if !self.core.role.keeps_the_run() {
            self.core.tb.flush()?;
            println!(
                "node {}: stopped with node 0 (which writes the checkpoint)",
                self.core.role.node()
            );
            return Ok(self.core.outcome(signalled));
        }
        let path = self.checkpoint(CheckpointKind::Stop)?;
        info!(checkpoint = %path.display(), "stopped; checkpoint written");
        // With other nodes, a stop that nothing here asked for came from a
        // signal on some node.
        let c = &self.core;
        let signalled = signalled || (c.role.link().is_some() && !c.asked_to_stop);
        println!(
            "{}: wrote {} (resume with --resume {})",
            if signalled {
                "interrupted"
            } else {
                "a hook asked to stop"
            },
            path.display(),
            c.run_dir.display()
        );
        Ok(c.outcome(signalled))
    }

    /// Does what callbacks asked: remembers a stop, writes a checkpoint
    /// (on the node that keeps the run).
    fn act(&mut self, asked: Requests, kind: CheckpointKind) -> Result<Option<PathBuf>> {
        self.core.asked_to_stop |= asked.stop;
        if asked.checkpoint && self.core.role.keeps_the_run() {
            return self.checkpoint(kind).map(Some);
        }
        Ok(None)
    }

    /// Writes a checkpoint of everything, the callbacks' states included,
    /// and tells the callbacks.
    fn checkpoint(&mut self, kind: CheckpointKind) -> Result<PathBuf> {
        // After an epoch's end was cut short: the callbacks' states from
        // before it, which the resumed run's redone end starts from.
        let states = match self.rollback.take() {
            Some(states) => states,
            None => self.callback_states()?,
        };
        let path = self.core.save(&states)?;
        self.tell(|cb, ctx| cb.on_checkpoint(ctx, &path, kind))?;
        Ok(path)
    }

    fn report_skipped(&mut self, skipped: &[(PathBuf, String)]) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        self.core.state.skipped_images += skipped.len() as u64;
        self.tell(|cb, ctx| cb.on_skipped(ctx, skipped))
    }

    /// Tells every callback, in order; their requests merged.
    fn emit(
        &mut self,
        mut f: impl FnMut(&mut dyn Callback, &Context<'_>) -> Result<Requests>,
    ) -> Result<Requests> {
        let ctx = self.core.context();
        let mut asked = Requests::NONE;
        for cb in &mut self.callbacks {
            asked = asked.merge(f(cb.as_mut(), &ctx)?);
        }
        Ok(asked)
    }

    /// As [`Trainer::emit`], but no callback after a stop request hears
    /// the event: `None` when one came in while it was being sent.
    fn emit_unless_stopped(
        &mut self,
        mut f: impl FnMut(&mut dyn Callback, &Context<'_>) -> Result<Requests>,
    ) -> Result<Option<Requests>> {
        let ctx = self.core.context();
        let mut asked = Requests::NONE;
        for cb in &mut self.callbacks {
            asked = asked.merge(f(cb.as_mut(), &ctx)?);
            if self.core.stop.requested() {
                return Ok(None);
            }
        }
        Ok(Some(asked))
    }

    /// Tells every callback of an event that asks nothing back.
    fn tell(
        &mut self,
        mut f: impl FnMut(&mut dyn Callback, &Context<'_>) -> Result<()>,
    ) -> Result<()> {
        self.emit(|cb, ctx| f(cb, ctx).map(|()| Requests::NONE))
            .map(|_| ())
    }
}

impl Core {
    fn context(&self) -> Context<'_> {
        Context {
            config: &self.config,
            run_dir: &self.run_dir,
            state: &self.state,
            net: self.dp.net(),
            device: self.plan.device,
            replicas: self.dp.nets(),
            tb: &self.tb,
            role: &self.role,
            steps_per_epoch: self.plan.steps_per_epoch,
            pace: &self.pace,
        }
    }

    /// The options of the step at the state's position (its batch counted).
    fn step_options(&self) -> StepOptions {
        let (c, s, p) = (&self.config, &self.state, &self.plan);
        let first_row = match self.shard {
            Some(sh) => {
                let lo = (s.batch - 1) * c.train.batch_size;
                sh.rows(c.train.batch_size.min(p.train_len - lo)).start as i64
            }
            None => 0,
        };
        StepOptions {
            kind: p.layout.kind,
            label_smoothing: c.train.label_smoothing,
            lr: self.schedule.lr(
                s.epoch as f64 + (s.batch - 1) as f64 / p.steps_per_epoch as f64,
                &s.schedule,
            ),
            want_grad_norm: c.train.logs_step(s.global_step + 1),
            dropout_seed: Some(setup::step_seed(c.seed, s.global_step)),
            first_row,
            stop: self.stop.requested() || self.asked_to_stop,
            channels_last: c.train.channels_last,
        }
    }

    /// After the engine's step: the loss scale, the finite-loss check, ZF's
    /// renormalization (the filters it rescaled, unread, when it is on), the
    /// step counted.
    fn after_step(&mut self, out: &StepOutput) -> Result<Option<tch::Tensor>> {
        if out.skipped {
            warn!(
                step = self.state.global_step,
                "fp16 gradients overflowed; step skipped, loss scale halved"
            );
        }
        if !out.loss.is_finite() {
            bail!(
                "the training loss became {} at epoch {}, step {}; stopping without a checkpoint (the newest good one stays 'latest'). Try a lower optim.lr or train.renorm_radius = 0.1",
                out.loss,
                self.state.epoch + 1,
                self.state.global_step
            );
        }
        let clipped = (self.config.train.renorm_radius > 0.0)
            .then(|| self.dp.renormalize(self.config.train.renorm_radius));
        self.state.global_step = self
            .state
            .global_step
            .checked_add(1)
            .filter(|&s| s <= crate::train::state::MAX_STEPS)
            .ok_or_else(|| anyhow::anyhow!("the step counter reached its limit"))?;
        Ok(clipped)
    }

    /// A checkpoint of replica 0's weights and momentum, the trainer state,
    /// the mean image and `states`. TensorBoard is flushed first, so every
    /// step a checkpoint holds has its points on disk and a resumed curve
    /// has no gap.
    fn save(&mut self, states: &[(String, zftrain_hooks::HookState)]) -> Result<PathBuf> {
        // The engine owns the live loss scale; the state records it here.
        self.state.loss_scaler = self.dp.scaler.clone();
        self.tb.flush()?;
        save(
            &self.run_dir,
            &Snapshot {
                config: &self.config,
                model: self.dp.primary(),
                info: &self.info,
                sgd: self.dp.primary_sgd(),
                state: &self.state,
                mean_image: self.mean_image.as_deref(),
                hook_states: states,
            },
        )
    }

    fn outcome(&self, interrupted: bool) -> Outcome {
        Outcome {
            run_dir: self.run_dir.clone(),
            interrupted,
            state: self.state.clone(),
            val_top1: self.val_top1,
        }
    }
}

/// The data-parallel engine on `devices`, its reducer spanning the nodes.
fn engine(config: &RunConfig, role: &Role, devices: &[Device], arch: Arch) -> Result<DataParallel> {
    let reducer = cluster::reducer(config, role.link(), devices)?;
    info!(reducer = reducer.name(), devices = ?devices, "data parallel");
    if devices.iter().any(|d| d.is_cuda()) {
        tch::Cuda::cudnn_set_benchmark(config.train.cudnn_benchmark);
    }
    let mut dp = DataParallel::new(
        arch,
        config.model.init_config(),
        devices,
        config.optim.clone(),
        reducer,
    )?;
    if let Some(link) = role.link() {
        dp.set_link(Arc::clone(link));
    }
    Ok(dp)
}

/// Restores a checkpoint into every replica; its state.
fn resume(
    ck: &Checkpoint,
    skipped: &[String],
    dp: &mut DataParallel,
    info: &WeightsInfo,
    tb: &BackgroundWriter,
) -> Result<TrainerState> {
    for s in skipped {
        crate::say::warning(s);
    }
    let state = restore(ck, dp.primary(), info, dp.primary_sgd())?;
    dp.broadcast_from_first();
    info!(checkpoint = %ck.dir().display(), epoch = state.epoch, step = state.global_step, "resumed");
    println!(
        "resumed from {} (epoch {}, step {})",
        ck.dir().display(),
        state.epoch + 1,
        state.global_step
    );
    tb.restart_at(state.global_step as i64 + 1)?;
    Ok(state)
}

/// The per-pixel mean image (estimated, or the checkpoint's resumed or
/// started from: `starts`), and the loaders of the training set (this
/// node's `shard` of it) and of the validation set.
fn data(
    config: &RunConfig,
    (train, val): (Dataset, Dataset),
    (resumed, start): (Option<&Checkpoint>, Option<&Checkpoint>),
    shard: Option<Shard>,
) -> Result<(Option<Arc<MeanImage>>, Loader, Loader)> {
    let mean_image = setup::pixel_mean(config, &train, resumed, start)?;
    let (train_loader, val_loader) = setup::loaders(config, train, val, mean_image.clone(), shard)?;
    Ok((mean_image, train_loader, val_loader))
}

/// A new run's first TensorBoard entries: its configuration and the
/// hyper-parameters (`spec` with its classes, the devices and precision
/// of `plan`).
fn start_history(
    tb: &BackgroundWriter,
    config: &RunConfig,
    (spec, classes): (&ArchSpec, i64),
    plan: &Plan,
) -> Result<()> {
    let resolved = setup::Resolved {
        precision: plan.layout.kind,
        devices: &plan.devices,
        classes,
    };
    let resolved = &resolved;
    tb.text(
        "run/config",
        0,
        &format!("```toml\n{}\n```", config.to_toml()),
    )?;
    let metrics = [
        "val/best_top1",
        "val/top1",
        "val/top5",
        "val/loss",
        "train/loss",
    ];
    tb.hparams(setup::hparams(config, spec, resolved), &metrics)?;
    Ok(())
}

/// The hooks of the node that keeps the run, with the probe set and their
/// states from `resumed`, cut short by `stop`; `None` when there are none.
fn hooks_adapter(
    config: &RunConfig,
    hooks: Hooks,
    (train, val): (&Dataset, &Loader),
    mean_image: &Option<Arc<MeanImage>>,
    plan: &Plan,
    stop: &StopHandle,
) -> Result<Option<HooksAdapter>> {
    if hooks.is_empty() {
        return Ok(None);
    }
    // The validation set has the training set's classes: its labels are
    // the network's.
    let probe = LoaderProbe::new(config, val.dataset(), mean_image.clone())?
        .stopped_by(stop)
        .labelled(true);
    info!(images = probe.len(), hooks = hooks.len(), "probe set ready");
    let mut hooks = hooks;
    hooks.plan_epochs(config.train.epochs);
    let mut runner = HookRunner::new(hooks, Box::new(probe));
    if config.hooks.iter().any(HookSpec::mines_training_images) {
        let images = config.probe.train_images;
        let train = LoaderProbe::evenly(config, train, mean_image.clone(), images)?
            .stopped_by(stop)
            .labelled(true);
        info!(images = train.len(), "training images for the hooks ready");
        runner.train_probe = Some(Box::new(train));
    }
    runner.device = plan.device;
    runner.stop = Some(stop.clone());
    Ok(Some(HooksAdapter::new(runner)))
}

/// The run directory written (configuration, architecture, classes), the
/// log file opened, libtorch's threads and seed set: a run's first writes,
/// once every check has passed.
fn open_run(config: &RunConfig, c: &Checked) -> Result<()> {
    let run_dir = &c.place.run_dir;
    setup::write_run_dir(run_dir, config, &c.pre.spec, &c.pre.train_set.classes)?;
    setup::set_up_logging(run_dir)?;
    if config.train.threads > 0 {
        tch::set_num_threads(config.train.threads as i32);
    }
    tch::manual_seed(config.seed as i64);
    Ok(())
}

/// The session's callbacks: the standard set for this node's role (with
/// the `hooks`, on the node that keeps the run), then the caller's own;
/// on resume each takes its state back from the checkpoint.
fn session_callbacks(
    config: &RunConfig,
    role: &Role,
    hooks: Option<HooksAdapter>,
    own: Vec<Box<dyn Callback>>,
    resumed: Option<&Checkpoint>,
) -> Result<Vec<Box<dyn Callback>>> {
    let mut list = callbacks::standard(config, role, hooks);
    list.extend(own);
    restore_callbacks(&mut list, resumed)?;
    Ok(list)
}

/// `model.init_from` loaded into the engine with the layer policy
/// (frozen layers, learning-rate multiples) applied; the checkpoint it
/// came from, if it was one (a fine-tuned run normalizes with its
/// per-pixel mean).
fn start_weights(
    dp: &mut DataParallel,
    policy: &LayerPolicy,
    start: Option<StartWeights>,
) -> Result<Option<Checkpoint>> {
    dp.set_layer_policy(&policy.frozen, &policy.lr_mult);
    if let Some(line) = policy.describe(dp.net().arch()) {
        crate::say::notice(&format!("fine-tuning: {line}"));
    }
    let checkpoint = start.as_ref().and_then(|s| s.checkpoint.clone());
    if let Some(start) = start {
        start.load(dp)?;
    }
    Ok(checkpoint)
}

/// Every callback's state, as a checkpoint holds it; two states under one
/// name are an error that names it (the second would overwrite the first).
fn states_of(callbacks: &[Box<dyn Callback>]) -> Result<Vec<(String, HookState)>> {
    let mut states: Vec<(String, HookState)> = Vec::new();
    for cb in callbacks {
        for (name, state) in cb.states()? {
            if states.iter().any(|(n, _)| *n == name) {
                bail!(
                    "two callbacks (or hooks) save their state as '{name}'; give one another name"
                );
            }
            states.push((name, state));
        }
    }
    Ok(states)
}

/// On resume, every callback (the hooks' adapter and the caller's own
/// included) takes its states back from `resumed`; states nobody takes are
/// reported and left alone.
fn restore_callbacks(
    callbacks: &mut [Box<dyn Callback>],
    resumed: Option<&Checkpoint>,
) -> Result<()> {
    let Some(ck) = resumed else {
        return Ok(());
    };
    let mut saved = read_states(ck)?;
    for cb in callbacks.iter_mut() {
        cb.load_states(&mut saved)?;
    }
    for orphan in saved.keys() {
        warn!(state = %orphan, "checkpoint holds the state of a hook or callback that is not configured; ignored");
    }
    Ok(())
}
