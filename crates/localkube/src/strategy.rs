//! The per-type rules of the API verbs, as kube-apiserver's registry strategies have them: what
//! a type resets and defaults, what it checks beyond its schema, what follows a write, and how
//! it is deleted. The verbs in `api` call these hooks and know no type by name; `builtin` and
//! `crd` implement them.

use std::sync::Arc;

use serde_json::Value;

use crate::registry::ResourceType;
use crate::state::Core;
use crate::status::ApiResult;
use crate::store::Stored;

/// A stored (or, on a dry run, would-be stored) object, and its stored form when it was written.
pub type Created = (Value, Option<Arc<Stored>>);

/// The hooks of one kind of resource. Every hook has the answer of a type with no rules.
pub trait Strategy: Sync {
    /// Whether `metadata.generation` counts the changes of everything but metadata and status.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Where kube-apiserver keeps this type in etcd, which its storage errors name.
    fn storage_prefix(&self, rt: &ResourceType) -> String {
        format!("/registry/{}", rt.plural)
    }

    /// Refuses a create before the object is looked at.
    fn admit_create(&self, _core: &Core, _rt: &ResourceType) -> ApiResult<()> {
        Ok(())
    }

    /// What the type checks beyond its schema, on create.
    fn validate_create(&self, _core: &Core, _rt: &ResourceType, _obj: &Value) -> ApiResult<()> {
        Ok(())
    }

    /// What the type checks beyond its schema, on update; `old` is the stored object.
    fn validate_update(
        &self,
        core: &Core,
        rt: &ResourceType,
        _old: &Value,
        obj: &Value,
    ) -> ApiResult<()> {
        self.validate_create(core, rt, obj)
    }

    /// Defaults and resets of a valid new object (status, spec defaults, finalizers).
    fn prepare_for_create(&self, _rt: &ResourceType, _obj: &mut Value) {}

    /// What a valid update keeps from `old`, or refuses to change.
    fn prepare_for_update(
        &self,
        _old: &Value,
        _obj: &mut Value,
        _status_only: bool,
    ) -> ApiResult<()> {
        Ok(())
    }

    /// Stores a new object through `commit`. A type that allocates from a shared pool (service
    /// IPs and node ports) allocates here, and holds its lock until the object is stored.
    fn commit_create(
        &self,
        _core: &Core,
        stored: Value,
        commit: &mut dyn FnMut(Value) -> ApiResult<Created>,
    ) -> ApiResult<Created> {
        commit(stored)
    }

    /// Runs after a new object was stored (not on dry runs). Returns whether it wrote the object
    /// again, so that the answer shows the stored state.
    fn after_create(&self, _core: &Core, _obj: &Value) -> ApiResult<bool> {
        Ok(false)
    }

    /// Runs after an update was stored.
    fn after_update(&self, _core: &Core, _obj: &Value) -> ApiResult<()> {
        Ok(())
    }

    /// Refuses a delete before the object is read.
    fn admit_delete(&self, _name: &str) -> ApiResult<()> {
        Ok(())
    }

    /// For a type deleted gracefully, the grace period a delete gives `obj`, from the requested
    /// one; `None` for a type whose objects go at once.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// Marks `next` as being deleted, beyond its deletion timestamp. Returns whether it stays
    /// until something finishes it, even with no finalizers (a namespace and its content).
    fn on_delete(
        &self,
        _name: &str,
        _already_deleting: bool,
        _next: &mut Value,
    ) -> ApiResult<bool> {
        Ok(false)
    }

    /// Whether a deleted object with no finalizers left may leave storage.
    fn may_remove(&self, _obj: &Value) -> bool {
        true
    }

    /// Runs after an object left storage.
    fn after_remove(&self, _core: &Core, _obj: &Value) {}
}
