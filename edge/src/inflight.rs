//! Request coalescing: concurrent misses for one cache key inside an isolate
//! share one origin fetch.
//!
//! The first request for a key becomes the leader and fetches. Later ones wait
//! for the leader's result as plain Rust data, so no JavaScript object of the
//! leader's request is touched from another request (workerd forbids that). If
//! the leader goes away without a result, its followers fetch for themselves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;

use crate::upstream::Fetched;

type Waiters = Vec<oneshot::Sender<Rc<Fetched>>>;

thread_local! {
    /// Keys with a fetch in progress, and the requests waiting for each.
    static PENDING: RefCell<HashMap<String, Waiters>> = RefCell::new(HashMap::new());
}

/// A request's part in the fetch of one key.
pub enum Role {
    /// This request fetches, and must hand the result to [`Leader::finish`].
    Leader(Leader),
    /// Another request is fetching; await this for its result.
    Follower(oneshot::Receiver<Rc<Fetched>>),
}

/// Joins the fetch of `key`, starting one when none is in progress.
pub fn join(key: &str) -> Role {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        match pending.get_mut(key) {
            Some(waiters) => {
                let (sender, receiver) = oneshot::channel();
                waiters.push(sender);
                Role::Follower(receiver)
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

/// The request fetching one key for everyone waiting on it.
pub struct Leader {
    key: String,
}

impl Leader {
    /// Hands `fetched` to every follower and ends the fetch.
    pub fn finish(self, fetched: Rc<Fetched>) {
        for waiter in self.take_waiters() {
            // A follower whose request was cancelled has dropped its receiver; nothing to do.
            let _ = waiter.send(fetched.clone());
        }
    }

    fn take_waiters(&self) -> Waiters {
        PENDING.with(|pending| pending.borrow_mut().remove(&self.key).unwrap_or_default())
    }
}

impl Drop for Leader {
    /// Ends the fetch if `finish` was never called: the followers' receivers see
    /// their senders dropped and fetch for themselves.
    fn drop(&mut self) {
        drop(self.take_waiters());
    }
}
