// Parses an HTTP/1.x request head out of the bytes received so far.
#include "http_request.h"

#include <algorithm>
#include <cstddef>
#include <optional>

namespace clusterd {
namespace {

// tchar (RFC 9110 §5.6.2): what a method and a field name are made of.
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

bool is_visible(char c) {
  return c > 0x20 && c < 0x7f;
}

// A field value: visible ASCII, space, tab and obs-text (bytes ≥ 0x80), no other control byte.
bool is_field_value(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte == '\t' || byte == ' ' || (byte > 0x20 && byte != 0x7f);
  });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

HttpRejection reject(int status, std::string reason) {
  return HttpRejection{status, std::move(reason)};
}

// HTTP/1.0 and HTTP/1.1 are served; another well-formed version (the HTTP/2 preface's
// "HTTP/2.0" among them) is 505, anything else is not a request line at all.
std::variant<int, HttpRejection> parse_version(std::string_view text) {
  if (text == "HTTP/1.1") {
    return 1;
  }
  if (text == "HTTP/1.0") {
    return 0;
  }
  const bool well_formed = text.size() == 8 && text.starts_with("HTTP/") && text[5] >= '0' && text[5] <= '9' &&
                           text[6] == '.' && text[7] >= '0' && text[7] <= '9';
  if (well_formed) {
    return reject(505, "HTTP version " + std::string(text.substr(5)) + " is not served; use HTTP/1.1");
  }
  return reject(400, "expected a request line METHOD TARGET HTTP/1.1");
}

std::variant<HttpRequestHead, HttpRejection> parse_request_line(std::string_view line) {
  const auto first = line.find(' ');
  const auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return reject(400, "expected a request line METHOD TARGET HTTP/1.1");
  }
  HttpRequestHead head;
  head.method = std::string(line.substr(0, first));
  head.target = std::string(line.substr(first + 1, second - first - 1));
  if (!is_token(head.method)) {
    return reject(400, "expected a method such as GET");
  }
  if (head.target.empty() || !std::all_of(head.target.begin(), head.target.end(), is_visible)) {
    return reject(400, "expected a request target such as /metrics");
  }
  auto version = parse_version(line.substr(second + 1));
  if (auto* rejection = std::get_if<HttpRejection>(&version)) {
    return std::move(*rejection);
  }
  head.minor_version = std::get<int>(version);
  return head;
}

}  // namespace

HttpHeadResult parse_http_request_head(std::string_view received, std::size_t max_head) {
  const std::string_view head_bytes = received.substr(0, std::min(received.size(), max_head + 1));
  std::size_t position = 0;
  std::optional<HttpRequestHead> head;
  int hosts = 0;
  int line_number = 0;
  for (;;) {
    const auto newline = head_bytes.find('\n', position);
    if (newline == std::string_view::npos) {
      if (received.size() > max_head) {
        return reject(431, "request head longer than " + std::to_string(max_head) + " bytes");
      }
      return HttpIncomplete{};
    }
    std::string_view line = head_bytes.substr(position, newline - position);
    position = newline + 1;
    ++line_number;
    // CRLF ends a line; a bare LF is accepted too (RFC 9112 §2.2), a CR anywhere else is not.
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    if (line.find('\r') != std::string_view::npos) {
      return reject(400, "a CR not followed by LF (line " + std::to_string(line_number) + ")");
    }
    if (!head) {
      if (line.empty() && line_number <= 2) {
        continue;  // an empty line before the request line is ignored (RFC 9112 §2.2)
      }
      auto parsed = parse_request_line(line);
      if (auto* rejection = std::get_if<HttpRejection>(&parsed)) {
        return std::move(*rejection);
      }
      head = std::move(std::get<HttpRequestHead>(parsed));
      continue;
    }
    if (line.empty()) {
      break;
    }
    const std::string where = " (line " + std::to_string(line_number) + ")";
    if (line.front() == ' ' || line.front() == '\t') {
      return reject(400, "a header field folded over lines" + where);
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return reject(400, "a header field without a colon" + where);
    }
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) {
      return reject(400, "a header field name that is not a token" + where);
    }
    if (!is_field_value(line.substr(colon + 1))) {
      return reject(400, "a control character in a header field value" + where);
    }
    if (equals_ignoring_case(name, "host")) {
      ++hosts;
    }
  }
  if (position > max_head) {
    return reject(431, "request head longer than " + std::to_string(max_head) + " bytes");
  }
  // RFC 9112 §3.2: a server must answer 400 to HTTP/1.1 without a Host, or with more than one.
  if (hosts > 1 || (hosts == 0 && head->minor_version == 1)) {
    return reject(400, hosts == 0 ? "HTTP/1.1 without a Host header field" : "more than one Host header field");
  }
  head->length = position;
  return std::move(*head);
}

}  // namespace clusterd
