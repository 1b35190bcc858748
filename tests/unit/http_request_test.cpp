// The HTTP/1.x request head parser: complete heads, heads still arriving, and each rejection.
#include "http_request.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

constexpr std::size_t max_head = 4096;

HttpRequestHead complete(std::string_view text) {
  const auto result = parse_http_request_head(text, max_head);
  const auto* head = std::get_if<HttpRequestHead>(&result);
  EXPECT_NE(head, nullptr) << text;
  return head != nullptr ? *head : HttpRequestHead{};
}

HttpRejection rejected(std::string_view text, std::size_t limit = max_head) {
  const auto result = parse_http_request_head(text, limit);
  const auto* rejection = std::get_if<HttpRejection>(&result);
  EXPECT_NE(rejection, nullptr) << text;
  return rejection != nullptr ? *rejection : HttpRejection{0, ""};
}

bool incomplete(std::string_view text) {
  return std::holds_alternative<HttpIncomplete>(parse_http_request_head(text, max_head));
}

TEST(HttpRequest, ReadsAScrapersRequest) {
  const std::string text =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45.0\r\n"
      "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n";
  const HttpRequestHead head = complete(text);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/metrics");
  EXPECT_EQ(head.minor_version, 1);
  EXPECT_EQ(head.length, text.size());
}

TEST(HttpRequest, LengthStopsAtTheEmptyLineWhateverFollows) {
  EXPECT_EQ(complete("GET / HTTP/1.0\r\n\r\nGET /x HTTP/1.0\r\n\r\n").length, 18u);
}

TEST(HttpRequest, AcceptsHttp10WithoutHostAndBareLineFeeds) {
  const HttpRequestHead head = complete("HEAD /metrics?x=1 HTTP/1.0\n\n");
  EXPECT_EQ(head.method, "HEAD");
  EXPECT_EQ(head.target, "/metrics?x=1");
  EXPECT_EQ(head.minor_version, 0);
}

TEST(HttpRequest, IgnoresAnEmptyLineBeforeTheRequestLine) {
  EXPECT_EQ(complete("\r\nGET /metrics HTTP/1.1\r\nhost: a\r\n\r\n").method, "GET");
}

TEST(HttpRequest, WaitsForTheRestOfTheHeadByteByByte) {
  const std::string text = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t length = 0; length < text.size(); ++length) {
    EXPECT_TRUE(incomplete(text.substr(0, length))) << length;
  }
  EXPECT_EQ(complete(text).length, text.size());
}

TEST(HttpRequest, RefusesAHeadLongerThanTheLimitWithoutItsEnd) {
  const std::string text = "GET /metrics HTTP/1.1\r\nX: " + std::string(200, 'a');
  const HttpRejection rejection = rejected(text, 100);
  EXPECT_EQ(rejection.status, 431);
  EXPECT_EQ(rejection.reason, "request head longer than 100 bytes");
}

TEST(HttpRequest, RefusesAWholeHeadLongerThanTheLimit) {
  EXPECT_EQ(rejected("GET /metrics HTTP/1.1\r\nHost: a\r\nX: " + std::string(80, 'a') + "\r\n\r\n", 100).status,
            431);
}

TEST(HttpRequest, RefusesTheHttp2PrefaceWith505) {
  const HttpRejection rejection = rejected("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(rejection.status, 505);
  EXPECT_EQ(rejection.reason, "HTTP version 2.0 is not served; use HTTP/1.1");
}

TEST(HttpRequest, RefusesABrokenRequestLineAsSoonAsItEnds) {
  EXPECT_EQ(rejected("hello\r\n").status, 400);
  EXPECT_EQ(rejected("GET /metrics\r\n").reason, "expected a request line METHOD TARGET HTTP/1.1");
  EXPECT_EQ(rejected("GET  /metrics HTTP/1.1\r\n").status, 400);
  EXPECT_EQ(rejected("GET /metrics HTTP/1.1 x\r\n").status, 400);
  EXPECT_EQ(rejected("G(T /metrics HTTP/1.1\r\n").reason, "expected a method such as GET");
  EXPECT_EQ(rejected("GET /m\x01 HTTP/1.1\r\n").reason, "expected a request target such as /metrics");
  EXPECT_EQ(rejected("GET /metrics HTTP/1.x\r\n").status, 400);
  EXPECT_EQ(rejected("GET /metrics http/1.1\r\n").status, 400);
}

TEST(HttpRequest, RefusesAnotherVersionWith505) {
  EXPECT_EQ(rejected("GET /metrics HTTP/3.0\r\n").status, 505);
  EXPECT_EQ(rejected("GET /metrics HTTP/0.9\r\n").status, 505);
}

TEST(HttpRequest, RefusesBrokenHeaderFieldsNamingTheLine) {
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n").reason,
            "a header field without a colon (line 3)");
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nHost : a\r\n\r\n").reason,
            "a header field name that is not a token (line 2)");
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n").reason,
            "a header field folded over lines (line 3)");
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n").reason,
            "a control character in a header field value (line 2)");
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n").reason, "a CR not followed by LF (line 2)");
}

TEST(HttpRequest, WantsExactlyOneHostInHttp11) {
  EXPECT_EQ(rejected("GET /metrics HTTP/1.1\r\n\r\n").reason, "HTTP/1.1 without a Host header field");
  EXPECT_EQ(rejected("GET /metrics HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n").reason,
            "more than one Host header field");
  EXPECT_EQ(rejected("GET /metrics HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n").status, 400);
}

TEST(HttpRequest, AcceptsObsTextInValues) {
  EXPECT_EQ(complete("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\t!\r\n\r\n").target, "/");
}

}  // namespace
}  // namespace clusterd
