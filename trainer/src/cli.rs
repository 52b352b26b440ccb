//! Command-line flags, kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use zftrain_model::{ArchName, InitScheme};

/// Train AlexNet and ZFNet, and look inside them the way Zeiler & Fergus did.
#[derive(Debug, Parser)]
#[command(name = "zftrain", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments; flags with no command before them
    /// (`zftrain --arch zfnet --gpus 4 ...`) mean `zftrain train ...`.
    pub fn parse_args() -> Cli {
        Cli::parse_from(with_default_command(std::env::args_os().collect()))
    }

    /// Whether the flags ask for a GPU (a config file may too; `train` sees
    /// to that once it has read it). `main` loads CUDA first then.
    pub fn wants_cuda(&self) -> bool {
        let gpus = |flag: &str| crate::devices::parse_gpus(flag).is_ok_and(|ids| !ids.is_empty());
        match &self.command {
            Command::Train(a) => a.gpus.as_deref().is_some_and(gpus),
            Command::Visualize(a) => a.gpu.is_some(),
            Command::Eval(a) => a.gpu.is_some(),
            Command::Analyze(a) => match &a.command {
                AnalyzeCommand::Invariance(x) => x.common.gpu.is_some(),
                AnalyzeCommand::Occlusion(x) => x.common.gpu.is_some(),
                AnalyzeCommand::Correspondence(x) => x.common.gpu.is_some(),
                AnalyzeCommand::Architecture(_) => false,
            },
            Command::Bench(b) => match &b.command {
                BenchCommand::TrainStep(x) => gpus(&x.gpus),
                BenchCommand::Deconv(_) => true,
                BenchCommand::Projections(x) => x.gpu.is_some(),
                BenchCommand::Engine(x) => x.gpu.is_some(),
                BenchCommand::Loader(_) => false,
                BenchCommand::Mine(x) => gpus(&x.gpus),
            },
            // Named one by one (no catch-all): a new command must say
            // whether it wants a GPU, or this does not compile.
            Command::Summary(_)
            | Command::Init(_)
            | Command::Export(_)
            | Command::Import(_)
            | Command::Predict(_)
            | Command::Completions(_)
            | Command::Data(_) => false,
        }
    }
}

/// `zftrain --flag ...` -> `zftrain train --flag ...`: training is the
/// command when the first argument is a flag (but not the top level's own
/// `--help` and `--version`).
pub fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args.get(1).and_then(|a| a.to_str());
    if first.is_some_and(|f| f.starts_with("--") && f != "--help" && f != "--version") {
        args.insert(1, "train".into());
    }
    args
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a torchsummary-style table of an architecture.
    Summary(SummaryArgs),
    /// Create a checkpoint with freshly initialized weights.
    Init(InitArgs),
    /// Write a checkpoint's weights as a safetensors file with PyTorch's names, or the network as TorchScript.
    Export(ExportArgs),
    /// Make a checkpoint from a safetensors file saved from PyTorch (names and shapes checked).
    Import(ImportArgs),
    /// Top-5 classes of images.
    Predict(PredictArgs),
    /// Loss, top-1 and top-5 error of weights on a labelled image folder (centre crop or --ten-crop).
    Eval(EvalArgs),
    /// Train a network on an image folder (or resume a run).
    Train(TrainArgs),
    /// Print a shell completion script: `zftrain completions bash > /etc/bash_completion.d/zftrain`.
    Completions(CompletionsArgs),
    /// Run the visualization hooks once on a checkpoint or weights (Deconvnet grids, dead filters).
    Visualize(VisualizeArgs),
    /// Data sets: `zftrain data synth --out DIR` writes the built-in synthetic one.
    Data(DataArgs),
    /// Measure this machine: training steps per second, Deconvnet projections on a GPU against the CPU.
    Bench(BenchArgs),
    /// Zeiler & Fergus's analyses of trained weights: invariance, occlusion, correspondence.
    Analyze(AnalyzeArgs),
}

