//! When a virtual user sends its next request.
//!
//! In the closed model a user sends as soon as its previous response is back,
//! and pauses for a think time between workflows. A slow server then receives
//! fewer requests, and a stall delays only the requests in flight. The
//! percentiles hide it, which is called coordinated omission.
//!
//! In the open model (`--rate`) each user follows a fixed schedule. A user
//! whose previous response came late sends the next request at once, and its
//! latency counts from the time it was due, so the time spent waiting behind a
//! stall is measured as latency. A user that was idle sends when the request
//! is due, and its clock starts then.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::parse::ThinkTime;

/// The pace of a virtual user's requests.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// Closed model: the next request follows the previous response, with a think time between workflows.
    Closed(ThinkTime),
    /// Open model: requests follow the schedule, whatever the responses do.
    Open(Schedule),
}

impl Pacing {
    /// Waits until the next request is due and returns the time its latency
    /// counts from: the due time when the user is late, the time of sending
    /// otherwise. Returns `None` when the stop signal arrives first.
    pub async fn next_send(&mut self, stop: &mut watch::Receiver<bool>) -> Option<Instant> {
        if *stop.borrow() {
            return None;
        }
        let Pacing::Open(schedule) = self else {
            return Some(Instant::now());
        };
        let due = schedule.advance();
        if Instant::now() >= due {
            return Some(due);
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            // An error means the sender is gone, which only happens once the run is over.
            _ = stop.wait_for(|stop| *stop) => return None,
        }
        // A timer fires up to a millisecond or so after `due`. That delay is the
        // load generator's own, so an idle user's clock starts when it wakes.
        // When both branches are ready at once, the stop signal wins.
        (!*stop.borrow()).then(Instant::now)
    }

    /// Pauses for one think time between workflows in the closed model, or less
    /// when the stop signal arrives first. The open model has no pause: its
    /// schedule already spaces the requests.
    pub async fn think(&self, stop: &mut watch::Receiver<bool>) {
        let Pacing::Closed(think_time) = self else {
            return;
        };
        let pause = think_time.sample(&mut rand::thread_rng());
        if pause.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
    }
}

/// Due times of one user's requests in the open model.
///
/// With `users` users sharing `rate` requests per second, each user sends every
/// `users / rate` seconds, and user `i` starts `(i - 1) / rate` seconds after the
/// run, so the run as a whole sends one request every `1 / rate` seconds.
#[derive(Debug, Clone)]
pub struct Schedule {
    next: Instant,
    interval: Duration,
}

impl Schedule {
    /// Schedule of user `index` (counting from 1) of `users`, from `start`.
    /// Fails when the spacing does not fit in a `Duration`.
    pub fn new(start: Instant, rate: f64, index: u32, users: u32) -> anyhow::Result<Self> {
        let interval = Duration::try_from_secs_f64(f64::from(users) / rate).map_err(|_| {
            anyhow::anyhow!(
                "--rate {rate} with {users} users puts each user's requests too far apart to represent; raise --rate"
            )
        })?;
        let offset = Duration::try_from_secs_f64(f64::from(index.saturating_sub(1)) / rate)
            .map_err(|_| {
                anyhow::anyhow!(
                    "--rate {rate} is too low to represent for {users} users; raise --rate"
                )
            })?;
        Ok(Self {
            next: start + offset,
            interval,
        })
    }

    /// Returns when the next request is due and moves on to the one after it.
    /// Due times do not depend on when the previous response arrived.
    pub fn advance(&mut self) -> Instant {
        let due = self.next;
        self.next += self.interval;
        due
    }
}

/// Number of requests the open model schedules in the first `sending` of a run
/// at `rate` requests per second: those due at 0, 1/rate, 2/rate, ... before its end.
pub fn scheduled_requests(rate: f64, sending: Duration) -> u64 {
    // Float-to-integer `as` saturates, and both factors are positive and finite.
    (sending.as_secs_f64() * rate).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_share_the_rate_evenly() {
        let start = Instant::now();
        let mut first = Schedule::new(start, 10.0, 1, 2).expect("schedule");
        let mut second = Schedule::new(start, 10.0, 2, 2).expect("schedule");
        let offsets = |schedule: &mut Schedule| -> Vec<u128> {
            (0..3)
                .map(|_| schedule.advance().duration_since(start).as_millis())
                .collect()
        };
        assert_eq!(offsets(&mut first), [0, 200, 400]);
        assert_eq!(offsets(&mut second), [100, 300, 500]);
    }

    #[test]
    fn schedule_rejects_spacing_beyond_duration() {
        let error = Schedule::new(Instant::now(), 1e-12, 1, u32::MAX).expect_err("too far apart");
        assert!(error.to_string().contains("--rate"), "{error}");
    }

    #[test]
    fn scheduled_requests_counts_due_times_before_the_end() {
        assert_eq!(scheduled_requests(40.0, Duration::from_secs(4)), 160);
        assert_eq!(scheduled_requests(40.0, Duration::from_millis(4_010)), 161);
        assert_eq!(scheduled_requests(0.5, Duration::from_secs(3)), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn open_pacing_keeps_due_times_when_late() {
        let (_sender, mut stop) = watch::channel(false);
        let start = Instant::now();
        let mut pacing = Pacing::Open(Schedule::new(start, 10.0, 1, 1).expect("schedule"));

        assert_eq!(pacing.next_send(&mut stop).await, Some(start));
        // A response that takes 350 ms makes the user late for three due times.
        // Each is still reported as due when scheduled, not when sent.
        tokio::time::advance(Duration::from_millis(350)).await;
        for expected_ms in [100, 200, 300] {
            let due = pacing.next_send(&mut stop).await.expect("not stopped");
            assert_eq!(due.duration_since(start).as_millis(), expected_ms);
        }
        let due = pacing.next_send(&mut stop).await.expect("not stopped");
        assert_eq!(due.duration_since(start).as_millis(), 400);
        assert_eq!(Instant::now().duration_since(start).as_millis(), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_signal_ends_the_wait() {
        let (sender, mut stop) = watch::channel(false);
        let mut pacing = Pacing::Open(Schedule::new(Instant::now(), 0.1, 2, 2).expect("schedule"));
        sender.send_replace(true);
        assert_eq!(pacing.next_send(&mut stop).await, None);

        let mut closed = Pacing::Closed(ThinkTime::ZERO);
        assert_eq!(closed.next_send(&mut stop).await, None);
    }
}
