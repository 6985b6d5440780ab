//! The window of published, not yet acknowledged messages: send, wait for acknowledgements
//! oldest first, re-send everything unacknowledged in order after a failure, give up after
//! `retry_for`. Part of [`Publisher`]; `publisher.rs` decides *what* goes out, this file sees
//! that it arrives.

use std::future::{Future, IntoFuture};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};

use super::connection::BACKOFF;
use super::error::NatsSinkError;
use super::pending::{AckFuture, Pending};
use super::publisher::Publisher;

impl Publisher {
    /// Sends `pending` once the window has room; a failed send (disconnected client) leaves it
    /// unsent in the window, and the next settle re-sends it.
    pub(super) async fn push(&mut self, mut pending: Pending) {
        while self.in_flight.len() >= self.config.max_in_flight {
            self.settle_oldest().await;
        }
        if self.failure.is_some() {
            self.give_up_on(pending);
            return;
        }
        pending.ack = self.send(&pending).await.ok().map(std::sync::Mutex::new);
        if let Some(i) = pending.stream {
            self.streams[i].in_flight += 1;
        }
        self.in_flight.push_back(pending);
    }

    fn send(
        &self,
        p: &Pending,
    ) -> impl Future<Output = Result<AckFuture, PublishError>> + Send + use<> {
        let js = self.js.clone();
        let (subject, headers, payload) = (p.subject.clone(), p.headers.clone(), p.payload.clone());
        async move {
            let Some(js) = js else {
                return Err(PublishError::new(PublishErrorKind::Other));
            };
            let future = js.publish_with_headers(subject, headers, payload).await?;
            Ok(Box::pin(future.into_future()) as AckFuture)
        }
    }

    /// Waits for the oldest message's acknowledgement; on a failure, re-sends the window.
    pub(super) async fn settle_oldest(&mut self) {
        let Some(mut head) = self.in_flight.pop_front() else {
            return;
        };
        let result = match head.ack.take() {
            Some(ack) => {
                let ack = ack.into_inner().unwrap_or_else(|e| e.into_inner());
                ack.await.map(drop).map_err(|e| e.to_string())
            }
            None => Err("not sent (connection down)".to_string()),
        };
        self.settled(head, result).await;
    }

    /// Settles, oldest first, the messages whose acknowledgement has already arrived, without
    /// waiting for any.
    pub(super) async fn settle_arrived(&mut self) {
        loop {
            let Some(head) = self.in_flight.front_mut() else {
                return;
            };
            let Some(ack) = head.ack.as_mut() else {
                return;
            };
            let ack = ack.get_mut().unwrap_or_else(|e| e.into_inner());
            let Poll::Ready(result) = ack.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            else {
                return;
            };
            let mut head = self
                .in_flight
                .pop_front()
                .expect("front_mut() just returned it");
            head.ack = None;
            self.settled(head, result.map(drop).map_err(|e| e.to_string()))
                .await;
        }
    }

    async fn settled(&mut self, head: Pending, result: Result<(), String>) {
        match result {
            Ok(()) => self.delivered(&head),
            Err(e) => {
                self.in_flight.push_front(head);
                self.resend_all(e).await;
            }
        }
    }

    /// Waits until every published message is acknowledged (or given up on).
    pub(super) async fn settle_all(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
    }

    /// Publishes every unacknowledged message again, in order and one at a time, until each is
    /// acknowledged or `retry_for` has passed.
    async fn resend_all(&mut self, first_error: String) {
        tracing::warn!(
            sink = %self.sink,
            run_id = %self.run_id,
            pending = self.in_flight.len(),
            "JetStream did not acknowledge a message ({first_error}); re-sending in order."
        );
        for p in &mut self.in_flight {
            p.ack = None;
        }
        let deadline = Instant::now() + self.config.retry_for;
        let mut wait = BACKOFF.0;
        while let Some(head) = self.in_flight.pop_front() {
            let result = match self.send(&head).await {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(_) => {
                    self.delivered(&head);
                    wait = BACKOFF.0;
                }
                Err(last_error) => {
                    self.in_flight.push_front(head);
                    if Instant::now() + wait > deadline {
                        let rows = self.in_flight.iter().map(|p| p.rows).sum();
                        let error = NatsSinkError::Undelivered {
                            rows,
                            retry_for: self.config.retry_for,
                            message: last_error,
                        };
                        tracing::error!(sink = %self.sink, run_id = %self.run_id, "{error}.");
                        self.failure.get_or_insert(error);
                        while let Some(p) = self.in_flight.pop_front() {
                            if let Some(i) = p.stream {
                                self.streams[i].in_flight -= 1;
                            }
                            self.give_up_on(p);
                        }
                        return;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF.1);
                }
            }
        }
        tracing::warn!(sink = %self.sink, run_id = %self.run_id, "JetStream acknowledged every re-sent message; nothing lost.");
    }

    /// Counts a message (no longer, or never, in the window) as undelivered.
    pub(super) fn give_up_on(&mut self, p: Pending) {
        if let Some(i) = p.stream {
            self.count_undelivered(i, p.first_seq, p.rows);
        }
    }
}