/// `zftrain analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Which analysis.
    #[command(subcommand)]
    pub command: AnalyzeCommand,
}

/// `zftrain analyze` subcommands.
#[derive(Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Feature distances (layers 1 and 7) and class probability under translation, scaling and rotation.
    Invariance(InvarianceArgs),
    /// A grey square slid over each image: layer-5 activation, class probability, top class per position.
    Occlusion(OcclusionArgs),
    /// Occluding the same part in several images: how consistently the features change (Table 1).
    Correspondence(CorrespondenceArgs),
    /// Architecture selection (section 4.1, Fig. 6): layer-1 filters, layer-2 projections and a per-layer table of aliasing, grid, structureless, never-firing and dominating filters and layer 1's frequency coverage, each beside its null, for one checkpoint or two side by side.
    Architecture(ArchitectureArgs),
}

/// `zftrain analyze architecture`.
#[derive(Debug, Args)]
pub struct ArchitectureArgs {
    /// The (first) checkpoint folder.
    #[arg(long)]
    pub a: PathBuf,
    /// A second checkpoint to set beside it (for example AlexNet against ZFNet).
    #[arg(long)]
    pub b: Option<PathBuf>,
    /// Image folder of the probe images (its `val/` when it has one).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: architecture.png, architecture.md, architecture.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Probe images (0: the whole folder).
    #[arg(long, default_value_t = 64)]
    pub probe_images: usize,
    /// Feature maps of layer 2 projected.
    #[arg(long, default_value_t = 16)]
    pub maps: usize,
}

/// What every analysis takes.
#[derive(Debug, Args)]
pub struct AnalysisCommon {
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub source: WeightsSource,
    /// Output folder (CSV, JSON, PNG, TensorBoard events).
    #[arg(long)]
    pub out: PathBuf,
    /// Run on this CUDA device (default: the CPU).
    #[arg(long)]
    pub gpu: Option<usize>,
    /// Images per forward.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// A progress line every this many seconds (0: after every batch) and
    /// a last line with the time taken.
    #[arg(long, default_value_t = 60.0)]
    pub log_every_s: f64,
}

/// `zftrain analyze invariance`.
#[derive(Debug, Args)]
pub struct InvarianceArgs {
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// Image files (repeat the flag).
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    /// The class of each image, by name or index, in image order (default:
    /// the top class of the original image).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Vertical translations in pixels: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "-60:60:10", allow_hyphen_values = true)]
    pub translations: String,
    /// Scale factors: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "1:1.8:0.1")]
    pub scales: String,
    /// Rotations in degrees: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "0:350:10")]
    pub rotations: String,
}

/// `zftrain analyze occlusion`.
#[derive(Debug, Args)]
pub struct OcclusionArgs {
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// Image files (repeat the flag).
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    /// The class of each image, by name or index (default: its top class).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Side of the grey square in pixels of the 224x224 input.
    #[arg(long, default_value_t = 27)]
    pub size: i64,
    /// Step between square positions in pixels.
    #[arg(long, default_value_t = 7)]
    pub stride: i64,
    /// The conv layer whose strongest feature map is followed.
    #[arg(long, default_value_t = 5)]
    pub layer: usize,
}

