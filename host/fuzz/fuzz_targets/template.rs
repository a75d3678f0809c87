//! Fuzzes the `${SECRET:…}` template parser and renderer on arbitrary UTF-8.
//!
//! Checked for every input:
//! - `parse` and `render` never panic (one dummy value per reference);
//! - at most `MAX_PLACEHOLDERS` references, all distinct;
//! - text without `${SECRET:` is never refused (unless too large), has no
//!   references, and renders byte-identical to the input.

#![no_main]

use keyward::crypto::SecretBytes;
use keyward::template::{parse, TemplateError, MAX_PLACEHOLDERS};
use libfuzzer_sys::fuzz_target;

const OPEN: &str = "${SECRET:";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = !text.contains(OPEN);
    match parse(text) {
        Ok(template) => {
            let refs = template.refs();
            assert!(refs.len() <= MAX_PLACEHOLDERS);
            for (i, r) in refs.iter().enumerate() {
                assert!(!refs[..i].contains(r), "duplicate reference {r}");
            }
            let values: Vec<SecretBytes> = (0..refs.len())
                .map(|i| SecretBytes::new(format!("<v{i}>").into_bytes()))
                .collect();
            let rendered = template.render(&values);
            if plain {
                assert!(refs.is_empty(), "references found in text without {OPEN}");
                assert_eq!(
                    rendered.as_slice(),
                    text.as_bytes(),
                    "text without {OPEN} must render unchanged"
                );
            }
        }
        Err(TemplateError::TooLarge { .. }) => {}
        Err(error) => assert!(!plain, "text without {OPEN} refused: {error}"),
    }
});
