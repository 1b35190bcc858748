// Parses an HTTP/1.x request head (request line and header fields, RFC 9112 §2-5) out of the bytes
// received so far: complete, rejected with the status to answer, or not complete yet.
//
// Pure. It knows only what a small server that closes after each reply needs: the method, the
// target, the minor version and whether Host was given; header values are checked, not kept. A
// body is not read: the server answers and closes, so whatever follows the head is never taken as
// a request.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace clusterd {

struct HttpRequestHead {
  std::string method;  // as sent: methods are case-sensitive (RFC 9110 §9.1)
  std::string target;  // origin-form "/metrics?x=1", or whatever visible ASCII the client sent
  int minor_version = 1;  // HTTP/1.0 or HTTP/1.1
  std::size_t length = 0;  // bytes of the head, its empty line included
};

// The request cannot be served: answer `status` (400, 431, 505) with `reason` as the body's text.
struct HttpRejection {
  int status = 400;
  std::string reason;  // "header field without a colon (line 3)"
};

// Not a whole head yet, and nothing wrong so far: read more.
struct HttpIncomplete {};

using HttpHeadResult = std::variant<HttpIncomplete, HttpRequestHead, HttpRejection>;

// `received`: every byte read on the connection so far. A head longer than `max_head` bytes is
// 431; an HTTP/2 connection preface or a version other than 1.0/1.1 is 505; anything else that is
// not a request line and header fields, or HTTP/1.1 without exactly one Host, is 400. A broken
// request line is rejected as soon as it is complete, without waiting for the rest of the head.
HttpHeadResult parse_http_request_head(std::string_view received, std::size_t max_head);

}  // namespace clusterd
