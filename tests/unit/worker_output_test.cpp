// WorkerOutput: what a worker writes into its pipe comes out on the destination as whole,
// prefixed lines; end of file flushes a last partial line.
#include "worker_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

// The destination: a pipe the test reads back.
struct Sink {
  Fd read_end;
  Fd write_end;
  Sink() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::runtime_error("pipe2");
    }
    read_end = Fd(ends[0]);
    write_end = Fd(ends[1]);
  }
  std::string take() {
    std::string text;
    char buffer[4096];
    ssize_t got;
    while ((got = ::read(read_end.get(), buffer, sizeof buffer)) > 0) {
      text.append(buffer, static_cast<std::size_t>(got));
    }
    return text;
  }
};

void write_text(int fd, std::string_view text) {
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

// A worker stream (slot, pid) whose pipe the test writes as the worker would.
struct Stream {
  Sink sink;
  OutputPipe pipe;
  WorkerOutput output;
  Stream(int slot, pid_t pid)
      : pipe(*make_output_pipe()), output(std::move(pipe.read_end), sink.write_end.get(), slot, pid) {}
  void worker_writes(std::string_view text) { write_text(pipe.write_end.get(), text); }
};

TEST(WorkerOutput, WholeLinesArePrefixedAndAHalfLineWaits) {
  Stream stream(2, 4121);
  stream.worker_writes("first\nsec");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.sink.take(), "[2 4121] first\n");

  stream.worker_writes("ond\nthird");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.sink.take(), "[2 4121] second\n");

  stream.pipe.write_end.reset();  // the worker and all it forked are gone
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::ended);
  EXPECT_EQ(stream.sink.take(), "[2 4121] third\n");
}

TEST(WorkerOutput, AnEmptyPipeIsStillOpen) {
  Stream stream(0, 7);
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.sink.take(), "");
}

TEST(WorkerOutput, ReadsAtMostItsBudgetAWakeUp) {
  Stream stream(1, 9);
  stream.worker_writes("aaaa\nbbbb\n");
  EXPECT_EQ(stream.output.drain(5), WorkerOutput::State::open);
  EXPECT_EQ(stream.sink.take(), "[1 9] aaaa\n");
  EXPECT_EQ(stream.output.drain(5), WorkerOutput::State::open);
  EXPECT_EQ(stream.sink.take(), "[1 9] bbbb\n");
}

}  // namespace
}  // namespace clusterd
