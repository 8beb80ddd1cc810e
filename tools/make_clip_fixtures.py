#!/usr/bin/env python3
"""Builds the CLIP parity fixtures under tests/fixtures/clip.

A tiny CLIPModel (real 49,408-token vocabulary, width 32) gets random weights from a fixed
seed and is saved as a Hugging Face directory. Its weights are rounded to f16 and stored in
f16 (3 MB instead of 6 MB); every reference output is computed in f32 from those rounded
weights, so a loader that widens f16 to f32 must reproduce them to float rounding.

References:
  * model outputs: `transformers.CLIPModel` (eager attention, f32);
  * DPAM (v-v attention) and prompting layers: a literal PyTorch loop over the same HF
    layers, checked here against HF on the plain path first;
  * token ids: open_clip's SimpleTokenizer (OpenAI's BPE, ftfy clean-up, 77 tokens,
    truncation that keeps the end token), and HF's CLIPTokenizerFast for tokenizer.json;
  * preprocessing: OpenAI's pipeline (PIL bicubic resize of the short side, centre crop
    rounded as torchvision does, OpenAI mean/std).

Needs: pip install torch transformers open_clip_torch ftfy pillow numpy safetensors.
Run from the repository root: python tools/make_clip_fixtures.py
"""
import gzip
import json
import math
import os
import random
import shutil

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import open_clip
from transformers import CLIPConfig, CLIPModel, CLIPTokenizerFast

OUT = "tests/fixtures/clip"
BPE = "data/bpe_simple_vocab_16e6.txt.gz"  # the copy the repository carries
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def save(name, arr):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(np.asarray(arr, dtype=np.float32)))


# ---------------------------------------------------------------- images and preprocessing
def make_images():
    rng = np.random.default_rng(7)
    h, w = 45, 61
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.integers(0, 40, (h, w, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(f"{OUT}/rgb.png")
    h, w = 53, 40
    yy, xx = np.mgrid[0:h, 0:w]
    grey = (np.sin(xx / 3.0) * 90 + 128 + rng.integers(-30, 30, (h, w))).clip(0, 255)
    Image.fromarray(grey.astype(np.uint8), "L").save(f"{OUT}/grey.png")
    h, w = 29, 37
    rgba = rng.integers(0, 256, (h, w, 4)).astype(np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(f"{OUT}/rgba.png")
    with open(f"{OUT}/corrupt.png", "wb") as f:
        f.write(open(f"{OUT}/rgb.png", "rb").read()[:100])


def preprocess(path, n_px):
    """OpenAI CLIP's transform: Resize(n_px, BICUBIC), CenterCrop(n_px), RGB, normalise."""
    img = Image.open(path)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n_px, int(n_px * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - n_px) / 2.0))
    left = int(round((new_w - n_px) / 2.0))
    img = img.crop((left, top, left + n_px, top + n_px)).convert("RGB")
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1)


# ---------------------------------------------------------------- tiny model
def tiny_config():
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=2,
                         max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                           num_attention_heads=2, image_size=32, patch_size=8,
                           hidden_act="quick_gelu"),
        projection_dim=16,
        attn_implementation="eager",
    )


def randomise(model):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                continue
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and "embedding" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())  # the stored f16 values are the reference weights


# ---------------------------------------------------------------- literal reference loop
def attention(layer, x, mask, vv=False):
    a = layer.self_attn
    b, n, c = x.shape
    hd = c // a.num_heads
    q = a.q_proj(x).view(b, n, -1, hd).transpose(1, 2)
    k = a.k_proj(x).view(b, n, -1, hd).transpose(1, 2)
    v = a.v_proj(x).view(b, n, -1, hd).transpose(1, 2)
    if vv:
        q, k = v, v
    w = (q @ k.transpose(-1, -2)) * hd ** -0.5
    if mask is not None:
        w = w + mask
    out = (w.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
    return a.out_proj(out)


def block(layer, x, mask):
    x = x + attention(layer, layer.layer_norm1(x), mask)
    return x + layer.mlp(layer.layer_norm2(x))


def vision_loop(vm, pixels, prompts=None, dpam_from=None, pos=None):
    """Vision tower, with AdaCLIP-style prompt tokens and AnomalyCLIP's dual path.

    prompts: {layer (1-based): [B, P, W]}; before block l runs, any carried prompt tokens are
    dropped and these appended. dpam_from: from this block on, a second path runs v-v
    attention on the first path's normalised input, without the MLP.
    Returns (hidden per layer with prompts stripped: layer 0..L, pooled CLS, original path).
    """
    emb = vm.embeddings
    x = emb.patch_embedding(pixels).flatten(2).transpose(1, 2)
    cls = emb.class_embedding.expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1)
    x = x + (pos if pos is not None else emb.position_embedding.weight[None])
    x = vm.pre_layrnorm(x)
    n_tok = x.shape[1]
    hidden = [x]
    xv = None
    for i, layer in enumerate(vm.encoder.layers, start=1):
        if prompts and i in prompts:
            x = torch.cat([x[:, :n_tok], prompts[i]], 1)
            if xv is not None:
                xv = torch.cat([xv[:, :n_tok], prompts[i]], 1)
        if dpam_from is not None and i >= dpam_from:
            if xv is None:
                xv = x
            h = layer.layer_norm1(x)
            xv = xv + attention(layer, h, None, vv=True)
            x = x + attention(layer, h, None)
            x = x + layer.mlp(layer.layer_norm2(x))
            hidden.append(xv[:, :n_tok])
        else:
            x = block(layer, x, None)
            hidden.append(x[:, :n_tok])
    pooled = vm.post_layernorm(x[:, 0])
    return hidden, pooled


