//! Queue depth for the `virt_controller_queue_depth` gauge.
//!
//! kube-runtime's scheduler does not expose its queue, so the controllers keep a mirror: a key
//! is added when an event triggers a reconcile of an object that exists in the cache, and taken
//! out when that reconcile starts or the object is deleted. As in the scheduler, a key waiting
//! twice counts once. Timed requeues (backoff, `Action::requeue`) are not counted, as client-go's
//! workqueue does not count delayed items in its depth.

use std::collections::HashSet;

use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Default)]
pub struct QueueDepth {
    waiting: Mutex<HashSet<String>>,
    gauge: Gauge,
}

impl QueueDepth {
    /// A queue that reports into `gauge`.
    pub fn new(gauge: Gauge) -> Self {
        QueueDepth {
            waiting: Mutex::default(),
            gauge,
        }
    }

    fn update(&self, waiting: &HashSet<String>) {
        self.gauge.set(waiting.len() as i64);
    }

    /// A reconcile of `key` was asked for.
    pub fn add(&self, key: String) {
        let mut waiting = self.waiting.lock();
        waiting.insert(key);
        self.update(&waiting);
    }

    /// The reconcile of `key` started, or the object is gone.
    pub fn remove(&self, key: &str) {
        let mut waiting = self.waiting.lock();
        waiting.remove(key);
        self.update(&waiting);
    }

    /// Keeps only the keys `keep` says are still waiting.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut waiting = self.waiting.lock();
        waiting.retain(|k| keep(k));
        self.update(&waiting);
    }

    /// Nothing waits any more (the controller stopped).
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    pub fn depth(&self) -> usize {
        self.waiting.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_waiting_key_once() {
        let gauge = Gauge::default();
        let q = QueueDepth::new(gauge.clone());
        q.add("ns/a".into());
        q.add("ns/a".into());
        q.add("ns/b".into());
        assert_eq!((q.depth(), gauge.get()), (2, 2));
        q.remove("ns/a");
        q.remove("ns/missing");
        assert_eq!((q.depth(), gauge.get()), (1, 1));
        q.remove("ns/b");
        assert_eq!(gauge.get(), 0);
    }
}
