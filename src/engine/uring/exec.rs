//! Async plumbing for one ring worker: a join of borrowed futures, the buffer permits, and the
//! one-shot slot a blocking thread completes.
//!
//! compio's `spawn` wants `'static` futures, but every copy borrows the plan and the run's `Ctx`;
//! rather than lie about lifetimes with `unsafe`, the lanes of a worker run as plain futures
//! inside one `block_on`, joined here.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

type Lane<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs every future to completion, polling only the ones whose waker fired since the last poll:
/// with 32 lanes and one completion per wake-up, polling them all each time would cost O(lanes)
/// per I/O.
pub struct JoinAll<'a> {
    lanes: Vec<Option<Lane<'a>>>,
    wakers: Vec<Waker>,
    ready: Arc<Ready>,
    left: usize,
}

struct Ready {
    queue: Mutex<ReadyQueue>,
}

struct ReadyQueue {
    /// Lane indices to poll, each at most once (`queued`).
    order: Vec<usize>,
    queued: Vec<bool>,
    parent: Option<Waker>,
}

struct LaneWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for LaneWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A blocking thread can wake a lane, so this is a Mutex and not a RefCell; it is never
        // contended on the ring thread itself.
        let parent = {
            let mut q = self
                .ready
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !q.queued[self.index] {
                q.queued[self.index] = true;
                q.order.push(self.index);
            }
            q.parent.clone()
        };
        if let Some(p) = parent {
            p.wake();
        }
    }
}

impl<'a> JoinAll<'a> {
    pub fn new(futures: Vec<Lane<'a>>) -> Self {
        let n = futures.len();
        let ready = Arc::new(Ready {
            queue: Mutex::new(ReadyQueue {
                // Every lane is polled once to start.
                order: (0..n).collect(),
                queued: vec![true; n],
                parent: None,
            }),
        });
        let wakers = (0..n)
            .map(|index| {
                Waker::from(Arc::new(LaneWaker {
                    index,
                    ready: ready.clone(),
                }))
            })
            .collect();
        JoinAll {
            lanes: futures.into_iter().map(Some).collect(),
            wakers,
            ready,
            left: n,
        }
    }
}

impl Future for JoinAll<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let batch = {
                let mut q = this
                    .ready
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if !q.parent.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.parent = Some(cx.waker().clone());
                }
                let batch = std::mem::take(&mut q.order);
                for &i in &batch {
                    q.queued[i] = false;
                }
                batch
            };
            if batch.is_empty() {
                break;
            }
            for i in batch {
                let Some(fut) = this.lanes[i].as_mut() else {
                    continue;
                };
                let mut lane_cx = Context::from_waker(&this.wakers[i]);
                if fut.as_mut().poll(&mut lane_cx).is_ready() {
                    this.lanes[i] = None;
                    this.left -= 1;
                }
            }
        }
        if this.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Counts the buffers of a worker's ring that are handed out. A read on an empty ring fails
/// (`ENOBUFS`), so every read first takes a permit and holds it until the buffer it filled is
/// written and back in the ring. Waiters are served first come, first served; acquiring waits,
/// it never errors or spins.
pub struct Permits {
    inner: RefCell<PermitsInner>,
}

struct PermitsInner {
    free: usize,
    waiters: VecDeque<Rc<Waiter>>,
}

struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Permits {
    pub fn new(n: usize) -> Self {
        Permits {
            inner: RefCell::new(PermitsInner {
                free: n,
                waiters: VecDeque::new(),
            }),
        }
    }

    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            permits: self,
            waiter: None,
            done: false,
        }
    }

    /// Hands a returned permit to the oldest waiter, or back to the free count.
    fn release(&self) {
        let next = {
            let mut inner = self.inner.borrow_mut();
            match inner.waiters.pop_front() {
                Some(w) => Some(w),
                None => {
                    inner.free += 1;
                    None
                }
            }
        };
        if let Some(w) = next {
            w.granted.set(true);
            let waker = w.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    #[cfg(test)]
    pub fn free(&self) -> usize {
        self.inner.borrow().free
    }
}

/// One permit; returned on drop.
pub struct Permit<'p> {
    permits: &'p Permits,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.permits.release();
    }
}

