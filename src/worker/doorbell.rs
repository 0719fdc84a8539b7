//! The doorbell: a bounded channel that only wakes workers.
//!
//! The journal stays the source of truth. A ring that finds the channel full
//! is dropped, which loses nothing: the queued rings already guarantee that
//! workers will look at the journal again, and they also poll it.

/// Wakes idle workers after a commit.
#[derive(Clone)]
pub struct Doorbell {
    sender: async_channel::Sender<()>,
    receiver: async_channel::Receiver<()>,
}

impl Doorbell {
    /// A doorbell holding at most `capacity` unanswered rings.
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = async_channel::bounded(capacity.max(1));
        Self { sender, receiver }
    }

    /// Wakes one waiting worker; never blocks.
    pub fn ring(&self) {
        let _ = self.sender.try_send(());
    }

    /// Waits for a ring.
    pub async fn wait(&self) {
        let _ = self.receiver.recv().await;
    }

    /// Unanswered rings.
    pub fn queued(&self) -> usize {
        self.sender.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_doorbell_drops_rings_without_blocking() {
        let doorbell = Doorbell::new(2);
        for _ in 0..10 {
            doorbell.ring();
        }
        assert_eq!(doorbell.queued(), 2);
        doorbell.wait().await;
        assert_eq!(doorbell.queued(), 1);
    }
}
