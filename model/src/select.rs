//! Naming layers in a configuration: `model.freeze`, `model.reset_layers`
//! and `optim.lr_mult` name layers by their label (`conv1`, `fc8`), their
//! PyTorch module (`features.0`, `classifier.6`) or `head` (the last layer
//! with parameters, the classifier). One resolver, so the three keys accept
//! the same names and refuse the same typos.

use crate::{Arch, ModelError};

/// The name that stands for the last layer with parameters.
pub const HEAD: &str = "head";

impl Arch {
    /// Indices of the layers that have parameters or buffers (the ones a
    /// selector may name), in order.
    pub fn weighted_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.state_names().is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    /// The layer `name` stands for: a label, a module path or [`HEAD`];
    /// only layers with parameters or buffers. `key` (the config key) is
    /// named in the error, with the names that exist.
    pub fn select_layer(&self, key: &str, name: &str) -> Result<usize, ModelError> {
        let weighted = self.weighted_layers();
        let found = if name == HEAD {
            weighted.last().copied()
        } else {
            weighted.iter().copied().find(|&i| {
                let l = &self.layers[i];
                l.label == name || l.module.as_deref() == Some(name)
            })
        };
        found.ok_or_else(|| ModelError::UnknownLayer {
            key: key.to_string(),
            name: name.to_string(),
            arch: self.name.clone(),
            known: weighted
                .iter()
                .map(|&i| self.layers[i].label.as_str())
                .chain([HEAD])
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// [`Arch::select_layer`] for every name, in table order without repeats.
    pub fn select_layers(&self, key: &str, names: &[String]) -> Result<Vec<usize>, ModelError> {
        let mut out = names
            .iter()
            .map(|n| self.select_layer(key, n))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The layer each `state_dict` entry belongs to, in `state_dict` order
    /// (the order of [`Arch::state_names`]).
    pub fn state_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| std::iter::repeat_n(i, l.state_names().len()))
            .collect()
    }

    /// The layer each parameter belongs to, in the order of
    /// [`Arch::param_names`].
    pub fn param_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| std::iter::repeat_n(i, l.param_names().len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::arch::ArchConfig;
    use crate::{Arch, ArchName};

    fn zfnet() -> Arch {
        Arch::builtin(
            ArchName::Zfnet,
            &ArchConfig {
                classes: 5,
                ..ArchConfig::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn labels_modules_and_head_name_the_same_layers() {
        let a = zfnet();
        let fc8 = a.select_layer("model.freeze", "fc8").unwrap();
        assert_eq!(a.layers[fc8].label, "fc8");
        assert_eq!(a.select_layer("model.freeze", "head").unwrap(), fc8);
        let module = a.layers[fc8].module.clone().unwrap();
        assert_eq!(a.select_layer("model.freeze", &module).unwrap(), fc8);
        let conv1 = a.select_layer("k", "conv1").unwrap();
        assert_eq!(
            a.select_layers("k", &["fc8".into(), "conv1".into(), "head".into()])
                .unwrap(),
            vec![conv1, fc8]
        );
    }

    #[test]
    fn an_unknown_or_parameterless_layer_is_refused_with_the_names_that_exist() {
        let a = zfnet();
        for bad in ["fc9", "relu1", "pool1"] {
            let e = a
                .select_layer("model.reset_layers", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("model.reset_layers"), "{e}");
            assert!(e.contains(&format!("'{bad}'")), "{e}");
            assert!(e.contains("conv1, conv2"), "{e}");
            assert!(e.contains("fc8, head"), "{e}");
        }
    }

    #[test]
    fn every_parameter_and_state_entry_maps_to_its_layer() {
        let a = zfnet();
        let names = a.state_names();
        let layers = a.state_layers();
        assert_eq!(names.len(), layers.len());
        for ((name, _), i) in names.iter().zip(&layers) {
            let module = a.layers[*i].module.as_deref().unwrap();
            assert!(
                name.starts_with(&format!("{module}.")),
                "{name} in {module}"
            );
        }
        assert_eq!(a.param_layers().len(), a.param_names().len());
    }
}
