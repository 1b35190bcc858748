// OutputSink on real pipes, sockets and files: it never blocks, keeps at most about its capacity,
// keeps lines whole across partial writes, and leaves the description it shares blocking.
#include "output_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "test_support.h"

namespace clusterd {
namespace {

using testing_support::TempDir;

// A pipe as clusterd's stdout would be one: blocking, `size` bytes of room.
struct Pipe {
  Fd read_end;
  Fd write_end;
  explicit Pipe(int size = 4096) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0 || ::fcntl(ends[1], F_SETPIPE_SZ, size) < 0) {
      throw std::runtime_error("pipe2");
    }
    read_end = Fd(ends[0]);
    write_end = Fd(ends[1]);
  }
  // What the pipe holds now, without waiting.
  std::string take() { return take_from(read_end.get()); }
  static std::string take_from(int fd) {
    std::string text;
    char buffer[4096];
    for (;;) {
      pollfd readable{fd, POLLIN, 0};
      if (::poll(&readable, 1, 0) != 1 || (readable.revents & POLLIN) == 0) {
        return text;
      }
      const ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got <= 0) {
        return text;
      }
      text.append(buffer, static_cast<std::size_t>(got));
    }
  }
};

bool blocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0; }

std::string line(int worker, int number) {
  return "[" + std::to_string(worker) + " 100] line " + std::to_string(number) + " " + std::string(70, 'q') + "\n";
}

TEST(OutputSink, APipeIsReopenedNonBlockingAndTheSharedDescriptionStaysBlocking) {
  Pipe pipe;
  OutputSink sink(pipe.write_end.get());
  EXPECT_EQ(sink.method(), OutputSink::Method::reopened);
  EXPECT_NE(sink.fd(), pipe.write_end.get());
  EXPECT_FALSE(blocking(sink.fd()));
  EXPECT_TRUE(blocking(pipe.write_end.get())) << "the parent's description must stay as it was";
  EXPECT_TRUE(::fcntl(sink.fd(), F_GETFD) & FD_CLOEXEC);
  sink.push("[0 1] hello\n");
  EXPECT_EQ(pipe.take(), "[0 1] hello\n");
  EXPECT_TRUE(sink.empty());
}

TEST(OutputSink, AStalledReaderNeverBlocksAndTheBufferStopsAtItsCapacity) {
  Pipe pipe;
  OutputSink sink(pipe.write_end.get(), 16 * 1024);
  int pushed = 0;
  while (sink.has_room()) {
    sink.push(line(0, pushed++));  // would hang here if a write blocked
  }
  EXPECT_GE(sink.buffered(), 16u * 1024);
  EXPECT_LT(sink.buffered(), 16u * 1024 + line(0, 0).size());
  EXPECT_FALSE(sink.may_resume());

  sink.write_some();  // still stalled: nothing moves, nothing blocks
  EXPECT_FALSE(sink.has_room());

  std::string seen = pipe.take();
  sink.write_some();
  EXPECT_FALSE(sink.empty());
  while (!sink.empty()) {
    seen += pipe.take();
    sink.write_some();
  }
  seen += pipe.take();
  EXPECT_TRUE(sink.may_resume());
  std::string expected;
  for (int i = 0; i < pushed; ++i) {
    expected += line(0, i);
  }
  EXPECT_TRUE(seen == expected) << seen.size() << " of " << expected.size() << " bytes";
}

TEST(OutputSink, ReadingMayResumeOnlyOnceTheBufferIsHalfEmpty) {
  Pipe pipe;
  OutputSink sink(pipe.write_end.get(), 16 * 1024);
  while (sink.has_room()) {
    sink.push(std::string(99, 'a') + "\n");
  }
  (void)pipe.take();
  sink.write_some();  // 4 KiB moved: room again, but more than half still waits
  EXPECT_TRUE(sink.has_room());
  EXPECT_FALSE(sink.may_resume());
  for (int round = 0; round < 2; ++round) {
    (void)pipe.take();
    sink.write_some();
  }
  EXPECT_TRUE(sink.may_resume());
}

