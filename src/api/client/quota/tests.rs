use super::*;

#[test]
fn a_busy_stream_keeps_its_blocks() {
    // Doubling while each lasts under a second, up to the most.
    assert_eq!(block_after(Some(300), 32, 256), 64);
    assert_eq!(block_after(Some(300), 256, 256), 256);
    // A block of 256 lasting two seconds (128 calls a second) is counted again whole: it
    // used to fall back to one call, then double eight times, a write every few calls.
    assert_eq!(block_after(Some(2_000), 256, 256), 256);
    // Idle, or a new day: one call.
    assert_eq!(block_after(Some(60_000), 256, 256), 1);
    assert_eq!(block_after(None, 256, 256), 1);
    // A configured quota's hundredth bounds it.
    assert_eq!(block_after(Some(2_000), 256, 20), 20);
}
