//! Embedding hipl in a candle model: an `Hsc` layer trained with candle_nn's AdamW.
//!
//! The task needs the hypergraph: a fixed random "teacher" HSC layer maps random patch
//! embeddings to patch and global embeddings through a kNN hypergraph built from those
//! same embeddings; a freshly initialised "student" HSC layer learns to reproduce them
//! from new random batches. A per-patch linear baseline (no hypergraph, same loss and
//! optimiser) cannot see the neighbours and plateaus.
//!
//! ```text
//! cargo run --release --features candle --example candle_embedding
//! ```

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use hipl::candle::{Hsc, HscConfig};
use hipl::{Activation, HypergraphConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Patches per image, embedding width, patch and global output widths, batch size.
const N: usize = 24;
const D: usize = 16;
const D_OUT: usize = 8;
const E: usize = 4;
const B: usize = 8;

/// Losses on a held-out batch before and after training.
#[derive(Debug)]
pub struct Report {
    pub initial: f64,
    pub final_: f64,
    /// The per-patch linear baseline's held-out loss after the same training.
    pub baseline_final: f64,
}

fn config() -> HscConfig {
    HscConfig {
        hypergraph: HypergraphConfig::knn(4),
        activation: Activation::GeluTanh,
        d_out: D_OUT,
        global_dim: E,
        edge_weights: None,
    }
}

/// Mean squared error of patches and global embeddings.
fn mse(pred: &(Tensor, Tensor), target: &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    let p = (&pred.0 - &target.0)?.sqr()?.mean_all()?;
    let g = (&pred.1 - &target.1)?.sqr()?.mean_all()?;
    p + g
}

/// The no-hypergraph baseline: `F Aᵀ + b` per patch, a linear layer on the mean patch.
struct Baseline {
    patches: Linear,
    global: Linear,
}

impl Baseline {
    fn forward(&self, f: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let p = self.patches.forward(f)?;
        let g = self.global.forward(&p.mean(1)?)?;
        Ok((p, g))
    }
}

/// Trains the student (and the baseline) for `steps` AdamW steps on fresh random batches,
/// printing the losses every `log_every` steps (0: never).
pub fn train(steps: usize, log_every: usize) -> candle_core::Result<Report> {
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(7);
    let mut batch = || {
        let v: Vec<f32> = (0..B * N * D).map(|_| rng.sample(StandardNormal)).collect();
        Tensor::from_vec(v, (B, N, D), &dev)
    };
    let mut init = StdRng::seed_from_u64(11);
    let mut reseed = |vars: &VarMap, scale: f64| -> candle_core::Result<()> {
        let vars = vars.data().lock().unwrap();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let bound = scale / (*var.dims().last().unwrap_or(&1) as f64).sqrt();
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| init.random_range(-bound..bound) as f32)
                .collect();
            var.set(&Tensor::from_vec(v, var.shape().clone(), &dev)?)?;
        }
        Ok(())
    };

    let teacher_vars = VarMap::new();
    let teacher = Hsc::new(
        D,
        config(),
        VarBuilder::from_varmap(&teacher_vars, DType::F32, &dev),
    )?;
    // Larger than the usual initialisation, so the neighbours' term dominates the target.
    reseed(&teacher_vars, 3.0)?;
    // Detached: the teacher is fixed, so no step backpropagates through it.
    let target = |f: &Tensor| -> candle_core::Result<(Tensor, Tensor)> {
        let (p, g) = teacher.forward_with_global(f)?;
        Ok((p.detach(), g.detach()))
    };

    let student_vars = VarMap::new();
    let student = Hsc::new(
        D,
        config(),
        VarBuilder::from_varmap(&student_vars, DType::F32, &dev),
    )?;
    reseed(&student_vars, 1.0)?;
    let params = ParamsAdamW {
        lr: 2e-2,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(student_vars.all_vars(), params.clone())?;

    let base_vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&base_vars, DType::F32, &dev);
    let baseline = Baseline {
        patches: candle_nn::linear(D, D_OUT, vb.pp("patches"))?,
        global: candle_nn::linear(D_OUT, E, vb.pp("global"))?,
    };
    reseed(&base_vars, 1.0)?;
    let mut base_opt = AdamW::new(base_vars.all_vars(), params)?;

    let held_out = batch()?;
    let held_target = target(&held_out)?;
    let eval = |m: &dyn Fn(&Tensor) -> candle_core::Result<(Tensor, Tensor)>| {
        mse(&m(&held_out)?, &held_target)?.to_scalar::<f32>()
    };
    let initial = eval(&|f| student.forward_with_global(f))? as f64;

    for step in 1..=steps {
        let f = batch()?;
        let y = target(&f)?;
        let loss = mse(&student.forward_with_global(&f)?, &y)?;
        opt.backward_step(&loss)?;
        let base_loss = mse(&baseline.forward(&f)?, &y)?;
        base_opt.backward_step(&base_loss)?;
        if log_every > 0 && (step % log_every == 0 || step == 1) {
            println!(
                "step {step:4}  hsc loss {:.5}  linear baseline loss {:.5}",
                loss.to_scalar::<f32>()?,
                base_loss.to_scalar::<f32>()?
            );
        }
    }
    Ok(Report {
        initial,
        final_: eval(&|f| student.forward_with_global(f))? as f64,
        baseline_final: eval(&|f| baseline.forward(f))? as f64,
    })
}

#[allow(dead_code)]
fn main() -> candle_core::Result<()> {
    let r = train(300, 25)?;
    println!(
        "held-out loss: {:.5} -> {:.5} ({:.1}x lower); linear baseline ends at {:.5}",
        r.initial,
        r.final_,
        r.initial / r.final_,
        r.baseline_final
    );
    Ok(())
}
