//! Feature evolution (ZF Fig. 4): at every scheduled epoch, the strongest
//! activation of each chosen feature map over the probe set, projected to
//! pixel space. Each epoch's row of projections is logged as the TensorBoard
//! image `evolution/convL` (at the global step, the training curves' axis;
//! the step slider shows the evolution; captioned with the epoch and the
//! maps), and `hooks/<name>/convL.png` is rewritten as the montage so far:
//! feature maps down, epochs across, the epochs written over the columns
//! and the maps left of the rows. The projections of past epochs are the
//! hook's state, so the montage survives resume.
//!
//! `source = "train"` mines evenly spaced training images instead of the
//! probe set (`probe.train_images` of them; 0: all, as the paper mined
//! "across all training examples"), in a pass of its own.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use zftrain_deconv::render::{labelled_table, stretch};
use zftrain_deconv::{LayerChoice, LayerTop, MinerConfig, RenderConfig};

use super::deconv_grid::{layer_choices, Maps};
use super::files::write_png;
use crate::kind::{HookKind, TagDoc};
use crate::mine_probe;
use crate::{Control, HookContext, HookError, HookState, Schedule};

/// Settings (`[[hooks]] kind = "evolution"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolutionConfig {
    /// Hook name.
    pub name: String,
    /// When it runs (the paper: epochs 1, 2, 5, 10, 20, 30, 40, 64).
    pub schedule: Schedule,
    /// Conv layers, 1-based (empty: all).
    pub layers: Vec<usize>,
    /// Feature maps per layer.
    pub maps: Maps,
    /// Display settings.
    pub render: RenderConfig,
    /// Where the strongest activations are looked for: `probe` (the probe
    /// set, validation images) or `train` (training images).
    pub source: MiningSource,
    /// Stop training if this hook fails.
    pub required: bool,
}

/// The images a hook mines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MiningSource {
    /// The probe set (validation images).
    #[default]
    Probe,
    /// Evenly spaced training images (`probe.train_images`).
    Train,
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        EvolutionConfig {
            name: "evolution".into(),
            schedule: Schedule::default(),
            layers: Vec::new(),
            maps: Maps::Count(8),
            render: RenderConfig::default(),
            source: MiningSource::Probe,
            required: false,
        }
    }
}

/// The hook.
#[derive(Debug)]
pub struct EvolutionHook {
    config: EvolutionConfig,
    /// Epochs recorded so far.
    epochs: Vec<u64>,
    /// Per layer label: `[E, M, 3, R, R]` u8 stretched projections.
    history: Vec<(String, Tensor)>,
}

impl EvolutionHook {
    /// A hook with `config` and no history.
    pub fn new(config: EvolutionConfig) -> EvolutionHook {
        EvolutionHook {
            config,
            epochs: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Epochs recorded so far.
    pub fn epochs(&self) -> &[u64] {
        &self.epochs
    }

    /// The strongest activation of each chosen map over the probe set (or
    /// the training images, for `source = "train"`), projected.
    fn mine(
        &self,
        ctx: &HookContext<'_>,
        choices: &[LayerChoice],
    ) -> Result<Vec<LayerTop>, HookError> {
        let c = &self.config;
        let config = MinerConfig {
            k: 1,
            ..MinerConfig::default()
        };
        Ok(match c.source {
            MiningSource::Probe => mine_probe(ctx, choices, config)?,
            MiningSource::Train => {
                let Some(train) = ctx.train_probe else {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: "source = \"train\" needs the training images, which only a training run sets aside".into(),
                    });
                };
                // A pass of its own over them: the shared pass is the probe set's.
                let on_train = HookContext {
                    probe: train,
                    shared: None,
                    ..*ctx
                };
                mine_probe(&on_train, choices, config)?
            }
        })
    }

