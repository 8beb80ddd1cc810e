//! `.npy` input and output for the CLI. The element type comes from the file's header
//! (float32 or float64; anything else is refused), and every failure names the file and
//! the flag it was given to.

use crate::error::{Error, Result};
use crate::real::Real;
use ndarray::{Array, ArrayD, Dimension};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyExt, ReadableElement, WritableElement, WriteNpyError};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// The floating-point element types the CLI reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        })
    }
}

/// An element type that can come from and go to an `.npy` file.
pub trait NpyReal: Real + ReadableElement + WritableElement {
    const DTYPE: Dtype;
}

impl NpyReal for f32 {
    const DTYPE: Dtype = Dtype::F32;
}

impl NpyReal for f64 {
    const DTYPE: Dtype = Dtype::F64;
}

fn format_err(path: &Path, msg: String) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg,
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file's I/O failure, saying which flag named the file.
fn input_err(path: &Path, arg: &str, source: std::io::Error) -> Error {
    let source = std::io::Error::new(source.kind(), format!("{source} (given to `{arg}`)"));
    io_err(path, source)
}

/// The header's type descriptor as numpy spells it (`'<f4'`), for messages.
fn descriptor(header: &Header) -> String {
    header.type_descriptor.to_string()
}

// LIMITATION: float16 / bfloat16 `.npy` files are refused (the CPU path runs in f32 and f64);
// converting them on load would lift it.
fn dtype_of_header(path: &Path, arg: &str, header: &Header) -> Result<Dtype> {
    match header.type_descriptor.as_string().map(String::as_str) {
        Some("<f4" | ">f4") => Ok(Dtype::F32),
        Some("<f8" | ">f8") => Ok(Dtype::F64),
        _ => Err(format_err(
            path,
            format!(
                "`{arg}` holds dtype {}; expected float32 ('<f4') or float64 ('<f8')",
                descriptor(header)
            ),
        )),
    }
}

fn parse_header(path: &Path, arg: &str, reader: &mut impl std::io::Read) -> Result<Header> {
    Header::from_reader(reader).map_err(|e| match e {
        ndarray_npy::npy::header::ReadHeaderError::Io(source)
            if source.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            input_err(path, arg, source)
        }
        other => format_err(path, format!("`{arg}` is not a valid .npy file: {other}")),
    })
}

/// The element type of the `.npy` file given to `arg`, from its header alone.
pub fn dtype_of(path: &Path, arg: &str) -> Result<Dtype> {
    let file = File::open(path).map_err(|e| input_err(path, arg, e))?;
    let header = parse_header(path, arg, &mut BufReader::new(file))?;
    dtype_of_header(path, arg, &header)
}

/// Reads the `.npy` file given to `arg` as an array of `T` with `D`'s number of axes.
/// `axes` names them for the message when the count differs (`"[B, N, D]"`). A file of
/// another float type is refused: the CLI runs in the features' type.
pub fn read<T: NpyReal, D: Dimension>(path: &Path, arg: &str, axes: &str) -> Result<Array<T, D>> {
    let bytes = std::fs::read(path).map_err(|e| input_err(path, arg, e))?;
    let header = parse_header(path, arg, &mut &bytes[..])?;
    let dtype = dtype_of_header(path, arg, &header)?;
    if dtype != T::DTYPE {
        return Err(format_err(
            path,
            format!(
                "`{arg}` holds {dtype} but the features are {}: all inputs must share one dtype",
                T::DTYPE
            ),
        ));
    }
    let ndim = D::NDIM.expect("fixed-dimension arrays only");
    if header.shape.len() != ndim {
        return Err(format_err(
            path,
            format!(
                "`{arg}` must have {ndim} dimensions {axes}, got shape {:?}",
                header.shape
            ),
        ));
    }
    let array = ArrayD::<T>::read_npy(&bytes[..])
        .map_err(|e| format_err(path, format!("`{arg}` could not be read: {e}")))?;
    Ok(array
        .into_dimensionality::<D>()
        .expect("ndim checked against the header"))
}

/// Writes `array` to `path` as `.npy`; a failure names the flag (`arg`) that chose the path.
pub fn write<T: WritableElement, D: Dimension>(
    path: &Path,
    arg: &str,
    array: &Array<T, D>,
) -> Result<()> {
    ndarray_npy::write_npy(path, array).map_err(|e| match e {
        WriteNpyError::Io(source) => input_err(path, arg, source),
        other => format_err(path, format!("`{arg}` could not be written: {other}")),
    })
}
