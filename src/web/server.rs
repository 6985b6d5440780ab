//! The HTTP server: its own OS thread and tokio runtime, the routes, the event stream.
//!
//! Nothing here runs on an actor's thread, and nothing an actor does waits for it: the server
//! reads counters and taps only. A client that reads slowly or never gets at most the newest
//! event (a `watch` channel keeps one value, not a queue per client), and at most
//! [`MAX_EVENT_CLIENTS`] event streams are open at once, so clients cannot grow memory.
//! Answers are cached for [`CACHE_FOR`], so clients polling as fast as they can cost one
//! decimation per window per interval, not one per request, and every answer and event waits
//! its turn in one byte budget ([`Pacer`]), so however many clients poll, the bytes the view
//! copies and sends a second are bounded. The thread runs at a lower CPU priority ([`NICE`])
//! than acquisition.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::api::{StreamData, StreamQuery};
use super::auth::{ServeConfig, require_token};
use super::connections::{self, Limits};
use super::control::ControlPort;
use super::error::{ApiError, WebError};
use super::pace::Pacer;

/// How often the server pushes an event (5 Hz, within ≤ 10 Hz).
pub const TICK: Duration = Duration::from_millis(200);
/// How often the server folds what the taps got into the histories: often enough that a tap
/// of a fast stream has not turned over between two folds, so the view sees every row.
pub const FOLD_EVERY: Duration = Duration::from_millis(25);
/// How long an answer is reused for the same URL.
pub const CACHE_FOR: Duration = Duration::from_millis(200);
/// Most answers computed afresh (not taken from the cache) a second, whatever clients ask:
/// distinct queries cannot make the view decimate more often than this.
pub const FRESH_ANSWERS_PER_SECOND: u64 = 10;
/// Most `/api/events` streams open at once; more get 503.
pub const MAX_EVENT_CLIENTS: usize = 32;
/// Buckets per channel in the pushed events (the default window).
const EVENT_POINTS: usize = 1000;
/// The server thread's nice value: acquisition and writers always come first.
pub const NICE: i32 = 10;

/// What the server shows: a live run, or finished runs on disk.
pub trait ViewSource: Send + Sync + 'static {
    /// `GET /api/status` (`run`: which run, for a directory of runs).
    fn status(&self, run: Option<&str>, control: &dyn ControlPort) -> Result<Value, ApiError>;
    /// `GET /api/streams/{name}`.
    fn stream(&self, name: &str, query: &StreamQuery) -> Result<StreamData, ApiError>;
    /// `GET /api/runs`: the runs a directory holds (`null` for a live run).
    fn runs(&self) -> Value {
        Value::Null
    }
    /// Called every [`FOLD_EVERY`] on the server thread (the live view folds its taps here).
    fn tick(&self) {}
    /// The streams pushed with every event (none for finished runs).
    fn live_streams(&self) -> Vec<String> {
        Vec::new()
    }
}

impl ViewSource for super::live::LiveSource {
    fn status(&self, _run: Option<&str>, control: &dyn ControlPort) -> Result<Value, ApiError> {
        let mut status = self.status(control.can_pause(), control.is_paused());
        if let Some(object) = status.as_object_mut() {
            object.insert("plan".into(), control.plan_state());
        }
        Ok(status)
    }
    fn stream(&self, name: &str, query: &StreamQuery) -> Result<StreamData, ApiError> {
        self.stream(name, query)
    }
    fn tick(&self) {
        self.tick();
    }
    fn live_streams(&self) -> Vec<String> {
        self.stream_names()
    }
}

/// State shared by the handlers (all on the server thread).
struct App {
    source: Arc<dyn ViewSource>,
    control: Arc<dyn ControlPort>,
    events: watch::Receiver<Arc<str>>,
    event_clients: AtomicUsize,
    cache: Mutex<HashMap<String, (Instant, Bytes)>>,
    pacer: Pacer,
    /// Fresh (uncached) answers: one unit each.
    work: Pacer,
}

