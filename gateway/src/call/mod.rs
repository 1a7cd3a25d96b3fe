//! One phone call: the sans-I/O [`session::CallSession`] state machine, the history that
//! seeds a new model session ([`history`]), its barge-in
//! bookkeeping in [`playback`], and the task that moves bytes for it in [`task`].

pub mod history;
pub mod playback;
pub mod session;
pub mod task;
