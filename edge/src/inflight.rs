//! Request coalescing: concurrent misses for one cache key inside an isolate
//! share one origin fetch.
//!
//! The first request for a key becomes the leader and fetches. Later ones wait
//! for the leader's result as plain Rust data. If the leader goes away without
//! a result, its followers fetch for themselves.
//!
//! workerd binds every JavaScript I/O object, such as a response body, to the
//! request whose code created it, and cancels a request that waits on nothing it
//! can see. So a follower must never be woken by the leader: its code would then
//! run in the leader's context and build its response there. Instead each
//! follower polls a shared slot on its own timer, whose callbacks run in the
//! follower's own context.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use worker::Delay;

use crate::upstream::Fetched;

/// Interval at which a waiting follower checks for the leader's result.
const FOLLOWER_TICK: Duration = Duration::from_millis(2);

/// The result a follower waits for.
enum Outcome {
    Pending,
    Ready(Rc<Fetched>),
    /// The leader went away without a result.
    Abandoned,
}

type Slot = Rc<RefCell<Outcome>>;

thread_local! {
    /// Keys with a fetch in progress, and the slots of the requests waiting for each.
    static PENDING: RefCell<HashMap<String, Vec<Slot>>> = RefCell::new(HashMap::new());
}

/// A request's part in the fetch of one key.
pub enum Role {
    /// This request fetches, and must hand the result to [`Leader::finish`].
    Leader(Leader),
    /// Another request is fetching; pass this to [`follow`].
    Follower(Follower),
}

/// Joins the fetch of `key`, starting one when none is in progress.
pub fn join(key: &str) -> Role {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        match pending.get_mut(key) {
            Some(slots) => {
                let slot = Rc::new(RefCell::new(Outcome::Pending));
                slots.push(slot.clone());
                Role::Follower(Follower { slot })
            }
            None => {
                pending.insert(key.to_owned(), Vec::new());
                Role::Leader(Leader {
                    key: key.to_owned(),
                })
            }
        }
    })
}

/// Returns whether a fetch of `key` is in progress.
pub fn is_pending(key: &str) -> bool {
    PENDING.with(|pending| pending.borrow().contains_key(key))
}

/// A request waiting for another one's fetch.
pub struct Follower {
    slot: Slot,
}

/// Waits for the leader's result; `None` when the leader went away without one.
pub async fn follow(follower: Follower) -> Option<Rc<Fetched>> {
    loop {
        match &*follower.slot.borrow() {
            Outcome::Ready(fetched) => return Some(fetched.clone()),
            Outcome::Abandoned => return None,
            Outcome::Pending => {}
        }
        Delay::from(FOLLOWER_TICK).await;
    }
}

/// The request fetching one key for everyone waiting on it.
pub struct Leader {
    key: String,
}

impl Leader {
    /// Hands `fetched` to every follower and ends the fetch.
    pub fn finish(self, fetched: Rc<Fetched>) {
        for slot in self.take_slots() {
            *slot.borrow_mut() = Outcome::Ready(fetched.clone());
        }
    }

    fn take_slots(&self) -> Vec<Slot> {
        PENDING.with(|pending| pending.borrow_mut().remove(&self.key).unwrap_or_default())
    }
}

impl Drop for Leader {
    /// Ends the fetch if `finish` was never called, so the followers fetch for themselves.
    fn drop(&mut self) {
        for slot in self.take_slots() {
            *slot.borrow_mut() = Outcome::Abandoned;
        }
    }
}
