// Fuzz target `notify`: any bytes as one sd_notify datagram. Parsing never fails, and a trailing
// newline changes nothing (protocols §2.1: it is optional).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_require.h"
#include "notify_message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace clusterd;
  const std::string datagram(reinterpret_cast<const char*>(data), size);
  const NotifyMessage message = parse_notify_message(datagram);
  fuzz::require(parse_notify_message(datagram + "\n") == message, "a trailing newline changes nothing");
  return 0;
}
