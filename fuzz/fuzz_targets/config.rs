//! The config loader: YAML, JSON and TOML text with `${VAR}` references, then validation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway_config::{Config, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let format = match which % 3 {
        0 => Format::Yaml,
        1 => Format::Json,
        _ => Format::Toml,
    };
    let _ = Config::parse(text, format, std::path::Path::new("fuzz.cfg"), |k| {
        (k.len() % 2 == 0).then(|| format!("v-{k}"))
    });
});