TEST(OutputSink, TwoStreamsLinesStayWholeThroughPartialWrites) {
  Pipe pipe;
  OutputSink sink(pipe.write_end.get(), 1 << 20);
  std::string expected;
  std::string seen;
  for (int i = 0; i < 500; ++i) {
    // Batches of whole lines from two workers, as WorkerOutput pushes them.
    const std::string batch = line(i % 2, i) + line(i % 2, i + 1000);
    sink.push(batch);
    expected += batch;
    if (i % 7 == 0) {
      seen += pipe.take();
      sink.write_some();
    }
  }
  while (!sink.empty()) {
    seen += pipe.take();
    sink.write_some();
  }
  seen += pipe.take();
  EXPECT_TRUE(seen == expected) << seen.size() << " of " << expected.size() << " bytes";
}

// As main() does for clusterd: a reader that went away is an EPIPE, not a signal.
struct IgnoreSigpipe {
  struct sigaction old {};
  IgnoreSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old);
  }
  ~IgnoreSigpipe() { ::sigaction(SIGPIPE, &old, nullptr); }
};

TEST(OutputSink, AReaderThatIsGoneDropsTheOutputOnce) {
  IgnoreSigpipe ignore;
  Pipe pipe;
  OutputSink sink(pipe.write_end.get(), 1024);
  pipe.read_end.reset();
  sink.push("[0 1] nobody reads this\n");
  EXPECT_TRUE(sink.failed());
  EXPECT_TRUE(sink.empty());
  for (int i = 0; i < 100; ++i) {
    sink.push(line(0, i));
  }
  EXPECT_TRUE(sink.has_room()) << "dropped: the workers' pipes must still be drained";
}

TEST(OutputSink, TheFallbackWritesOnlyWhatThePipeTakesAndNeverBlocks) {
  Pipe pipe;
  OutputSink sink(pipe.write_end.get(), 16 * 1024, false);
  EXPECT_EQ(sink.method(), OutputSink::Method::polled);
  EXPECT_TRUE(blocking(sink.fd())) << "the fallback shares the parent's description";
  std::string expected;
  for (int i = 0; sink.has_room(); ++i) {
    sink.push(line(1, i));
    expected += line(1, i);
  }
  sink.write_some();
  std::string seen;
  while (!sink.empty()) {
    seen += pipe.take();
    sink.write_some();
  }
  seen += pipe.take();
  EXPECT_TRUE(seen == expected) << seen.size() << " of " << expected.size() << " bytes";
}

TEST(OutputSink, ASocketIsWrittenWithSendAndTheSharedSocketStaysBlocking) {
  int ends[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends), 0);
  Fd ours(ends[0]);
  Fd reader(ends[1]);
  const int small = 4096;
  ASSERT_EQ(::setsockopt(ours.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  OutputSink sink(ours.get(), 64 * 1024);
  EXPECT_EQ(sink.method(), OutputSink::Method::socket);
  std::string expected;
  for (int i = 0; sink.has_room(); ++i) {
    sink.push(line(0, i));
    expected += line(0, i);
  }
  EXPECT_FALSE(sink.empty()) << "the socket took 64 KiB: the test proves nothing";
  EXPECT_TRUE(blocking(ours.get()));
  std::string seen;
  while (!sink.empty()) {
    seen += Pipe::take_from(reader.get());
    sink.write_some();
  }
  seen += Pipe::take_from(reader.get());
  EXPECT_TRUE(seen == expected) << seen.size() << " of " << expected.size() << " bytes";
}

TEST(OutputSink, ARegularFileSharesItsOffsetWithClusterdsOwnWrites) {
  TempDir dir;
  const std::string path = dir.path() + "/log";
  Fd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));  // no O_APPEND
  ASSERT_TRUE(file);
  OutputSink sink(file.get());
  EXPECT_EQ(sink.method(), OutputSink::Method::file);
  ASSERT_EQ(::write(file.get(), "log line\n", 9), 9);
  sink.push("[0 1] worker line\n");
  EXPECT_TRUE(sink.empty());
  ASSERT_EQ(::write(file.get(), "log line 2\n", 11), 11);
  Fd reading(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char buffer[256];
  const ssize_t got = ::read(reading.get(), buffer, sizeof buffer);
  ASSERT_GT(got, 0);
  EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(got)), "log line\n[0 1] worker line\nlog line 2\n");
}

}  // namespace
}  // namespace clusterd
