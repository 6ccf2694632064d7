//! The stdio transport: a child process speaking newline-delimited JSON-RPC.
//!
//! Only framing and process management live here. The child runs in its own process group
//! so that wrappers such as `npx` or `uvx`, which start the real server as a grandchild,
//! leave no orphans: shutdown and crash clean-up signal the whole group. On Linux the child
//! also gets a parent-death signal, so it dies with the gateway however the gateway ends
//! (SIGKILL, the OOM killer), even if it ignores its closed stdin.

use crate::config::StdioConfig;
use crate::connection::{Connection, Event};
use bytes::Bytes;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// A running child process and the tasks that frame its stdio.
pub(crate) struct StdioLink {
    child: Child,
    close_stdin: Option<oneshot::Sender<()>>,
    /// Resolves when the child's stdout ends.
    pub(crate) stdout_closed: oneshot::Receiver<()>,
    server: Arc<str>,
}

/// Spawns the child and wires its stdin/stdout to a new [`Connection`].
pub(crate) async fn spawn(
    cfg: &StdioConfig,
    server: &Arc<str>,
    max_message: usize,
) -> std::io::Result<(Arc<Connection>, StdioLink, mpsc::UnboundedReceiver<Event>)> {
    let mut cmd = Command::new(&cfg.command);
    cmd.args(&cfg.args)
        .envs(&cfg.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = &cfg.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = death::spawn(cmd).await?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let (out_tx, out_rx) = mpsc::unbounded_channel::<Bytes>();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let conn =
        Arc::new(Connection::new(server.clone(), out_tx, ev_tx).with_max_message(max_message));

    let (close_tx, close_rx) = oneshot::channel();
    tokio::spawn(write_loop(stdin, out_rx, close_rx, server.clone()));
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(read_loop(stdout, conn.clone(), closed_tx));
    tokio::spawn(stderr_loop(stderr, server.clone()));

    Ok((
        conn,
        StdioLink {
            child,
            close_stdin: Some(close_tx),
            stdout_closed: closed_rx,
            server: server.clone(),
        },
        ev_rx,
    ))
}

/// Spawning with a parent-death signal.
///
/// The kernel sends the signal when the *thread* that forked the child ends, not the
/// process. Tokio's threads come and go (a worker that enters `block_in_place` later retires
/// as a blocking thread), so children are forked by one thread that lives as long as the
/// process.
#[cfg(target_os = "linux")]
mod death {
    use std::sync::{Mutex, OnceLock, mpsc};
    use tokio::process::{Child, Command};
    use tokio::sync::oneshot;

    type Job = (
        tokio::runtime::Handle,
        Command,
        oneshot::Sender<std::io::Result<Child>>,
    );

    /// Forks `cmd` on the spawner thread; the child gets SIGKILL when the gateway ends.
    pub(super) async fn spawn(mut cmd: Command) -> std::io::Result<Child> {
        let parent = rustix::process::getpid();
        set_death_signal(&mut cmd, parent);
        let (tx, rx) = oneshot::channel();
        let job = (tokio::runtime::Handle::current(), cmd, tx);
        spawner()
            .lock()
            .expect("spawner lock poisoned")
            .send(job)
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }

    fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
        static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
        SPAWNER.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("mcp-gateway-spawner".into())
                .spawn(move || {
                    for (runtime, mut cmd, reply) in rx {
                        // The child's reaper belongs to the caller's runtime.
                        let _entered = runtime.enter();
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("cannot start the spawner thread");
            Mutex::new(tx)
        })
    }

    /// Between fork and exec, asks for SIGKILL when the parent ends.
    // The one `unsafe` in mcp-gateway: `pre_exec` is unsafe because the closure runs in a
    // forked child where only async-signal-safe calls are allowed. This one makes two raw
    // system calls through rustix (prctl, getppid): no allocation, no lock.
    #[allow(unsafe_code)]
    fn set_death_signal(cmd: &mut Command, parent: rustix::process::Pid) {
        let hook = move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The gateway may have died between fork and prctl: then nobody would signal.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("the gateway exited"));
            }
            Ok(())
        };
        // SAFETY: the hook only makes async-signal-safe system calls (see above).
        unsafe {
            cmd.pre_exec(hook);
        }
    }
}

/// Elsewhere children end with their stdin or their process group.
#[cfg(not(target_os = "linux"))]
mod death {
    pub(super) async fn spawn(
        mut cmd: tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        cmd.spawn()
    }
}

