// OutputRouter in a real event loop, on real pipes: a stalled destination pauses the pipes that
// feed it (the workers wait, the loop sleeps), they resume once it drains, lines stay whole, and
// the exit flush is bounded.
#include "output_router.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace clusterd {
namespace {

using namespace std::chrono_literals;

// clusterd's stdout as a shell pipe would make it: blocking, 4 KiB of room, read by the test.
struct Destination {
  Fd read_end;
  Fd write_end;
  Destination() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0 || ::fcntl(ends[1], F_SETPIPE_SZ, 4096) < 0) {
      throw std::runtime_error("pipe2");
    }
    read_end = Fd(ends[0]);
    write_end = Fd(ends[1]);
  }
  std::string take() {
    std::string text;
    char buffer[65536];
    pollfd readable{read_end.get(), POLLIN, 0};
    while (::poll(&readable, 1, 0) == 1 && (readable.revents & POLLIN) != 0) {
      const ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
      if (got <= 0) {
        break;
      }
      text.append(buffer, static_cast<std::size_t>(got));
    }
    return text;
  }
};

// A worker's stdout: the router gets the read end, the test writes without blocking.
struct Worker {
  pid_t pid;
  Fd write_end;
  int next = 0;
  Worker(OutputRouter& router, int destination, int slot, pid_t worker_pid) : pid(worker_pid) {
    auto pipe = make_output_pipe();
    if (!pipe) {
      throw std::runtime_error("make_output_pipe");
    }
    write_end = std::move(pipe->write_end);
    ::fcntl(write_end.get(), F_SETFL, O_NONBLOCK);
    router.watch(std::move(pipe->read_end), destination, LineFormat{slot, pid, destination});
  }
  static std::string text(pid_t pid, int number) {
    return "line " + std::to_string(pid) + " " + std::to_string(number) + " " + std::string(number % 500, 'w');
  }
  // Writes whole lines until the pipe is full; returns how many it wrote. A line the pipe took
  // only part of is finished with a blocking write: rare, and the router is reading then.
  int write_lines(int most = 1 << 30) {
    int written = 0;
    for (; written < most; ++written) {
      const std::string line = text(pid, next) + "\n";
      const ssize_t result = ::write(write_end.get(), line.data(), line.size());
      if (result < 0) {
        return written;
      }
      if (static_cast<std::size_t>(result) < line.size()) {
        return -1;  // a partial line: the caller's pipe is too small for this test
      }
      ++next;
    }
    return written;
  }
};

// Runs the loop for `time`, waking at least every 10 ms; returns how many times it woke.
int run_loop(EventLoop& loop, std::chrono::milliseconds time) {
  int rounds = 0;
  const TimePoint end = Clock::now() + time;
  while (Clock::now() < end) {
    loop.arm_timer(std::min(end, Clock::now() + 10ms));
    loop.run_once();
    ++rounds;
  }
  return rounds;
}

// Every line "[SLOT PID] line PID N ..." whole, and each worker's numbers 0, 1, 2, … in order.
void expect_whole_lines_in_order(const std::string& text, const std::map<pid_t, int>& counts) {
  static const std::regex shape(R"(\[(\d+) (\d+)\] line (\d+) (\d+) (w*))");
  std::map<pid_t, int> next;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(line, match, shape)) << "not a whole line: " << line.substr(0, 120);
    const pid_t pid = std::stoi(match[2]);
    ASSERT_EQ(std::stoi(match[3]), pid) << "another worker's text inside this worker's line";
    const int number = std::stoi(match[4]);
    ASSERT_EQ(number, next[pid]) << "pid " << pid << " lost or reordered a line";
    ASSERT_EQ(match[5].length(), static_cast<std::size_t>(number % 500));
    ++next[pid];
  }
  EXPECT_EQ(next, counts);
}

TEST(OutputRouter, AStalledDestinationPausesItsPipesAndTheLoopSleeps) {
  EventLoop loop;
  Destination stdout_pipe;
  OutputRouter router(loop, 16 * 1024, 0ms);
  Worker worker(router, stdout_pipe.write_end.get(), 0, 41);

  // The worker writes until its own pipe stays full: the router has stopped reading it.
  int stalled_rounds = 0;
  for (int round = 0; round < 200 && stalled_rounds < 3; ++round) {
    const int written = worker.write_lines();
    ASSERT_GE(written, 0);
    stalled_rounds = written == 0 ? stalled_rounds + 1 : 0;
    run_loop(loop, 5ms);
  }
  ASSERT_EQ(stalled_rounds, 3) << "the router kept reading a pipe whose destination is stalled";

  // Paused, not polled: a level-triggered loop with the readable pipe still in it would spin.
  EXPECT_LT(run_loop(loop, 200ms), 60);

  // The reader comes back: everything arrives, whole and in order, and the worker goes on.
  std::string seen;
  for (int round = 0; round < 5000 && worker.next < 2000; ++round) {
    seen += stdout_pipe.take();
    ASSERT_GE(worker.write_lines(50), 0);
    run_loop(loop, 1ms);
  }
  EXPECT_GE(worker.next, 2000) << "the pipe was never resumed";
  worker.write_end.reset();
  for (int round = 0; round < 2000 && !router.empty(); ++round) {
    seen += stdout_pipe.take();
    run_loop(loop, 1ms);
  }
  EXPECT_TRUE(router.empty());
  for (int round = 0; round < 100; ++round) {
    seen += stdout_pipe.take();
    run_loop(loop, 1ms);
  }
  expect_whole_lines_in_order(seen, {{41, worker.next}});
}

