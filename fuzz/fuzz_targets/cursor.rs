//! A listing cursor (`?cursor=`) is base64url JSON from the client: decoding any text never
//! panics, and a cursor that decodes is the one its own encoding decodes to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use projectors::read_model::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cursor) = Cursor::decode(text) {
        let _ = cursor.is_well_formed();
        let again = Cursor::decode(&cursor.encode());
        assert_eq!(
            again.as_ref(),
            Some(&cursor),
            "a cursor's own encoding decodes to it"
        );
    }
});
