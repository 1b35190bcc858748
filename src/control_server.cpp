// Serves the control socket's connections from the EventLoop.
#include "control_server.h"
#include "errno_text.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace clusterd {

ControlServer::ControlServer(ControlSocket socket, EventLoop& loop, Handler handler, ConnectionLimits limits)
    : socket_(std::move(socket)),
      loop_(loop),
      handler_(std::move(handler)),
      limits_(limits),
      accept_(loop_, socket_.fd(), "control socket", [this] { on_listener(); }) {}

ControlServer::~ControlServer() {
  // The file goes first: when a `stop` client sees its connection close, the path is free.
  accept_.stop();
  socket_.close();
  for (auto& [id, connection] : connections_) {
    // A follower learns the stream is over rather than cut (if its socket takes it): the record
    // being written is finished, what is queued after it dropped.
    if (connection.streaming && !connection.close_after_flush) {
      keep_first_record(connection);
      connection.out += logs_end_record() + "\n";
    }
    // A last reply (the `stop` answer, say) goes out if the socket buffer takes it; nothing waits.
    if (!connection.out.empty()) {
      (void)::send(connection.fd.get(), connection.out.data(), connection.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (connection.registered) {
      loop_.remove(connection.fd.get());
    }
  }
  connections_.clear();
}

void ControlServer::on_listener() {
  for (std::size_t round = 0; round < accepts_per_round; ++round) {
    auto accepted = accept_.accept();
    if (!accepted) {
      return;
    }
    Fd fd = std::move(*accepted);
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
        (peer.uid != ::geteuid() && peer.uid != 0)) {
      spdlog::warn("control connection refused uid={} pid={}: only uid {} and root may use the control socket",
                   peer.uid, peer.pid, ::geteuid());
      // A fresh socket's buffer takes one short line; if not, the close says enough.
      const std::string refusal = error_reply("permission denied") + "\n";
      (void)::send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    if (!admit(peer.uid)) {
      spdlog::debug("control connection refused pid={} uid={}: every connection it could replace is busy", peer.pid,
                    peer.uid);
      const std::string refusal =
          error_reply(fmt::format("too many control connections (at most {} per user, {} in all) and none of "
                                  "them idle; try again later",
                                  limits_.per_uid, limits_.total)) +
          "\n";
      (void)::send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    const std::uint64_t id = next_connection_++;
    Connection& connection = connections_[id];
    connection.fd = std::move(fd);
    connection.uid = peer.uid;
    connection.pid = peer.pid;
    connection.idle_since = Clock::now();
    spdlog::debug("control connection opened pid={} uid={}", peer.pid, peer.uid);
    // A client usually sends its request right after connecting: take it now, before the next
    // connections are accepted, rather than one epoll round later. Otherwise process() asks
    // epoll for it.
    read_some(id);
    process(id);
  }
}

bool ControlServer::idle(const Connection& connection) {
  return !connection.pending && connection.out.empty() && !connection.hold && !connection.close_after_flush &&
         !connection.streaming && !connection.read_closed && !connection.hung_up;
}

bool ControlServer::admit(std::uint32_t uid) {
  // A connection that looks idle may have its request already in its socket, not yet read
  // because epoll reports it a round later: that one is served, not shed, and the choice made
  // again. Bounded, so a client that keeps sending bytes without a newline cannot hold us here.
  constexpr int max_choices = 8;
  for (int choice = 1;; ++choice) {
    std::vector<OpenConnection>& open = admission_scratch_;
    open.clear();
    for (const auto& [id, connection] : connections_) {
      open.push_back({id, connection.uid, idle(connection), connection.idle_since});
    }
    const AdmissionVerdict verdict = admit_connection(open, uid, limits_);
    if (!verdict.shed) {
      return verdict.admit;
    }
    const std::uint64_t id = *verdict.shed;
    Connection& shed = connections_.at(id);
    char byte = 0;
    if (choice < max_choices && ::recv(shed.fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
      read_some(id);
      process(id);
      continue;
    }
    // Idle, so nothing is buffered for it: this line is all it gets, if its socket takes it.
    const std::string text =
        error_reply(fmt::format("too many control connections (at most {} per user, {} in all); this idle one "
                                "was closed to make room",
                                limits_.per_uid, limits_.total)) +
        "\n";
    (void)::send(shed.fd.get(), text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    spdlog::debug("control connection shed uid={} for a new one from uid={}", shed.uid, uid);
    close(id);
    return verdict.admit;
  }
}

void ControlServer::on_connection(std::uint64_t id, std::uint32_t events) {
  if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
    // The peer closed, maybe right after sending requests: they are still in our socket, and
    // are taken as ever. Nothing more can be delivered, and nothing more will arrive.
    Connection& connection = connections_.at(id);
    connection.hung_up = true;
    stop_writing(connection);
  } else {
    if ((events & EPOLLOUT) != 0 && !flush(id)) {
      return;
    }
    if ((events & EPOLLIN) != 0) {
      read_some(id);
    }
  }
  process(id);
}

void ControlServer::read_some(std::uint64_t id) {
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;
  }
  Connection& connection = found->second;
  // One read per readiness: epoll is level-triggered, and process() takes one request at a time.
  std::array<char, 4096> buffer{};
  const ssize_t got = retry_on_eintr([&] { return ::read(connection.fd.get(), buffer.data(), buffer.size()); });
  if (got > 0) {
    connection.in.append(buffer.data(), static_cast<std::size_t>(got));
  } else if (got == 0 || connection.hung_up || (errno != EAGAIN && errno != EWOULDBLOCK)) {
    // An error (ECONNRESET: the client left replies unread) comes only after the bytes it sent,
    // so it ends the input like EOF; what was read is still taken. After a hang-up nothing more
    // can arrive, so even EAGAIN is the end rather than a reason to wait.
    connection.read_closed = true;
  }
}

void ControlServer::process(std::uint64_t id) {
  for (;;) {
    auto found = connections_.find(id);
    if (found == connections_.end()) {
      return;
    }
    Connection& connection = found->second;
    if ((connection.hold || connection.streaming) && connection.write_closed) {
      close(id);  // no `stop` client left to wait for the exit, no follower left to write to
      return;
    }
    if (connection.pending || !connection.out.empty() || connection.hold || connection.close_after_flush ||
        connection.streaming) {
      break;
    }
    const std::size_t newline = connection.in.find('\n');
    if (newline == std::string::npos) {
      if (connection.in.size() > max_request_line) {
        fail(connection, "request line longer than " + std::to_string(max_request_line) + " bytes");
        flush(id);
        return;
      }
      if (!connection.read_closed) {
        if (!connection.hung_up) {
          break;  // for EPOLLIN
        }
        // A hung-up fd is out of the loop (EPOLLHUP would fire on every round): its bytes are
        // all there already, so read them here, a little at a time, as the requests are taken.
        read_some(id);
        continue;
      }
      if (connection.in.empty()) {
        close(id);  // EOF and everything answered
        return;
      }
      // The last request without its newline (`printf status | nc -U …`) is taken as it is.
      take_line(id, std::exchange(connection.in, {}));
      continue;
    }
    if (newline > max_request_line) {
      fail(connection, "request line longer than " + std::to_string(max_request_line) + " bytes");
      flush(id);
      return;
    }
    std::string line = connection.in.substr(0, newline);
    connection.in.erase(0, newline + 1);
    take_line(id, std::move(line));
  }
  watch(id);
}

void ControlServer::take_line(std::uint64_t id, std::string line) {
  Connection& connection = connections_.at(id);
  connection.idle_since = Clock::now();
  auto request = parse_request(line);
  if (!request) {
    connection.out += error_reply(request.error()) + "\n";
    flush(id);
    return;
  }
  const RequestId request_id = next_request_++;
  connection.pending = request_id;
  connection.pending_stop = std::holds_alternative<StopRequest>(*request);
  pending_[request_id] = id;
  const auto outer = std::exchange(dispatching_, id);
  handler_(request_id, *request);
  dispatching_ = outer;
}

int ControlServer::connection_fd(RequestId id) const {
  for (const auto& [key, connection] : connections_) {
    if (connection.pending == id && !connection.write_closed) {
      return connection.fd.get();
    }
  }
  return -1;
}

std::string ControlServer::peer_of(RequestId id) const {
  const auto request = pending_.find(id);
  if (request == pending_.end()) {
    return {};
  }
  const auto connection = connections_.find(request->second);
  if (connection == connections_.end()) {
    return {};
  }
  return fmt::format("uid={} pid={}", connection->second.uid, connection->second.pid);
}

void ControlServer::reply(RequestId request, std::string json) {
  const auto owner = pending_.find(request);
  if (owner == pending_.end()) {
    return;
  }
  const std::uint64_t id = owner->second;
  pending_.erase(owner);
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;  // the client left before its answer was ready
  }
  Connection& connection = found->second;
  connection.out += json;
  connection.out += '\n';
  connection.pending.reset();
  connection.idle_since = Clock::now();
  if (connection.pending_stop) {
    connection.pending_stop = false;
    connection.hold = true;
  }
  if (!flush(id)) {
    return;
  }
  // Answered from inside the handler: take_line's caller goes on with the next line itself.
  if (dispatching_ != id) {
    process(id);
  }
}

bool ControlServer::streaming(std::uint64_t stream) const {
  const auto found = connections_.find(stream);
  return found != connections_.end() && found->second.streaming && !found->second.close_after_flush &&
         !found->second.write_closed;
}

std::uint64_t ControlServer::start_stream(RequestId request, std::string json) {
  const auto owner = pending_.find(request);
  if (owner == pending_.end()) {
    return 0;
  }
  const std::uint64_t id = owner->second;
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return 0;
  }
  found->second.streaming = true;
  // The recent lines may be longer than stream_limit: they do not count against the records.
  found->second.first_reply_size = json.size() + 1;
  reply(request, std::move(json));
  return connections_.contains(id) ? id : 0;
}

bool ControlServer::stream_record(std::uint64_t stream, std::string_view record) {
  auto found = connections_.find(stream);
  if (found == connections_.end() || !found->second.streaming || found->second.close_after_flush) {
    return false;
  }
  Connection& connection = found->second;
  if (connection.write_closed) {
    close(stream);
    return false;
  }
  if (connection.out.size() + record.size() + 1 > stream_limit + connection.first_reply_size) {
    cut_off(stream, fmt::format("this follower was cut off: it left more than {} KiB unread; run the command "
                                "again to go on following (lines written meanwhile are kept in the recent lines "
                                "and output.file)",
                                stream_limit / 1024));
    return false;
  }
  const bool was_empty = connection.out.empty();
  if (was_empty) {
    connection.idle_since = Clock::now();  // the time to write it counts from now
  }
  connection.out += record;
  connection.out += '\n';
  if (was_empty) {
    watch(stream);  // EPOLLOUT: written on the next round, with the records queued meanwhile
  }
  return true;
}

void ControlServer::keep_first_record(Connection& connection) {
  const std::size_t first_end = connection.out.find('\n');
  connection.out.resize(first_end == std::string::npos ? 0 : first_end + 1);
}

void ControlServer::cut_off(std::uint64_t id, const std::string& why) {
  Connection& connection = connections_.at(id);
  spdlog::warn("log follower cut off uid={} pid={}: {}", connection.uid, connection.pid, why);
  // The first record may be half written: it is finished, and the rest dropped. The client gets
  // one more idle limit to read that and why it was cut off.
  keep_first_record(connection);
  fail(connection, why);
  connection.idle_since = Clock::now();
  flush(id);
}

void ControlServer::stop_writing(Connection& connection) {
  connection.write_closed = true;
  connection.out.clear();
}

void ControlServer::fail(Connection& connection, std::string_view error) {
  connection.out += error_reply(error) + "\n";
  connection.in.clear();
  connection.close_after_flush = true;
}

bool ControlServer::flush(std::uint64_t id) {
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return false;
  }
  Connection& connection = found->second;
  std::size_t written = 0;
  while (!connection.write_closed && written < connection.out.size()) {
    const ssize_t sent = retry_on_eintr([&] {
      return ::send(connection.fd.get(), connection.out.data() + written, connection.out.size() - written,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    });
    if (sent > 0) {
      written += static_cast<std::size_t>(sent);
      connection.idle_since = Clock::now();
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;  // the rest when EPOLLOUT says there is room
    }
    // EPIPE, ECONNRESET: the client is gone or reads no more. The requests it sent before are
    // still taken (process()), their replies dropped; the hang-up, if any, is the next event.
    stop_writing(connection);
  }
  if (connection.write_closed) {
    connection.out.clear();  // nobody reads it
  } else {
    connection.out.erase(0, written);
  }
  if (connection.out.empty() && connection.close_after_flush) {
    close(id);
    return false;
  }
  watch(id);
  return true;
}

void ControlServer::watch(std::uint64_t id) {
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;
  }
  Connection& connection = found->second;
  if (connection.hung_up) {
    // EPOLLHUP is level-triggered and cannot be masked: registered, it would fire on every
    // round. Nothing more can happen on this fd; process() reads what is left.
    if (connection.registered) {
      loop_.remove(connection.fd.get());
      connection.registered = false;
    }
    return;
  }
  std::uint32_t wanted = 0;
  if (!connection.out.empty()) {
    wanted |= EPOLLOUT;
  }
  // Read only when the next request may be taken: unread requests wait in the kernel's buffer,
  // which bounds what one client can make us hold.
  if (!connection.pending && connection.out.empty() && !connection.hold && !connection.close_after_flush &&
      !connection.streaming && !connection.read_closed) {
    wanted |= EPOLLIN;
  }
  if (connection.watched == wanted && connection.registered) {
    return;
  }
  // EventLoop has no modify: a new registration replaces the old one. EPOLLHUP and EPOLLERR are
  // reported even with no events asked for, so a held connection still notices its client leave.
  if (connection.registered) {
    loop_.remove(connection.fd.get());
    connection.registered = false;
  }
  try {
    loop_.add(connection.fd.get(), wanted, [this, id](std::uint32_t events) { on_connection(id, events); });
  } catch (const std::system_error& error) {
    spdlog::warn("control connection dropped: {}", error.what());
    close(id);
    return;
  }
  connection.watched = wanted;
  connection.registered = true;
}

