//! Any configuration text: refused with problems that each name a key and say what is wrong, or
//! accepted, and then what `roster check-config` prints for it (the effective configuration)
//! reads back as the same configuration.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use roster::config::{Config, Overrides};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("/etc/roster/roster.toml");
    match Config::parse(text, Some(path), &Overrides::default()) {
        Ok(config) => {
            let printed = config.to_toml();
            let again =
                Config::parse(&printed, Some(path), &Overrides::default()).unwrap_or_else(|p| {
                    panic!("the effective configuration is refused: {p:?}\n{printed}")
                });
            assert!(
                again == config,
                "the effective configuration reads back differently:\n{text}\n---\n{printed}\n{config:?}\n{again:?}"
            );
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a problem: {text:?}");
            for p in &problems {
                assert!(
                    !p.key.is_empty() && !p.message.is_empty(),
                    "{p:?}: {text:?}"
                );
            }
        }
    }
});