impl App {
    /// The cached answer for `uri`, or a fresh one from `make` once the work budget allows
    /// it (at most [`FRESH_ANSWERS_PER_SECOND`] answers are computed a second).
    async fn cached(
        &self,
        uri: &Uri,
        make: impl FnOnce() -> Result<String, ApiError>,
    ) -> Result<Bytes, ApiError> {
        let key = uri.to_string();
        let hit = |cache: &HashMap<String, (Instant, Bytes)>| {
            cache
                .get(&key)
                .filter(|(at, _)| at.elapsed() < CACHE_FOR)
                .map(|(_, body)| body.clone())
        };
        if let Some(body) = hit(&self.cache()) {
            return Ok(body);
        }
        if !self.work.wait(1).await {
            return Err(ApiError::Busy);
        }
        // Another request for the same answer may have computed it while this one waited.
        if let Some(body) = hit(&self.cache()) {
            return Ok(body);
        }
        let body = Bytes::from(make()?);
        let mut cache = self.cache();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), body.clone()));
        Ok(body)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Bytes)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `body` as JSON once the byte budget allows it ([`Pacer`]); 503 when its turn is
    /// further away than [`MAX_WAIT`](super::pace::MAX_WAIT).
    async fn paced(&self, body: Result<Bytes, ApiError>) -> Response {
        let body = match body {
            Ok(body) => body,
            Err(e) => return e.into_response(),
        };
        if !self.pacer.wait(body.len()).await {
            return ApiError::Busy.into_response();
        }
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// A running web server; stops when dropped.
pub struct WebServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Binds `config.addr` now (so a taken port fails before the run starts), then serves on
    /// a new thread. Prints nothing; the caller says where it serves.
    pub fn start(
        config: &ServeConfig,
        source: Arc<dyn ViewSource>,
        control: Arc<dyn ControlPort>,
    ) -> Result<Self, WebError> {
        let bind = |source| WebError::Bind {
            addr: config.addr,
            source,
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let token = config.token();
        let thread = std::thread::Builder::new()
            .name("web".into())
            .spawn(move || serve_thread(listener, token, source, control, shutdown_rx))
            .map_err(WebError::Thread)?;
        Ok(Self {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port chosen when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server thread ends (for `ensemble serve`, which runs until a signal).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// A handle that stops the server when dropped or fired.
    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lowers the calling thread's CPU priority to [`NICE`] (Linux: nice is per thread).
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid and setpriority only read their arguments; no memory is shared.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn serve_thread(
    listener: std::net::TcpListener,
    token: Option<Arc<str>>,
    source: Arc<dyn ViewSource>,
    control: Arc<dyn ControlPort>,
    shutdown: oneshot::Receiver<()>,
) {
    lower_priority();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("Cannot start the web server's runtime: {e}.");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("Cannot listen for the web view: {e}.");
                return;
            }
        };
        let (events_tx, events_rx) = watch::channel::<Arc<str>>(Arc::from(""));
        let app = Arc::new(App {
            source: source.clone(),
            control,
            events: events_rx,
            event_clients: AtomicUsize::new(0),
            cache: Mutex::new(HashMap::new()),
            pacer: Pacer::default(),
            work: Pacer::new(FRESH_ANSWERS_PER_SECOND),
        });
        let router = router(app.clone(), token);
        let (stop_ticks_tx, stop_ticks_rx) = oneshot::channel::<()>();
        let ticker = tokio::spawn(tick_loop(app.clone(), events_tx, stop_ticks_rx));
        let serve = connections::serve(listener, router, Limits::default(), async move {
            let _ = shutdown.await;
            // Ending the ticks drops the event sender: every open event stream ends.
            let _ = stop_ticks_tx.send(());
        });
        let serve = tokio::spawn(serve);
        let _ = ticker.await;
        // Connections still open after a second are cut when the runtime drops.
        let _ = tokio::time::timeout(Duration::from_secs(1), serve).await;
    });
}

async fn tick_loop(
    app: Arc<App>,
    events: watch::Sender<Arc<str>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut interval = tokio::time::interval(FOLD_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pushed_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = interval.tick() => {}
        }
        app.source.tick();
        if pushed_at.elapsed() < TICK {
            continue;
        }
        if events.receiver_count() <= 1 {
            continue; // Only the server's own receiver: nobody to push to.
        }
        pushed_at = tokio::time::Instant::now();
        let payload = event_payload(&app);
        events.send_replace(payload.into());
    }
}