void ControlServer::close(std::uint64_t id) {
  auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;
  }
  if (found->second.registered) {
    loop_.remove(found->second.fd.get());
  }
  if (found->second.pending) {
    pending_.erase(*found->second.pending);
  }
  connections_.erase(found);
  accept_.connection_closed();
}

std::optional<TimePoint> ControlServer::next_deadline() const {
  std::optional<TimePoint> nearest = accept_.next_deadline();
  for (const auto& [id, connection] : connections_) {
    // A pending request (a reload) has no limit of its own, a `stop` client waits for the exit,
    // and a follower may wait for lines as long as it likes (not for its lines to be read).
    if (connection.pending || connection.hold || (connection.streaming && connection.out.empty())) {
      continue;
    }
    const TimePoint limit = connection.idle_since + idle_limit;
    if (!nearest || limit < *nearest) {
      nearest = limit;
    }
  }
  return nearest;
}

void ControlServer::on_deadline(TimePoint now) {
  accept_.on_deadline(now);
  std::vector<std::uint64_t> expired;
  for (const auto& [id, connection] : connections_) {
    if (!connection.pending && !connection.hold && !(connection.streaming && connection.out.empty()) &&
        connection.idle_since + idle_limit <= now) {
      expired.push_back(id);
    }
  }
  for (const std::uint64_t id : expired) {
    Connection& connection = connections_.at(id);
    if (connection.streaming && !connection.close_after_flush) {
      cut_off(id, fmt::format("this follower was cut off: it read nothing for {}; run the command again to go on "
                              "following",
                              format_duration(idle_limit)));
      continue;
    }
    if (connection.out.empty() && !connection.close_after_flush) {
      // Told why, if the socket takes it; the close follows either way.
      const std::string text =
          error_reply("no complete request line within " + format_duration(idle_limit)) + "\n";
      (void)::send(connection.fd.get(), text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    spdlog::debug("control connection closed after {} idle", format_duration(idle_limit));
    close(id);
  }
}

}  // namespace clusterd