pub struct Acquire<'p> {
    permits: &'p Permits,
    waiter: Option<Rc<Waiter>>,
    done: bool,
}

impl<'p> Future for Acquire<'p> {
    type Output = Permit<'p>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit<'p>> {
        let this = self.get_mut();
        if let Some(w) = &this.waiter {
            if w.granted.get() {
                this.done = true;
                return Poll::Ready(Permit {
                    permits: this.permits,
                });
            }
            *w.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut inner = this.permits.inner.borrow_mut();
        if inner.free > 0 && inner.waiters.is_empty() {
            inner.free -= 1;
            this.done = true;
            return Poll::Ready(Permit {
                permits: this.permits,
            });
        }
        let w = Rc::new(Waiter {
            granted: Cell::new(false),
            waker: RefCell::new(Some(cx.waker().clone())),
        });
        inner.waiters.push_back(w.clone());
        this.waiter = Some(w);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        // A waiter dropped before it took its permit: leave the queue, or pass on a permit that
        // was already granted to it, so no permit is ever lost.
        if self.done {
            return;
        }
        if let Some(w) = self.waiter.take() {
            if w.granted.get() {
                self.permits.release();
            } else {
                let mut inner = self.permits.inner.borrow_mut();
                inner.waiters.retain(|x| !Rc::ptr_eq(x, &w));
            }
        }
    }
}

/// A result a blocking thread hands back to a ring task, waking it.
pub struct Handoff<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
}

impl<T> Handoff<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Handoff {
            state: Mutex::new((None, None)),
        })
    }

    pub fn complete(&self, value: T) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.0 = Some(value);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub fn wait(self: &Arc<Self>) -> Wait<T> {
        Wait { slot: self.clone() }
    }
}

pub struct Wait<T> {
    slot: Arc<Handoff<T>>,
}

impl<T> Future for Wait<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self
            .slot
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match s.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        match compio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(f),
            Err(e) => panic!("runtime: {e}"),
        }
    }

    async fn yield_now() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn permits_bound_concurrency_and_are_never_lost() {
        let permits = Permits::new(3);
        let live = Cell::new(0usize);
        let peak = Cell::new(0usize);
        let lanes: Vec<Lane<'_>> = (0..10)
            .map(|_| {
                let (permits, live, peak) = (&permits, &live, &peak);
                Box::pin(async move {
                    for _ in 0..20 {
                        let p = permits.acquire().await;
                        live.set(live.get() + 1);
                        peak.set(peak.get().max(live.get()));
                        // Yield so other lanes run while this one holds a permit.
                        yield_now().await;
                        live.set(live.get() - 1);
                        drop(p);
                    }
                }) as Lane<'_>
            })
            .collect();
        block_on(JoinAll::new(lanes));
        assert_eq!(peak.get(), 3);
        assert_eq!(permits.free(), 3);
    }

    #[test]
    fn dropped_waiter_passes_its_permit_on() {
        let permits = Permits::new(1);
        block_on(async {
            let first = permits.acquire().await;
            {
                let waiting = permits.acquire();
                let mut waiting = std::pin::pin!(waiting);
                let waker = Waker::noop();
                let mut cx = Context::from_waker(waker);
                assert!(waiting.as_mut().poll(&mut cx).is_pending());
                drop(first); // granted to `waiting`, which is dropped unpolled
            }
            let again = permits.acquire().await;
            drop(again);
        });
        assert_eq!(permits.free(), 1);
    }

    #[test]
    fn handoff_wakes_across_threads() {
        let slot = Handoff::new();
        let s2 = slot.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            s2.complete(7u32);
        });
        assert_eq!(block_on(slot.wait()), 7);
        t.join().expect("thread");
    }
}
