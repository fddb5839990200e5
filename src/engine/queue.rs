//! The queue of regular files ready to copy (their directories made): the engine feeds it while
//! the plan grows; backend workers take from it, blocking (threads) or awaiting (ring lanes).
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    items: VecDeque<usize>,
    closed: bool,
    /// Ring lanes waiting for an item, woken by the next push or the close.
    wakers: Vec<Waker>,
}

/// Plan indices of `Op::Copy` jobs, in plan order.
#[derive(Default)]
pub struct FileQueue {
    state: Mutex<State>,
    ready: Condvar,
}

impl FileQueue {
    pub fn new() -> Self {
        FileQueue::default()
    }

    /// A queue holding `items`, already closed (a complete plan, or a test).
    pub fn closed_with(items: impl IntoIterator<Item = usize>) -> Self {
        let q = FileQueue::new();
        q.push(items);
        q.close();
        q
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, items: impl IntoIterator<Item = usize>) {
        let wakers = {
            let mut s = self.lock();
            let before = s.items.len();
            s.items.extend(items);
            if s.items.len() == before {
                return;
            }
            std::mem::take(&mut s.wakers)
        };
        self.ready.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// No more items will come: waiting takers get `None` once the queue is empty.
    pub fn close(&self) {
        let wakers = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.wakers)
        };
        self.ready.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The next item, waiting for one; `None` once closed and empty.
    pub fn next_blocking(&self) -> Option<usize> {
        let mut s = self.lock();
        loop {
            if let Some(i) = s.items.pop_front() {
                return Some(i);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The next item for an async task: waits without blocking its thread.
    pub fn next(&self) -> Next<'_> {
        Next { queue: self }
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        let mut s = self.lock();
        if let Some(i) = s.items.pop_front() {
            return Poll::Ready(Some(i));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            s.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

pub struct Next<'q> {
    queue: &'q FileQueue,
}

impl Future for Next<'_> {
    type Output = Option<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        self.queue.poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_item_is_taken_once_while_pushes_race_takers() {
        let q = FileQueue::new();
        let sum = AtomicUsize::new(0);
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while let Some(i) = q.next_blocking() {
                        sum.fetch_add(i, Ordering::Relaxed);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            for chunk in 0..100 {
                q.push(chunk * 100..(chunk + 1) * 100);
            }
            q.close();
        });
        assert_eq!(count.load(Ordering::Relaxed), 10_000);
        assert_eq!(sum.load(Ordering::Relaxed), (0..10_000).sum::<usize>());
    }

    #[test]
    fn an_awaiting_taker_is_woken_by_a_push_from_another_thread() {
        use std::sync::Arc;
        use std::task::Wake;
        struct Flag(std::sync::atomic::AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let q = FileQueue::new();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut next = q.next();
        assert!(Pin::new(&mut next).poll(&mut cx).is_pending());
        std::thread::scope(|s| {
            s.spawn(|| q.push([7]));
        });
        assert!(flag.0.load(Ordering::SeqCst), "the push woke the taker");
        assert_eq!(Pin::new(&mut next).poll(&mut cx), Poll::Ready(Some(7)));
        q.close();
        assert_eq!(Pin::new(&mut q.next()).poll(&mut cx), Poll::Ready(None));
    }
}
