//! Times forwards of a CLIP vision tower on the CPU; `tools/bench_clip_vision.py` runs it
//! beside `transformers` on the same checkpoint and prints the ratio.
//!
//! cargo run --release --features candle --example clip_vision_bench -- DIR [BATCH] [ITERS]
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
    let pixels = Tensor::randn(0f32, 1.0, (batch, 3, size, size), &dev)?;
    let opts = VisionOptions::default();

    model.vision.forward(&pixels, &opts)?; // warm-up
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
