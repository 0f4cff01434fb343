//! The server's state that the verbs, the strategies and the background loops share: the
//! store, the served types, and the wake-up of the garbage collector.

use std::net::Ipv4Addr;

use chrono::{SecondsFormat, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::registry::Registry;
use crate::store::Store;

pub struct Core {
    pub store: Store,
    pub registry: Registry,
    /// Woken after deletions and finalizer changes, for the garbage collector.
    pub gc_wake: Notify,
    pub service_cidr: (Ipv4Addr, u8),
    /// Serializes service creation so that allocated IPs and ports are unique.
    pub(crate) alloc_lock: Mutex<()>,
}

impl Core {
    pub fn new(watch_window: usize, service_cidr: (Ipv4Addr, u8)) -> Self {
        Self::with_store(Store::new(watch_window), service_cidr)
    }

    pub fn with_store(store: Store, service_cidr: (Ipv4Addr, u8)) -> Self {
        Core {
            store,
            registry: Registry::new(),
            gc_wake: Notify::new(),
            service_cidr,
            alloc_lock: Mutex::new(()),
        }
    }
}

/// Now, as metadata timestamps carry it.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}
