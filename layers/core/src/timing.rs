//! Where a call's time went: how long it waited for its server's concurrency slot, and
//! how long the upstream took.
//!
//! The request log (the metrics layer, near the top of the MCP plane) knows when a call
//! started and ended; only the bottom of the plane knows when it left for the upstream,
//! which is the moment its `ConcurrencyLimit` permit was granted. The two meet here
//! without a per-call allocation or lock: the metrics layer runs every `call` and `poll`
//! of the stack below it with its [`DispatchScope`] entered, and the upstream service calls
//! [`dispatched`] when it sends the request. Everything between the two runs in that same
//! `poll` (the router drives the chosen upstream with `Oneshot`, nothing in between spawns),
//! so a thread-local cell, set and restored around each poll, carries the mark up.
//!
//! ```
//! use mcp_gateway_core::timing::{DispatchScope, dispatched};
//!
//! let mut scope = DispatchScope::default();
//! dispatched(); // outside a scope: nothing is recorded
//! {
//!     let _entered = scope.enter();
//!     dispatched(); // the upstream, inside a `call` or `poll`
//! }
//! assert!(scope.first().is_some());
//! assert_eq!(scope.count(), 1);
//! ```

use std::cell::Cell;
use std::time::Instant;

/// What one call's scope saw: when it was first sent upstream, and how many times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchScope {
    first: Option<Instant>,
    count: u32,
}

#[derive(Clone, Copy)]
struct Slot {
    active: bool,
    scope: DispatchScope,
}

thread_local! {
    static CURRENT: Cell<Slot> = const {
        Cell::new(Slot { active: false, scope: DispatchScope { first: None, count: 0 } })
    };
}

/// A [`DispatchScope`] made current by [`DispatchScope::enter`]: dropping it (also while
/// unwinding) keeps what was recorded and puts the previous scope back.
#[must_use = "the scope is current only while the guard lives"]
pub struct Entered<'a> {
    scope: &'a mut DispatchScope,
    prev: Slot,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        *self.scope = CURRENT.with(|c| c.replace(self.prev)).scope;
    }
}

impl DispatchScope {
    /// Makes this scope current until the guard drops: wrap each `call` and `poll` of the
    /// services below in it. Scopes nest (an inner one hides the outer one for its
    /// duration); the guard borrows its scope, so guards drop in the order they were made.
    /// A guard rather than a closure: what is called need not be moved into one.
    #[inline]
    pub fn enter(&mut self) -> Entered<'_> {
        let prev = CURRENT.with(|c| {
            c.replace(Slot {
                active: true,
                scope: *self,
            })
        });
        Entered { scope: self, prev }
    }

    /// When the call was first sent to its upstream (its concurrency slot granted), if it
    /// was.
    pub fn first(&self) -> Option<Instant> {
        self.first
    }

    /// How many times the call was sent to an upstream service.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// Marks the current call as sent upstream now (a no-op outside a [`DispatchScope`]).
/// Called by the upstream service once its concurrency permit is held.
pub fn dispatched() {
    CURRENT.with(|c| {
        let mut s = c.get();
        if s.active {
            s.scope.first.get_or_insert_with(Instant::now);
            s.scope.count = s.scope.count.saturating_add(1);
            c.set(s);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        let mut outer = DispatchScope::default();
        let mut inner = DispatchScope::default();
        {
            let _o = outer.enter();
            {
                let _i = inner.enter();
                dispatched();
            }
            dispatched();
            dispatched();
        }
        assert_eq!((outer.count(), inner.count()), (2, 1));
        // Keeps its first mark across polls.
        let first = outer.first();
        {
            let _o = outer.enter();
            dispatched();
        }
        assert_eq!((outer.first(), outer.count()), (first, 3));
        dispatched();
        assert_eq!(outer.count(), 3, "outside any scope");
        let r = std::panic::catch_unwind(|| {
            let mut s = DispatchScope::default();
            let _s = s.enter();
            panic!("boom");
        });
        assert!(r.is_err());
        dispatched();
        assert!(!CURRENT.with(|c| c.get()).active, "restored after a panic");
    }
}