// Two workers, one on "stdout" and one on "stderr", both the same pipe (2>&1): partial writes
// of long lines never let one worker's line into the middle of the other's.
TEST(OutputRouter, LinesOfTwoWorkersNeverInterleaveEvenWithStdoutAndStderrOneFile) {
  EventLoop loop;
  Destination both;
  Fd also(::fcntl(both.write_end.get(), F_DUPFD_CLOEXEC, 3));
  OutputRouter router(loop, 64 * 1024, 0ms);
  Worker first(router, both.write_end.get(), 0, 51);
  Worker second(router, also.get(), 1, 52);
  std::string seen;
  for (int round = 0; round < 5000 && (first.next < 400 || second.next < 400); ++round) {
    if (first.next < 400) {
      ASSERT_GE(first.write_lines(std::min(7, 400 - first.next)), 0);
    }
    if (second.next < 400) {
      ASSERT_GE(second.write_lines(std::min(5, 400 - second.next)), 0);
    }
    run_loop(loop, 1ms);
    if (round % 3 == 0) {
      seen += both.take();
    }
  }
  first.write_end.reset();
  second.write_end.reset();
  for (int round = 0; round < 5000 && !router.empty(); ++round) {
    seen += both.take();
    run_loop(loop, 1ms);
  }
  for (int round = 0; round < 100; ++round) {
    seen += both.take();
    run_loop(loop, 1ms);
  }
  expect_whole_lines_in_order(seen, {{51, 400}, {52, 400}});
}

TEST(OutputRouter, AnExitedWorkersLastWordsGoOutAtOnce) {
  EventLoop loop;
  Destination stdout_pipe;
  OutputRouter router(loop, 16 * 1024, 0ms);
  Worker worker(router, stdout_pipe.write_end.get(), 3, 61);
  ASSERT_EQ(::write(worker.write_end.get(), "one\nfatal: no", 13), 13);
  worker.write_end.reset();
  router.drain_of(61);  // no loop round in between
  EXPECT_EQ(stdout_pipe.take(), "[3 61] one\n[3 61] fatal: no\n");
  EXPECT_TRUE(router.empty());
}

TEST(OutputRouter, TheExitFlushGivesUpOnAStalledReaderInTime) {
  EventLoop loop;
  Destination stdout_pipe;
  std::optional<OutputRouter> router(std::in_place, loop, 64 * 1024, 300ms);
  Worker worker(*router, stdout_pipe.write_end.get(), 0, 71);
  for (int round = 0; round < 20; ++round) {
    ASSERT_GE(worker.write_lines(), 0);
    run_loop(loop, 2ms);
  }
  const TimePoint start = Clock::now();
  router.reset();
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
}

TEST(OutputRouter, TheExitFlushWritesEverythingToAReaderThatReads) {
  EventLoop loop;
  Destination stdout_pipe;
  std::optional<OutputRouter> router(std::in_place, loop, 64 * 1024, 5000ms);
  Worker worker(*router, stdout_pipe.write_end.get(), 0, 81);
  for (int round = 0; round < 20; ++round) {
    ASSERT_GE(worker.write_lines(), 0);
    run_loop(loop, 2ms);
  }
  ASSERT_EQ(::write(worker.write_end.get(), "no newline", 10), 10);
  stdout_pipe.write_end.reset();  // the router's own fd is the last writer
  std::string seen;
  std::thread reader([&] {
    char buffer[65536];
    ssize_t got;
    while ((got = ::read(stdout_pipe.read_end.get(), buffer, sizeof buffer)) > 0) {
      seen.append(buffer, static_cast<std::size_t>(got));
    }
  });
  router.reset();  // the worker's writer is still open: its partial line goes as it stands
  reader.join();
  const std::string tail = "[0 81] no newline\n";
  ASSERT_TRUE(seen.ends_with(tail)) << seen.substr(seen.size() > 200 ? seen.size() - 200 : 0);
  expect_whole_lines_in_order(seen.substr(0, seen.size() - tail.size()), {{81, worker.next}});
}

}  // namespace
}  // namespace clusterd