/// `zftrain analyze correspondence`.
#[derive(Debug, Args)]
pub struct CorrespondenceArgs {
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// JSON: {"images": [files], "parts": {"name": [[top, left, height,
    /// width] per image]}, "coordinates": "original" (default; pixels of
    /// the image files) or "input" (pixels of the 224x224 input)}; files
    /// relative to the JSON file.
    #[arg(long)]
    pub parts: PathBuf,
    /// Layers compared (1, 5, 7), comma-separated.
    #[arg(long, default_value = "5,7")]
    pub layers: String,
    /// Draws of randomly placed boxes.
    #[arg(long, default_value_t = 5)]
    pub random_draws: usize,
    /// Seed of the random boxes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `zftrain bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// `zftrain bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Images per second of whole training steps (the engine's, on random input).
    TrainStep(TrainStepBenchArgs),
    /// Deconvnet projections of every conv layer on a GPU against the CPU: time and agreement.
    Deconv(DeconvBenchArgs),
    /// Images per second of the data loader (decode, augment, batch) on an ImageFolder.
    Loader(LoaderBenchArgs),
    /// Deconvnet projections per second, batched against one target at a time.
    Projections(ProjectionsBenchArgs),
    /// Checks the parallel engine on one device: NCCL on one rank (with
    /// --gpu) and two replicas on the device against one.
    Engine(EngineBenchArgs),
    /// Top-9 mining of every conv layer over an image folder against plain
    /// evaluation of the same images on the same devices: images/s of both,
    /// their ratio, peak memory.
    Mine(MineBenchArgs),
}

/// `zftrain bench mine`.
#[derive(Debug, Args)]
pub struct MineBenchArgs {
    /// An image folder (class folders of images), e.g. `imagenet/val`.
    #[arg(long)]
    pub data: PathBuf,
    /// Architecture (randomly initialized: mining costs the same whatever
    /// the weights).
    #[arg(long, value_parser = parse_arch, default_value = "zfnet")]
    pub arch: ArchName,
    /// Output classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: i64,
    /// Probe images, evenly spaced over the folder (0: all of them).
    #[arg(long, default_value_t = 0)]
    pub images: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Feature maps mined per conv layer (evenly spaced).
    #[arg(long, default_value_t = 16)]
    pub maps: usize,
    /// Activations kept per feature map.
    #[arg(long, default_value_t = 9)]
    pub k: usize,
    /// GPUs: a count or device indices (`0,2`); 0 = the CPU.
    #[arg(long, default_value = "0")]
    pub gpus: String,
    /// Replicas on the CPU (with --gpus 0).
    #[arg(long, default_value_t = 1)]
    pub cpu_replicas: usize,
    /// Passes to time, comma-separated: eval, mine, and values (mining's
    /// first pass alone: the top-k values and places, no projections).
    #[arg(long, default_value = "eval,mine")]
    pub passes: String,
}

/// `zftrain bench engine`.
#[derive(Debug, Args)]
pub struct EngineBenchArgs {
    /// The GPU to check (default: the CPU, without NCCL).
    #[arg(long)]
    pub gpu: Option<usize>,
    /// Training steps of the replicas check (one step shows the reduction;
    /// over more, ReLU and max-pool ties turn rounding into larger
    /// differences).
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Global batch of the replicas check.
    #[arg(long, default_value_t = 16)]
    pub batch: i64,
    /// Largest difference between the weight updates of two replicas and
    /// of one, relative to the update (rounding, and TF32 convolutions on
    /// GPUs, stay far below; a wrong reduction is of order 1).
    #[arg(long, default_value_t = 1e-2)]
    pub tolerance: f64,
}

/// `zftrain bench projections`.
#[derive(Debug, Args)]
pub struct ProjectionsBenchArgs {
    /// A GPU to run on (default: the CPU).
    #[arg(long)]
    pub gpu: Option<usize>,
    /// Conv layer whose units are projected (1-5).
    #[arg(long, default_value_t = 5)]
    pub layer: usize,
    /// Targets per timed pass.
    #[arg(long, default_value_t = 64)]
    pub targets: usize,
    /// Targets per batched pass at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
}

/// `zftrain bench loader`.
#[derive(Debug, Args)]
pub struct LoaderBenchArgs {
    /// An ImageFolder (class folders of images).
    #[arg(long)]
    pub data: PathBuf,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Augmentation: zf, rrc or eval.
    #[arg(long, default_value = "zf")]
    pub augment: String,
    /// Batches in flight at most.
    #[arg(long, default_value_t = 4)]
    pub queue_depth: usize,
    /// Epochs timed one after the other (the first batch of the first one
    /// is left out).
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
}

