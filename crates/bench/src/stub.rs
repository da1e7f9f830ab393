//! A stub Lambda Runtime API: just enough HTTP to see a runtime ask for its first event.
//!
//! Every connection gets a thread. A `GET /2018-06-01/runtime/invocation/next` is an *arrival*:
//! the stub notes the instant, reads `/proc/<pid>/status` of the process under test at once
//! (the process is blocked on that request, so its memory is what init left behind), and hands
//! the arrival — with the still-open connection — to the bench, which then either ends the
//! process or answers with an invocation ([`Arrival::answer_invocation`]). Posts of responses
//! and errors are answered `202`, so a runtime that is answered behaves as in Lambda.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The path a runtime polls for its next event.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// Memory figures from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcMemory {
    /// Resident set size at the moment of reading.
    pub rss_kib: u64,
    /// Peak resident set size so far ("high water mark").
    pub hwm_kib: u64,
}

/// Reads VmRSS and VmHWM of a live process.
pub fn proc_memory(pid: u32) -> io::Result<ProcMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/status has no VmRSS/VmHWM (a zombie?)"),
        )
    })
}

/// Scheduler figures summed over the live threads of a process, in nanoseconds
/// (`/proc/<pid>/task/*/schedstat`): CPU time consumed, and time spent runnable but waiting for
/// a CPU — on a busy machine the second explains most of the gap between CPU and wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcCpu {
    pub cpu_ns: u64,
    pub runq_wait_ns: u64,
    pub threads: u32,
}

/// Reads [`ProcCpu`] of a live process.
pub fn proc_cpu(pid: u32) -> io::Result<ProcCpu> {
    let mut total = ProcCpu::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(text) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        let mut f = text
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        total.cpu_ns += f.next().unwrap_or(0);
        total.runq_wait_ns += f.next().unwrap_or(0);
        total.threads += 1;
    }
    Ok(total)
}

/// Parses the `VmRSS:` and `VmHWM:` lines (`VmRSS:\t    5432 kB`).
pub fn parse_status(status: &str) -> Option<ProcMemory> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(ProcMemory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// A runtime's first poll for an event.
#[derive(Debug)]
pub struct Arrival {
    /// When the request line and headers had been read.
    pub at: Instant,
    /// The process under test, as the bench announced it.
    pub pid: u32,
    /// Its memory when the request arrived (an error if it could not be read).
    pub memory: Result<ProcMemory, String>,
    /// Its CPU and run-queue wait time by then.
    pub cpu: Result<ProcCpu, String>,
    stream: TcpStream,
}

impl Arrival {
    /// Answers the held `/next` with one invocation carrying `payload`.
    pub fn answer_invocation(mut self, request_id: &str, payload: &str) -> io::Result<()> {
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 60_000)
            .unwrap_or_default();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Lambda-Runtime-Aws-Request-Id: {request_id}\r\n\
             Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
             Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:rm-bench\r\n\
             Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\r\n",
            payload.len()
        );
        self.stream.write_all(head.as_bytes())?;
        self.stream.write_all(payload.as_bytes())?;
        self.stream.flush()
    }
}

/// What the stub saw besides arrivals: a posted response or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub at: Instant,
    pub path: String,
    pub body: String,
}

/// A running stub Runtime API on 127.0.0.1 (an ephemeral port).
pub struct Stub {
    addr: SocketAddr,
    pid: Arc<AtomicU32>,
    arrivals: Receiver<Arrival>,
    posts: Receiver<Post>,
}

