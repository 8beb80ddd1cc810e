//! The two optimisers of HiPL training: Adam on the prompt learner, plain SGD on the
//! hypergraph (HSC) parameters.
//!
//! Why our own Adam: `candle_nn::AdamW` keeps its first and second moments and its step
//! count in private fields, so they cannot be written to a checkpoint, and a resumed run
//! would restart the moments from zero and the bias correction from step 1 — a different
//! trajectory from the uninterrupted run. [`Adam`] is the same update (PyTorch's `Adam`,
//! no weight decay) with its state readable and restorable, so resuming is exact.

use crate::error::{Error, Result};
use crate::train::params::sorted_vars;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamParams {
    /// The paper's (and AnomalyCLIP's) settings: lr 1e-3, betas (0.5, 0.999).
    fn default() -> Self {
        AdamParams {
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamParams {
    fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                "a positive finite learning rate",
                self.lr,
            ));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(name, "a value in [0, 1)", b));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid("eps", "a positive finite number", self.eps));
        }
        Ok(())
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam: `m ← β1 m + (1 − β1) g`, `v ← β2 v + (1 − β2) g²`,
/// `θ ← θ − lr m̂ / (√v̂ + ε)` with `m̂ = m / (1 − β1^t)`, `v̂ = v / (1 − β2^t)`.
/// Variables without a gradient in a step are left alone (their moments too).
pub struct Adam {
    slots: Vec<Slot>,
    step: u64,
    params: AdamParams,
}

impl Adam {
    /// Adam over every variable of `map` (in name order), moments at zero.
    pub fn new(map: &VarMap, params: AdamParams) -> Result<Self> {
        params.check()?;
        let slots = sorted_vars(map)
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = m.clone();
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam {
            slots,
            step: 0,
            params,
        })
    }

    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    /// Steps taken so far (`t` of the bias correction).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from the gradients in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamParams {
            lr,
            beta1,
            beta2,
            eps,
        } = self.params;
        let t = self.step.min(i32::MAX as u64) as i32;
        let scale_m = 1.0 / (1.0 - beta1.powi(t));
        let scale_v = 1.0 / (1.0 - beta2.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + eps)?)?;
            let theta = (slot.var.as_tensor() - (update * lr)?)?;
            slot.var.set(&theta)?;
            slot.m = m;
            slot.v = v;
        }
        Ok(())
    }

    /// The state as named tensors: `<prefix>m.<var>` and `<prefix>v.<var>` per variable.
    /// The step count goes into the checkpoint's JSON.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("{prefix}m.{}", s.name), s.m.clone()),
                    (format!("{prefix}v.{}", s.name), s.v.clone()),
                ]
            })
            .collect()
    }

    /// Restores the moments from `tensors` (names as [`Adam::state`] writes them) and the
    /// step count. Fails naming the missing or mis-shaped tensor; `file` is named in errors.
    pub fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        step: u64,
        file: &std::path::Path,
    ) -> Result<()> {
        for slot in &mut self.slots {
            let want = slot.var.as_tensor();
            for (which, dst) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let key = format!("{prefix}{which}.{}", slot.name);
                let t = tensors.get(&key).ok_or_else(|| Error::Checkpoint {
                    key: key.clone(),
                    expected: format!(
                        "Adam state of shape {:?} in {}",
                        want.dims(),
                        file.display()
                    ),
                    got: "no such tensor".into(),
                })?;
                if t.dims() != want.dims() {
                    return Err(Error::Checkpoint {
                        key,
                        expected: format!("shape {:?} in {}", want.dims(), file.display()),
                        got: format!("shape {:?}", t.dims()),
                    });
                }
                *dst = t.to_dtype(want.dtype())?.to_device(want.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Plain stochastic gradient descent, `θ ← θ − lr g` (no momentum, so no state).
pub struct Sgd {
    vars: Vec<Var>,
    lr: f64,
}

impl Sgd {
    /// SGD over every variable of `map`.
    pub fn new(map: &VarMap, lr: f64) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid("lr", "a positive finite learning rate", lr));
        }
        let vars = sorted_vars(map).into_iter().map(|(_, v)| v).collect();
        Ok(Sgd { vars, lr })
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// One update from the gradients in `grads`; variables without one are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for var in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                let theta = (var.as_tensor() - (g * self.lr)?)?;
                var.set(&theta)?;
            }
        }
        Ok(())
    }
}
