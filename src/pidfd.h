// pidfd_open(2) and pidfd_send_signal(2) as raw system calls: glibc 2.36's <sys/pidfd.h>
// declares its wrappers without extern "C" (fixed in 2.37), so a C++ program cannot link them.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "fd.h"

namespace clusterd {

// The process's pidfd, close-on-exec; empty before Linux 5.3 (ENOSYS) or when it is gone.
inline Fd open_pidfd(pid_t pid) noexcept { return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U))); }

inline int send_signal_to_pidfd(int pidfd, int signal) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0U));
}

}  // namespace clusterd
