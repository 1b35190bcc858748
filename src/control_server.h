// The control socket's server side (interface §4.5): its connections inside the daemon's
// EventLoop: SO_PEERCRED check, line framing, replies in order, idle limit, writes that never block.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "acceptor.h"
#include "control_admission.h"
#include "control_protocol.h"
#include "control_socket.h"
#include "duration.h"
#include "event_loop.h"
#include "fd.h"
#include "supervisor.h"

namespace clusterd {

// Serves the control socket's connections from the daemon's EventLoop. Neither copyable nor
// movable: the loop's callbacks point at it; destroy it before the loop.
//
// Contract: each complete request line is parsed (control_protocol) and passed to the handler
// with a RequestId; the handler answers with reply(id, …) at once (status, scale, stop) or later
// (reload). A connection's requests are taken one at a time: the next line is not read until the
// previous reply was written out, so replies come in order and a slow reader holds only its own
// replies in memory. Lines that do not parse are answered here with `ok: false`. A line longer
// than max_request_line, or 10 s without a complete line while no request is pending (or
// without any progress writing a reply), gets `{"ok":false,"error":…}` and the connection is
// closed. After `stop` is answered the connection stays open, reading nothing more, until the
// server is destroyed: the stop client waits for that close. A peer whose uid is neither
// clusterd's nor root's gets `{"ok":false,"error":"permission denied"}` and is closed.
//
// A client may send and close at once (`printf 'scale 3\n' | nc -U …`): what it sent is still
// taken, one request at a time as ever, and its replies are dropped unsent. So a hang-up, or a
// reply failing with EPIPE, stops only the writing; the connection is closed once every request
// it sent was answered (a pending reload is still carried out). At EOF a last line without its
// '\n' is taken as a request too, gone peer or not, so `printf status | nc -U …` works: the
// bytes of a stream arrive before its close, so such a line is what the client chose to send.
//
// Connections are capped per peer uid and in all (ConnectionLimits); at a cap a new connection
// sheds the oldest idle one (control_admission.h), which gets `{"ok":false,"error":…}` if its
// socket takes it without blocking, then is closed. So a flood of idle connections never keeps a
// new client waiting in the listen backlog: it costs the flooder its own oldest connections.
class ControlServer {
 public:
  using Handler = std::function<void(RequestId id, const Request& request)>;

  // How long a connection may stay without a complete request line.
  static constexpr Duration idle_limit = std::chrono::seconds(10);
  // Connections accepted per readiness of the listener: those accepted are read before more
  // come in, and a flood of connects cannot hold the loop in one callback.
  static constexpr std::size_t accepts_per_round = 64;

  ControlServer(ControlSocket socket, EventLoop& loop, Handler handler, ConnectionLimits limits = {});
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  // Writes what each connection can still take without blocking, then closes them all.
  ~ControlServer();

  const std::string& path() const { return socket_.path(); }
  // For `clusterd upgrade`: the listening socket, and the connection waiting for request `id`'s
  // answer (-1 when it has closed).
  int socket_fd() const { return socket_.fd(); }
  int connection_fd(RequestId id) const;

  // Answers request `id` with one JSON line (without the '\n'). Dropped when the connection has
  // closed meanwhile. May call the handler for that connection's next buffered request.
  void reply(RequestId id, std::string json);

  // A followed stream (`logs follow`) may leave this much unwritten before it is cut off: a
  // follower that stops reading costs clusterd this much memory, and never stalls it.
  static constexpr std::size_t stream_limit = 1024 * 1024;

  // Answers request `id` with `json` and keeps its connection open for a stream of records
  // (`logs follow`), reading no more requests from it. Returns the stream's handle for
  // stream_record, or 0 when the connection has closed meanwhile.
  std::uint64_t start_stream(RequestId id, std::string json);
  // Appends one record (without its '\n') to `stream`, written as the socket takes it: those
  // queued during one loop round go out together. Returns false once the stream is gone: its
  // client closed, or it was cut off (told why, if it ever reads again) because this record
  // would leave more than stream_limit unwritten, or nothing was written for idle_limit.
  bool stream_record(std::uint64_t stream, std::string_view record);
  // Whether `stream` still takes records.
  bool streaming(std::uint64_t stream) const;

  // Who sent request `id` (SO_PEERCRED), for the log: "uid=0 pid=4242"; empty once it was
  // answered or its connection closed.
  std::string peer_of(RequestId id) const;

  // The nearest idle limit of a connection; nullopt without connections (nothing to wake for).
  std::optional<TimePoint> next_deadline() const;
  // Closes the connections whose idle limit has passed by `now`.
  void on_deadline(TimePoint now);

 private:
  struct Connection {
    Fd fd;
    std::uint32_t uid = 0;  // the peer's (SO_PEERCRED), for the per-uid cap
    int pid = 0;            // and its pid when it connected, for the log
    std::string in;   // received, not yet taken as requests
    std::string out;  // replies not yet written
    std::optional<RequestId> pending;  // taken, not yet answered
    bool pending_stop = false;          // the pending request is `stop`
    bool read_closed = false;           // the peer sent EOF: no more requests
    bool write_closed = false;          // the peer is gone or reads no more: replies are dropped
    bool hung_up = false;               // the peer closed: all it sent is readable without waiting
    bool hold = false;                  // `stop` was answered: keep open until destroyed
    bool close_after_flush = false;     // an error was answered: close once it is written
    bool streaming = false;             // `logs follow`: records are sent until the client leaves
    std::size_t first_reply_size = 0;   // of a stream: its first reply, not counted in stream_limit
    TimePoint idle_since{};
    std::uint32_t watched = 0;  // the epoll events registered
    bool registered = false;    // with the loop
  };
  using Connections = std::map<std::uint64_t, Connection>;

  void on_listener();
  // Makes room for a connection from `uid` (sheds one idle connection when at a cap); false when
  // it must be refused.
  bool admit(std::uint32_t uid);
  static bool idle(const Connection& connection);
  void on_connection(std::uint64_t id, std::uint32_t events);
  void read_some(std::uint64_t id);
  void process(std::uint64_t id);
  void take_line(std::uint64_t id, std::string line);
  void fail(Connection& connection, std::string_view error);
  void stop_writing(Connection& connection);
  // Returns false when the connection was closed.
  bool flush(std::uint64_t id);
  void watch(std::uint64_t id);
  void close(std::uint64_t id);
  // A stream whose client reads too slowly: what is queued after the record being written is
  // dropped for `why` (an error record), and the connection closes once that is written.
  void cut_off(std::uint64_t id, const std::string& why);
  // Keeps only the first record of `out` (the one being written, maybe in part).
  static void keep_first_record(Connection& connection);

  ControlSocket socket_;
  EventLoop& loop_;
  Handler handler_;
  ConnectionLimits limits_;
  Acceptor accept_;
  Connections connections_;
  std::vector<OpenConnection> admission_scratch_;  // admit()'s, kept to spare an allocation per accept
  std::map<RequestId, std::uint64_t> pending_;  // request → connection
  std::uint64_t next_connection_ = 1;
  RequestId next_request_ = 1;
  // The connection whose request the handler is given right now (0: none). A reply to it from
  // inside the handler must not take its next request: take_line's caller does that.
  std::uint64_t dispatching_ = 0;
};

}  // namespace clusterd
