//! Preprocessing against OpenAI's pipeline (Pillow bicubic resize, centre crop, mean/std).
#![cfg(feature = "candle")]
mod clip_common;

use clip_common::*;
use hipl::model::clip::preprocess::{load_rgb, preprocess_rgb};

#[test]
fn rgb_grey_and_rgba_images_match_openai_preprocessing() {
    let cases = [
        ("rgb", 32),
        ("rgb", 48),
        ("rgb", 224),
        ("grey", 32),
        ("grey", 48),
        ("rgba", 32),
        ("rgba", 48),
    ];
    for (name, size) in cases {
        let img = load_rgb(&fixtures().join(format!("{name}.png"))).unwrap();
        let got = preprocess_rgb(&img, size).unwrap();
        let got =
            candle_core::Tensor::from_vec(got, (3, size, size), &candle_core::Device::Cpu).unwrap();
        // Pillow's 8-bit resize is reproduced exactly, so only float rounding remains
        assert_close(
            &format!("pixels {name} {size}"),
            &got,
            &npy(&format!("pixels_{name}_{size}.npy")),
            1e-6,
        );
    }
}
