// Text from others on a terminal: controls and bidirectional marks escaped, the rest as it is.
#include "printable.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

using namespace std::string_literals;
using Json = nlohmann::ordered_json;

TEST(Printable, PlainTextAndOtherLanguagesAreUnchanged) {
  EXPECT_EQ(printable("warming up: 3/4 caches, 50% \\ done"), "warming up: 3/4 caches, 50% \\ done");
  EXPECT_EQ(printable("caf\u00e9 \u4e2d\u6587 \U0001f600"), "caf\u00e9 \u4e2d\u6587 \U0001f600");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, C0ControlsAndDelAreEscaped) {
  EXPECT_EQ(printable("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(printable("a\tb\nc\rd"), "a\\tb\\nc\\rd");
  EXPECT_EQ(printable("\x07\x08\x7f"s + '\0'), "\\x07\\x08\\x7f\\x00");
  EXPECT_EQ(printable("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");  // a window title
}

TEST(Printable, C1ControlsAreEscapedAsCodePoints) {
  EXPECT_EQ(printable("\u009b31m"), "\\u009b31m");  // CSI in one character
  EXPECT_EQ(printable("\u0085\u009d"), "\\u0085\\u009d");
  EXPECT_EQ(printable("\u00a0"), "\u00a0");  // the first character after C1 is shown
}

TEST(Printable, BidirectionalMarksAreEscaped) {
  EXPECT_EQ(printable("file\u202etxt.exe"), "file\\u202etxt.exe");
  EXPECT_EQ(printable("\u202a\u202b\u202c\u202d\u202e"), "\\u202a\\u202b\\u202c\\u202d\\u202e");
  EXPECT_EQ(printable("\u2066\u2067\u2068\u2069"), "\\u2066\\u2067\\u2068\\u2069");
  EXPECT_EQ(printable("\u200e\u200f\u061c"), "\\u200e\\u200f\\u061c");
  EXPECT_EQ(printable("\u2028\u2029"), "\\u2028\\u2029");
  EXPECT_EQ(printable("\u2065\u206a\u2029x"), "\u2065\u206a\\u2029x");
}

TEST(Printable, BytesThatAreNotUtf8AreEscapedOneByOne) {
  EXPECT_EQ(printable("a\xff" "b"), "a\\xffb");
  EXPECT_EQ(printable("\xc2"), "\\xc2");                    // cut short
  EXPECT_EQ(printable("\xc2\x9b" "\xc2"), "\\u009b\\xc2");
  EXPECT_EQ(printable("\xc0\x9b"), "\\xc0\\x9b");           // an overlong ESC
  EXPECT_EQ(printable("\xe0\x80\x9b"), "\\xe0\\x80\\x9b");  // overlong
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(printable("\xe2\x80\xae"), "\\u202e");
}

TEST(Printable, UnsafeCodePoints) {
  EXPECT_TRUE(is_unsafe_code_point(0x1b));
  EXPECT_TRUE(is_unsafe_code_point(0x9f));
  EXPECT_FALSE(is_unsafe_code_point(0x20));
  EXPECT_FALSE(is_unsafe_code_point(0x7e));
  EXPECT_FALSE(is_unsafe_code_point(0xa0));
  EXPECT_FALSE(is_unsafe_code_point(0x2000));
}

TEST(PrintableJson, SameValueWithUnsafeCharactersEscaped) {
  const Json reply = {{"ok", true},
                      {"name", "shop\u202e"},
                      {"workers", {{{"notify_status", "\x1b[2J\u009b1m\x7f caf\u00e9"}}}}};
  const std::string text = printable_json(reply);
  EXPECT_EQ(text,
            R"({"ok":true,"name":"shop\u202e","workers":[{"notify_status":"\u001b[2J\u009b1m\u007f caf)"
            "\u00e9\"}]}");
  EXPECT_EQ(Json::parse(text), reply);
}

TEST(PrintableJson, KeysToo) {
  const Json reply = {{"ok", false}, {"error\u2066", "x"}};
  EXPECT_EQ(printable_json(reply), R"({"ok":false,"error\u2066":"x"})");
}

TEST(PrintableJson, NotUtf8BecomesTheReplacementCharacter) {
  const Json reply = {{"ok", true}, {"name", "a\xff"}};
  EXPECT_EQ(printable_json(reply), "{\"ok\":true,\"name\":\"a\xef\xbf\xbd\"}");
}

}  // namespace
}  // namespace clusterd
