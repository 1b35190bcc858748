// One epoll instance with a callback per fd, a signalfd for every handled signal and one timerfd
// armed at a single deadline. It never wakes up unless an fd is ready or the deadline passes.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "duration.h"
#include "fd.h"

namespace clusterd {

// The signals clusterd handles; they must be blocked in every thread before they can be read
// from a signalfd (protocols §3.6). SIGTTIN/SIGTTOU are among them because their default
// action would stop clusterd.
sigset_t handled_signals();

// Puts every signal clusterd relies on into a known state, whatever it inherited across exec
// (nohup ignores SIGHUP; some launchers ignore SIGCHLD or SIGTERM, or block signals): the
// calling thread's mask becomes exactly handled_signals(), so inherited blocked signals are
// unblocked; each handled signal gets SIG_DFL, because an inherited SIG_IGN of SIGCHLD makes the
// kernel reap children itself; SIGPIPE gets SIG_IGN. Call first thing in main, before anything
// can start a thread, so that no thread ever has the handled signals unblocked. Workers get the
// default dispositions and an empty mask back before exec (process.cpp).
void take_over_signals();

class EventLoop {
 public:
  using Callback = std::function<void(std::uint32_t events)>;

  EventLoop();  // throws std::system_error when epoll/timerfd cannot be created

  // Calls `callback` whenever `fd` is ready for `events` (level-triggered). The fd must stay
  // open until remove(). A callback may add and remove fds, its own included.
  void add(int fd, std::uint32_t events, Callback callback);
  void remove(int fd);
  // Watches a registered `fd` for `events` instead, keeping its callback. Throws
  // std::system_error when epoll refuses.
  void modify(int fd, std::uint32_t events);

  // The one timer: `on_timer` runs once `deadline` has passed; nullopt disarms it.
  void set_timer_callback(std::function<void()> on_timer) { on_timer_ = std::move(on_timer); }
  void arm_timer(std::optional<TimePoint> deadline);

  // Waits (without a timeout: the timerfd is the only clock) and runs the ready callbacks.
  void run_once();

 private:
  struct Registration {
    int fd;
    Callback callback;
  };

  Fd epoll_;
  Fd timer_;
  std::function<void()> on_timer_;
  std::optional<TimePoint> armed_;
  std::uint64_t next_token_ = 1;
  // Keyed by a token, not the fd, so a callback that removes another ready fd (and a new fd
  // that reuses its number) is never called with the old registration's events.
  std::unordered_map<std::uint64_t, Registration> registrations_;
  std::unordered_map<int, std::uint64_t> token_of_fd_;
};

// A signal read from a signalfd: its number, and for SIGCHLD the child it is about (the kernel
// keeps one SIGCHLD pending however many children exit: the first one's).
struct ReceivedSignal {
  int number = 0;
  int code = 0;     // si_code: CLD_EXITED, CLD_KILLED, … for a SIGCHLD the kernel sent
  pid_t sender = 0;  // si_pid
};

// A signalfd for `signals` (by default handled_signals()), non-blocking and close-on-exec. The
// signals must be blocked in every thread, or they take their default action instead.
class SignalReader {
 public:
  SignalReader() : SignalReader(handled_signals()) {}
  explicit SignalReader(const sigset_t& signals);
  int fd() const { return fd_.get(); }
  // The next pending signal, or nullopt when none is left.
  std::optional<ReceivedSignal> next();

 private:
  Fd fd_;
};

}  // namespace clusterd
