// Reads /proc to tell whether a worker waits for connections on clusterd's listening sockets.
#include "listen_probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <memory>
#include <poll.h>

#include "errno_text.h"
#include "process.h"
#include "text_file.h"

namespace clusterd {
namespace {

// Above any poll or select set a server hands the kernel while waiting for connections; a larger
// one is not read (its memory could be anything the worker chose).
constexpr std::uint64_t max_poll_fds = 4096;
constexpr std::uint64_t max_select_fds = 65536;

using Directory = std::unique_ptr<DIR, int (*)(DIR*)>;

Directory open_directory(const std::string& path) { return Directory(::opendir(path.c_str()), ::closedir); }

std::optional<std::uint64_t> number_at(std::string_view text, int base) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (error != std::errc{} || end == text.data()) {
    return std::nullopt;
  }
  return value;
}

// The value after `key` ("ino:", "events:") in a line of fdinfo: blanks skipped, up to a blank.
std::optional<std::uint64_t> field(std::string_view line, std::string_view key, int base) {
  const auto at = line.find(key);
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view rest = line.substr(at + key.size());
  const auto start = rest.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    return std::nullopt;
  }
  rest = rest.substr(start);
  return number_at(rest.substr(0, rest.find_first_of(" \t")), base);
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> list;
  std::size_t at = 0;
  while ((at = text.find_first_not_of(" \t\n", at)) != std::string_view::npos) {
    const std::size_t end = std::min(text.find_first_of(" \t\n", at), text.size());
    list.push_back(text.substr(at, end - at));
    at = end;
  }
  return list;
}

bool is_one_of(long number, std::initializer_list<long> numbers) {
  return std::find(numbers.begin(), numbers.end(), number) != numbers.end();
}

// System call numbers of this architecture; -1 where it has no such call (aarch64 has neither
// poll nor select, only ppoll and pselect6).
#ifdef SYS_accept
constexpr long sys_accept = SYS_accept;
#else
constexpr long sys_accept = -1;
#endif
#ifdef SYS_poll
constexpr long sys_poll = SYS_poll;
#else
constexpr long sys_poll = -1;
#endif
#ifdef SYS_select
constexpr long sys_select = SYS_select;
#else
constexpr long sys_select = -1;
#endif

std::optional<std::string> read_link(int directory, const char* name) {
  char target[256];
  const ssize_t length = ::readlinkat(directory, name, target, sizeof target);
  if (length <= 0) {
    return std::nullopt;
  }
  return std::string(target, static_cast<std::size_t>(length));
}

std::string read_memory(pid_t pid, std::uint64_t address, std::size_t length) {
  std::string buffer(length, '\0');
  iovec local{buffer.data(), length};
  iovec remote{reinterpret_cast<void*>(address), length};
  const ssize_t got = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
  return got == static_cast<ssize_t>(length) ? buffer : std::string();
}

struct ProcessFds {
  std::set<int> listening;  // fds that are clusterd's listening sockets
  std::vector<int> epolls;
  bool io_uring = false;
};

// nullopt with `error` set when /proc refuses to show the fds (not the case of a gone process).
std::optional<ProcessFds> process_fds(pid_t pid, const std::set<std::uint64_t>& socket_inodes, int& error) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  const Directory directory = open_directory(path);
  if (!directory) {
    error = errno;
    return std::nullopt;
  }
  ProcessFds fds;
  while (const dirent* entry = ::readdir(directory.get())) {
    const auto fd = number_at(entry->d_name, 10);
    if (!fd) {
      continue;
    }
    const auto target = read_link(::dirfd(directory.get()), entry->d_name);
    if (!target) {
      continue;
    }
    if (const auto inode = socket_inode(*target); inode && socket_inodes.contains(*inode)) {
      fds.listening.insert(static_cast<int>(*fd));
    } else if (*target == "anon_inode:[eventpoll]") {
      fds.epolls.push_back(static_cast<int>(*fd));
    } else if (*target == "anon_inode:[io_uring]") {
      fds.io_uring = true;
    }
  }
  return fds;
}

bool epoll_watches(pid_t pid, int epoll_fd, const std::set<std::uint64_t>& socket_inodes) {
  const auto text = read_text_file("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(epoll_fd));
  if (!text) {
    return false;
  }
  const auto inodes = epoll_input_inodes(*text);
  return std::any_of(inodes.begin(), inodes.end(), [&](std::uint64_t inode) { return socket_inodes.contains(inode); });
}

// nullopt: none of the threads is blocked on a listening fd; `refused` says /proc refused.
std::optional<std::string> blocked_thread(pid_t pid, const std::set<int>& listening_fds, bool& refused) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  const Directory directory = open_directory(tasks);
  if (!directory) {
    return std::nullopt;
  }
  std::optional<std::string> found;
  const MemoryReader reader = [pid](std::uint64_t address, std::size_t length) {
    return read_memory(pid, address, length);
  };
  while (const dirent* entry = ::readdir(directory.get())) {
    if (!number_at(entry->d_name, 10)) {
      continue;
    }
    const auto text = read_text_file(tasks + "/" + entry->d_name + "/syscall");
    if (!text) {
      refused = refused || errno == EACCES || errno == EPERM;
      continue;
    }
    if (const auto call = parse_blocked_call(*text)) {
      if ((found = waits_on(*call, listening_fds, reader))) {
        break;
      }
    }
  }
  return found;
}

