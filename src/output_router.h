// output = "prefix": the workers' output pipes, the sinks they feed (clusterd's stdout and
// stderr) and their event-loop registrations. The loop never blocks on output: a pipe whose sink
// is full is taken out of the loop (which is level-triggered, so a registered pipe left unread
// would wake it forever) until the sink has drained to half, and the worker waits meanwhile.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "duration.h"
#include "event_loop.h"
#include "fd.h"
#include "output_file.h"
#include "output_sink.h"
#include "worker_output.h"

namespace clusterd {

class OutputRouter {
 public:
  // At exit, what is buffered or still in the pipes gets this long to be written; whatever a
  // stalled reader has not taken by then is dropped, so a stalled reader cannot hold up a stop.
  static constexpr Duration exit_flush_limit{1000};

  explicit OutputRouter(EventLoop& loop, std::size_t capacity = OutputSink::default_capacity,
                        Duration exit_flush = exit_flush_limit);
  ~OutputRouter();  // the exit flush; it leaves no fd registered with the loop
  OutputRouter(const OutputRouter&) = delete;
  OutputRouter& operator=(const OutputRouter&) = delete;

  // output.file: where every stream's lines go instead of clusterd's stdout and stderr.
  struct FileSettings {
    std::string path;
    std::optional<std::uint64_t> max_size;  // rotate once it holds this many bytes
    int keep = 5;                            // earlier files kept: PATH.1 (newest) to PATH.keep
  };
  // Every stream watched from now on writes to `file` (open_output_file of `settings.path`).
  void write_to_file(OpenedOutputFile file, FileSettings settings);
  // SIGUSR1: output.file is opened again at its path, after logrotate moved it. A refused reopen
  // keeps the old file and says why.
  void reopen_file();
  // What output.file was opened with at start; nullopt without one.
  std::optional<FileSettings> file_settings() const { return file_ != nullptr ? file_->file : std::nullopt; }

  // Each line any stream reads is given to `observer` too (`clusterd logs`).
  void set_observer(LineObserver observer) { observer_ = std::move(observer); }

  // A worker's stream: its lines go to clusterd's fd `destination` (1 or 2), or to output.file,
  // as "[SLOT PID] text".
  void watch(Fd read_end, int destination, LineFormat format);

  // The worker `pid` has exited: what its pipes hold now goes out before its exit is logged, as
  // far as its sink has room.
  void drain_of(pid_t pid);

  // The read ends of the worker `pid`'s pipes, by stream (1, 2), for `clusterd upgrade`.
  std::map<int, int> read_ends_of(pid_t pid) const;
  // Before `clusterd upgrade` executes the new binary: what the pipes hold now is read, each
  // stream's partial line goes out as it is, and the sinks are written out (as at exit, for at
  // most the exit flush's time). The pipes stay open, for the new binary to read on.
  void flush_before_exec();

  bool empty() const { return streams_.empty(); }
  std::size_t streams() const { return streams_.size(); }

 private:
  // One per destination file: stdout and stderr share one when they are the same file (2>&1),
  // so their lines cannot be cut into each other by partial writes either.
  struct Destination {
    int fd;  // clusterd's own: 1 or 2
    dev_t device;
    ino_t inode;
    OutputSink sink;
    bool watched = false;  // sink.fd() is registered for EPOLLOUT
    std::optional<FileSettings> file;  // output.file
    std::uint64_t size_at_open = 0;     // the file's size when the sink's fd was opened
    bool rotation_failed = false;       // said once; tried again after a reopen
  };
  struct Stream {
    WorkerOutput output;
    Destination* destination;
    bool paused = false;  // held for a full sink, out of the loop
  };
  using Streams = std::map<int, Stream>;

  Destination& destination_for(int fd);
  void on_readable(int fd);
  void on_writable(Destination& destination);
  void settle(Streams::iterator stream, WorkerOutput::State state);
  void resume_paused(Destination& destination);
  void watch_sink(Destination& destination);
  void rotate_if_full(Destination& destination);
  void replace_file(Destination& destination, OpenedOutputFile file);
  void flush_at_exit();
  // Writes what each sink takes without blocking; the sinks with more to write, to poll for.
  std::vector<pollfd> write_sinks();

  EventLoop& loop_;
  std::size_t capacity_;
  Duration exit_flush_;
  std::vector<std::unique_ptr<Destination>> destinations_;  // stable addresses for Stream
  Streams streams_;  // by read fd
  Destination* file_ = nullptr;  // output.file's, when set: every stream's
  LineObserver observer_;
};

}  // namespace clusterd