/// `zftrain bench train-step`.
#[derive(Debug, Args)]
pub struct TrainStepBenchArgs {
    /// Architecture.
    #[arg(long, value_parser = parse_arch, default_value = "zfnet")]
    pub arch: ArchName,
    /// Global batch.
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Output classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: i64,
    /// Comma-separated modes: fp32, bf16, fp16, each optionally -channels-last.
    #[arg(
        long,
        default_value = "fp32,fp32-channels-last,bf16,bf16-channels-last"
    )]
    pub modes: String,
    /// GPUs: a count or device indices (`0,2`); 0 = the CPU.
    #[arg(long, default_value = "0")]
    pub gpus: String,
    /// Replicas on the CPU (with --gpus 0).
    #[arg(long, default_value_t = 1)]
    pub cpu_replicas: usize,
    /// Gradient reduction: auto, nccl or copy.
    #[arg(long, default_value = "auto")]
    pub reducer: String,
    /// Let cuDNN search for the fastest convolution algorithms.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cudnn_benchmark: bool,
    /// Train on this ImageFolder (or pack) through the training loader
    /// instead of random input.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Loader threads with --data (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Augmentation with --data: zf, rrc or eval.
    #[arg(long, default_value = "zf")]
    pub augment: String,
}

/// `zftrain bench deconv`.
#[derive(Debug, Args)]
pub struct DeconvBenchArgs {
    /// The GPU to compare with the CPU.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
    /// Feature maps projected per layer.
    #[arg(long, default_value_t = 32)]
    pub per_layer: i64,
    /// Largest relative difference that counts as agreement (cuDNN may use
    /// TF32 for fp32 convolutions).
    #[arg(long, default_value_t = 1e-2)]
    pub tolerance: f64,
}

/// `zftrain visualize`.
#[derive(Debug, Args)]
pub struct VisualizeArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub source: WeightsSource,
    /// Probe images: an ImageFolder, or a data folder whose val/ is one.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the hooks write (hooks/<name>/, TensorBoard events).
    #[arg(long, default_value = "runs/visualize")]
    pub out: PathBuf,
    /// A run configuration whose [[hooks]] and [probe] to use (default:
    /// the checkpoint's own, else Deconvnet grids and dead filters).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key (repeatable), e.g. `--set probe.images=32`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Probe images (probe.images; 0: every image of the folder).
    #[arg(long)]
    pub probe_images: Option<usize>,
    /// The epoch to label the outputs with (default: the checkpoint's).
    #[arg(long)]
    pub epoch: Option<u64>,
    /// Run the hooks on this CUDA device (default: the CPU).
    #[arg(long)]
    pub gpu: Option<usize>,
}

