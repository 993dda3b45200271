//! The async runtime openraft runs on: Tokio, with two sources of hidden
//! randomness replaced, so that a simulation replays from its seed.
//!
//! - openraft's election timeouts come from its runtime's random number
//!   generator; [`DeterministicRng`] seeds it per task from one seed.
//! - Tokio's watch channel picks one of eight internal notifiers at random
//!   for each waiting receiver, so receivers of one value wake in a random
//!   order, which changes which task runs first. [`FifoWatch`] wakes them in
//!   the order they started waiting.
//!
//! Everything else (tasks, timers, channels, mutexes) is Tokio's own. A real
//! node runs on it too, seeded from the operating system, so the simulation
//! exercises the runtime production uses.

use std::future::{Future, poll_fn};
use std::io;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use openraft::TokioRuntime;
use openraft_rt::deterministic_rng::DeterministicRng;
use openraft_rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
use openraft_rt::{AsyncRuntime, OptionalSend, OptionalSync};

type Inner = DeterministicRng<TokioRuntime>;

/// Tokio with a seeded random number generator and a FIFO watch channel.
#[derive(Debug)]
pub struct Runtime {
    inner: Inner,
}

impl Runtime {
    /// Runs `future` with the random number generator seeded from `seed`.
    pub fn scope<F: Future>(seed: u64, future: F) -> impl Future<Output = F::Output> {
        Inner::scope(seed, future)
    }
}

impl AsyncRuntime for Runtime {
    type JoinError = <Inner as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Inner as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Inner as AsyncRuntime>::Sleep;
    type Instant = <Inner as AsyncRuntime>::Instant;
    type TimeoutError = <Inner as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Inner as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <Inner as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Inner as AsyncRuntime>::Mpsc;
    type Watch = FifoWatch;
    type Oneshot = <Inner as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Inner as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Inner::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Inner::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Inner::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Inner::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Inner::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Inner::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Inner::thread_rng()
    }

    fn new(threads: usize) -> Self {
        Runtime {
            inner: Inner::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::spawn_blocking(f)
    }
}

/// A watch channel that wakes its waiting receivers in the order they began
/// to wait.
#[derive(Debug)]
pub struct FifoWatch;

#[derive(Debug)]
struct Control {
    version: u64,
    senders: usize,
    receivers: usize,
    waiting: Vec<Waker>,
}

#[derive(Debug)]
struct Shared<T> {
    value: RwLock<T>,
    control: Mutex<Control>,
}

impl<T> Shared<T> {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, T> {
        self.value.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a new version and wakes everyone waiting, first come first.
    fn publish(&self) {
        let waiting = {
            let mut control = self.control();
            control.version += 1;
            std::mem::take(&mut control.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The sending half of a [`FifoWatch`].
#[derive(Debug)]
pub struct FifoSender<T>(Arc<Shared<T>>);

/// The receiving half of a [`FifoWatch`].
#[derive(Debug)]
pub struct FifoReceiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

impl<T> Clone for FifoSender<T> {
    fn clone(&self) -> Self {
        self.0.control().senders += 1;
        FifoSender(self.0.clone())
    }
}

impl<T> Drop for FifoSender<T> {
    fn drop(&mut self) {
        let waiting = {
            let mut control = self.0.control();
            control.senders -= 1;
            if control.senders > 0 {
                return;
            }
            std::mem::take(&mut control.waiting)
        };
        // The last sender is gone: waiting receivers learn the channel closed.
        for waker in waiting {
            waker.wake();
        }
    }
}

impl<T> Clone for FifoReceiver<T> {
    fn clone(&self) -> Self {
        self.shared.control().receivers += 1;
        FifoReceiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for FifoReceiver<T> {
    fn drop(&mut self) {
        self.shared.control().receivers -= 1;
    }
}

impl Watch for FifoWatch {
    type Sender<T: OptionalSend + OptionalSync> = FifoSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = FifoReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = RwLockReadGuard<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (FifoSender<T>, FifoReceiver<T>) {
        let shared = Arc::new(Shared {
            value: RwLock::new(init),
            control: Mutex::new(Control {
                version: 0,
                senders: 1,
                receivers: 1,
                waiting: Vec::new(),
            }),
        });
        (FifoSender(shared.clone()), FifoReceiver { shared, seen: 0 })
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<FifoWatch, T> for FifoSender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.0.control().receivers == 0 {
            return Err(SendError(value));
        }
        *self.0.value.write().unwrap_or_else(|p| p.into_inner()) = value;
        self.0.publish();
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let modified = modify(&mut self.0.value.write().unwrap_or_else(|p| p.into_inner()));
        if modified {
            self.0.publish();
        }
        modified
    }

    fn borrow_watched(&self) -> RwLockReadGuard<'_, T> {
        self.0.read()
    }

    fn subscribe(&self) -> FifoReceiver<T> {
        let seen = {
            let mut control = self.0.control();
            control.receivers += 1;
            control.version
        };
        FifoReceiver {
            shared: self.0.clone(),
            seen,
        }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<FifoWatch, T> for FifoReceiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        poll_fn(|cx| {
            let mut control = self.shared.control();
            if control.version != self.seen {
                self.seen = control.version;
                return Poll::Ready(Ok(()));
            }
            if control.senders == 0 {
                return Poll::Ready(Err(RecvError(())));
            }
            if !control.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                control.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    fn borrow_watched(&self) -> RwLockReadGuard<'_, T> {
        self.shared.read()
    }

    fn borrow_and_update(&mut self) -> RwLockReadGuard<'_, T> {
        let guard = self.shared.read();
        self.seen = self.shared.control().version;
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_wake_in_the_order_they_waited() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, rx) = FifoWatch::channel(0u32);
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..8 {
                let mut rx = rx.clone();
                let order = order.clone();
                tasks.push(tokio::spawn(async move {
                    rx.changed().await.unwrap();
                    order.lock().unwrap().push((i, *rx.borrow_watched()));
                }));
                // Let task i start waiting before task i + 1 exists.
                tokio::task::yield_now().await;
            }
            tx.send(7).unwrap();
            for t in tasks {
                t.await.unwrap();
            }
            let order = order.lock().unwrap().clone();
            assert_eq!(order, (0..8).map(|i| (i, 7)).collect::<Vec<_>>());
        });
    }

    #[test]
    fn a_dropped_sender_closes_and_an_unseen_value_comes_first() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, mut rx) = FifoWatch::channel(1u32);
            assert!(tx.send_if_modified(|v| {
                *v = 2;
                true
            }));
            assert!(!tx.send_if_modified(|_| false));
            let mut late = tx.subscribe();
            drop(tx);
            assert_eq!(rx.changed().await, Ok(()));
            assert_eq!(*rx.borrow_and_update(), 2);
            assert_eq!(rx.changed().await, Err(RecvError(())));
            assert_eq!(late.changed().await, Err(RecvError(())));
        });
    }

    #[test]
    fn sending_with_no_receiver_fails() {
        let (tx, rx) = FifoWatch::channel(0u8);
        drop(rx);
        assert_eq!(tx.send(1), Err(SendError(1)));
    }
}
