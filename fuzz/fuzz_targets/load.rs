//! Parse and validate arbitrary bytes as a manifest: `load` must never
//! panic, hang or exhaust memory, whatever is pushed.
#![no_main]

use flotilla::manifest::{load, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let loaded = load(&[SourceFile {
        path: "fuzz.yaml".to_string(),
        text,
        excluded: Vec::new(),
    }]);
    // Rendering is part of the contract too.
    for diagnostic in &loaded.diagnostics {
        let _ = diagnostic.to_string();
    }
});