/// `zftrain train`. Flags override `--set`, which overrides the config file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A TOML run configuration (see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key: `--set optim.lr=0.02` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue a run: its directory (newest good checkpoint) or one checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Let the exec hooks saved in this run's config.toml run again on
    /// `--resume` (name the same run directory). Without it, a resumed run
    /// whose saved config runs programs is refused: a run directory is data,
    /// and what it names runs only when you say so (or pass `--config`).
    #[arg(long, value_name = "RUN_DIR", requires = "resume")]
    pub trust_run_hooks: Option<PathBuf>,
    /// Run no hooks (a configuration without `[[hooks]]` gets the paper's
    /// set: Deconvnet grids, evolution, dead filters, aliasing).
    #[arg(long)]
    pub no_hooks: bool,
    /// Start a run directory that stopped before its first checkpoint over
    /// from the beginning (one with checkpoints is never started over).
    #[arg(long, conflicts_with = "resume")]
    pub restart: bool,
    /// Fine-tune: start from these weights (a .safetensors file, a
    /// checkpoint or a run directory) with a fresh optimizer and schedule
    /// (model.init_from).
    #[arg(long, value_name = "FILE_OR_CHECKPOINT", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Draw the classifier (the last layer with parameters) fresh for the
    /// data's classes instead of taking it from --init-from
    /// (model.reset_layers = ["head"]).
    #[arg(long)]
    pub new_head: bool,
    /// Print the resolved configuration (file, --set and flags merged) as
    /// TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Check everything a run checks before its first step (configuration,
    /// hooks, devices, data with counts per class, network, start weights,
    /// run directory, free disk for the checkpoints), write nothing, exit 0
    /// or with the first problem.
    #[arg(long, conflicts_with = "resume")]
    pub dry_run: bool,
    /// Architecture (model.arch).
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<ArchName>,
    /// An architecture file, a TOML layer table (model.arch_file).
    #[arg(long, conflicts_with = "arch")]
    pub arch_file: Option<PathBuf>,
    /// Data folder with train/ and val/ ImageFolders (data.train, data.val).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run name (name); the run directory is runs/<name>.
    #[arg(long)]
    pub name: Option<String>,
    /// Where run directories go (runs_dir).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Batch size (train.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate (optim.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// GPUs (train.gpus): a count (`4`; 0 = the CPU) or device indices (`0,2`).
    #[arg(long)]
    pub gpus: Option<String>,
    /// Data-parallel replicas on the CPU (train.cpu_replicas; tests the
    /// multi-device engine without GPUs).
    #[arg(long)]
    pub cpu_replicas: Option<usize>,
    /// Decoding threads (data.workers).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seed (seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `skip` or `fail` on images that do not decode (data.bad_images).
    #[arg(long)]
    pub bad_images: Option<String>,
    /// Nodes of a multi-node run, one process each (cluster.nodes).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// This node's rank, 0 to nodes - 1 (cluster.node_rank).
    #[arg(long)]
    pub node_rank: Option<usize>,
    /// host:port where node 0 listens for the others (cluster.rendezvous).
    #[arg(long)]
    pub rendezvous: Option<String>,
    /// Join the nodes without the cluster token (cluster.insecure): anyone
    /// who reaches the port can join and read the weights.
    #[arg(long)]
    pub insecure_cluster: bool,
}

/// `zftrain data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `zftrain data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the built-in synthetic data set (real JPEG files) as an ImageFolder.
    Synth(SynthArgs),
    /// Pack an ImageFolder into one file (images re-encoded at a bounded size), read with pread.
    Pack(PackArgs),
}

/// `zftrain data pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The ImageFolder to pack (e.g. DATA/train).
    #[arg(long)]
    pub src: PathBuf,
    /// The pack file to write (use it as data.train or data.val).
    #[arg(long)]
    pub out: PathBuf,
    /// Shrink images whose shorter side is longer than this (0: keep sizes).
    #[arg(long, default_value_t = 256)]
    pub shorter_side: u32,
    /// JPEG quality of the re-encoded images.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Encoding threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Off a terminal, a progress line every this many seconds (0: after
    /// every image).
    #[arg(long, default_value_t = 60.0)]
    pub log_every_s: f64,
}

/// `zftrain data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder to create (must not exist): OUT/train/<class>/*.jpg, OUT/val/<class>/*.jpg.
    #[arg(long)]
    pub out: PathBuf,
    /// An ImageNet-shaped tree instead: class folders `n00000000`... of hard
    /// links to a few hundred JPEG files in OUT/sources (defaults 1,000
    /// classes, 100 training and 10 validation files each, 300 sources of
    /// 500x375), to rehearse a run at ImageNet's scale.
    #[arg(long)]
    pub imagenet_shaped: bool,
    /// Classes (1 to 10; any number with --imagenet-shaped) [default: 10,
    /// or 1000].
    #[arg(long)]
    pub classes: Option<usize>,
    /// Training images per class [default: 100].
    #[arg(long)]
    pub train_per_class: Option<usize>,
    /// Validation images per class [default: 20, or 10].
    #[arg(long)]
    pub val_per_class: Option<usize>,
    /// Distinct JPEG files of an --imagenet-shaped tree [default: 300].
    #[arg(long)]
    pub sources: Option<usize>,
    /// Image width [default: 256, or 500].
    #[arg(long)]
    pub width: Option<u32>,
    /// Image height [default: 192, or 375].
    #[arg(long)]
    pub height: Option<u32>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How the pictures are drawn: clean (anti-aliased, textures at
    /// several scales, no pixel noise), noisy (the first demo's: clutter
    /// rectangles and per-pixel noise) or leaves (the clean objects over a
    /// dead-leaves background: edges at every scale).
    #[arg(long, value_enum, default_value = "clean")]
    pub style: StyleFlag,
}

