//! Times forwards of a CLIP vision tower on the CPU; `tools/bench_clip_vision.py` runs it
//! beside `transformers` on the same checkpoint and prints the ratio.
//!
//! cargo run --release --features candle --example clip_vision_bench -- DIR [BATCH] [ITERS]
//!   [PIXELS_NPY OUT_NPY]
//!
//! With the last two arguments it also embeds the `[B, 3, S, S]` pixels of `PIXELS_NPY` and
//! writes the image embeddings to `OUT_NPY`, for a full-size parity check.
use candle_core::{DType, Device, Tensor};
use hipl::model::clip::{ClipModel, VisionOptions};

fn main() -> hipl::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or_else(|| hipl::Error::invalid("DIR", "a CLIP checkpoint directory", "nothing"))?;
    let parse = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, iters) = (parse(2, 4), parse(3, 5));

    let dev = Device::Cpu;
    let model = ClipModel::load(dir.as_ref(), DType::F32, &dev)?;
    let size = model.config.vision.image_size;
    let pixels = match args.get(4) {
        Some(p) => {
            let a: ndarray::Array4<f32> = ndarray_npy::read_npy(p)
                .map_err(|e| hipl::Error::invalid("PIXELS_NPY", "a [B, 3, S, S] f32 array", e))?;
            let shape = a.shape().to_vec();
            Tensor::from_vec(a.iter().copied().collect::<Vec<_>>(), shape, &dev)?
        }
        None => Tensor::randn(0f32, 1.0, (batch, 3, size, size), &dev)?,
    };
    let opts = VisionOptions::default();

    let first = model.vision.forward(&pixels, &opts)?; // also the warm-up
    if let Some(out) = args.get(5) {
        let e = first.image_embeds.to_vec2::<f32>()?;
        let flat: Vec<f32> = e.iter().flatten().copied().collect();
        let arr = ndarray::Array2::from_shape_vec((e.len(), e[0].len()), flat)
            .map_err(|e| hipl::Error::invalid("embeddings", "a 2-D array", e))?;
        ndarray_npy::write_npy(out, &arr)
            .map_err(|e| hipl::Error::invalid("OUT_NPY", "a writable path", e))?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = std::time::Instant::now();
        let out = model.vision.forward(&pixels, &opts)?;
        out.image_embeds.to_vec2::<f32>()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"batch\": {batch}, \"image_size\": {size}, \"min_s\": {:.4}, \"median_s\": {:.4}}}",
        times[0],
        times[times.len() / 2]
    );
    Ok(())
}
