//! `hipl clip-embed` and `hipl tokenize`.
use std::io::Write;
use std::path::PathBuf;

use candle_core::{DType, Device};

use crate::model::clip::{
    preprocess, ClipModel, ClipTokenizer, PosInterpolation, TextOptions, VisionOptions,
};
use crate::{Error, Result};

/// Arguments of `hipl clip-embed`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClipEmbedArgs {
    /// Hugging Face CLIP directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// An image to embed (repeatable).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// A text to embed (repeatable).
    #[arg(long = "text")]
    pub texts: Vec<String>,
    /// Side of the square model input in pixels (default: the checkpoint's image_size);
    /// other sizes interpolate the position embeddings.
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Position-embedding interpolation for other sizes: bicubic (transformers) or
    /// bilinear (AnomalyCLIP).
    #[arg(long, default_value = "bicubic")]
    pub interpolation: String,
    /// Weight and compute type: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// BPE merge list (default: the checkpoint's tokenizer.json, $HIPL_BPE,
    /// ../shared/data, or the bundled copy).
    #[arg(long)]
    pub bpe: Option<PathBuf>,
    /// Output directory for image_embeds.npy and text_embeds.npy.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `hipl tokenize`.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenizeArgs {
    /// Texts to tokenize.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// BPE merge list (default: $HIPL_BPE, ../shared/data, or the bundled copy).
    #[arg(long)]
    pub bpe: Option<PathBuf>,
    /// A Hugging Face tokenizer.json to use instead of the BPE merge list.
    #[arg(long, conflicts_with = "bpe")]
    pub tokenizer_json: Option<PathBuf>,
    /// Pad every sequence with 0 to the 77-token context.
    #[arg(long)]
    pub pad: bool,
}

fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(Error::invalid("--dtype", "f32, f16 or bf16", other)),
    }
}

fn write_npy(path: &std::path::Path, t: &candle_core::Tensor) -> Result<()> {
    let (n, e) = t.dims2()?;
    let data: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let arr = ndarray::Array2::from_shape_vec((n, e), data)
        .map_err(|e| Error::invalid("embeddings", "a 2-D array", e))?;
    ndarray_npy::write_npy(path, &arr).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Embeds images and texts with a CLIP checkpoint and writes the projected (not
/// normalised) embeddings as `image_embeds.npy` `[n_images, E]` and `text_embeds.npy`
/// `[n_texts, E]`.
/// Largest patch grid `clip-embed` accepts (128 × 128, i.e. 1792 px at patch 14).
const MAX_PATCHES: usize = 128 * 128;

pub fn run_clip_embed(args: &ClipEmbedArgs) -> Result<()> {
    if args.images.is_empty() && args.texts.is_empty() {
        return Err(Error::invalid(
            "--image/--text",
            "at least one image or text",
            "neither",
        ));
    }
    let interpolation = match args.interpolation.as_str() {
        "bicubic" => PosInterpolation::Bicubic,
        "bilinear" => PosInterpolation::Bilinear,
        other => {
            return Err(Error::invalid(
                "--interpolation",
                "bicubic or bilinear",
                other,
            ))
        }
    };
    let dtype = parse_dtype(&args.dtype)?;
    // LIMITATION: `hipl clip-embed` runs on the CPU only; it has no `--device` flag (train
    // and test have one, which needs the `candle-cuda` build).
    let dev = Device::Cpu;
    let model = ClipModel::load(&args.model, dtype, &dev)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;

    if !args.images.is_empty() {
        let size = args.image_size.unwrap_or(model.config.vision.image_size);
        // The token count grows with the square of the side and attention with its square
        // again: refuse sizes whose grid would not fit in memory instead of aborting.
        let patch = model.config.vision.patch_size.max(1);
        let grid = size / patch;
        if grid * grid > MAX_PATCHES {
            return Err(Error::invalid(
                "--image-size",
                format!(
                    "at most {MAX_PATCHES} patches of {patch} px (a side <= {} px)",
                    patch * 128
                ),
                format!("{size} px ({grid}x{grid} patches)"),
            ));
        }
        let start = std::time::Instant::now();
        let pixels = preprocess::load_images(&args.images, size, &dev)?;
        let opts = VisionOptions {
            interpolation,
            ..Default::default()
        };
        let out = model.vision.forward(&pixels, &opts)?;
        write_npy(&args.out.join("image_embeds.npy"), &out.image_embeds)?;
        tracing::info!(
            n = args.images.len(),
            size,
            ms = start.elapsed().as_millis() as u64,
            "embedded images"
        );
    }
    if !args.texts.is_empty() {
        let tok = ClipTokenizer::for_checkpoint(&args.model, args.bpe.as_deref())?
            .with_context_length(model.config.text.max_position_embeddings)?;
        let ids = tok.tokenize_batch(&args.texts)?;
        let out = model.text.forward(&ids, &TextOptions::default())?;
        write_npy(&args.out.join("text_embeds.npy"), &out.text_embeds)?;
        tracing::info!(n = args.texts.len(), "embedded texts");
    }
    Ok(())
}

/// Prints the token ids of each text as one JSON array of arrays.
pub fn run_tokenize(args: &TokenizeArgs) -> Result<()> {
    let tok = match &args.tokenizer_json {
        Some(p) => ClipTokenizer::from_tokenizer_json(p)?,
        None => ClipTokenizer::locate(args.bpe.as_deref())?,
    };
    let mut rows = Vec::with_capacity(args.texts.len());
    for t in &args.texts {
        let mut ids = tok.tokenize(t)?;
        if !args.pad {
            let end = ids.iter().rposition(|&i| i != 0).map_or(0, |p| p + 1);
            ids.truncate(end);
        }
        rows.push(ids);
    }
    let json = serde_json::to_string(&rows)
        .map_err(|e| Error::invalid("texts", "JSON-serialisable ids", e))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}").map_err(|e| Error::io("<stdout>", e))
}
