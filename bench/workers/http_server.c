/*
 * http_server.c: a small HTTP/1.1 server for clusterd's benchmarks.
 *
 * Listener: fd 3 when LISTEN_FDS >= 1 and LISTEN_PID is this process (systemd socket activation,
 * as clusterd passes it); otherwise it binds --host (default 127.0.0.1) and --port itself with
 * SO_REUSEPORT, so several copies can be started by hand on one port (`--reuseport PORT` says the
 * same and refuses an inherited listener, for setups that must not take one by accident).
 *
 * Serves `GET /` (and HEAD) with a short fixed body and an `X-Worker-Pid` header; any other path
 * is 404, any other method 405. One epoll loop, non-blocking sockets, keep-alive, pipelining.
 *
 * Readiness: sends READY=1 to NOTIFY_SOCKET when that is set (clusterd --ready notify), once the
 * listener is in the epoll set.
 *
 * SIGTERM/SIGINT: graceful drain. An inherited listener leaves the epoll set but is neither closed
 * nor shut down (other processes share its accept queue; shutdown() would stop it for all of them).
 * An own SO_REUSEPORT listener has a queue of its own that the kernel keeps filling while it is
 * open, so it is emptied (accepted) and closed: from then on new connections go to the other
 * copies. A connection that completes between the last accept and the close is reset by the
 * kernel; only net.ipv4.tcp_migrate_req=1 (a system setting, not ours to change) would move it.
 * Every response written from then on carries `Connection: close`; a connection that stays idle
 * for --drain-idle-ms is closed without a response. Every close is a "lingering" one:
 * shutdown(SHUT_WR), then read and discard until the client's EOF, then close(), so a request
 * that crossed our FIN never turns into a TCP reset. The process exits 0 when no connection is
 * left, or after --drain-timeout-ms whatever is left.
 *
 * Usage: http_server [--port N | --reuseport N] [--host ADDR] [--drain-timeout-ms N] [--drain-idle-ms N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 16384          /* request head + body bytes buffered per connection */
#define LINGER_MS 2000        /* how long a closing connection waits for the client's EOF */
#define ACCEPT_BATCH 64

enum conn_state { OPEN, LINGERING };

struct conn {
  int fd;
  enum conn_state state;
  int close_after;            /* close once the output buffer is flushed */
  int want_out;               /* EPOLLOUT is registered */
  size_t in_len;
  size_t body_left;           /* request body bytes still to skip */
  char *out;
  size_t out_len, out_off, out_cap;
  uint64_t last_activity_ms;
  uint64_t linger_since_ms;
  struct conn *prev, *next;
  char in[IN_CAP];
};

static int epfd = -1;
static int listen_fd = -1;
static int own_listener = 0;  /* bound here with SO_REUSEPORT, not inherited */
static int signal_fd = -1;
static int draining = 0;
static uint64_t drain_started_ms = 0;
static long drain_timeout_ms = 10000;
static long drain_idle_ms = 100;
static struct conn *conns = NULL;
static long conn_count = 0;
static long lingering = 0;    /* connections waiting for the client's EOF */
static pid_t self_pid;
static char body[64];
static size_t body_len;

/* epoll user data for the two non-connection fds */
static char listener_tag, signal_tag;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "http_server[%d]: ", (int)getpid());
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sd_notify_msg(const char *msg) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || path[0] == '\0') return;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof addr.sun_path) return;
  memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&addr, alen) < 0)
    fprintf(stderr, "http_server[%d]: notify: %s\n", (int)self_pid, strerror(errno));
  close(fd);
}

static int take_inherited_listener(void) {
  const char *fds = getenv("LISTEN_FDS");
  const char *pid = getenv("LISTEN_PID");
  if (fds == NULL || pid == NULL) return -1;
  if (strtol(pid, NULL, 10) != (long)self_pid) return -1; /* meant for another process */
  if (strtol(fds, NULL, 10) < 1) return -1;
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
    die("LISTEN_FDS is set but fd 3 is not a listening socket");
  return 3;
}

static int bind_own_listener(const char *host, int port) {
  struct sockaddr_storage ss;
  socklen_t slen;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  int family;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    slen = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    slen = sizeof *v6;
  } else {
    die("--host: not a numeric IPv4 or IPv6 address: %s", host);
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    die("SO_REUSEPORT: %s", strerror(errno));
  if (bind(fd, (struct sockaddr *)&ss, slen) != 0) die("bind %s:%d: %s", host, port, strerror(errno));
  if (listen(fd, 4096) != 0) die("listen: %s", strerror(errno));
  return fd;
}

static void set_events(struct conn *c) {
  struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_free(struct conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->state == LINGERING) lingering--;
  if (c->prev) c->prev->next = c->next; else conns = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c->out);
  free(c);
  conn_count--;
}

/* Half-close and wait for the client's EOF; data that still arrives is read and dropped. */
static void conn_linger(struct conn *c) {
  if (c->state == LINGERING) return;
  c->state = LINGERING;
  lingering++;
  c->linger_since_ms = now_ms();
  c->in_len = 0;
  if (c->want_out) {
    c->want_out = 0;
    set_events(c);
  }
  if (shutdown(c->fd, SHUT_WR) != 0) conn_free(c);
}

