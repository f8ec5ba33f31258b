// Internal: the built-in labware definitions as schema-v2 JSON (see builtin_labware.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace runrec::hardware::detail {

// Every built-in definition, generated from its published dimensions. Order is stable.
std::vector<nlohmann::json> builtinLabwareJson();

}  // namespace runrec::hardware::detail