    fn run(&mut self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        if self.epochs.contains(&ctx.epoch) {
            return Ok(Control::Continue);
        }
        let c = &self.config;
        let choices = layer_choices(ctx.net, &c.layers, &c.maps, &c.name)?;
        let tops = self.mine(ctx, &choices)?;
        let dir = ctx.output_dir(&c.name)?;
        let convs = ctx.net.arch().conv_indices();
        // Tiles big enough for their captions.
        let render = RenderConfig {
            min_tile: c.render.min_tile.max(64),
            ..c.render.clone()
        };
        let mut history = Vec::new();
        for top in &tops {
            let label = ctx.net.arch().layers[convs[top.conv]].label.clone();
            // [M, 1, 3, R, R] -> [1, M, 3, R, R] in u8.
            let now = (stretch(&top.projections, c.render.stretch) * 255.0)
                .round()
                .to_kind(Kind::Uint8)
                .to_device(tch::Device::Cpu)
                .transpose(0, 1);
            let row = now.to_kind(Kind::Float) / 255.0;
            let maps: Vec<String> = top.channels.iter().map(|m| format!("map {m}")).collect();
            ctx.sink.image(
                &format!("evolution/{label}"),
                ctx.step as i64,
                &labelled_table(
                    &row,
                    &render,
                    &format!("{label}, epoch {}: strongest activation per map", ctx.epoch),
                    &maps,
                    &[],
                )?,
            )?;
            let past = self
                .history
                .iter()
                .find(|(l, t)| *l == label && t.size()[1..] == now.size()[1..]);
            let all = match past {
                Some((_, t)) => Tensor::cat(&[t, &now], 0),
                None => now,
            };
            // Maps down, epochs across.
            let table = all.transpose(0, 1).to_kind(Kind::Float) / 255.0;
            let shown = all.size()[0] as usize;
            let epochs: Vec<String> = self
                .epochs
                .iter()
                .chain([&ctx.epoch])
                .skip((self.epochs.len() + 1).saturating_sub(shown))
                .map(|e| format!("epoch {e}"))
                .collect();
            write_png(
                &dir.join(format!("{label}.png")),
                &labelled_table(
                    &table,
                    &render,
                    &format!("{label}: evolution"),
                    &epochs,
                    &maps,
                )?,
            )?;
            history.push((label, all));
        }
        self.history = history;
        self.epochs.push(ctx.epoch);
        Ok(Control::Continue)
    }
}

impl super::Needs for EvolutionHook {
    fn needs(&self, ctx: &HookContext<'_>) -> Result<Vec<crate::ProbeNeed>, HookError> {
        let c = &self.config;
        if self.epochs.contains(&ctx.epoch) || c.source == MiningSource::Train {
            return Ok(Vec::new());
        }
        Ok(vec![crate::ProbeNeed::Top {
            choices: layer_choices(ctx.net, &c.layers, &c.maps, &c.name)?,
            k: 1,
            per_image: MinerConfig::default().per_image,
        }])
    }
}

scheduled_hook!(
    EvolutionHook,
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        Ok(Some(HookState {
            tensors: self
                .history
                .iter()
                .map(|(l, t)| (l.clone(), t.shallow_clone()))
                .collect(),
            json: serde_json::json!({ "epochs": self.epochs }),
        }))
    },
    fn load_state(&mut self, state: HookState) -> Result<(), HookError> {
        let epochs = state.json["epochs"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_u64()).collect::<Vec<_>>())
            .ok_or_else(|| HookError::failed(&self.config.name, "state has no 'epochs' list"))?;
        for (label, t) in &state.tensors {
            if t.kind() != Kind::Uint8 || t.dim() != 5 || t.size()[0] as usize != epochs.len() {
                return Err(HookError::failed(
                    &self.config.name,
                    format!(
                        "state tensor '{label}' is {:?} {:?}, expected u8 [{}, M, 3, R, R]",
                        t.kind(),
                        t.size(),
                        epochs.len()
                    ),
                ));
            }
        }
        self.epochs = epochs;
        self.history = state.tensors;
        Ok(())
    }
);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("evolution/*", "The strongest activation of each chosen map over the probe set, projected to pixels, at this epoch (ZF Fig. 4)."),
];

impl HookKind for EvolutionConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        Ok(Box::new(EvolutionHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }

    fn mines_training_images(&self) -> bool {
        self.source == MiningSource::Train
    }
}