impl Stub {
    /// Binds 127.0.0.1:0 and serves on a background thread for the life of the process.
    pub fn start() -> io::Result<Stub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let pid = Arc::new(AtomicU32::new(0));
        let (arrival_tx, arrivals) = mpsc::channel();
        let (post_tx, posts) = mpsc::channel();
        let shared = Arc::clone(&pid);
        thread::Builder::new()
            .name("stub-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let _ = stream.set_nodelay(true);
                    let (pid, arrival_tx, post_tx) =
                        (Arc::clone(&shared), arrival_tx.clone(), post_tx.clone());
                    let _ = thread::Builder::new()
                        .name("stub-conn".into())
                        .spawn(move || serve(stream, &pid, &arrival_tx, &post_tx));
                }
            })?;
        Ok(Stub {
            addr,
            pid,
            arrivals,
            posts,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Names the process under test (0: none). Arrivals read this pid's memory.
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// Drops arrivals and posts left over from an earlier process.
    pub fn drain(&self) {
        while self.arrivals.try_recv().is_ok() {}
        while self.posts.try_recv().is_ok() {}
    }

    /// The next arrival, if one comes within `timeout`.
    pub fn next_arrival(&self, timeout: Duration) -> Result<Arrival, RecvTimeoutError> {
        self.arrivals.recv_timeout(timeout)
    }

    /// The next posted response or error, if one comes within `timeout`.
    pub fn next_post(&self, timeout: Duration) -> Result<Post, RecvTimeoutError> {
        self.posts.recv_timeout(timeout)
    }
}

fn serve(stream: TcpStream, pid: &AtomicU32, arrivals: &Sender<Arrival>, posts: &Sender<Post>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    // HTTP/1.1 keep-alive: a runtime reuses its connection for /next, /response, /next, ...
    loop {
        let Some((method, path, content_length)) = read_head(&mut reader) else {
            return;
        };
        let at = Instant::now();
        if method == "GET" && path == NEXT_PATH {
            let pid = wait_for_pid(pid);
            let memory = proc_memory(pid).map_err(|e| e.to_string());
            let cpu = proc_cpu(pid).map_err(|e| e.to_string());
            let Ok(held) = stream.try_clone() else { return };
            let arrival = Arrival {
                at,
                pid,
                memory,
                cpu,
                stream: held,
            };
            if arrivals.send(arrival).is_err() {
                return;
            }
            // The bench owns the reply now; keep reading in case it answers and the runtime
            // goes on with /response and the next /next on this same connection.
            continue;
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = posts.send(Post {
            at,
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let reply = if method == "POST" {
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n"
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The pid is announced right after `spawn` returns, which is before any runtime can have
/// connected; wait briefly in case this thread won that race anyway.
fn wait_for_pid(pid: &AtomicU32) -> u32 {
    let start = Instant::now();
    loop {
        let p = pid.load(Ordering::SeqCst);
        if p != 0 || start.elapsed() > Duration::from_secs(1) {
            return p;
        }
        std::hint::spin_loop();
    }
}

/// Reads a request line and headers: (method, path, content-length).
fn read_head(reader: &mut impl BufRead) -> Option<(String, String, usize)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().ok()?;
            }
        }
    }
    Some((method, path, content_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    6000 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(
            parse_status(s),
            Some(ProcMemory {
                rss_kib: 5432,
                hwm_kib: 6000
            })
        );
        assert_eq!(parse_status("Name:\tzombie\n"), None);
    }

    #[test]
    fn own_memory_is_readable() {
        let m = proc_memory(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
    }

    #[test]
    fn own_cpu_is_readable() {
        let c = proc_cpu(std::process::id()).unwrap();
        assert!(c.threads >= 1 && c.cpu_ns > 0);
    }

    #[test]
    fn records_next_and_answers_posts() {
        let stub = Stub::start().unwrap();
        stub.set_pid(std::process::id());
        let mut c = TcpStream::connect(stub.runtime_api()).unwrap();
        write!(c, "GET {NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let arrival = stub.next_arrival(Duration::from_secs(5)).unwrap();
        assert_eq!(arrival.pid, std::process::id());
        assert!(arrival.memory.as_ref().unwrap().rss_kib > 0);
        arrival.answer_invocation("req-1", "{\"a\":1}").unwrap();
        let mut reader = BufReader::new(c.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut head = String::new();
        while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
        assert!(
            head.contains("Lambda-Runtime-Aws-Request-Id: req-1"),
            "{head}"
        );
        let mut body = [0u8; 7];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"{\"a\":1}");

        let path = "/2018-06-01/runtime/invocation/req-1/response";
        write!(c, "POST {path} HTTP/1.1\r\nContent-Length: 2\r\n\r\nok").unwrap();
        let post = stub.next_post(Duration::from_secs(5)).unwrap();
        assert_eq!((post.path.as_str(), post.body.as_str()), (path, "ok"));
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    }
}
