//! Create and delete expectations: what a controller has asked the API server to do but not
//! yet seen in its cache. While one is pending for a key, the controller must not act on a
//! cache that may be stale (it would create a second VMI, or delete twice).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Pending expectations expire, as KubeVirt's do, so a lost event cannot wedge a key forever.
const TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Pending {
    /// The uid of a created object that the cache must show.
    create: Option<String>,
    /// The uid of a deleted object that the cache must show gone (or deleting).
    delete: Option<String>,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

/// What the cache currently shows for a key.
pub struct Observed<'a> {
    /// The uid of the object in the cache, if any.
    pub uid: Option<&'a str>,
    /// Whether that object is being deleted.
    pub deleting: bool,
}

impl Expectations {
    /// Records in `key`'s entry (made if missing), and restarts its clock.
    fn expect(&self, key: &str, record: impl FnOnce(&mut Pending)) {
        let mut m = self.inner.lock();
        let e = m.entry(key.to_string()).or_insert(Pending {
            create: None,
            delete: None,
            since: Instant::now(),
        });
        record(e);
        e.since = Instant::now();
    }

    pub fn expect_create(&self, key: &str, uid: &str) {
        self.expect(key, |e| e.create = Some(uid.to_string()));
    }

    pub fn expect_delete(&self, key: &str, uid: &str) {
        self.expect(key, |e| e.delete = Some(uid.to_string()));
    }

    /// Clears what the cache now confirms; returns (create_expected, delete_expected).
    pub fn observe(&self, key: &str, seen: Observed<'_>) -> (bool, bool) {
        let mut m = self.inner.lock();
        let Some(e) = m.get_mut(key) else {
            return (false, false);
        };
        if e.since.elapsed() > TTL {
            m.remove(key);
            return (false, false);
        }
        if let Some(uid) = &e.create
            && seen.uid == Some(uid.as_str())
        {
            e.create = None;
        }
        if let Some(uid) = &e.delete
            && (seen.uid != Some(uid.as_str()) || seen.deleting)
        {
            e.delete = None;
        }
        let out = (e.create.is_some(), e.delete.is_some());
        if out == (false, false) {
            m.remove(key);
        }
        out
    }

    /// Forgets a key (its object is gone, or an action failed).
    pub fn forget(&self, key: &str) {
        self.inner.lock().remove(key);
    }

    pub fn pending(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_expected_until_the_cache_shows_it() {
        let e = Expectations::default();
        e.expect_create("ns/vm", "u1");
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: None,
                    deleting: false
                }
            ),
            (true, false)
        );
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: Some("u0"),
                    deleting: false
                }
            ),
            (true, false)
        );
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: Some("u1"),
                    deleting: false
                }
            ),
            (false, false)
        );
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn a_delete_is_expected_until_the_object_goes_or_is_deleting() {
        let e = Expectations::default();
        e.expect_delete("ns/vm", "u1");
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: Some("u1"),
                    deleting: false
                }
            ),
            (false, true)
        );
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: Some("u1"),
                    deleting: true
                }
            ),
            (false, false)
        );
        e.expect_delete("ns/vm", "u2");
        assert_eq!(
            e.observe(
                "ns/vm",
                Observed {
                    uid: None,
                    deleting: false
                }
            ),
            (false, false)
        );
    }
}
