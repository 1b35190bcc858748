// WorkerOutput: what a worker writes into its pipe comes out on the destination as whole,
// prefixed lines; end of file flushes a last partial line.
#include "worker_output.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace clusterd {
namespace {

// The destination: a pipe the test reads back.
struct Destination {
  Fd read_end;
  Fd write_end;
  Destination() {
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

std::size_t unread(int fd) {
  int bytes = 0;
  return ::ioctl(fd, FIONREAD, &bytes) == 0 ? static_cast<std::size_t>(bytes) : 0;
}

// A worker stream (slot, pid) whose pipe the test writes as the worker would.
struct Stream {
  Destination destination;
  OutputSink sink;
  OutputPipe pipe;
  WorkerOutput output;
  Stream(int slot, pid_t pid, std::size_t capacity = OutputSink::default_capacity)
      : sink(destination.write_end.get(), capacity),
        pipe(*make_output_pipe()),
        output(std::move(pipe.read_end), sink, LineFormat{slot, pid}) {}
  void worker_writes(std::string_view text) { write_text(pipe.write_end.get(), text); }
};

TEST(WorkerOutput, WholeLinesArePrefixedAndAHalfLineWaits) {
  Stream stream(2, 4121);
  stream.worker_writes("first\nsec");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.destination.take(), "[2 4121] first\n");

  stream.worker_writes("ond\nthird");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.destination.take(), "[2 4121] second\n");

  stream.pipe.write_end.reset();  // the worker and all it forked are gone
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::ended);
  EXPECT_EQ(stream.destination.take(), "[2 4121] third\n");
}

TEST(WorkerOutput, AnEmptyPipeIsStillOpen) {
  Stream stream(0, 7);
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  EXPECT_EQ(stream.destination.take(), "");
}

TEST(WorkerOutput, ReadsAtMostItsBudgetAWakeUp) {
  Stream stream(1, 9);
  stream.worker_writes("aaaa\nbbbb\n");
  EXPECT_EQ(stream.output.drain(5), WorkerOutput::State::open);
  EXPECT_EQ(stream.destination.take(), "[1 9] aaaa\n");
  EXPECT_EQ(stream.output.drain(5), WorkerOutput::State::open);
  EXPECT_EQ(stream.destination.take(), "[1 9] bbbb\n");
}

// A 4096-byte line whose newline arrives in the worker's next write: one line, no empty one.
TEST(WorkerOutput, ALineOfExactly4KiBWhoseNewlineComesLaterIsOneLine) {
  Stream stream(0, 5);
  const std::string line(4096, 'x');
  stream.worker_writes(line);
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  stream.worker_writes("\nnext\n");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  const std::string written = stream.destination.take();
  EXPECT_TRUE(written == "[0 5] " + line + "\n[0 5] next\n")
      << "an empty line in between: " << (written.find("[0 5] \n") != std::string::npos) << ", "
      << written.size() << " bytes";
}

TEST(WorkerOutput, AFullSinkHoldsThePipeWithWhatItHasNotRead) {
  Stream stream(1, 9, 64);
  ASSERT_GE(::fcntl(stream.destination.write_end.get(), F_SETPIPE_SZ, 4096), 0);
  std::string expected;
  for (int i = 0; i < 400; ++i) {
    const std::string line = "line " + std::to_string(i) + " " + std::string(40, 'z');
    stream.worker_writes(line + "\n");
    expected += "[1 9] " + line + "\n";
  }
  // The destination takes 4 KiB, the sink its 64 bytes and one read more: the rest stays in
  // the worker's pipe, where it holds the worker up.
  EXPECT_EQ(stream.output.drain(1 << 20), WorkerOutput::State::held);
  EXPECT_FALSE(stream.sink.has_room());
  EXPECT_GT(unread(stream.output.fd()), 0u);
  EXPECT_EQ(stream.output.drain(1 << 20), WorkerOutput::State::held) << "read although the sink is full";

  // The reader takes it all, a little at a time: every line arrives, whole and in order.
  std::string seen;
  for (int round = 0; round < 1000 && seen.size() < expected.size(); ++round) {
    seen += stream.destination.take();
    stream.sink.write_some();
    (void)stream.output.drain(1 << 20);
  }
  seen += stream.destination.take();
  EXPECT_TRUE(seen == expected) << seen.size() << " of " << expected.size() << " bytes";
  EXPECT_EQ(stream.output.drain(1 << 20), WorkerOutput::State::open);
}

TEST(WorkerOutput, AHeldStreamIsStillFinishedAtEndOfFile) {
  Stream stream(0, 3, 8);
  ASSERT_GE(::fcntl(stream.destination.write_end.get(), F_SETPIPE_SZ, 4096), 0);
  stream.worker_writes(std::string(5000, 'a') + "\nlast");
  stream.pipe.write_end.reset();
  EXPECT_EQ(stream.output.drain(1 << 20), WorkerOutput::State::held);
  std::string seen = stream.destination.take();
  stream.sink.write_some();
  EXPECT_EQ(stream.output.drain(1 << 20), WorkerOutput::State::ended);
  stream.sink.write_some();
  seen += stream.destination.take();
  EXPECT_EQ(seen, "[0 3] " + std::string(4096, 'a') + "\n[0 3] " + std::string(904, 'a') + "\n[0 3] last\n");
}

TEST(WorkerOutput, FinishWritesAPartialLineOfAStreamStillOpen) {
  Stream stream(4, 11);
  stream.worker_writes("half a li");
  EXPECT_EQ(stream.output.drain(65536), WorkerOutput::State::open);
  stream.output.finish();
  EXPECT_EQ(stream.destination.take(), "[4 11] half a li\n");
}

}  // namespace
}  // namespace clusterd

namespace clusterd {
namespace {

// With timestamps each line starts with the local time it was read; the observer gets every line
// with its slot, pid and stream, the same time, and the text without prefix or newline.
TEST(WorkerOutput, TimestampsAndTheObserverSeeEachLine) {
  Destination destination;
  OutputSink sink(destination.write_end.get());
  OutputPipe pipe = *make_output_pipe();
  std::vector<std::pair<std::string, WorkerLine>> seen;
  const LineObserver observer = [&seen](const WorkerLine& line) { seen.emplace_back(std::string(line.text), line); };
  WorkerOutput output(std::move(pipe.read_end), sink, LineFormat{3, 77, 2, true}, &observer);
  write_text(pipe.write_end.get(), "one\ntwo\n");
  const auto before = std::chrono::system_clock::now();
  EXPECT_EQ(output.drain(65536), WorkerOutput::State::open);
  const auto after = std::chrono::system_clock::now();

  const std::string text = destination.take();
  ASSERT_EQ(seen.size(), 2u);
  const std::string stamp = line_timestamp(seen[0].second.time);
  EXPECT_EQ(text, stamp + "[3 77] one\n" + stamp + "[3 77] two\n");
  EXPECT_THAT(stamp, ::testing::MatchesRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} $"));
  EXPECT_EQ(seen[0].first, "one");
  EXPECT_EQ(seen[1].first, "two");
  for (const auto& [line_text, line] : seen) {
    EXPECT_EQ(line.slot, 3);
    EXPECT_EQ(line.pid, 77);
    EXPECT_EQ(line.stream, 2);
    EXPECT_EQ(line.time, seen[0].second.time);
    EXPECT_GE(line.time, before);
    EXPECT_LE(line.time, after);
  }
}

}  // namespace
}  // namespace clusterd
