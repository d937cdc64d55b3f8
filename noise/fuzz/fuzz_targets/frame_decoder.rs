//! Fuzz the 2-byte length framing of Noise messages (`FrameDecoder`), fed
//! in arbitrary chunks. Input: `[max_message u16 LE][n_cuts u8][cuts u8 *
//! n_cuts][stream...]`. Checks against a one-shot reference decoder: the same
//! frames come out whatever the chunking, the same error ends the stream,
//! nothing past a frame is consumed, and the buffer never holds more than one
//! frame (`buffered() <= 2 + max_message`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_noise_fuzz::run_frame_decoder(data);
});
