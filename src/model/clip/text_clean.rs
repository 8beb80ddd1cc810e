//! CLIP's text clean-up before byte-pair encoding.
//!
//! OpenAI's tokenizer runs `ftfy.fix_text`, then Python's `html.unescape` twice, collapses
//! runs of whitespace to one space and lower-cases. This module does the same, with the
//! deterministic parts of ftfy written out:
//!
//! - HTML references ending in `;` (and ftfy's all-caps ones such as `&EACUTE;`) are decoded
//!   repeatedly until nothing changes, unless the line (or an earlier one) contains `<`;
//! - C1 controls U+0080..U+009F are read as windows-1252 (U+0085 becomes `…`);
//! - Latin ligatures are split (`ﬁ` → `fi`), full-width forms narrowed (`Ａ` → `A`), curly
//!   quotes straightened, ANSI terminal escapes and control characters removed, NFC applied;
//! - then Python's `html.unescape` twice, with its rules for references without `;`,
//!   numeric references out of range (U+FFFD) and the windows-1252 rewrites of `&#128;`..
//!
//! The tables come from `data/clip_text_tables.txt`, generated from Python and ftfy.
// LIMITATION: ftfy's mojibake repair (`fix_encoding`: text decoded with the wrong codec, such
// as `Ã©` for `é`) is not reproduced; it guesses with heuristics that have no Rust port.
// Such text tokenizes as written, where OpenAI's tokenizer would first repair it.
use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

struct Tables {
    /// html5 named references (keys without `&`, with `;` where the standard has it).
    html5: HashMap<String, String>,
    /// ftfy's extra all-caps references (without `&`, with `;`).
    upper: HashMap<String, String>,
    invalid_charrefs: HashMap<u32, String>,
    invalid_codepoints: std::collections::HashSet<u32>,
    /// ligatures, width map, control characters and C1 controls in one char map.
    char_fixes: [HashMap<char, String>; 4],
}

fn parse_cps(field: &str) -> String {
    if field == "-" {
        return String::new();
    }
    field
        .split(',')
        .filter_map(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32))
        .collect()
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables {
            html5: HashMap::new(),
            upper: HashMap::new(),
            invalid_charrefs: HashMap::new(),
            invalid_codepoints: Default::default(),
            char_fixes: Default::default(),
        };
        let data = include_str!("../../../data/clip_text_tables.txt");
        for line in data.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split(' ');
            let (kind, key, val) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("-"));
            let hex = |k: &str| u32::from_str_radix(k, 16).ok();
            let ch = |k: &str| hex(k).and_then(char::from_u32);
            match kind {
                Some("H") => drop(t.html5.insert(key.to_string(), parse_cps(val))),
                Some("U") => drop(t.upper.insert(key.to_string(), parse_cps(val))),
                Some("I") => {
                    if let Some(n) = hex(key) {
                        t.invalid_charrefs.insert(n, parse_cps(val));
                    }
                }
                Some("X") => {
                    if let Some(n) = hex(key) {
                        t.invalid_codepoints.insert(n);
                    }
                }
                Some(k @ ("L" | "W" | "C" | "S")) => {
                    let slot = ["L", "W", "C", "S"]
                        .iter()
                        .position(|x| *x == k)
                        .unwrap_or(0);
                    if let Some(c) = ch(key) {
                        t.char_fixes[slot].insert(c, parse_cps(val));
                    }
                }
                _ => {}
            }
        }
        t
    })
}

/// Decodes one numeric reference the way Python's `html.unescape` does.
fn numeric_ref(num: Option<u32>) -> String {
    let t = tables();
    let num = match num {
        Some(n) => n,
        None => return '\u{fffd}'.to_string(), // beyond u32: beyond U+10FFFF
    };
    if let Some(s) = t.invalid_charrefs.get(&num) {
        return s.clone();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        return '\u{fffd}'.to_string();
    }
    if t.invalid_codepoints.contains(&num) {
        return String::new();
    }
    char::from_u32(num).map(String::from).unwrap_or_default()
}

fn parse_num(digits: &str, radix: u32) -> Option<u32> {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some(0);
    }
    u32::from_str_radix(trimmed, radix).ok()
}