/// One event: the status and every live stream's default window.
fn event_payload(app: &App) -> String {
    let status = app
        .source
        .status(None, app.control.as_ref())
        .unwrap_or(Value::Null);
    let query = StreamQuery {
        points: Some(EVENT_POINTS),
        ..StreamQuery::default()
    };
    let streams: serde_json::Map<String, Value> = app
        .source
        .live_streams()
        .into_iter()
        .filter_map(|name| {
            let data = app.source.stream(&name, &query).ok()?;
            Some((name, serde_json::to_value(data).ok()?))
        })
        .collect();
    json!({ "status": status, "streams": streams }).to_string()
}

fn router(app: Arc<App>, token: Option<Arc<str>>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/runs", get(runs))
        .route("/api/streams/{name}", get(stream))
        .route("/api/events", get(events))
        .route("/api/stop", post(stop))
        .route("/api/pause", post(pause))
        .route("/api/resume", post(resume))
        .fallback(|| async { ApiError::NotFound("no such page".into()) })
        .layer(middleware::from_fn_with_state(token, require_token))
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(super::page::index())
}

#[derive(serde::Deserialize)]
struct RunQuery {
    run: Option<String>,
}

async fn status(State(app): State<Arc<App>>, Query(q): Query<RunQuery>, uri: Uri) -> Response {
    let body = app
        .cached(&uri, || {
            let v = app.source.status(q.run.as_deref(), app.control.as_ref())?;
            Ok(v.to_string())
        })
        .await;
    app.paced(body).await
}

async fn runs(State(app): State<Arc<App>>) -> Response {
    app.paced(Ok(app.source.runs().to_string().into())).await
}

async fn stream(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    uri: Uri,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return ApiError::BadRequest(e.body_text()).into_response(),
    };
    let body = app
        .cached(&uri, || {
            let data = app.source.stream(&name, &q)?;
            serde_json::to_string(&data).map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await;
    app.paced(body).await
}

/// Counts an open event stream; gives its slot back when the stream is dropped.
struct EventClient(Arc<App>);

impl Drop for EventClient {
    fn drop(&mut self) {
        self.0.event_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn events(State(app): State<Arc<App>>) -> Response {
    if app.event_clients.fetch_add(1, Ordering::Relaxed) >= MAX_EVENT_CLIENTS {
        app.event_clients.fetch_sub(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"error": format!("at most {MAX_EVENT_CLIENTS} event streams at once")}),
            ),
        )
            .into_response();
    }
    let rx = app.events.clone();
    let client = EventClient(app.clone());
    let stream = futures::stream::unfold((rx, client), |(mut rx, client)| async move {
        // An event refused by the byte budget is skipped: the next one carries newer data.
        loop {
            rx.changed().await.ok()?;
            let payload = rx.borrow_and_update().clone();
            if client.0.pacer.wait(payload.len()).await {
                let event = Event::default().event("update").data(&*payload);
                return Some((Ok::<_, Infallible>(event), (rx, client)));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn accepted(result: Result<(), super::control::ControlError>) -> Response {
    match result {
        Ok(()) => (StatusCode::ACCEPTED, axum::Json(json!({"ok": true}))).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn stop(State(app): State<Arc<App>>) -> Response {
    accepted(app.control.stop())
}

#[derive(serde::Deserialize)]
struct PauseQuery {
    now: Option<bool>,
}

async fn pause(State(app): State<Arc<App>>, Query(q): Query<PauseQuery>) -> Response {
    accepted(app.control.pause(q.now.unwrap_or(false)))
}

async fn resume(State(app): State<Arc<App>>, _request: Request) -> Response {
    accepted(app.control.resume())
}
