//! Capture files as a source: their frames, merged in time order, through
//! the [`Driver`], with the frames' own timestamps as the clock (a capture
//! replays its hour in seconds; no wall clock is read).
//!
//! Guarantees: every window the frames passed is written as soon as a later
//! frame closed it; at the end of the input every window is written whole
//! (a capture's last window is not cut short by a stop), and no window
//! after the last frame is opened.

use vpcflow_capture::MergedCaptures;

use crate::driver::{Driver, Sink, SinkError};

/// Frames between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 65_536;

/// Replays `captures` through `driver` into `sink`; `progress` is called
/// every [`PROGRESS_EVERY`] frames. Returns the frames read.
pub fn replay(
    driver: &mut Driver,
    captures: &mut MergedCaptures,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&MergedCaptures),
) -> Result<u64, SinkError> {
    let mut frames: u64 = 0;
    while let Some(frame) = captures.next_frame() {
        driver.observe(&frame);
        frames += 1;
        if driver.has_closed() {
            driver.drain(sink)?;
        }
        if frames.is_multiple_of(PROGRESS_EVERY) {
            progress(captures);
        }
    }
    driver.end_of_input(sink)?;
    Ok(frames)
}
