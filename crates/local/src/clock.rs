//! Virtual time: the simulated wall clock of a local run.

use rm_core::ports::Clock;
use time::OffsetDateTime;

/// `start` plus the tokio time elapsed since the clock was made. In a runtime built with
/// `start_paused(true)` tokio time jumps ahead whenever every task is idle, so simulated hours
/// pass in milliseconds; the engine and the simulated pipelines read the same tokio clock.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    start: OffsetDateTime,
    t0: tokio::time::Instant,
}

impl VirtualClock {
    /// Must be made inside the runtime whose clock it follows.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            start,
            t0: tokio::time::Instant::now(),
        }
    }

    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// Simulated time elapsed since the start.
    pub fn elapsed(&self) -> std::time::Duration {
        tokio::time::Instant::now().duration_since(self.t0)
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> OffsetDateTime {
        self.start + self.elapsed()
    }
}
