/* Test worker for ready.mode = "auto": holds an io_uring instance, as a server that waits for
 * connections through io_uring would, and never waits on its socket in a way /proc shows. clusterd
 * cannot see it ready, says so once, and takes it as ready after ready.min_uptime. */
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  if (syscall(__NR_io_uring_setup, 8, &params) < 0) {
    perror("io_uring_worker: io_uring_setup");
    return 1;
  }
  for (;;) {
    pause();
  }
}