/// The synthetic set's style on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StyleFlag {
    /// Anti-aliased, textures at several scales, no pixel noise.
    Clean,
    /// Clutter rectangles and per-pixel noise.
    Noisy,
    /// The clean objects over dead leaves: occluding discs of every size, edges at every scale.
    Leaves,
}

impl From<StyleFlag> for zftrain_data::synth::Style {
    fn from(f: StyleFlag) -> Self {
        match f {
            StyleFlag::Clean => zftrain_data::synth::Style::Clean,
            StyleFlag::Noisy => zftrain_data::synth::Style::Noisy,
            StyleFlag::Leaves => zftrain_data::synth::Style::Leaves,
        }
    }
}

/// The architecture and its options.
#[derive(Debug, Clone, Default, Args)]
pub struct ArchArgs {
    /// Architecture: zfnet-seed, zfnet, alexnet, alexnet-tv.
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<ArchName>,
    /// Number of classes (default 1000, or what the weights say).
    #[arg(long)]
    pub classes: Option<i64>,
    /// Leave out the LRN layers of zfnet and alexnet.
    #[arg(long)]
    pub no_lrn: bool,
    /// An architecture file (TOML layer table, see configs/archs/) instead
    /// of --arch; --classes sets its last linear layer's outputs.
    #[arg(long, conflicts_with_all = ["arch", "no_lrn"])]
    pub arch_file: Option<PathBuf>,
    /// Load weights even with NaN or infinite values or negative batch-norm
    /// variances (refused otherwise, naming the tensor): for forensics.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

impl ArchArgs {
    /// The flags as the library takes them.
    pub fn overrides(&self) -> crate::weights::ArchOverrides {
        crate::weights::ArchOverrides {
            arch: self.arch,
            classes: self.classes,
            no_lrn: self.no_lrn,
            arch_file: self.arch_file.clone(),
            allow_nonfinite: self.allow_nonfinite,
        }
    }
}

/// Where weights come from: a safetensors file or a checkpoint (one of them).
#[derive(Debug, Args)]
pub struct WeightsSource {
    /// Weights: a safetensors file with PyTorch names.
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub weights: Option<PathBuf>,
    /// Weights: a checkpoint directory.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

fn parse_arch(s: &str) -> Result<ArchName, String> {
    s.parse::<ArchName>().map_err(|e| e.to_string())
}

/// `zftrain summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Weight initialization on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitFlag {
    /// PyTorch's defaults.
    Pytorch,
    /// Zeiler & Fergus: N(0, 1e-2), biases 0.
    Zf,
    /// Krizhevsky et al.: N(0, 1e-2), biases 1 in conv2, conv4, conv5, fc6, fc7.
    Alexnet,
    /// He et al.: N(0, 2 / fan_in), biases 0.
    Kaiming,
}

impl From<InitFlag> for InitScheme {
    fn from(f: InitFlag) -> Self {
        match f {
            InitFlag::Pytorch => InitScheme::Pytorch,
            InitFlag::Zf => InitScheme::Zf,
            InitFlag::Alexnet => InitScheme::Alexnet,
            InitFlag::Kaiming => InitScheme::Kaiming,
        }
    }
}

/// `zftrain init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Initialization scheme.
    #[arg(long, value_enum, default_value = "pytorch")]
    pub init: InitFlag,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Checkpoint directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `zftrain completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `zftrain export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// File to write.
    #[arg(long)]
    pub out: PathBuf,
    /// `safetensors` (the weights with PyTorch's names) or `torchscript`
    /// (the traced network, for `torch.jit.load`; a JSON file with the
    /// input size, normalization and classes goes beside it as OUT.json).
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    pub format: ExportFormat,
}

