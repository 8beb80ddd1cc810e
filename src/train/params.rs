//! Trainable parameters with reproducible initial values.
//!
//! candle's [`VarMap`] draws initial values from the CPU's thread-local generator, which
//! cannot be seeded, so two runs with the same `--seed` would start from different prompts.
//! [`seeded_var_builder`] gives a [`VarBuilder`] over a `VarMap` that draws every new
//! variable from one generator seeded by the caller, in the order the model asks for them;
//! the model code is unchanged (it still asks for `Init::Randn`, `Kaiming`, ...).

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::sync::Mutex;

struct Seeded {
    map: VarMap,
    rng: Mutex<StdRng>,
}

fn draw(rng: &mut StdRng, init: Init, shape: &Shape) -> Vec<f64> {
    let n = shape.elem_count();
    let normal = |rng: &mut StdRng, mean: f64, std: f64| -> Vec<f64> {
        match Normal::new(mean, std) {
            Ok(d) => (0..n).map(|_| d.sample(rng)).collect(),
            Err(_) => vec![mean; n], // std == 0 or not finite: the mean alone
        }
    };
    let uniform = |rng: &mut StdRng, lo: f64, up: f64| -> Vec<f64> {
        (0..n)
            .map(|_| lo + (up - lo) * rng.random::<f64>())
            .collect()
    };
    match init {
        Init::Const(c) => vec![c; n],
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape);
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(rng, 0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
            }
        }
    }
}

impl SimpleBackend for Seeded {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter map lock poisoned".into()))?;
        if let Some(var) = vars.get(name) {
            let t = var.as_tensor();
            if t.shape() != &shape {
                candle_core::bail!(
                    "parameter `{name}` requested with shape {shape:?} but exists with {:?}",
                    t.shape()
                );
            }
            return Ok(t.clone());
        }
        let values = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("generator lock poisoned".into()))?;
            draw(&mut rng, init, &shape)
        };
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("parameter `{name}`: a trainable parameter needs its shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }
}

/// A [`VarBuilder`] that creates the variables of `map` with values drawn from `seed`.
pub fn seeded_var_builder(
    map: &VarMap,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> VarBuilder<'static> {
    let backend = Seeded {
        map: map.clone(),
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
    };
    VarBuilder::from_backend(Box::new(backend), dtype, dev.clone())
}

/// The variables of `map` sorted by name (a stable order for optimisers and checkpoints).
pub fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = map
        .data()
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
