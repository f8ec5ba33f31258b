// libFuzzer target: the JSON protocol loader (runner::parseProtocol) on arbitrary bytes.
// Any input must give a protocol or an error value; an exception escaping the validator
// ("internal error") means a check is missing, so it aborts (a finding).
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "runrec/runner/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto protocol = runrec::runner::parseProtocol(std::move(text), "fuzz.json");
  if (!protocol && protocol.error().message.rfind("fuzz.json: internal error", 0) == 0) {
    std::fprintf(stderr, "parseProtocol: %s\n", protocol.error().message.c_str());
    std::abort();
  }
  return 0;
}
