//! The queue of regular files ready to copy (their directories made): the engine feeds it while
//! the plan grows; backend workers take from it, blocking (threads) or awaiting (ring lanes).
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    /// Items with their group: items of one group next to each other go to one taker together;
    /// an item without one is taken alone.
    items: VecDeque<(usize, Option<u64>)>,
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

    /// Queues `items`, each in a group of its own.
    pub fn push(&self, items: impl IntoIterator<Item = usize>) {
        self.push_grouped(items.into_iter().map(|i| (i, None)));
    }

    /// Queues `items` with their groups (see [`Taker`]).
    pub fn push_grouped(&self, items: impl IntoIterator<Item = (usize, Option<u64>)>) {
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
            if let Some((i, _)) = s.items.pop_front() {
                return Some(i);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Moves the next item and up to `max - 1` more of its group that follow it into `batch`,
    /// waiting for one; `false` once closed and empty.
    fn next_batch_blocking(&self, max: usize, batch: &mut VecDeque<usize>) -> bool {
        let mut s = self.lock();
        loop {
            if let Some((i, group)) = s.items.pop_front() {
                batch.push_back(i);
                while batch.len() < max {
                    match s.items.front() {
                        Some(&(j, g)) if group.is_some() && g == group => {
                            s.items.pop_front();
                            batch.push_back(j);
                        }
                        _ => break,
                    }
                }
                return true;
            }
            if s.closed {
                return false;
            }
            s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A blocking taker that takes a group's items in runs of up to `max` (see [`Taker`]).
    pub fn taker(&self, max: usize) -> Taker<'_> {
        Taker {
            queue: self,
            max: max.max(1),
            batch: VecDeque::new(),
        }
    }

    /// The next item for an async task: waits without blocking its thread.
    pub fn next(&self) -> Next<'_> {
        Next { queue: self }
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        let mut s = self.lock();
        if let Some((i, _)) = s.items.pop_front() {
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

/// One thread's claim on the queue: it takes the items of one group (the small files of one
/// destination directory) that stand together in runs, so that threads work in different
/// directories. Creating a file takes its directory's lock; two threads creating files in one
/// directory spin on it (measured: 7.5% of the CPU of a warm copy of 25,000 small files).
/// Items taken and not yet returned are this taker's; a taker dropped early leaves them
/// unstarted, as a worker that stops leaves the queue.
pub struct Taker<'q> {
    queue: &'q FileQueue,
    max: usize,
    batch: VecDeque<usize>,
}

impl Taker<'_> {
    /// The next item, waiting for one; `None` once the queue is closed and empty.
    pub fn next_blocking(&mut self) -> Option<usize> {
        if self.batch.is_empty() && !self.queue.next_batch_blocking(self.max, &mut self.batch) {
            return None;
        }
        self.batch.pop_front()
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
    fn a_taker_takes_a_run_of_one_group_and_another_taker_the_next_group() {
        let q = FileQueue::new();
        let g = |i, group| (i, Some(group));
        q.push_grouped([g(0, 7), g(1, 7), g(2, 7), g(3, 9), g(4, 9), g(5, 7)]);
        q.push([6, 7]);
        q.close();
        let (mut a, mut b) = (q.taker(2), q.taker(32));
        // a's run stops at its cap, b takes the rest of group 7 that stands together, ...
        assert_eq!(a.next_blocking(), Some(0));
        assert_eq!(b.next_blocking(), Some(2));
        assert_eq!(a.next_blocking(), Some(1));
        // ... then a the next group's run; a group seen again later is a new run.
        assert_eq!(a.next_blocking(), Some(3));
        assert_eq!(b.next_blocking(), Some(5));
        assert_eq!(a.next_blocking(), Some(4));
        // Items pushed without a group are one run each.
        assert_eq!(a.next_blocking(), Some(6));
        assert_eq!(b.next_blocking(), Some(7));
        assert_eq!((a.next_blocking(), b.next_blocking()), (None, None));
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
