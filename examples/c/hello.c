/* A C HTTP server for clusterd: serves the listening socket it inherits at fd 3 and stops
 * gracefully on SIGTERM (it finishes the request in hand, accepts no more, exits 0).
 *
 * Build: cc -O2 -Wall -o hello-c hello.c
 *
 * One connection at a time, one request per connection: the point is the socket-activation
 * protocol and the signal handling, not HTTP. Run several workers for concurrency. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LISTEN_FDS_START 3 /* SD_LISTEN_FDS_START: the first inherited socket */

static volatile sig_atomic_t stopping = 0;

static void on_stop_signal(int signo) {
  (void)signo;
  stopping = 1;
}

/* The socket-activation protocol (sd_listen_fds(3)): LISTEN_PID must be our own pid, otherwise
 * the variables were meant for another process (a parent that forgot to unset them). */
static int inherited_socket(void) {
  const char *pid = getenv("LISTEN_PID");
  const char *fds = getenv("LISTEN_FDS");
  if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != (long)getpid() ||
      strtol(fds, NULL, 10) < 1) {
    fprintf(stderr, "hello-c: no socket from clusterd (LISTEN_PID/LISTEN_FDS not for pid %ld)\n",
            (long)getpid());
    exit(2);
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  int fd = LISTEN_FDS_START;
  /* Not inherited by programs we might start. Non-blocking, because another worker may take
   * the connection between poll() saying "readable" and our accept(). */
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    perror("hello-c: fcntl fd 3");
    exit(1);
  }
  return fd;
}

/* Reads the request head (up to the blank line, or what fits) and answers it. */
static void serve(int client) {
  char request[4096];
  size_t used = 0;
  while (used < sizeof request - 1) {
    ssize_t n = read(client, request + used, sizeof request - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* closed, or the 10 s receive timeout */
    used += (size_t)n;
    request[used] = '\0';
    if (strstr(request, "\r\n\r\n") != NULL) break;
  }
  const char *id = getenv("CLUSTERD_WORKER_ID");
  const char *count = getenv("CLUSTERD_WORKERS");
  char body[128];
  int body_len = snprintf(body, sizeof body, "hello from pid %ld (worker %s of %s)\n",
                          (long)getpid(), id ? id : "?", count ? count : "?");
  char response[512];
  int len = snprintf(response, sizeof response,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s", body_len, body);
  for (int sent = 0; sent < len;) {
    ssize_t n = send(client, response + sent, (size_t)(len - sent), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sent += (int)n;
  }
}

int main(void) {
  int listener = inherited_socket();

  /* SIGTERM stays blocked except inside ppoll(), which unblocks it atomically while waiting:
   * a stop signal can then only arrive while we wait for a connection, never between the
   * `stopping` check and the wait (where a plain poll() would sleep through it). */
  sigset_t blocked, waiting;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigprocmask(SIG_BLOCK, &blocked, &waiting);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  while (!stopping) {
    struct pollfd ready = {.fd = listener, .events = POLLIN};
    if (ppoll(&ready, 1, NULL, &waiting) < 0) {
      if (errno == EINTR) continue; /* a stop signal: the loop condition sees it */
      perror("hello-c: ppoll");
      return 1;
    }
    int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
        continue; /* another worker took it, or the client gave up */
      }
      perror("hello-c: accept4");
      return 1;
    }
    struct timeval limit = {.tv_sec = 10};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    serve(client);
    close(client);
  }
  /* Only our reference to the listening socket goes away with us: no shutdown(), which would
   * stop it for every worker. */
  return 0;
}