def text_loop(tm, ids, prefix=None, deep=None):
    emb = tm.embeddings
    x = emb.token_embedding(ids)
    if prefix is not None:
        L = prefix.shape[1]
        x = torch.cat([x[:, :1], prefix, x[:, 1 + L:]], 1)
    x = x + emb.position_embedding.weight[None, : ids.shape[1]]
    t = ids.shape[1]
    mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
    hidden = [x]
    for i, layer in enumerate(tm.encoder.layers, start=1):
        if deep and i in deep:
            p = deep[i]
            x = torch.cat([x[:, :1], p, x[:, 1 + p.shape[1]:]], 1)
        x = block(layer, x, mask)
        hidden.append(x)
    x = tm.final_layer_norm(x)
    eot = (ids == 49407).int().argmax(-1)
    pooled = x[torch.arange(x.shape[0]), eot]
    return hidden, pooled


def bicubic_pos(vm, gh, gw, mode):
    pe = vm.embeddings.position_embedding.weight
    g = int(math.sqrt(pe.shape[0] - 1))
    grid = pe[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=(gh, gw), mode=mode, align_corners=False)
    return torch.cat([pe[:1], out.permute(0, 2, 3, 1).reshape(gh * gw, -1)], 0)


# ---------------------------------------------------------------- tokenizer strings
def strings():
    s = [
        "a photo of a cat", "A PHOTO OF A CAT", "a damaged object.", "  lots   of\tspace\n\nhere ",
        "", " ", "hello, world!", "Hello... world?!", "it's", "they're here", "I'm", "we'll",
        "you'd", "I've", "can't won't don't", "'quoted'", "\"double\"", "O'Neil's dog's toy",
        "e-mail: user@example.com", "https://example.com/path?q=1&r=2", "C++ and C#", "#hashtag",
        "@mention", "50% off!!!", "$19.99", "3.14159", "1234567890", "1,000,000", "2nd 3rd 4th",
        "x^2 + y^2 = z^2", "a_b_c", "snake_case_name", "CamelCaseName", "ALLCAPS", "tab\tsep",
        "new\nline", "café", "naïve résumé", "Straße", "ÆØÅ æøå", "İstanbul", "ΟΔΟΣ", "Ελληνικά",
        "Русский текст", "中文字符", "日本語のテキスト", "한국어", "עברית", "العربية", "हिन्दी",
        "ไทย", "emoji 😀🎉👍", "👨‍👩‍👧", "flags 🇫🇷🇩🇪", "math ∑∫√∞", "arrows ← → ↑ ↓",
        "©®™", "°C ±5", "½ ¼ ¾", "ﬁne ﬂow", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "“curly” ‘quotes’",
        "em—dash en–dash", "ellipsis…", "bullet • point", "non\u00a0breaking", "zero\u200bwidth",
        "soft\u00adhyphen", "&amp;", "&lt;tag&gt;", "&quot;hi&quot;", "&#39;s", "&#x41;&#66;",
        "Tom &amp; Jerry", "&amp;amp;", "&copy; 2024", "&nbsp;x", "&notanentity;", "&amp",
        "AT&T", "fish & chips", "<b>bold</b>", "<div class=\"x\">&amp;</div>", "&#128512;",
        "&eacute;t&eacute;", "&EACUTE;", "a&#0;b", "&#x110000;", "\u0085next", "crème brûlée",
        "scratch on the metal surface", "a photo of a damaged bottle", "flawless transistor",
        "crack", "hole", "contamination", "a cropped photo of the broken capsule.",
        "there is a defect in the screw", "pill with color defect", "tiles with gray stroke",
        "a bright photo of a small wood", "industrial image of zipper with fabric interior",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "supercalifragilisticexpialidocious",
        "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "!!!???...,,,;;;:::", "()[]{}<>", "\\backslash/slash|pipe", "~tilde`backtick",
        "mixed123numbers456", "v1.2.3-beta+build", "2024-01-15T10:30:00Z", "+1 (555) 123-4567",
        "'s", "'S", "'T", "''s", "'ll've", "rock'n'roll", "ma'am", "y'all'd've",
        "ﬀ ﬃ ﬄ ﬅ ﬆ", "ĳ Ĳ ǆ", "à la carte", "Ω ≈ ç √ ∫", "𝕳𝖊𝖑𝖑𝖔", "Ｈｅｌｌｏ　Ｗｏｒｌｄ",
        "ｶﾀｶﾅ", "control\x07char", "del\x7fchar", "vertical\x0btab", "form\x0cfeed",
        "carriage\rreturn", "crlf\r\nline", "unit\x1fsep", "line\u2028sep", "para\u2029sep",
        "ideographic\u3000space", "thin\u2009space", "a photo of a " * 20,
        " ".join(str(i) for i in range(100)),
        "The quick brown fox jumps over the lazy dog. " * 6,
        "word " * 80, "x" * 300, "😀" * 60, "中" * 90,
        "A long industrial description: the metal nut shows a scratch near the upper left "
        "thread, with slight discolouration, bent edges, and a missing piece on the rim; "
        "overall, the object is classified as anomalous by the inspector on duty today.",
    ]
    rng = random.Random(99)
    words = ["object", "damaged", "flawless", "perfect", "broken", "a", "the", "of", "photo",
             "Défaut", "naïve", "über", "x2", "3D", "it's", "&amp;", "—", "😀", "中文", "!",
             "...", "#1", "ok?", "Rust", "CUDA", "ﬁ", "“q”", "Ｆ", "1/2", "+", "e.g."]
    while len(s) < 240:
        n = rng.randint(1, 12)
        sep = rng.choice([" ", "  ", "", "\t", ", "])
        s.append(sep.join(rng.choice(words) for _ in range(n)))
    return s


def hf_fast_tokenizer(tok):
    """CLIPTokenizerFast over the same BPE, saved as tokenizer.json.gz (gzip keeps it small)."""
    tmp = f"{OUT}/_hf_tmp"
    os.makedirs(tmp, exist_ok=True)
    enc = dict(tok.encoder)
    enc["<|startoftext|>"] = enc.pop("<start_of_text>")
    enc["<|endoftext|>"] = enc.pop("<end_of_text>")
    merges = sorted(tok.bpe_ranks.items(), key=lambda kv: kv[1])
    merge_list = [(a, b) for (a, b), _ in merges]
    fast = CLIPTokenizerFast(vocab=enc, merges=merge_list)
    fast.save_pretrained(tmp)
    with open(f"{tmp}/tokenizer.json", "rb") as f, gzip.GzipFile(f"{OUT}/tokenizer.json.gz", "wb", mtime=0) as g:
        g.write(f.read())
    shutil.rmtree(tmp)
    return fast


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    make_images()

    # preprocessing references
    for name in ["rgb", "grey", "rgba"]:
        for n_px in [32, 48] + ([224] if name == "rgb" else []):
            save(f"pixels_{name}_{n_px}.npy", preprocess(f"{OUT}/{name}.png", n_px))

    # model
    cfg = tiny_config()
    model = CLIPModel(cfg).eval()
    randomise(model)
    tiny = f"{OUT}/tiny"
    os.makedirs(tiny, exist_ok=True)
    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()
          if v.dtype.is_floating_point}
    save_file(sd, f"{tiny}/model.safetensors", metadata={"format": "pt"})
    cfg.torch_dtype = "float16"
    cfg.to_json_file(f"{tiny}/config.json")

    vm, tm = model.vision_model, model.text_model
    with torch.no_grad():
        pix = torch.from_numpy(np.stack([preprocess(f"{OUT}/rgb.png", 32),
                                         preprocess(f"{OUT}/grey.png", 32)]))
        out = model.vision_model(pixel_values=pix, output_hidden_states=True)
        hs = torch.stack(out.hidden_states)
        embeds = model.get_image_features(pixel_values=pix)
        embeds = getattr(embeds, "pooler_output", embeds)
        hidden, pooled = vision_loop(vm, pix)
        assert (torch.stack(hidden) - hs).abs().max() < 1e-5
        assert (pooled - out.pooler_output).abs().max() < 1e-5
        save("vision_hidden.npy", hs)
        save("vision_pooled.npy", out.pooler_output)
        save("vision_embeds.npy", embeds)

        # other grid: 48 px -> 6 x 6 patches, bicubic position embeddings (HF's rule)
        pix48 = torch.from_numpy(np.stack([preprocess(f"{OUT}/rgb.png", 48)]))
        out48 = model.vision_model(pixel_values=pix48, output_hidden_states=True,
                                   interpolate_pos_encoding=True)
        e48 = model.visual_projection(out48.pooler_output)
        save("vision48_hidden.npy", torch.stack(out48.hidden_states))
        save("vision48_embeds.npy", e48)
        for (gh, gw) in [(6, 6), (7, 5)]:
            for mode in ["bicubic", "bilinear"]:
                save(f"pos_{mode}_{gh}x{gw}.npy", bicubic_pos(vm, gh, gw, mode))
        # bilinear grid through the whole tower (AnomalyCLIP's rule)
        hb, pb = vision_loop(vm, pix48, pos=bicubic_pos(vm, 6, 6, "bilinear")[None])
        save("vision48_bilinear_hidden.npy", torch.stack(hb))
        save("vision48_bilinear_embeds.npy", model.visual_projection(pb))

        # DPAM from block 3 of 4
        hd, pd = vision_loop(vm, pix, dpam_from=3)
        save("dpam_hidden.npy", torch.stack(hd))
        save("dpam_embeds.npy", model.visual_projection(pd))
        # AnomalyCLIP maps patch tokens into the joint space with ln_post and the projection
        save("dpam_proj_tokens.npy", model.visual_projection(vm.post_layernorm(hd[4])))

        # vision prompts: 3 tokens appended at block 1, replaced by 2 at block 3
        vp1 = 0.5 * torch.randn(2, 3, 32)
        vp3 = 0.5 * torch.randn(2, 2, 32)
        save("vprompt_1.npy", vp1)
        save("vprompt_3.npy", vp3)
        hp, pp = vision_loop(vm, pix, prompts={1: vp1, 3: vp3})
        save("vprompt_hidden.npy", torch.stack(hp))
        save("vprompt_embeds.npy", model.visual_projection(pp))
        hp, pp = vision_loop(vm, pix, prompts={2: vp1}, dpam_from=2)
        save("vprompt_dpam_hidden.npy", torch.stack(hp))
        save("vprompt_dpam_embeds.npy", model.visual_projection(pp))

        # text
        tok = open_clip.tokenizer.SimpleTokenizer(bpe_path=BPE)
        texts = ["a photo of a cat", "a damaged object .", "Hello &amp; world!!",
                 "The quick brown fox jumps over the lazy dog. " * 6]
        ids = tok(texts, context_length=77).long()
        tout = model.text_model(input_ids=ids, output_hidden_states=True)
        temb = model.get_text_features(input_ids=ids)
        temb = getattr(temb, "pooler_output", temb)
        th, tp = text_loop(tm, ids)
        assert (torch.stack(th) - torch.stack(tout.hidden_states)).abs().max() < 1e-5
        assert (tp - tout.pooler_output).abs().max() < 1e-5
        json.dump({"texts": texts, "ids": ids.tolist()}, open(f"{OUT}/text_ids.json", "w"))
        save("text_hidden.npy", torch.stack(tout.hidden_states))
        save("text_pooled.npy", tout.pooler_output)
        save("text_embeds.npy", temb)

        # text prompts: "[V1..V4] object ." with 4 learnable tokens, deep prompts at block 2
        tmpl = tok(["X X X X object ."], context_length=77).long().repeat(2, 1)
        prefix = 0.5 * torch.randn(2, 4, 32)
        deep2 = 0.5 * torch.randn(2, 4, 32)
        save("tprompt_prefix.npy", prefix)
        save("tprompt_deep2.npy", deep2)
        hq, pq = text_loop(tm, tmpl, prefix=prefix, deep={2: deep2})
        json.dump({"ids": tmpl[0].tolist()}, open(f"{OUT}/tprompt_ids.json", "w"))
        save("tprompt_hidden.npy", torch.stack(hq))
        save("tprompt_embeds.npy", model.text_projection(pq))
        _, pq = text_loop(tm, tmpl, prefix=prefix)
        save("tprompt_embeds_nodeep.npy", model.text_projection(pq))

    # token ids
    ss = strings()
    ids = tok(ss, context_length=77).tolist()
    fast = hf_fast_tokenizer(tok)
    rows = []
    for t, r in zip(ss, ids):
        rows.append({"text": t, "ids": r, "hf_fast_ids": fast(t)["input_ids"]})
    json.dump(rows, open(f"{OUT}/tokens.json", "w"), ensure_ascii=False, indent=0)
    print(f"{len(rows)} token strings; fixture files:")
    for f in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, f)
        print(f"  {f} {os.path.getsize(p) if os.path.isfile(p) else ''}")


if __name__ == "__main__":
    main()