/// What `zftrain export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The weights as a safetensors file with PyTorch's parameter names.
    Safetensors,
    /// A TorchScript module of the network (weights included).
    Torchscript,
}

/// `zftrain import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Safetensors file with PyTorch parameter names.
    #[arg(long)]
    pub weights: PathBuf,
    /// Per-channel input mean the weights were trained with (r,g,b, on [0, 1] pixels).
    #[arg(long, value_parser = crate::weights::parse_triple)]
    pub mean: Option<[f64; 3]>,
    /// Per-channel input standard deviation (r,g,b).
    #[arg(long, value_parser = crate::weights::parse_triple)]
    pub std: Option<[f64; 3]>,
    /// Checkpoint directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `zftrain predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub source: WeightsSource,
    /// Images: files, folders (every JPEG and PNG under them) or patterns
    /// such as 'val/*/*.jpg'.
    #[arg(value_name = "IMAGES")]
    pub paths: Vec<PathBuf>,
    /// An image file, folder or pattern (repeatable; the same as IMAGES).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Images per forward pass (memory stays bounded for any number of images).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// A text file with one class name per line (line i = class i).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Print JSON (with the full logits) instead of a table: one array.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per image and line, as each batch is done.
    #[arg(long)]
    pub jsonl: bool,
    /// Also save the preprocessed input batch `[N, 3, S, S]` (S the
    /// network's crop, 224 for the papers') as safetensors (tensor
    /// `input`, `[N, 10, 3, S, S]` with `--ten-crop`; holds every image's
    /// input in memory).
    #[arg(long)]
    pub save_input: Option<PathBuf>,
    /// Average the softmax over ten views of each image (the corners and
    /// centre of the 256 square, each mirrored too), as both papers'
    /// tables did; the logits printed are then the log of that average.
    #[arg(long)]
    pub ten_crop: bool,
}

/// `zftrain eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub source: WeightsSource,
    /// Labelled images: an ImageFolder (one folder per class, the
    /// network's classes in the same order), or a flat folder with
    /// `--val-list`.
    #[arg(long)]
    pub data: PathBuf,
    /// A list file (`path label` per line, paths relative to `--data`) for
    /// a flat folder such as ImageNet's validation set.
    #[arg(long)]
    pub val_list: Option<PathBuf>,
    /// Average the softmax over ten views of each image (the corners and
    /// centre of the 256 square, each mirrored too), as both papers'
    /// tables did; without it, the centre crop.
    #[arg(long)]
    pub ten_crop: bool,
    /// Network rows per forward pass, about (ten per image with
    /// --ten-crop: the images per batch are this over ten, rounded up).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// Decoding threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: u64,
    /// Run on this CUDA device (default: the CPU).
    #[arg(long)]
    pub gpu: Option<usize>,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        let os = line.split(' ').map(std::ffi::OsString::from).collect();
        with_default_command(os)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn flags_without_a_command_mean_train() {
        assert_eq!(
            args("zftrain --arch zfnet --gpus 4"),
            ["zftrain", "train", "--arch", "zfnet", "--gpus", "4"]
        );
        assert_eq!(
            args("zftrain summary --arch zfnet"),
            ["zftrain", "summary", "--arch", "zfnet"]
        );
        assert_eq!(args("zftrain --help"), ["zftrain", "--help"]);
        assert_eq!(args("zftrain --version"), ["zftrain", "--version"]);
        let cli = Cli::parse_from(args("zftrain --arch zfnet --gpus 0,2"));
        assert!(matches!(cli.command, Command::Train(_)));
        assert!(cli.wants_cuda());
    }
}
