// toml++'s syntax errors reworded, as `clusterd check` prints them for real files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config.h"
#include "toml_syntax.h"

namespace clusterd {
namespace {

// What check says about `text` as c.toml: the one diagnostic of a syntax error.
std::string syntax_error(const std::string& text) {
  const auto result = build_config(ConfigText{"c.toml", text}, {});
  if (result || result.error().size() != 1) {
    return "(no single error)";
  }
  return result.error().front().to_string();
}

TEST(TomlSyntax, AnUnterminatedStringSaysSo) {
  const std::string message = "unterminated string: a string must end with its closing quote on the line it "
                              "starts on (a multi-line string is written between \"\"\" or ''')";
  EXPECT_EQ(syntax_error("name = \"abc\ncommand = [\"x\"]\n"), "c.toml:1:12: " + message);
  EXPECT_EQ(syntax_error("name = 'abc\n"), "c.toml:1:12: " + message);
}

TEST(TomlSyntax, UnclosedArraysAndHeaders) {
  EXPECT_EQ(syntax_error("command = [\"x\"\nname = \"a\"\n"),
            "c.toml:2:1: unterminated array: expected ',' between the values or ']' after the last one");
  EXPECT_EQ(syntax_error("command = [\"x\"]\n[stop\n"),
            "c.toml:2:6: unterminated section header: write it as [name] (or [[listen]]) on one line");
}

TEST(TomlSyntax, MissingOrBareValues) {
  EXPECT_EQ(syntax_error("name =\n"),
            "c.toml:1:7: a key without a value: write one after '=', such as \"text\", 4, true or [\"a\", \"b\"]");
  EXPECT_EQ(syntax_error("name = abc\n"),
            "c.toml:1:8: not a value: text must be quoted (\"text\"); numbers, true and false, and [arrays] "
            "are written without quotes");
}

TEST(TomlSyntax, AKeySetTwiceIsNamed) {
  EXPECT_EQ(syntax_error("name = \"a\"\nname = \"b\"\n"), "c.toml:2:8: \"name\" is set twice: keep one of the two");
}

TEST(TomlSyntax, AnythingElseLosesOnlyTheLibrarysPrefix) {
  EXPECT_EQ(plain_syntax_error("Error while parsing date-time: bad month", "x", 1, 1),
            "syntax error in date-time: bad month");
  EXPECT_EQ(plain_syntax_error("something new", "x", 1, 1), "something new");
}

}  // namespace
}  // namespace clusterd
