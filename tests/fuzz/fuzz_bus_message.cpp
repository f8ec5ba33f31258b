// libFuzzer target: the bus decoders (command/outcome frames, live event bodies) on
// arbitrary bytes. A frame that decodes must survive encode -> decode unchanged.
#include <cstdint>
#include <string_view>

#include "runrec/bus/events.hpp"
#include "runrec/bus/message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  if (auto m = runrec::bus::decode(frame)) {
    auto again = runrec::bus::decode(runrec::bus::encode(*m));
    if (!again || again->type != m->type || again->runId != m->runId || again->seq != m->seq ||
        again->body != m->body)
      __builtin_trap();  // the codec does not round-trip
  }
  if (auto e = runrec::bus::decodeEvent(frame)) {
    auto again = runrec::bus::decodeEvent(runrec::bus::encodeEvent(*e));
    if (!again || again->seq != e->seq || again->type != e->type || again->payload != e->payload)
      __builtin_trap();
  }
  return 0;
}
