//! The job list of a plan: append-only, published in chunks by one producer while any number of
//! readers use what is already published, by index and without locks.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use super::Job;

/// Most chunks a plan can have; chunk `k` holds at least `FIRST_CHUNK << k` jobs (a feed
/// doubles them), so this is never reached.
const MAX_CHUNKS: usize = 48;

/// An append-only list of jobs: one producer publishes whole chunks while any number of
/// readers use the jobs already published (by index, by reference, without locks). A complete
/// plan is a single chunk.
#[derive(Debug)]
pub struct Jobs {
    chunks: [OnceLock<Box<[Job]>>; MAX_CHUNKS],
    /// Index of each chunk's first job.
    starts: [AtomicUsize; MAX_CHUNKS],
    /// Chunks published; a reader sees a chunk only after this counts it.
    published: AtomicUsize,
    /// Jobs published.
    len: AtomicUsize,
    closed: AtomicBool,
    /// Set when the copy stopped taking jobs (its out-dir cannot be made): the feed may stop.
    abandoned: AtomicBool,
    wait: (Mutex<()>, Condvar),
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs::from(Vec::new())
    }
}

impl From<Vec<Job>> for Jobs {
    fn from(jobs: Vec<Job>) -> Jobs {
        let log = Jobs::open();
        log.publish(jobs);
        log.close();
        log
    }
}

impl Jobs {
    /// An empty list that stays open for [`Jobs::publish`] until [`Jobs::close`].
    pub(super) fn open() -> Jobs {
        Jobs {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            starts: std::array::from_fn(|_| AtomicUsize::new(0)),
            published: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            wait: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Appends `jobs` as one chunk. Only one thread (the walk) publishes.
    ///
    /// # Panics
    /// When a plan has more than `MAX_CHUNKS` chunks, which doubling chunk sizes rule out.
    pub fn publish(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let k = self.published.load(Ordering::Acquire);
        assert!(k < MAX_CHUNKS, "too many plan chunks");
        let start = self.len.load(Ordering::Acquire);
        let n = jobs.len();
        self.starts[k].store(start, Ordering::Release);
        let _ = self.chunks[k].set(jobs.into_boxed_slice());
        self.published.store(k + 1, Ordering::Release);
        self.len.store(start + n, Ordering::Release);
        self.notify();
    }

    /// No more jobs will come.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify();
    }

    /// The copy takes no more jobs: a feed still running may stop (see `Publisher::stopped`).
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    fn notify(&self) {
        let _guard = self.wait.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait.1.notify_all();
    }

    /// Jobs published so far.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every job is published.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Blocks until more than `seen` jobs are published or the list is closed; returns the
    /// number published and whether it is final.
    pub fn wait_beyond(&self, seen: usize) -> (usize, bool) {
        let mut guard = self.wait.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // `closed` first: a close after the length was read could hide a last chunk.
            let closed = self.is_closed();
            let n = self.len();
            if n > seen || closed {
                return (n, closed);
            }
            guard = self
                .wait
                .1
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub fn get(&self, index: usize) -> Option<&Job> {
        if index >= self.len() {
            return None;
        }
        let chunks = self.published.load(Ordering::Acquire);
        // The last chunk whose start is at or before `index`.
        let k = (0..chunks)
            .rev()
            .find(|&k| self.starts[k].load(Ordering::Acquire) <= index)?;
        let start = self.starts[k].load(Ordering::Acquire);
        self.chunks[k].get()?.get(index - start)
    }

    /// The jobs published so far, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Job> + '_ {
        let chunks = self.published.load(Ordering::Acquire);
        let len = self.len();
        (0..chunks)
            .filter_map(|k| self.chunks[k].get())
            .flat_map(|c| c.iter())
            .take(len)
    }
}

/// With `&mut`, no reader can be looking: a complete plan may still be edited (tests do).
impl std::ops::IndexMut<usize> for Jobs {
    fn index_mut(&mut self, index: usize) -> &mut Job {
        let len = self.len();
        let chunks = *self.published.get_mut();
        let k = (0..chunks)
            .rev()
            .find(|&k| *self.starts[k].get_mut() <= index);
        let job = k.and_then(|k| {
            let start = *self.starts[k].get_mut();
            self.chunks[k].get_mut()?.get_mut(index - start)
        });
        match job {
            Some(job) => job,
            None => panic!("job {index} is not in the plan ({len} published)"),
        }
    }
}

impl<'a> IntoIterator for &'a Jobs {
    type Item = &'a Job;
    type IntoIter = Box<dyn Iterator<Item = &'a Job> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<usize> for Jobs {
    type Output = Job;

    fn index(&self, index: usize) -> &Job {
        match self.get(index) {
            Some(job) => job,
            None => panic!("job {index} is not in the plan ({} published)", self.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::tests::job;
    use crate::plan::Op;

    fn jobs(names: &[&str]) -> Vec<Job> {
        names.iter().map(|n| job(n, n, Op::Copy)).collect()
    }

    fn names(list: &Jobs) -> Vec<String> {
        list.iter().map(|j| j.src.display().to_string()).collect()
    }

    #[test]
    fn a_complete_list_is_one_closed_chunk() {
        let list = Jobs::from(jobs(&["a", "b", "c"]));
        assert!(list.is_closed());
        assert_eq!(
            (list.len(), names(&list)),
            (3, vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(list[2].src, Path::new("c"));
        assert!(list.get(3).is_none());
        assert!(Jobs::default().is_empty() && Jobs::default().is_closed());
    }

    #[test]
    fn published_chunks_read_as_one_list_by_index_and_in_order() {
        let list = Jobs::open();
        assert!(!list.is_closed());
        list.publish(jobs(&["a"]));
        list.publish(Vec::new()); // an empty chunk is no chunk
        list.publish(jobs(&["b", "c"]));
        list.publish(jobs(&["d", "e", "f", "g"]));
        assert_eq!(list.len(), 7);
        assert_eq!(names(&list), ["a", "b", "c", "d", "e", "f", "g"]);
        let by_index: Vec<&Path> = (0..7).map(|i| list[i].src.as_path()).collect();
        assert_eq!(by_index, ["a", "b", "c", "d", "e", "f", "g"].map(Path::new));
        assert!(list.get(7).is_none());
        assert_eq!(
            list.wait_beyond(3),
            (7, false),
            "more than 3 published: no wait"
        );
        list.close();
        assert_eq!(list.wait_beyond(7), (7, true), "closed: no wait");
    }

    #[test]
    fn a_reader_waits_for_the_next_chunk_or_the_close() {
        let list = Jobs::open();
        list.publish(jobs(&["a"]));
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let first = list.wait_beyond(1);
                let then = list.wait_beyond(first.0);
                (first, then, list[1].src.clone())
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            list.publish(jobs(&["b"]));
            std::thread::sleep(std::time::Duration::from_millis(20));
            list.close();
            let (first, then, second) = reader.join().unwrap();
            assert_eq!(first.0, 2);
            assert_eq!(then, (2, true));
            assert_eq!(second, Path::new("b"));
        });
    }

    #[test]
    fn a_complete_plan_may_be_edited_in_place() {
        let mut list = Jobs::open();
        list.publish(jobs(&["a"]));
        list.publish(jobs(&["b"]));
        list[1].size = 42;
        assert_eq!(list[1].size, 42);
        assert_eq!(list[0].size, 1);
    }
}
