// epoll + signalfd + one timerfd: the only places clusterd waits.
#include "event_loop.h"

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <system_error>

namespace clusterd {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) {
    sigaddset(&set, signal);
  }
  return set;
}

void take_over_signals() {
  // The mask first: with the handled signals blocked, none can take its default action (SIGTTIN
  // and SIGTTOU stop the process) between the two steps; a blocked signal stays pending for the
  // signalfd whatever its disposition. SIG_SETMASK, not SIG_BLOCK: nothing else stays blocked.
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_SETMASK, &set, nullptr);
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) {
    if (sigismember(&set, signal) == 1) {
      ::sigaction(signal, &action, nullptr);
    }
  }
  // A disposition, not a handler: a write to a closed pipe or socket fails with EPIPE instead.
  action.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &action, nullptr);
}

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
  if (!epoll_) {
    throw_errno("epoll_create1");
  }
  if (!timer_) {
    throw_errno("timerfd_create");
  }
  add(timer_.get(), EPOLLIN, [this](std::uint32_t) {
    std::uint64_t expirations = 0;
    // EAGAIN is fine: a disarm between readiness and read leaves nothing to read.
    (void)retry_on_eintr([&] { return ::read(timer_.get(), &expirations, sizeof expirations); });
    armed_.reset();
    if (on_timer_) {
      on_timer_();
    }
  });
}

void EventLoop::add(int fd, std::uint32_t events, Callback callback) {
  const std::uint64_t token = next_token_++;
  epoll_event event{};
  event.events = events;
  event.data.u64 = token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    throw_errno("epoll_ctl ADD");
  }
  registrations_.emplace(token, Registration{fd, std::move(callback)});
  token_of_fd_[fd] = token;
}

void EventLoop::modify(int fd, std::uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = token_of_fd_.at(fd);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) != 0) {
    throw_errno("epoll_ctl MOD");
  }
}

void EventLoop::remove(int fd) {
  auto found = token_of_fd_.find(fd);
  if (found == token_of_fd_.end()) {
    return;
  }
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  registrations_.erase(found->second);
  token_of_fd_.erase(found);
}

void EventLoop::arm_timer(std::optional<TimePoint> deadline) {
  if (deadline == armed_) {
    return;  // nothing changed: spare the syscall
  }
  itimerspec spec{};
  if (deadline) {
    // steady_clock is CLOCK_MONOTONIC in libstdc++ on Linux, so its epoch is the timerfd's.
    const auto since_epoch = deadline->time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs);
    spec.it_value.tv_sec = secs.count();
    spec.it_value.tv_nsec = nanos.count();
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
      spec.it_value.tv_nsec = 1;  // an all-zero it_value would disarm instead
    }
  }
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    throw_errno("timerfd_settime");
  }
  armed_ = deadline;
}

void EventLoop::run_once() {
  std::array<epoll_event, 64> ready{};
  const int count = ::epoll_wait(epoll_.get(), ready.data(), static_cast<int>(ready.size()), -1);
  if (count < 0) {
    if (errno == EINTR) {
      return;  // SIGSTOP/SIGCONT or a debugger: just wait again
    }
    throw_errno("epoll_wait");
  }
  for (int index = 0; index < count; ++index) {
    auto found = registrations_.find(ready[static_cast<std::size_t>(index)].data.u64);
    if (found == registrations_.end()) {
      continue;  // removed by an earlier callback of this round
    }
    // Copied: the callback may remove its own registration.
    Callback callback = found->second.callback;
    callback(ready[static_cast<std::size_t>(index)].events);
  }
}

SignalReader::SignalReader(const sigset_t& signals) {
  fd_.reset(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd_) {
    throw_errno("signalfd");
  }
}

std::optional<ReceivedSignal> SignalReader::next() {
  signalfd_siginfo info{};
  const ssize_t got = retry_on_eintr([&] { return ::read(fd_.get(), &info, sizeof info); });
  if (got != static_cast<ssize_t>(sizeof info)) {
    return std::nullopt;
  }
  return ReceivedSignal{static_cast<int>(info.ssi_signo), info.ssi_code, static_cast<pid_t>(info.ssi_pid)};
}

}  // namespace clusterd