async fn write_loop(
    stdin: tokio::process::ChildStdin,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    mut close: oneshot::Receiver<()>,
    server: Arc<str>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, stdin);
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut close => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        let res = async {
            w.write_all(&frame).await?;
            w.write_all(b"\n").await?;
            // Batch writes that queued up meanwhile; flush once the queue is empty.
            if rx.is_empty() {
                w.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        if let Err(e) = res {
            tracing::debug!(server = %server, error = %e, "writing to the server's stdin failed");
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Frames stdout into lines of at most [`Connection::max_message`] bytes.
///
/// A longer line is never held whole: its bytes are scanned for the top-level `"id"` as they
/// pass and dropped, the call it answers fails with a clear error, and reading resumes at
/// the next newline. A server that writes [`RESYNC_FACTOR`] times the limit without a
/// newline cannot be resynced: the link closes and the supervisor restarts the server.
async fn read_loop(
    stdout: tokio::process::ChildStdout,
    conn: Arc<Connection>,
    closed: oneshot::Sender<()>,
) {
    let max = conn.max_message();
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::with_capacity(4096);
    let mut skipping: Option<IdScan> = None;
    loop {
        let buf = match r.fill_buf().await {
            Ok([]) => break,
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(server = %conn.server(), error = %e, "reading the server's stdout failed");
                break;
            }
        };
        let (chunk, ends) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        if let Some(scan) = &mut skipping {
            scan.push(chunk);
            if ends {
                conn.oversized(scan.response_id(), scan.seen);
                skipping = None;
            } else if scan.seen > max.saturating_mul(RESYNC_FACTOR) {
                let reason = format!(
                    "the server wrote more than {} bytes without a newline (maxMessageBytes is {max}); restarting it",
                    scan.seen
                );
                tracing::warn!(server = %conn.server(), "{reason}");
                conn.close(&reason);
                break;
            }
        } else if line.len() + n > max {
            let mut scan = IdScan::default();
            scan.push(&line);
            scan.push(chunk);
            // Give the memory back now, not when the next small line arrives.
            line = Vec::with_capacity(4096);
            if ends {
                conn.oversized(scan.response_id(), scan.seen);
            } else {
                if let Some(id) = scan.early_id() {
                    conn.oversized(Some(id), scan.seen);
                    scan.reported = true;
                }
                skipping = Some(scan);
            }
        } else {
            line.extend_from_slice(chunk);
            if ends {
                handle_line(&conn, &line);
                line.clear();
                if line.capacity() > 1024 * 1024 {
                    line = Vec::with_capacity(4096);
                }
            }
        }
        r.consume(n);
    }
    let _ = closed.send(());
}

/// [`IdScan`] over `data`, for the fuzz target: the id of the response, if it is one.
#[cfg(fuzzing)]
pub(crate) fn fuzz_scan(data: &[u8]) -> Option<u64> {
    let mut s = IdScan::default();
    for part in data.chunks(7) {
        s.push(part);
    }
    s.response_id()
}

/// How many times `maxMessageBytes` a line may run on before the stream counts as lost.
const RESYNC_FACTOR: usize = 4;

fn handle_line(conn: &Connection, line: &[u8]) {
    let text = line.trim_ascii();
    if text.is_empty() {
        return;
    }
    if text[0] != b'{' {
        tracing::warn!(server = %conn.server(), line = %preview(text), "skipping non-JSON line on stdout");
        return;
    }
    if let Err(e) = conn.handle_incoming(text) {
        tracing::warn!(server = %conn.server(), error = %e, line = %preview(text), "skipping malformed JSON-RPC message");
    }
}

/// Finds the top-level `"id"` of a JSON object streamed through it piece by piece, and
/// whether the object is a response (`result`/`error`) or a request (`method`), in
/// constant memory.
#[derive(Default)]
struct IdScan {
    /// Bytes seen.
    seen: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The top-level key being read (its first bytes), while in a key string.
    key: Option<Vec<u8>>,
    /// The last complete top-level key, until its value starts.
    last_key: Vec<u8>,
    /// True between a top-level `{`/`,` and the next key.
    want_key: bool,
    /// Digits of the `id` value, while reading it.
    id_digits: Option<String>,
    id: Option<u64>,
    has_method: bool,
    has_result: bool,
    /// The call was already failed by [`IdScan::early_id`].
    reported: bool,
}

impl IdScan {
    fn push(&mut self, bytes: &[u8]) {
        self.seen += bytes.len();
        for &b in bytes {
            if self.in_string {
                if let Some(k) = &mut self.key
                    && k.len() < 16
                    && (b != b'"' || self.escaped)
                {
                    k.push(b);
                }
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if let Some(k) = self.key.take() {
                        match k.as_slice() {
                            b"method" => self.has_method = true,
                            b"result" | b"error" => self.has_result = true,
                            _ => {}
                        }
                        self.last_key = k;
                    }
                }
                continue;
            }
            if let Some(d) = &mut self.id_digits {
                if b.is_ascii_digit() && d.len() < 20 {
                    d.push(b as char);
                    continue;
                }
                if !b.is_ascii_whitespace() || !d.is_empty() {
                    self.id = d.parse().ok();
                    self.id_digits = None;
                }
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.want_key {
                        self.key = Some(Vec::new());
                        self.want_key = false;
                    }
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth == 1 {
                        self.want_key = true;
                    }
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b',' if self.depth == 1 => self.want_key = true,
                b':' if self.depth == 1 => {
                    if self.last_key == b"id" {
                        self.id_digits = Some(String::new());
                    }
                    self.last_key.clear();
                }
                _ => {}
            }
        }
    }

    /// The id, once the part read so far shows a response (Python's SDK writes `id` and
    /// `result` first; TypeScript's writes `id` last, so its calls fail at the newline).
    fn early_id(&self) -> Option<u64> {
        (self.has_result && !self.has_method)
            .then_some(self.id)
            .flatten()
    }

    /// At the end of the line: the id of the call the message answered, unless it was a
    /// request or notification from the server or the call was already failed.
    fn response_id(&self) -> Option<u64> {
        (!self.has_method && !self.reported)
            .then_some(self.id)
            .flatten()
    }
}

async fn stderr_loop(stderr: tokio::process::ChildStderr, server: Arc<str>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_gateway::upstream::stderr", server = %server, "{line}");
    }
}

fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    if b.len() > 200 {
        format!("{s}…")
    } else {
        s.into_owned()
    }
}

impl StdioLink {
    /// Ends the child: closes stdin, waits `grace`, then SIGTERM and finally SIGKILL to its
    /// process group. Returns how it exited, in words.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> String {
        if let Some(tx) = self.close_stdin.take() {
            let _ = tx.send(());
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                self.signal_group(rustix::process::Signal::TERM);
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        self.signal_group(rustix::process::Signal::KILL);
                        self.child.wait().await
                    }
                }
            }
        };
        // Grandchildren (the real server under `npx`) may outlive the leader.
        self.signal_group(rustix::process::Signal::TERM);
        describe(status)
    }

    /// The child's stdout ended: collect its exit status (or kill it if it lingers).
    pub(crate) async fn reap(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await
        {
            Ok(s) => s,
            Err(_) => {
                return format!(
                    "closed its stdout ({})",
                    self.terminate(Duration::from_millis(500)).await
                );
            }
        };
        self.signal_group(rustix::process::Signal::TERM);
        describe(status)
    }

    fn signal_group(&self, sig: rustix::process::Signal) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            && let Err(e) = rustix::process::kill_process_group(pid, sig)
            && e != rustix::io::Errno::SRCH
        {
            tracing::debug!(server = %self.server, error = %e, "signalling the process group failed");
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => match s.code() {
            Some(c) => format!("process exited with code {c}"),
            None => format!("process was terminated ({s})"),
        },
        Err(e) => format!("process state unknown: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::IdScan;

    fn scan(parts: &[&str]) -> IdScan {
        let mut s = IdScan::default();
        for p in parts {
            s.push(p.as_bytes());
        }
        s
    }

    #[test]
    fn finds_the_top_level_id_in_any_order_and_split() {
        let s = scan(&[
            r#"{"jsonrpc":"2.0","i"#,
            r#"d": 42 ,"result":{"id":7,"x":"#,
            r#""a\"id\":9"}}"#,
        ]);
        assert_eq!(
            (s.id, s.early_id(), s.response_id()),
            (Some(42), Some(42), Some(42))
        );
        let s = scan(&[r#"{"result":{"content":[{"id":3}]},"jsonrpc":"2.0","id":5}"#]);
        assert_eq!((s.early_id(), s.response_id()), (Some(5), Some(5)));
        // A request from the server carries its own id: no call of ours to fail.
        let s =
            scan(&[r#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":{}}"#]);
        assert_eq!(s.response_id(), None);
        let s = scan(&[r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#]);
        assert_eq!(s.response_id(), None);
    }
}