static void out_append(struct conn *c, const char *data, size_t len) {
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + len) cap *= 2;
    char *p = realloc(c->out, cap);
    if (p == NULL) die("out of memory");
    c->out = p;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
}

/* Returns -1 if the connection was freed. */
static int conn_flush(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->want_out) {
        c->want_out = 1;
        set_events(c);
      }
      return 0;
    }
    conn_free(c); /* peer reset or gone */
    return -1;
  }
  c->out_off = c->out_len = 0;
  if (c->want_out) {
    c->want_out = 0;
    set_events(c);
  }
  if (c->close_after) conn_linger(c);
  return 0;
}

static void respond(struct conn *c, int status, const char *reason, int head_only, int keep_alive) {
  char head[256];
  const char *text = status == 200 ? body : reason;
  size_t text_len = status == 200 ? body_len : strlen(reason);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "X-Worker-Pid: %d\r\nConnection: %s\r\n\r\n",
                   status, status == 200 ? "OK" : reason, text_len, (int)self_pid,
                   keep_alive ? "keep-alive" : "close");
  out_append(c, head, (size_t)n);
  if (!head_only) out_append(c, text, text_len);
  if (!keep_alive) c->close_after = 1;
}

/* Case-insensitive search for a header line "\r\nNAME:" inside the head; returns its value. */
static const char *header_value(const char *head, size_t head_len, const char *name, size_t *value_len) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i + 2 + name_len + 1 <= head_len; i++) {
    if (head[i] != '\r' || head[i + 1] != '\n') continue;
    const char *line = head + i + 2;
    if (strncasecmp(line, name, name_len) != 0 || line[name_len] != ':') continue;
    const char *v = line + name_len + 1;
    const char *end = head + head_len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    const char *e = v;
    while (e < end && *e != '\r') e++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *value_len = (size_t)(e - v);
    return v;
  }
  return NULL;
}

static int value_has_token(const char *v, size_t len, const char *token) {
  size_t tlen = strlen(token);
  for (size_t i = 0; i + tlen <= len; i++) {
    if (strncasecmp(v + i, token, tlen) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
        (i + tlen == len || v[i + tlen] == ',' || v[i + tlen] == ' '))
      return 1;
  }
  return 0;
}

/* Parse and answer every complete request in the input buffer. */
static void handle_requests(struct conn *c) {
  size_t pos = 0;
  while (!c->close_after) {
    if (c->body_left > 0) {
      size_t skip = c->in_len - pos < c->body_left ? c->in_len - pos : c->body_left;
      pos += skip;
      c->body_left -= skip;
      if (c->body_left > 0) break;
    }
    char *start = c->in + pos;
    size_t avail = c->in_len - pos;
    char *end = memmem(start, avail, "\r\n\r\n", 4);
    if (end == NULL) {
      if (avail >= IN_CAP) { /* head too large for the buffer */
        respond(c, 431, "Request Header Fields Too Large", 0, 0);
        pos = c->in_len;
      }
      break;
    }
    size_t head_len = (size_t)(end - start) + 2; /* keep the last header's CRLF */
    pos += (size_t)(end - start) + 4;

    char *sp1 = memchr(start, ' ', head_len);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - start)) : NULL;
    if (sp1 == NULL || sp2 == NULL) {
      respond(c, 400, "Bad Request", 0, 0);
      break;
    }
    size_t method_len = (size_t)(sp1 - start);
    size_t path_len = (size_t)(sp2 - sp1 - 1);
    int http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;

    size_t vlen = 0;
    const char *conn_hdr = header_value(start, head_len, "connection", &vlen);
    int keep_alive = http10 ? (conn_hdr && value_has_token(conn_hdr, vlen, "keep-alive"))
                            : !(conn_hdr && value_has_token(conn_hdr, vlen, "close"));
    if (draining) keep_alive = 0;

    if (header_value(start, head_len, "transfer-encoding", &vlen) != NULL) {
      respond(c, 501, "Not Implemented", 0, 0); /* no chunked bodies in a benchmark server */
      break;
    }
    const char *cl = header_value(start, head_len, "content-length", &vlen);
    if (cl != NULL) c->body_left = strtoull(cl, NULL, 10);

    int is_get = method_len == 3 && memcmp(start, "GET", 3) == 0;
    int is_head = method_len == 4 && memcmp(start, "HEAD", 4) == 0;
    if (!is_get && !is_head)
      respond(c, 405, "Method Not Allowed", 0, keep_alive);
    else if (path_len == 1 && sp1[1] == '/')
      respond(c, 200, "OK", is_head, keep_alive);
    else
      respond(c, 404, "Not Found", is_head, keep_alive);
  }
  if (pos > 0) {
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
  }
}

