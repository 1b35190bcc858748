// One destination of workers' output in `output = "prefix"` mode (clusterd's stdout or stderr): a
// bounded buffer of whole lines, written without ever blocking the event loop. A destination that
// stops reading fills the buffer; the caller then stops reading the workers' pipes that feed it,
// so the stall reaches the workers (as it would writing there themselves), never the supervisor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fd.h"

namespace clusterd {

class OutputSink {
 public:
  // 1 MiB: about 10 000 ordinary log lines, so a reader that pauses for a moment (a pager, a
  // log shipper reconnecting) never slows a worker, and a stalled one costs little memory.
  // The limit is checked before each read from a worker's pipe, so it may be passed by one read
  // (at most 16 KiB of the worker's bytes, prefixed): it is a soft limit.
  static constexpr std::size_t default_capacity = 1024 * 1024;

  // How writes to the destination avoid blocking, chosen by what it is (fstat):
  enum class Method {
    // A pipe, FIFO or terminal, reopened through /proc/self/fd/N with O_NONBLOCK: a new open file
    // description, so the one clusterd shares with its parent (a shell) stays blocking.
    reopened,
    // A socket (journald's stream): send() with MSG_DONTWAIT, which needs no O_NONBLOCK at all.
    socket,
    // A regular file or block device: writes never wait for a reader, so a plain write() on the
    // shared description (whose offset clusterd's own log lines share) is right.
    file,
    // The reopen failed (no /proc, or a terminal another user owns): the shared, blocking
    // description, written only after poll() says it takes more, at most PIPE_BUF bytes a time,
    // which a pipe then takes without blocking. Only another writer racing for the same room
    // (or a terminal stopped with ^S in between) could still block such a write, briefly.
    polled,
  };

  // Opens clusterd's fd `destination` (1 or 2) for writing this way. Never throws: when even a
  // dup() fails, the sink reports it once and drops what it is given. `reopen` false takes the
  // fallback a failed reopen takes (for its tests).
  explicit OutputSink(int destination, std::size_t capacity = default_capacity, bool reopen = true);
  // Writes to `file`, a regular file clusterd opened for appending (output.file); `name` names
  // it in the one warning.
  OutputSink(Fd file, std::string name, std::size_t capacity = default_capacity);

  // The file is replaced by `file` (reopened after logrotate, or rotated): what is buffered goes
  // there, and a sink that had failed writes again.
  void replace_file(Fd file);
  // Bytes written since construction or the last replace_file.
  std::uint64_t written() const { return written_; }

  Method method() const { return method_; }
  // Watch it for EPOLLOUT while !empty(); -1 when it could not be opened at all.
  int fd() const { return fd_.get(); }

  std::size_t buffered() const { return buffer_.size() - head_; }
  bool empty() const { return buffered() == 0; }
  // Whether a worker's pipe may be read for it (with `more` bytes already read but not pushed).
  bool has_room(std::size_t more = 0) const { return buffered() + more < capacity_; }
  // Half empty again: the paused pipes may be read once more. Waiting for half, not for any room
  // at all, spares a pause and a resume per line while the reader is slow.
  bool may_resume() const { return buffered() <= capacity_ / 2; }
  bool failed() const { return failed_; }

  // Adds whole lines and writes what the destination takes now. Never blocks. Once writing has
  // failed for good (EPIPE, ENOSPC, EIO) everything is dropped, so the workers' pipes are still
  // drained and no worker ever blocks on them.
  void push(std::string_view lines);

  // Writes what the destination takes now (after EPOLLOUT).
  void write_some();

  // Writing has failed for good (`error` says why): says so once, and drops everything from now on.
  void fail(int error);

 private:
  // Writes `data` until it is all written or the destination takes no more; returns how much.
  std::size_t write_now(std::string_view data);
  ssize_t write_once(const char* data, std::size_t size);

  std::string name_;  // "stdout", "stderr" or "fd N", for the one warning
  Fd fd_;
  Method method_ = Method::file;
  std::size_t capacity_;
  // Whole lines waiting: buffer_[head_..] is still to be written (head_ spares moving the rest
  // after every partial write).
  std::string buffer_;
  std::size_t head_ = 0;
  bool failed_ = false;
  std::uint64_t written_ = 0;
  bool dropping_ = false;  // a file's disk is full: lines are dropped until a write succeeds
};

}  // namespace clusterd
