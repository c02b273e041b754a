//! Control-socket request lines and scale targets on arbitrary input: no
//! panic; what parses round-trips.
#![no_main]

use corefit::control::{parse_request, ScaleTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(r) = parse_request(&s) {
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(parse_request(&line).unwrap(), r);
    }
    if let Ok(t) = s.parse::<ScaleTarget>() {
        assert_eq!(t.to_string().parse::<ScaleTarget>().unwrap(), t);
    }
});
