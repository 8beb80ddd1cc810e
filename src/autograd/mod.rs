//! Differentiable ops: each has a forward that returns its output and a saved context, and
//! a backward that takes the context, the forward's inputs and the output gradient.

mod conv;
mod hsc;
mod incidence;
pub(crate) use incidence::validate_features;

pub use conv::{
    conv, conv_backward, conv_forward, hypergraph_conv_backward, hypergraph_conv_forward, ConvCtx,
    ConvGrads, HypergraphConvCtx, HypergraphConvGrads,
};
pub use hsc::{hsc_backward, hsc_forward, Activation, HscCtx, HscGrads, HscOutput, HscParams};
pub use incidence::{
    build_hypergraph, incidence_backward, incidence_forward, row_normalize_backward,
    row_normalize_forward, IncidenceCtx, RowNormCtx,
};
