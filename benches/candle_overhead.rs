//! The cost of going through candle: the same HSC layer (B = 4, N = 576, D = D_out = E =
//! 768, f32, the paper's hypergraph) through the core API and through `hipl::candle::hsc`,
//! interleaved in one run, reported as medians and as the candle / core ratio.
//!
//! ```text
//! cargo bench --features candle --bench candle_overhead
//! HIPL_BENCH_REPS=9 HIPL_BENCH_N=1369 HIPL_BENCH_D=1024 cargo bench ...   # other shapes
//! ```

use candle_core::{Device, Tensor, Var};
use hipl::candle::{hsc, HscTensors};
use hipl::{hsc_backward, hsc_forward, Activation, HscParams, HypergraphConfig};
use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn uniform(len: usize, bound: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-bound..bound)).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let (b, n, d) = (
        env("HIPL_BENCH_B", 4),
        env("HIPL_BENCH_N", 576),
        env("HIPL_BENCH_D", 768),
    );
    let reps = env("HIPL_BENCH_REPS", 7);
    let mut rng = StdRng::seed_from_u64(1);

    // CLIP-like anisotropic features: a shared direction plus noise.
    let mean = uniform(d, 1.0, &mut rng);
    let f: Vec<f32> = (0..b * n * d)
        .map(|i| 0.5 * mean[i % d] + rng.random_range(-1.0..1.0))
        .collect();
    let bound = 1.0 / (d as f32).sqrt();
    let params = HscParams {
        theta: Array2::from_shape_vec((d, d), uniform(d * d, bound, &mut rng)).unwrap(),
        a: Array2::from_shape_vec((d, d), uniform(d * d, bound, &mut rng)).unwrap(),
        b: Array1::from(uniform(d, bound, &mut rng)),
        g_weight: Array2::from_shape_vec((d, d), uniform(d * d, bound, &mut rng)).unwrap(),
        g_bias: Array1::from(uniform(d, bound, &mut rng)),
        activation: Activation::GeluTanh,
    };
    let rp = uniform(b * n * d, 1.0, &mut rng);
    let rg = uniform(b * d, 1.0, &mut rng);
    let cfg = HypergraphConfig::paper();

    let fa = Array3::from_shape_vec((b, n, d), f.clone()).unwrap();
    let (rpa, rga) = (
        Array3::from_shape_vec((b, n, d), rp.clone()).unwrap(),
        Array2::from_shape_vec((b, d), rg.clone()).unwrap(),
    );
    let dev = Device::Cpu;
    let tensor2 =
        |a: &Array2<f32>| Tensor::from_slice(a.as_slice().unwrap(), a.dim(), &dev).unwrap();
    let tensors = HscTensors {
        theta: tensor2(&params.theta),
        a: tensor2(&params.a),
        b: Tensor::from_slice(params.b.as_slice().unwrap(), d, &dev).unwrap(),
        g_weight: tensor2(&params.g_weight),
        g_bias: Tensor::from_slice(params.g_bias.as_slice().unwrap(), d, &dev).unwrap(),
    };
    let ft = Tensor::from_vec(f, (b, n, d), &dev).unwrap();
    let fv = Var::from_tensor(&ft).unwrap();
    let (rpt, rgt) = (
        Tensor::from_vec(rp, (b, n, d), &dev).unwrap(),
        Tensor::from_vec(rg, (b, d), &dev).unwrap(),
    );

    let mut core_fwd = || {
        black_box(hsc_forward(fa.view(), None, &params, &cfg).unwrap());
    };
    let mut candle_fwd = || {
        black_box(hsc(&ft, None, &tensors, params.activation, &cfg).unwrap());
    };
    let mut core_both = || {
        let (_, ctx) = hsc_forward(fa.view(), None, &params, &cfg).unwrap();
        black_box(
            hsc_backward(
                &ctx,
                fa.view(),
                None,
                &params,
                Some(rpa.view()),
                Some(rga.view()),
            )
            .unwrap(),
        );
    };
    let mut candle_both = || {
        let (p, g) = hsc(fv.as_tensor(), None, &tensors, params.activation, &cfg).unwrap();
        let loss = ((p * &rpt).unwrap().sum_all().unwrap()
            + (g * &rgt).unwrap().sum_all().unwrap())
        .unwrap();
        black_box(loss.backward().unwrap());
    };

    // Warm-up, then interleaved repeats so both sides see the same machine load.
    core_fwd();
    candle_fwd();
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("forward", vec![], vec![]),
        ("forward + backward", vec![], vec![]),
    ];
    for _ in 0..reps {
        rows[0].1.push(time(&mut core_fwd));
        rows[0].2.push(time(&mut candle_fwd));
        rows[1].1.push(time(&mut core_both));
        rows[1].2.push(time(&mut candle_both));
    }
    println!("HSC f32, B={b} N={n} D=D_out=E={d}, paper hypergraph, {reps} interleaved repeats");
    println!(
        "{:<20} {:>12} {:>12} {:>14}",
        "", "core ms", "candle ms", "candle / core"
    );
    for (name, core, candle) in rows {
        let (c, k) = (median(core), median(candle));
        println!("{name:<20} {c:>12.1} {k:>12.1} {:>14.3}", k / c);
    }
}
