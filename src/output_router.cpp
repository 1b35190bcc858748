// Ties workers' output pipes to the sinks of clusterd's stdout and stderr in the event loop,
// pausing a pipe while its sink is full.
#include "output_router.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <system_error>

#include <spdlog/spdlog.h>

namespace clusterd {
namespace {

// 64 KiB a wake-up: enough for any burst of lines, small enough that other workers' output,
// signals and control requests are served in between.
constexpr std::size_t output_budget = 64 * 1024;

}  // namespace

OutputRouter::OutputRouter(EventLoop& loop, std::size_t capacity, Duration exit_flush)
    : loop_(loop), capacity_(capacity), exit_flush_(exit_flush) {}

OutputRouter::~OutputRouter() {
  flush_at_exit();
  for (const auto& [fd, stream] : streams_) {
    loop_.remove(fd);
  }
  for (const auto& destination : destinations_) {
    if (destination->watched) {
      loop_.remove(destination->sink.fd());
    }
  }
}

void OutputRouter::write_to_file(OpenedOutputFile file, FileSettings settings) {
  const std::string name = settings.path;
  destinations_.push_back(std::unique_ptr<Destination>(
      new Destination{-1, 0, 0, OutputSink(std::move(file.fd), name, capacity_), false, std::move(settings),
                      file.size, false}));
  file_ = destinations_.back().get();
}

void OutputRouter::reopen_file() {
  if (file_ == nullptr) {
    return;
  }
  auto file = open_output_file(file_->file->path, ::geteuid());
  if (!file) {
    spdlog::error("cannot reopen output.file path={} error=\"{}\"; still writing workers' output to the old file",
                  file_->file->path, file.error());
    return;
  }
  replace_file(*file_, std::move(*file));
  file_->rotation_failed = false;
  spdlog::info("output file reopened path={}", file_->file->path);
}

void OutputRouter::replace_file(Destination& destination, OpenedOutputFile file) {
  if (destination.watched) {
    loop_.remove(destination.sink.fd());
    destination.watched = false;
  }
  destination.sink.replace_file(std::move(file.fd));
  destination.size_at_open = file.size;
  destination.sink.write_some();
  resume_paused(destination);
  watch_sink(destination);
}

// Rotated between two writes, so the file ends with a whole line: lines are pushed and written
// whole, and a regular file takes all it is given.
void OutputRouter::rotate_if_full(Destination& destination) {
  if (!destination.file || !destination.file->max_size || destination.rotation_failed || !destination.sink.empty() ||
      destination.size_at_open + destination.sink.written() < *destination.file->max_size) {
    return;
  }
  const FileSettings& settings = *destination.file;
  auto rotated = rotate_output_file(settings.path, settings.keep, ::geteuid());
  if (!rotated) {
    destination.rotation_failed = true;
    spdlog::error("{}; writing on to {} without rotating it until SIGUSR1 reopens it", rotated.error(),
                  settings.path);
    return;
  }
  replace_file(destination, std::move(*rotated));
}

void OutputRouter::watch(Fd read_end, int destination, LineFormat format) {
  Destination& into = destination_for(destination);
  const int fd = read_end.get();
  streams_.emplace(fd, Stream{WorkerOutput(std::move(read_end), into.sink, format, &observer_), &into, false});
  // Registered even when the sink is full: the first wake-up finds it held and pauses it.
  loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_readable(fd); });
}

OutputRouter::Destination& OutputRouter::destination_for(int fd) {
  if (file_ != nullptr) {
    return *file_;
  }
  for (const auto& destination : destinations_) {
    if (destination->fd == fd) {
      return *destination;
    }
  }
  struct stat info {};
  const bool known = ::fstat(fd, &info) == 0;
  for (const auto& destination : destinations_) {
    if (known && destination->device == info.st_dev && destination->inode == info.st_ino) {
      return *destination;  // the same file as one we write already (2>&1)
    }
  }
  destinations_.push_back(
      std::unique_ptr<Destination>(new Destination{fd, info.st_dev, info.st_ino, OutputSink(fd, capacity_), false, std::nullopt, 0, false}));
  return *destinations_.back();
}

void OutputRouter::on_readable(int fd) {
  const auto found = streams_.find(fd);
  if (found != streams_.end()) {
    settle(found, found->second.output.drain(output_budget));
  }
}

