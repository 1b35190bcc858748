// Whether a worker waits for connections on one of clusterd's listening sockets, read from /proc
// without the worker's help (ready.mode = "auto"): one of its processes has the socket in an
// epoll instance's interest list, or has a thread blocked in accept, poll or select on it.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd {

struct ListenSign {
  pid_t pid = 0;    // the process seen waiting: the worker or one of its descendants
  std::string how;  // "epoll", "accept", "poll" or "select"
};

struct ListenProbe {
  std::optional<ListenSign> sign;
  // Why no sign can be seen in this worker, when that is so: /proc refused (another user's
  // process, hidepid), or a process of it uses io_uring, whose waits /proc does not show.
  std::optional<std::string> blind;
};

// Looks at `worker` and its descendants (at most max_probed_processes of them) for a wait on
// one of `socket_inodes` (sockfs inode numbers of clusterd's listening sockets). Never throws; a
// process that ends meanwhile is simply not seen.
ListenProbe probe_listening(pid_t worker, const std::set<std::uint64_t>& socket_inodes);

inline constexpr std::size_t max_probed_processes = 64;

// ---- The pure readings, for the tests.

// The inodes of the files an epoll instance watches for input (EPOLLIN), from its
// /proc/PID/fdinfo text: lines "tfd: 3 events: 19 data: … ino:1a2b sdev:8" (inode in hex).
std::vector<std::uint64_t> epoll_input_inodes(std::string_view fdinfo);

// "socket:[4711]" -> 4711; anything else -> nullopt.
std::optional<std::uint64_t> socket_inode(std::string_view link);

// A thread's /proc/PID/task/TID/syscall: "NR arg0 … arg5 sp pc" while blocked in a system call;
// "running", or -1 (in user space, or blocked outside one), give nullopt.
struct BlockedCall {
  long number = 0;
  std::array<std::uint64_t, 6> args{};
};
std::optional<BlockedCall> parse_blocked_call(std::string_view text);

// What a blocked call waits on, by system call number: a listening fd in `listening_fds`
// (the process's fds that are clusterd's sockets) given as an argument (accept), or in memory
// the call points to (poll, select), read through `read_memory(address, length)` (empty: the
// memory could not be read). Returns "accept", "poll", "select", or nullopt.
using MemoryReader = std::function<std::string(std::uint64_t address, std::size_t length)>;
std::optional<std::string> waits_on(const BlockedCall& call, const std::set<int>& listening_fds,
                                    const MemoryReader& read_memory);

}  // namespace clusterd