static void on_readable(struct conn *c) {
  for (;;) {
    if (c->state == LINGERING) {
      char sink[4096];
      ssize_t n = recv(c->fd, sink, sizeof sink, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      conn_free(c); /* EOF (the client closed too) or error */
      return;
    }
    if (c->in_len == IN_CAP) break;
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n > 0) {
      c->in_len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) { /* reset: the client is gone */
      conn_free(c);
      return;
    }
    /* EOF: the client sent all it will send; answer what is complete, then close. */
    c->last_activity_ms = now_ms();
    handle_requests(c);
    c->close_after = 1;
    conn_flush(c);
    return;
  }
  c->last_activity_ms = now_ms();
  handle_requests(c);
  conn_flush(c);
}

/* Accepts up to a batch; returns 1 once the queue is empty (or accept failed), 0 if more may wait. */
static int accept_some(void) {
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return 1; /* EAGAIN (another worker took it), EMFILE, ... */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on unix sockets */
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      return 1;
    }
    c->fd = fd;
    c->last_activity_ms = now_ms();
    c->next = conns;
    if (conns) conns->prev = c;
    conns = c;
    conn_count++;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      conn_free(c);
      continue;
    }
    on_readable(c); /* the request is often there already */
  }
  return 0;
}

static void start_drain(void) {
  if (draining) return;
  draining = 1;
  drain_started_ms = now_ms();
  epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, NULL); /* stop accepting; the queue stays for others */
  if (own_listener) { /* our queue is ours alone: answer what is in it, then leave the port group */
    while (!accept_some()) {
    }
    close(listen_fd);
    listen_fd = -1;
  }
  sd_notify_msg("STOPPING=1");
}

/* Free lingering connections whose client never closed; while draining, close idle ones. */
static void sweep(uint64_t now) {
  struct conn *c = conns;
  while (c != NULL) {
    struct conn *next = c->next;
    if (c->state == LINGERING) {
      if (now - c->linger_since_ms >= LINGER_MS) conn_free(c);
    } else if (draining && c->in_len == 0 && c->body_left == 0 && c->out_len == 0) {
      uint64_t since = c->last_activity_ms > drain_started_ms ? c->last_activity_ms : drain_started_ms;
      if (now - since >= (uint64_t)drain_idle_ms) conn_linger(c);
    }
    c = next;
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: http_server [--port N | --reuseport N] [--host ADDR] [--drain-timeout-ms N] [--drain-idle-ms N]\n"
          "  the listener is fd 3 under LISTEN_FDS/LISTEN_PID, else --host:--port with SO_REUSEPORT;\n"
          "  --reuseport N always binds its own SO_REUSEPORT listener\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1;
  int reuseport = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--reuseport") == 0) {
      port = atoi(argv[++i]);
      reuseport = 1;
    }
    else if (strcmp(argv[i], "--host") == 0) host = argv[++i];
    else if (strcmp(argv[i], "--drain-timeout-ms") == 0) drain_timeout_ms = atol(argv[++i]);
    else if (strcmp(argv[i], "--drain-idle-ms") == 0) drain_idle_ms = atol(argv[++i]);
    else usage();
  }
  self_pid = getpid();
  body_len = (size_t)snprintf(body, sizeof body, "hello from pid %d\n", (int)self_pid);

  listen_fd = reuseport ? -1 : take_inherited_listener();
  if (listen_fd < 0) {
    if (port < 0 || port > 65535) die("no LISTEN_FDS for this process and no --port given");
    listen_fd = bind_own_listener(host, port);
    own_listener = 1;
  }
  /* The listener's file description is shared with clusterd and the other workers; they all
   * accept non-blocking too, so setting O_NONBLOCK on it is harmless. */
  int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) die("fcntl: %s", strerror(errno));
  fcntl(listen_fd, F_SETFD, FD_CLOEXEC);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0 || signal_fd < 0) die("epoll/signalfd: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listener_tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &signal_tag};
  epoll_ctl(epfd, EPOLL_CTL_ADD, signal_fd, &sev);
  sd_notify_msg("READY=1");

  struct epoll_event events[256];
  uint64_t last_sweep = 0;
  for (;;) {
    uint64_t now = now_ms();
    if ((draining || lingering > 0) && now - last_sweep >= 20) {
      sweep(now);
      last_sweep = now;
    }
    if (draining) {
      if (conn_count == 0) break;
      if (now - drain_started_ms >= (uint64_t)drain_timeout_ms) {
        fprintf(stderr, "http_server[%d]: drain timeout, %ld connection(s) left\n", (int)self_pid, conn_count);
        break;
      }
    }
    int n = epoll_wait(epfd, events, 256, (draining || lingering > 0) ? 20 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      void *tag = events[i].data.ptr;
      if (tag == &listener_tag) {
        if (!draining) accept_some();
      } else if (tag == &signal_tag) {
        struct signalfd_siginfo si;
        while (read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si) start_drain();
      } else {
        /* each conn appears once per batch and only ever frees itself */
        struct conn *c = tag;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          on_readable(c);
        } else if (events[i].events & EPOLLOUT) {
          conn_flush(c);
        }
      }
    }
  }
  return 0;
}
