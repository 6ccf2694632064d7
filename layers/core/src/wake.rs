//! Polling a future so that the wake-ups it raises on its own task, while it runs, cost
//! nothing.
//!
//! A future that wakes its own task during its poll leaves that task marked "notified". When
//! the poll then returns `Pending`, Tokio queues the task again as a yield, and on a
//! multi-thread runtime wakes another worker to steal it: a futex wake-up, a thread switch
//! and a needless poll of the whole task. In the gateway this happened on every call:
//! hyper's server wakes its connection when the handler takes the request body (the
//! body channel's sender registered the connection's waker), and an upstream connection
//! driven on the caller's task wakes that task when a request is queued to it, when a body
//! chunk is handed over, and when the reply is sent to the waiting call.
//!
//! [`WakeGate`] polls with a waker of its own. A wake-up raised inside the poll is recorded,
//! and the gate polls again at once instead of returning `Pending`; any other wake-up (a
//! socket becoming readable, another task sending) goes to the task as usual. [`Gated`]
//! wraps a whole future, such as an HTTP connection.

use futures::task::AtomicWaker;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Polls in a row, each after a wake-up the previous one raised itself, before the gate
/// leaves the future to the scheduler (which then polls others first).
const ROUNDS: usize = 8;

/// Not inside a poll: a wake-up goes to the task.
const IDLE: u8 = 0;
/// Inside a poll: a wake-up is recorded and answered by another round.
const POLLING: u8 = 1;
/// Inside a poll, and something woke it.
const WOKEN: u8 = 2;

/// Polls futures with a waker that turns their own wake-ups into another round of polling
/// (see the module note). One per task or per long-lived future; cheap to poll through.
pub struct WakeGate {
    shared: Arc<Shared>,
    /// `shared` as a waker, made once.
    waker: Waker,
}

struct Shared {
    /// [`IDLE`], [`POLLING`] or [`WOKEN`].
    state: AtomicU8,
    /// The task polling through the gate.
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // One atomic decides, so a wake-up from another thread racing the end of a poll is
        // either seen by that poll or passed on, never lost.
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

impl Default for WakeGate {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WakeGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeGate").finish_non_exhaustive()
    }
}

impl WakeGate {
    /// A gate; it allocates once.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(shared.clone());
        WakeGate { shared, waker }
    }

    /// Runs `poll` with the gate's waker, again at once while it returns `Pending` after
    /// waking itself (at most a few rounds, and not once the task's cooperative budget is
    /// spent); wake-ups from elsewhere, then and later, wake the task of `cx`.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..ROUNDS {
            self.shared.state.store(POLLING, Ordering::Release);
            let out = poll(&mut inner);
            let woken = self.shared.state.swap(IDLE, Ordering::AcqRel) == WOKEN;
            if out.is_ready() || !woken {
                return out;
            }
            if !tokio::task::coop::has_budget_remaining() {
                // Tokio's resources refuse to make progress until the task yields.
                break;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

pin_project! {
    /// A future polled through a [`WakeGate`] of its own.
    #[derive(Debug)]
    pub struct Gated<F> {
        #[pin]
        inner: F,
        gate: WakeGate,
    }
}

impl<F> Gated<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Gated {
            inner,
            gate: WakeGate::new(),
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut inner = this.inner;
        this.gate.poll(cx, |cx| inner.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_wake_up_raised_inside_the_poll_is_answered_by_polling_again() {
        let mut polls = 0;
        let mut fut = Gated::new(std::future::poll_fn(move |cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task was woken");
    }

    #[test]
    fn wake_ups_from_elsewhere_reach_the_task() {
        let slot: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, d) = (slot.clone(), done.clone());
        let mut fut = Gated::new(std::future::poll_fn(move |cx| {
            if d.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let stored = slot.lock().unwrap().take().unwrap();
        std::thread::spawn(move || {
            done.store(true, Ordering::SeqCst);
            stored.wake();
        })
        .join()
        .unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_left_to_the_scheduler() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let mut fut = Gated::new(std::future::poll_fn(move |cx| {
            p.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), ROUNDS);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "one yield to the scheduler"
        );
    }
}
