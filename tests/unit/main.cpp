// The unit tests' main: GoogleTest's, plus the CI rule on skips. Under CI=true a test that was
// skipped and is not listed in tests/allowed-skips.txt fails the run: a host without root or
// IPv6 must not show green for tests it never ran. Every skip is printed as a "clusterd-skip:"
// line, which tools/dev test collects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>

namespace {

std::set<std::string> allowed_skips() {
  std::set<std::string> ids;
  std::ifstream file(CLUSTERD_ALLOWED_SKIPS);
  for (std::string line; std::getline(file, line);) {
    std::istringstream words(line);
    std::string id;
    if (words >> id && !id.starts_with('#')) {
      ids.insert(id);
    }
  }
  return ids;
}

// The skip message GoogleTest recorded (GTEST_SKIP() << "why"), or "" when none was given.
std::string skip_reason(const testing::TestResult& result) {
  for (int i = 0; i < result.total_part_count(); ++i) {
    if (result.GetTestPartResult(i).skipped()) {
      return result.GetTestPartResult(i).message();
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleMock(&argc, argv);
  int status = RUN_ALL_TESTS();
  const char* ci = std::getenv("CI");
  const bool under_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
  const std::set<std::string> allowed = allowed_skips();
  const testing::UnitTest& unit = *testing::UnitTest::GetInstance();
  for (int s = 0; s < unit.total_test_suite_count(); ++s) {
    const testing::TestSuite& suite = *unit.GetTestSuite(s);
    for (int t = 0; t < suite.total_test_count(); ++t) {
      const testing::TestInfo& test = *suite.GetTestInfo(t);
      if (!test.should_run() || !test.result()->Skipped()) {
        continue;
      }
      const std::string id = std::string(suite.name()) + "." + test.name();
      const bool listed = allowed.contains(id);
      std::cout << "clusterd-skip: " << id << ": " << skip_reason(*test.result())
                << (listed ? " (listed)" : " (not listed)") << '\n';
      if (under_ci && !listed) {
        std::cout << id << ": skipped under CI but not listed in " << CLUSTERD_ALLOWED_SKIPS << '\n';
        status = 1;
      }
    }
  }
  return status;
}