/// Python's `html.unescape`: named references (longest known prefix when `;` is missing),
/// decimal and hexadecimal references.
pub fn html_unescape(s: &str) -> String {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)")
            .expect("static regex")
    });
    let t = tables();
    re.replace_all(s, |caps: &regex::Captures| {
        let body = &caps[1];
        if let Some(num) = body.strip_prefix('#') {
            let num = num.trim_end_matches(';');
            return match num.strip_prefix(['x', 'X']) {
                Some(hex) => numeric_ref(parse_num(hex, 16)),
                None => numeric_ref(parse_num(num, 10)),
            };
        }
        if let Some(v) = t.html5.get(body) {
            return v.clone();
        }
        // the longest prefix (at least 2 chars) that names a reference, rest kept
        let idx: Vec<usize> = body.char_indices().map(|(i, _)| i).collect();
        for k in (2..idx.len()).rev() {
            if let Some(v) = t.html5.get(&body[..idx[k]]) {
                return format!("{v}{}", &body[idx[k]..]);
            }
        }
        format!("&{body}")
    })
    .into_owned()
}

/// ftfy's `unescape_html`: only references that end in `;`, plus all-caps ones.
fn ftfy_unescape(s: &str) -> String {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("static regex"));
    let t = tables();
    re.replace_all(s, |caps: &regex::Captures| {
        let m = &caps[0];
        let name = &m[1..];
        if !name.starts_with('#') {
            if let Some(v) = t.html5.get(name).or_else(|| t.upper.get(name)) {
                return v.clone();
            }
            return m.to_string();
        }
        let out = html_unescape(m);
        if out.contains(';') {
            m.to_string()
        } else {
            out
        }
    })
    .into_owned()
}

fn map_chars(s: &str, table: &HashMap<char, String>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match table.get(&c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

/// One pass of the ftfy fixers, in ftfy's order.
fn ftfy_pass(s: &str, unescape: bool) -> String {
    static ANSI: OnceLock<regex::Regex> = OnceLock::new();
    let ansi =
        ANSI.get_or_init(|| regex::Regex::new("\x1b\\[[0-9;]*[a-zA-Z]").expect("static regex"));
    let t = tables();
    let [ligatures, width, control, c1] = &t.char_fixes;

    let mut s = if unescape {
        ftfy_unescape(s)
    } else {
        s.to_string()
    };
    s = map_chars(&s, c1);
    s = map_chars(&s, ligatures);
    s = map_chars(&s, width);
    s = s
        .chars()
        .map(|c| match c {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            c => c,
        })
        .collect();
    s = s
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    s = ansi.replace_all(&s, "").into_owned();
    s = map_chars(&s, control);
    s.nfc().collect()
}

/// The deterministic part of `ftfy.fix_text` with its default settings.
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        // ftfy turns HTML decoding off for good once a line holds a `<`
        if segment.contains('<') {
            unescape = false;
        }
        let mut cur = segment.to_string();
        loop {
            let next = ftfy_pass(&cur, unescape);
            if next == cur {
                break;
            }
            cur = next;
        }
        out.push_str(&cur);
    }
    out
}

/// Python's `str.isspace`: Unicode white space plus the ASCII separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// CLIP's full clean-up: ftfy, `html.unescape` twice, trim, collapse white space,
/// lower-case.
pub fn clean(text: &str) -> String {
    let s = fix_text(text);
    let s = html_unescape(&html_unescape(&s));
    let words: Vec<&str> = s.split(is_py_space).filter(|w| !w.is_empty()).collect();
    words.join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_unescape_follows_python() {
        assert_eq!(html_unescape("&amp;"), "&");
        assert_eq!(html_unescape("&amp"), "&");
        assert_eq!(html_unescape("&ampx"), "&x");
        assert_eq!(html_unescape("&#65;&#x42;&#X43"), "ABC");
        assert_eq!(html_unescape("&#x110000;"), "\u{fffd}");
        assert_eq!(html_unescape("&#128;"), "€");
        assert_eq!(html_unescape("&#1;"), "");
        assert_eq!(html_unescape("&nosuch;"), "&nosuch;");
        assert_eq!(html_unescape("&notit;"), "¬it;");
    }

    #[test]
    fn fix_text_straightens_quotes_and_splits_ligatures() {
        assert_eq!(fix_text("“ﬁne”"), "\"fine\"");
        assert_eq!(fix_text("Ｈｉ\u{85}"), "Hi…");
        assert_eq!(fix_text("&amp;amp;amp;"), "&");
        assert_eq!(fix_text("<b>&amp;</b>"), "<b>&amp;</b>");
    }

    #[test]
    fn clean_collapses_space_and_lowercases() {
        assert_eq!(clean("  A\t\u{2009}B\u{3000}C  "), "a b c");
    }
}
