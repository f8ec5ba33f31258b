// Labware definitions (Opentrons schema v2): parsing, the built-in library, lookup.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runrec/hardware/error.hpp"

namespace runrec::hardware {

struct WellDefinition {
  std::string name;
  std::string shape;  // "circular" or "rectangular"
  double x = 0, y = 0, z = 0;  // bottom centre, relative to the labware's front-left-bottom
  double depth = 0;
  double diameter = 0;              // circular wells
  double xDimension = 0, yDimension = 0;  // rectangular wells
  double totalLiquidVolume = 0;     // µL
};

// An immutable, validated labware definition. Keeps the JSON it was parsed from (so the
// log can record exactly what was used).
struct LabwareDefinition {
  std::string ns, loadName;  // namespace, loadName
  int version = 1;
  std::string displayName, displayCategory;
  double xDimension = 0, yDimension = 0, zDimension = 0;
  double cornerOffset[3] = {0, 0, 0};  // cornerOffsetFromSlot x, y, z
  bool isTiprack = false;
  double tipLength = 0;        // tip racks only
  std::optional<double> tipOverlap;  // tip racks only, when the definition gives one
  std::vector<std::vector<std::string>> ordering;  // columns of well names
  std::map<std::string, WellDefinition> wells;
  std::vector<std::string> quirks;
  nlohmann::json raw;

  std::string uri() const;  // "namespace/loadName/version"
  const WellDefinition* well(std::string_view name) const;
  // Well names in order (column by column), as Opentrons picks tips.
  std::vector<std::string> wellsInOrder() const;

  // Parses and validates a schema-v2 definition. Errors name the JSON path, prefixed with
  // `where` (e.g. "labwareDefinitions[\"opentrons/foo/1\"]").
  static Result<LabwareDefinition> fromJson(const nlohmann::json& j, const std::string& where);
};

using LabwareDefinitionPtr = std::shared_ptr<const LabwareDefinition>;

// Finds definitions: first those added by the caller (a protocol's labwareDefinitions),
// then a user folder (laid out loadName/version.json), then the built-in library.
// Not thread-safe for writes; concurrent const lookups are fine.
class LabwareLibrary {
 public:
  LabwareLibrary();  // built-ins only

  // Adds a definition (e.g. from a protocol); replaces any earlier one with the same URI.
  Status add(const nlohmann::json& definition, const std::string& where);
  // Adds every loadName/version.json under `dir`.
  Status addDirectory(const std::filesystem::path& dir);

  // Looks up "namespace/loadName/version". kNotFound names what was searched.
  Result<LabwareDefinitionPtr> find(std::string_view uri) const;
  Result<LabwareDefinitionPtr> find(std::string_view ns, std::string_view loadName, int version) const;

  // The built-in definitions only, for tools (e.g. the seed protocol generator). Generates
  // every one of them on first call; find() generates only the one it is asked for.
  static const std::vector<LabwareDefinitionPtr>& builtIns();
  // Every built-in's (loadName, version), all in namespace "opentrons", without generating
  // any definition.
  static const std::vector<std::pair<std::string, int>>& builtInIds();

 private:
  std::map<std::string, LabwareDefinitionPtr, std::less<>> custom_;     // add()
  std::map<std::string, LabwareDefinitionPtr, std::less<>> directory_;  // addDirectory()
};

}  // namespace runrec::hardware