// `pid` and its descendants, breadth first, at most max_probed_processes.
std::vector<pid_t> process_tree(pid_t root) {
  std::vector<pid_t> tree{root};
  for (std::size_t next = 0; next < tree.size() && tree.size() < max_probed_processes; ++next) {
    for (const pid_t child : children_of(tree[next]).value_or(std::vector<pid_t>{})) {
      if (tree.size() < max_probed_processes) {
        tree.push_back(child);
      }
    }
  }
  return tree;
}

}  // namespace

std::vector<std::uint64_t> epoll_input_inodes(std::string_view fdinfo) {
  std::vector<std::uint64_t> inodes;
  std::size_t at = 0;
  while (at < fdinfo.size()) {
    const std::size_t end = std::min(fdinfo.find('\n', at), fdinfo.size());
    const std::string_view line = fdinfo.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with("tfd:")) {
      continue;
    }
    const auto events = field(line, "events:", 16);
    const auto inode = field(line, "ino:", 16);
    if (events && inode && (*events & EPOLLIN) != 0) {
      inodes.push_back(*inode);
    }
  }
  return inodes;
}

std::optional<std::uint64_t> socket_inode(std::string_view link) {
  constexpr std::string_view prefix = "socket:[";
  if (!link.starts_with(prefix) || !link.ends_with("]")) {
    return std::nullopt;
  }
  const std::string_view digits = link.substr(prefix.size(), link.size() - prefix.size() - 1);
  const auto inode = number_at(digits, 10);
  // All of it a number: "socket:[12x]" is no socket link.
  if (!inode || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return inode;
}

std::optional<BlockedCall> parse_blocked_call(std::string_view text) {
  const std::vector<std::string_view> parts = words(text);
  // The number, six arguments, then the stack and instruction pointers.
  if (parts.size() < 7 || parts[0].starts_with('-')) {
    return std::nullopt;
  }
  const auto number = number_at(parts[0], 10);
  if (!number) {
    return std::nullopt;
  }
  BlockedCall call;
  call.number = static_cast<long>(*number);
  for (std::size_t index = 0; index < call.args.size(); ++index) {
    std::string_view arg = parts[index + 1];
    if (!arg.starts_with("0x")) {
      return std::nullopt;
    }
    const auto value = number_at(arg.substr(2), 16);
    if (!value) {
      return std::nullopt;
    }
    call.args[index] = *value;
  }
  return call;
}

std::optional<std::string> waits_on(const BlockedCall& call, const std::set<int>& listening_fds,
                                    const MemoryReader& read_memory) {
  if (listening_fds.empty()) {
    return std::nullopt;
  }
  if (is_one_of(call.number, {sys_accept, SYS_accept4})) {
    const auto fd = static_cast<int>(call.args[0]);
    return listening_fds.contains(fd) ? std::optional<std::string>("accept") : std::nullopt;
  }
  if (is_one_of(call.number, {sys_poll, SYS_ppoll})) {
    const std::uint64_t count = call.args[1];
    if (count == 0 || count > max_poll_fds) {
      return std::nullopt;
    }
    const std::string memory = read_memory(call.args[0], count * sizeof(pollfd));
    for (std::uint64_t index = 0; index < count && !memory.empty(); ++index) {
      pollfd entry{};
      std::memcpy(&entry, memory.data() + index * sizeof(pollfd), sizeof entry);
      if ((entry.events & POLLIN) != 0 && listening_fds.contains(entry.fd)) {
        return "poll";
      }
    }
    return std::nullopt;
  }
  if (is_one_of(call.number, {sys_select, SYS_pselect6})) {
    const std::uint64_t count = call.args[0];
    const std::uint64_t read_set = call.args[1];
    if (count == 0 || count > max_select_fds || read_set == 0) {
      return std::nullopt;
    }
    // An fd_set is an array of longs, bit fd % bits-per-long of long fd / bits-per-long.
    constexpr std::uint64_t long_bits = 8 * sizeof(long);
    const std::uint64_t longs = (count + long_bits - 1) / long_bits;
    const std::string memory = read_memory(read_set, longs * sizeof(long));
    for (const int fd : listening_fds) {
      const auto index = static_cast<std::uint64_t>(fd);
      if (memory.empty() || index >= count) {
        continue;
      }
      unsigned long word = 0;
      std::memcpy(&word, memory.data() + (index / long_bits) * sizeof(long), sizeof word);
      if ((word >> (index % long_bits)) & 1UL) {
        return "select";
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

ListenProbe probe_listening(pid_t worker, const std::set<std::uint64_t>& socket_inodes) {
  ListenProbe probe;
  std::optional<std::string> fds_refused;
  bool syscall_refused = false;
  bool io_uring = false;
  for (const pid_t pid : process_tree(worker)) {
    int error = 0;
    const auto fds = process_fds(pid, socket_inodes, error);
    if (!fds) {
      if ((error == EACCES || error == EPERM) && !fds_refused) {
        fds_refused = "/proc/" + std::to_string(pid) + "/fd: " + errno_text(error);
      }
      continue;  // refused, or gone meanwhile
    }
    io_uring = io_uring || fds->io_uring;
    for (const int epoll_fd : fds->epolls) {
      if (epoll_watches(pid, epoll_fd, socket_inodes)) {
        probe.sign = ListenSign{pid, "epoll"};
        return probe;
      }
    }
    if (auto how = blocked_thread(pid, fds->listening, syscall_refused)) {
      probe.sign = ListenSign{pid, std::move(*how)};
      return probe;
    }
  }
  if (fds_refused) {
    probe.blind = std::move(fds_refused);
  } else if (io_uring) {
    probe.blind = "it uses io_uring, whose waits /proc does not show";
  } else if (syscall_refused) {
    probe.blind = "/proc/PID/task/TID/syscall: Permission denied";
  }
  return probe;
}

}  // namespace clusterd
