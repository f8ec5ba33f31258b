// Internal: the built-in labware definitions as schema-v2 JSON (see builtin_labware.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runrec::hardware::detail {

// One built-in definition (namespace "opentrons"), generated from its published dimensions
// on its own; nullopt if there is no such loadName and version.
std::optional<nlohmann::json> builtinLabwareJson(std::string_view loadName, int version);

// (loadName, version) of every built-in, in a stable order; nothing is generated.
std::vector<std::pair<std::string, int>> builtinLabwareIds();

}  // namespace runrec::hardware::detail