// When a worker has exited, what it wrote last is written out before its exit is logged.
std::map<int, int> OutputRouter::read_ends_of(pid_t pid) const {
  std::map<int, int> ends;
  for (const auto& [fd, stream] : streams_) {
    if (stream.output.pid() == pid) {
      ends[stream.output.stream()] = fd;
    }
  }
  return ends;
}

void OutputRouter::drain_of(pid_t pid) {
  std::vector<int> fds;
  for (const auto& [fd, stream] : streams_) {
    if (stream.output.pid() == pid) {
      fds.push_back(fd);
    }
  }
  for (const int fd : fds) {
    const auto found = streams_.find(fd);
    settle(found, found->second.output.drain(16 * output_budget));
  }
}

void OutputRouter::settle(Streams::iterator found, WorkerOutput::State state) {
  const int fd = found->first;
  Stream& stream = found->second;
  Destination& destination = *stream.destination;
  switch (state) {
    case WorkerOutput::State::ended:
      loop_.remove(fd);  // before its fd closes with the stream
      streams_.erase(found);
      break;
    case WorkerOutput::State::held:
      if (!stream.paused) {
        loop_.remove(fd);
        stream.paused = true;
      }
      break;
    case WorkerOutput::State::open:
      if (stream.paused) {
        loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_readable(fd); });
        stream.paused = false;
      }
      break;
  }
  watch_sink(destination);
}

void OutputRouter::on_writable(Destination& destination) {
  destination.sink.write_some();
  if (destination.sink.may_resume()) {
    resume_paused(destination);
  }
  watch_sink(destination);
}

void OutputRouter::resume_paused(Destination& destination) {
  for (auto& [fd, stream] : streams_) {
    if (stream.paused && stream.destination == &destination) {
      const int read_fd = fd;
      loop_.add(read_fd, EPOLLIN, [this, read_fd](std::uint32_t) { on_readable(read_fd); });
      stream.paused = false;
    }
  }
}

// EPOLLOUT only while something waits: a writable destination is writable nearly always, and
// the level-triggered loop would wake for it without end.
void OutputRouter::watch_sink(Destination& destination) {
  rotate_if_full(destination);
  const bool wanted = !destination.sink.empty();
  if (wanted == destination.watched) {
    return;
  }
  if (!wanted) {
    loop_.remove(destination.sink.fd());
    destination.watched = false;
    return;
  }
  try {
    loop_.add(destination.sink.fd(), EPOLLOUT, [this, &destination](std::uint32_t) { on_writable(destination); });
    destination.watched = true;
  } catch (const std::system_error& error) {
    // A file epoll refuses (EPERM) would never be reported writable: its pipes must not wait
    // for it.
    destination.sink.fail(error.code().value());
    resume_paused(destination);
  }
}

// clusterd exits: the pipes are read once more and the sinks written, for exit_flush_ at most.
// A stream whose writers outlive us is finished as it stands, its partial line included.
void OutputRouter::flush_before_exec() {
  const TimePoint deadline = Clock::now() + exit_flush_;
  for (auto& [fd, stream] : streams_) {
    if (stream.output.drain(16 * output_budget) != WorkerOutput::State::held) {
      stream.output.finish();
    }
  }
  for (;;) {
    std::vector<pollfd> waiting = write_sinks();
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || waiting.empty()) {
      return;
    }
    (void)::poll(waiting.data(), waiting.size(), static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
  }
}

std::vector<pollfd> OutputRouter::write_sinks() {
  std::vector<pollfd> waiting;
  for (const auto& destination : destinations_) {
    destination->sink.write_some();
    if (!destination->sink.empty()) {
      waiting.push_back(pollfd{destination->sink.fd(), POLLOUT, 0});
    }
  }
  return waiting;
}

void OutputRouter::flush_at_exit() {
  const TimePoint deadline = Clock::now() + exit_flush_;
  for (;;) {
    for (auto it = streams_.begin(); it != streams_.end();) {
      if (it->second.output.drain(16 * output_budget) == WorkerOutput::State::held) {
        ++it;
        continue;
      }
      it->second.output.finish();
      loop_.remove(it->first);
      it = streams_.erase(it);
    }
    std::vector<pollfd> waiting = write_sinks();
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    // Streams still here were held by a full sink; that sink may have been written out just now,
    // so they are drained again before anything is given up (only the deadline ends it sooner).
    if (left.count() <= 0 || (waiting.empty() && streams_.empty())) {
      return;
    }
    if (!waiting.empty()) {
      (void)::poll(waiting.data(), waiting.size(), static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
    }
  }
}

}  // namespace clusterd
