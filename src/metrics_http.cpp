// What the metrics endpoint answers to a request head.
#include "metrics_http.h"

#include <fmt/format.h>

namespace clusterd {
namespace {

std::string_view status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

// `extra`: more header fields, each ending in CRLF. A HEAD reply has the GET reply's
// Content-Length without its body (RFC 9110 §9.3.2).
std::string reply(int status, std::string_view content_type, std::string_view body, std::string_view extra,
                  bool with_body) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Cache-Control: no-store\r\n"
      "Connection: close\r\n\r\n",
      status, status_text(status), content_type, body.size(), extra);
  if (with_body) {
    out += body;
  }
  return out;
}

}  // namespace

std::string http_error_reply(int status, std::string_view reason) {
  return reply(status, "text/plain; charset=utf-8", std::string(reason) + "\n", "", true);
}

std::string metrics_http_reply(const HttpRequestHead& head, const std::function<std::string()>& metrics) {
  const std::string_view target = head.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    return http_error_reply(404, "not found; the metrics are at /metrics");
  }
  const bool is_head = head.method == "HEAD";
  if (head.method != "GET" && !is_head) {
    const std::string body = "method " + head.method + " is not allowed; use GET or HEAD\n";
    return reply(405, "text/plain; charset=utf-8", body, "Allow: GET, HEAD\r\n", true);
  }
  return reply(200, metrics_content_type, metrics(), "", !is_head);
}

}  // namespace clusterd
