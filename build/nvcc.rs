//! Features `cuda` and `candle-cuda`: compiles every `kernels/*.cu` with nvcc to a cubin per
//! architecture (default sm_80 and sm_90, or `HIPL_CUDA_ARCHS`, e.g. `80,86,90`) plus PTX for
//! the lowest one, and writes `$OUT_DIR/cuda_modules.rs`, which embeds them with `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds nvcc: `$NVCC`, then `$CUDA_HOME/bin/nvcc`, `$CUDA_PATH/bin/nvcc`, then `PATH`.
fn find_nvcc() -> Result<PathBuf, String> {
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-env-changed=PATH");
    if let Some(p) = std::env::var_os("NVCC") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!(
                "NVCC is set to {}, which is not a file",
                p.display()
            ));
        }
        return Ok(p);
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            let p = Path::new(&root).join("bin").join("nvcc");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nvcc");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(
        "features `cuda` and `candle-cuda` need nvcc at build time, and none was found: set NVCC to the nvcc \
         binary, or CUDA_HOME / CUDA_PATH to the toolkit root, or put nvcc on PATH"
            .to_string(),
    )
}

fn archs() -> Result<Vec<u32>, String> {
    println!("cargo:rerun-if-env-changed=HIPL_CUDA_ARCHS");
    let spec = std::env::var("HIPL_CUDA_ARCHS").unwrap_or_else(|_| "80,90".to_string());
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let digits = part.trim_start_matches("sm_");
        let arch: u32 = digits.parse().map_err(|_| {
            format!("HIPL_CUDA_ARCHS: expected comma-separated numbers like 80,90, got `{part}`")
        })?;
        if arch < 70 {
            return Err(format!(
                "HIPL_CUDA_ARCHS: sm_{arch} lacks the warp and wmma features used"
            ));
        }
        out.push(arch);
    }
    if out.is_empty() {
        return Err("HIPL_CUDA_ARCHS is empty".to_string());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn run(nvcc: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(nvcc)
        .args(args)
        .output()
        .map_err(|e| format!("could not run {}: {e}", nvcc.display()))?;
    if !out.status.success() {
        return Err(format!(
            "nvcc {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

pub fn compile_all(out_dir: &Path) -> Result<(), String> {
    let nvcc = find_nvcc()?;
    let archs = archs()?;
    let mut sources: Vec<PathBuf> = std::fs::read_dir("kernels")
        .map_err(|e| format!("kernels/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();

    let mut table = String::from("pub(crate) const MODULES: &[EmbeddedModule] = &[\n");
    for src in &sources {
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("bad kernel file name")?;
        let src_s = src.to_str().ok_or("non-UTF-8 path")?;
        let mut cubins = String::new();
        for &arch in &archs {
            let out = out_dir.join(format!("{stem}.sm_{arch}.cubin"));
            let out_s = out.to_str().ok_or("non-UTF-8 OUT_DIR")?;
            let gpu = format!("-arch=sm_{arch}");
            run(
                &nvcc,
                &[
                    "-cubin",
                    &gpu,
                    "-O3",
                    "-std=c++17",
                    "-Ikernels",
                    "-o",
                    out_s,
                    src_s,
                ],
            )?;
            cubins.push_str(&format!("({arch}, include_bytes!({out_s:?})), "));
        }
        let ptx = out_dir.join(format!("{stem}.ptx"));
        let ptx_s = ptx.to_str().ok_or("non-UTF-8 OUT_DIR")?;
        let virt = format!("-arch=compute_{}", archs[0]);
        run(
            &nvcc,
            &[
                "-ptx",
                &virt,
                "-O3",
                "-std=c++17",
                "-Ikernels",
                "-o",
                ptx_s,
                src_s,
            ],
        )?;
        table.push_str(&format!(
            "    EmbeddedModule {{ name: {stem:?}, cubins: &[{cubins}], ptx: include_str!({ptx_s:?}) }},\n"
        ));
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("cuda_modules.rs"), table).map_err(|e| e.to_string())
}
