// libFuzzer target: the labware definition loader (LabwareDefinition::fromJson and
// LabwareLibrary::add) on arbitrary JSON. Exceptions must not escape; a definition that
// validates must answer its accessors.
#include <cstdint>
#include <string_view>

#include "runrec/hardware/labware.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto def = runrec::hardware::LabwareDefinition::fromJson(j, "fuzz");
  if (def) {
    (void)def->uri();
    for (const auto& name : def->wellsInOrder()) (void)def->well(name);
    runrec::hardware::LabwareLibrary library;
    if (library.add(j, "fuzz")) {
      auto found = library.find(def->uri());
      if (!found) __builtin_trap();  // added but not found
    }
  }
  return 0;
}
