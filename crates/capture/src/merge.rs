//! Several capture files read as one timeline.
//!
//! Captures of the same period taken on different interfaces must be
//! aggregated together, or each file would close windows the next one still
//! needs. Each file's current frame is copied into a reused buffer (no
//! allocation per packet once the buffers have grown), and the earliest is
//! handed out; ties go to the file named first. A single file is read
//! directly, without the copy.

use vpcflow_wire::{Frame, LinkType};

use crate::CaptureFile;

struct Head {
    timestamp_ns: u64,
    link: LinkType,
    wire_len: u32,
    data: Vec<u8>,
    live: bool,
}

/// Capture files merged by timestamp.
pub struct MergedCaptures {
    files: Vec<CaptureFile>,
    heads: Vec<Head>,
    started: bool,
    taken: Option<usize>,
}

impl MergedCaptures {
    /// Merges `files` (in the order given, for ties).
    pub fn new(files: Vec<CaptureFile>) -> MergedCaptures {
        let heads = files
            .iter()
            .map(|_| Head {
                timestamp_ns: 0,
                link: LinkType::Ethernet,
                wire_len: 0,
                data: Vec::new(),
                live: false,
            })
            .collect();
        MergedCaptures {
            files,
            heads,
            started: false,
            taken: None,
        }
    }

    /// The files, for their endings and progress.
    pub fn files(&self) -> &[CaptureFile] {
        &self.files
    }

    fn load(&mut self, i: usize) {
        let h = &mut self.heads[i];
        match self.files[i].next_frame() {
            Some(f) => {
                h.timestamp_ns = f.timestamp_ns;
                h.link = f.link;
                h.wire_len = f.wire_len;
                h.data.clear();
                h.data.extend_from_slice(f.data);
                h.live = true;
            }
            None => h.live = false,
        }
    }

    /// The earliest frame among the files, or `None` when all have ended.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        // One file needs no merging and no copy.
        if self.files.len() == 1 {
            return self.files[0].next_frame();
        }
        if !self.started {
            self.started = true;
            for i in 0..self.files.len() {
                self.load(i);
            }
        } else if let Some(i) = self.taken.take() {
            self.load(i);
        }
        let i = (0..self.heads.len())
            .filter(|&i| self.heads[i].live)
            .min_by_key(|&i| self.heads[i].timestamp_ns)?;
        self.taken = Some(i);
        let h = &self.heads[i];
        Some(Frame {
            timestamp_ns: h.timestamp_ns,
            link: h.link,
            data: &h.data,
            wire_len: h.wire_len,
        })
    }
}
