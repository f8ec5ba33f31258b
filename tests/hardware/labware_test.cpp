// Labware: the built-in library against Opentrons' reference definitions, strict parsing
// with path-naming errors, and the lookup order of LabwareLibrary.
#include "doctest_hardware.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include "runrec/hardware/labware.hpp"
#include "support.hpp"

using namespace runrec::hardware;
using nlohmann::json;

namespace {

constexpr double kTol = 0.01;

const LabwareDefinition* builtIn(const std::string& uri) {
  for (const auto& def : LabwareLibrary::builtIns()) {
    if (def->uri() == uri) return def.get();
  }
  return nullptr;
}

json sampleDefinition() {
  return {
      {"schemaVersion", 2},
      {"version", 1},
      {"namespace", "custom_beta"},
      {"metadata", {{"displayName", "Foo"}, {"displayCategory", "wellPlate"}, {"displayVolumeUnits", "µL"}}},
      {"brand", {{"brand", "Foo"}}},
      {"parameters",
       {{"format", "irregular"}, {"isTiprack", false}, {"loadName", "foo"}, {"isMagneticModuleCompatible", false}}},
      {"cornerOffsetFromSlot", {{"x", 0}, {"y", 0}, {"z", 0}}},
      {"dimensions", {{"xDimension", 127.76}, {"yDimension", 85.48}, {"zDimension", 20}}},
      {"wells",
       {{"A1",
         {{"x", 10}, {"y", 70}, {"z", 2}, {"depth", 15}, {"shape", "circular"}, {"diameter", 6},
          {"totalLiquidVolume", 300}}},
        {"B1",
         {{"x", 10}, {"y", 60}, {"z", 2}, {"depth", 15}, {"shape", "rectangular"}, {"xDimension", 8},
          {"yDimension", 7}, {"totalLiquidVolume", 300}}}}},
      {"ordering", json::array({json::array({"A1", "B1"})})},
      {"groups", {{{"metadata", json::object()}, {"wells", {"A1", "B1"}}}}},
  };
}

std::string parseError(const json& j) {
  auto parsed = LabwareDefinition::fromJson(j, "labwareDefinitions[\"custom_beta/foo/1\"]");
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().code == ErrorCode::kInvalidDefinition);
  return parsed.error().message;
}

}  // namespace

TEST_CASE("EveryReferenceLabwareDefinitionAgreesWithTheBuiltInOfTheSameUri") {
  auto shared = runrec::test::requireShared();
  if (!shared) return;
  int compared = 0;
  for (const auto& dir : std::filesystem::directory_iterator(*shared / "definitions" / "labware")) {
    for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
      json ref = runrec::test::readJson(file.path());
      std::string uri = ref["namespace"].get<std::string>() + "/" + ref["parameters"]["loadName"].get<std::string>() +
                        "/" + std::to_string(ref["version"].get<int>());
      CAPTURE(uri);
      // The reference itself must pass our validation.
      auto refParsed = LabwareDefinition::fromJson(ref, file.path().string());
      REQUIRE_MESSAGE(refParsed, (refParsed ? "" : refParsed.error().message));

      const LabwareDefinition* own = builtIn(uri);
      REQUIRE_MESSAGE(own, "no built-in definition for " << uri);
      ++compared;
      CHECK(own->displayName == ref["metadata"]["displayName"].get<std::string>());
      CHECK(own->displayCategory == ref["metadata"]["displayCategory"].get<std::string>());
      CHECK(own->isTiprack == ref["parameters"]["isTiprack"].get<bool>());
      CHECK(std::abs(own->xDimension - ref["dimensions"]["xDimension"].get<double>()) < kTol);
      CHECK(std::abs(own->yDimension - ref["dimensions"]["yDimension"].get<double>()) < kTol);
      CHECK(std::abs(own->zDimension - ref["dimensions"]["zDimension"].get<double>()) < kTol);
      const char* axes[] = {"x", "y", "z"};
      for (int i = 0; i < 3; ++i) {
        CHECK(std::abs(own->cornerOffset[i] - ref["cornerOffsetFromSlot"][axes[i]].get<double>()) < kTol);
      }
      if (own->isTiprack) {
        CHECK(std::abs(own->tipLength - ref["parameters"]["tipLength"].get<double>()) < kTol);
        if (ref["parameters"].contains("tipOverlap")) {
          REQUIRE(own->tipOverlap);
          CHECK(std::abs(*own->tipOverlap - ref["parameters"]["tipOverlap"].get<double>()) < kTol);
        }
      }
      std::vector<std::string> quirks = ref["parameters"].value("quirks", std::vector<std::string>{});
      CHECK(std::set<std::string>(own->quirks.begin(), own->quirks.end()) ==
            std::set<std::string>(quirks.begin(), quirks.end()));
      CHECK(own->ordering == ref["ordering"].get<std::vector<std::vector<std::string>>>());
      CHECK(own->wells.size() == ref["wells"].size());
      for (const auto& [name, w] : ref["wells"].items()) {
        const std::string wellName = name;  // clang cannot capture a structured binding (C++20)
        CAPTURE(wellName);
        const WellDefinition* well = own->well(name);
        REQUIRE(well);
        CHECK(std::abs(well->x - w["x"].get<double>()) < kTol);
        CHECK(std::abs(well->y - w["y"].get<double>()) < kTol);
        CHECK(std::abs(well->z - w["z"].get<double>()) < kTol);
        CHECK(std::abs(well->depth - w["depth"].get<double>()) < kTol);
        CHECK(well->shape == w["shape"].get<std::string>());
        CHECK(std::abs(well->totalLiquidVolume - w["totalLiquidVolume"].get<double>()) < kTol);
        if (well->shape == "circular") {
          CHECK(std::abs(well->diameter - w["diameter"].get<double>()) < kTol);
        } else {
          CHECK(std::abs(well->xDimension - w["xDimension"].get<double>()) < kTol);
          CHECK(std::abs(well->yDimension - w["yDimension"].get<double>()) < kTol);
        }
      }
    }
  }
  CHECK(compared >= 17);
}

TEST_CASE("EveryBuiltInRoundTripsThroughFromJson") {
  const auto& all = LabwareLibrary::builtIns();
  CHECK(all.size() >= 21);
  std::set<std::string> uris;
  for (const auto& def : all) {
    CAPTURE(def->uri());
    CHECK(uris.insert(def->uri()).second);
    CHECK(def->raw["schemaVersion"] == 2);
    auto again = LabwareDefinition::fromJson(json::parse(def->raw.dump()), "roundtrip");
    REQUIRE_MESSAGE(again, (again ? "" : again.error().message));
    CHECK(again->uri() == def->uri());
    CHECK(again->wellsInOrder() == def->wellsInOrder());
    CHECK(again->raw == def->raw);
  }
  for (const char* uri :
       {"opentrons/opentrons_96_tiprack_10ul/1", "opentrons/opentrons_96_tiprack_20ul/1",
        "opentrons/opentrons_96_tiprack_300ul/1", "opentrons/opentrons_96_tiprack_1000ul/1",
        "opentrons/opentrons_96_filtertiprack_10ul/1", "opentrons/opentrons_96_filtertiprack_20ul/1",
        "opentrons/opentrons_96_filtertiprack_200ul/1", "opentrons/opentrons_96_filtertiprack_1000ul/1",
        "opentrons/biorad_96_wellplate_200ul_pcr/1", "opentrons/biorad_96_wellplate_200ul_pcr/2",
        "opentrons/corning_96_wellplate_360ul_flat/2", "opentrons/nest_96_wellplate_100ul_pcr_full_skirt/2",
        "opentrons/nest_96_wellplate_200ul_flat/1", "opentrons/nest_96_wellplate_2ml_deep/2",
        "opentrons/usascientific_12_reservoir_22ml/1", "opentrons/nest_12_reservoir_15ml/1",
        "opentrons/opentrons_24_tuberack_eppendorf_1.5ml_safelock_snapcap/1",
        "opentrons/opentrons_1_trash_1100ml_fixed/1"}) {
    CHECK_MESSAGE(builtIn(uri), uri);
  }
}

TEST_CASE("WellsInOrderRunsDownEachColumnThenAcross") {
  const auto* rack = builtIn("opentrons/opentrons_96_tiprack_300ul/1");
  REQUIRE(rack);
  auto order = rack->wellsInOrder();
  REQUIRE(order.size() == 96);
  CHECK(order[0] == "A1");
  CHECK(order[7] == "H1");
  CHECK(order[8] == "A2");
  CHECK(order[95] == "H12");
}

TEST_CASE("ASampleCustomDefinitionParses") {
  auto parsed = LabwareDefinition::fromJson(sampleDefinition(), "x");
  REQUIRE_MESSAGE(parsed, (parsed ? "" : parsed.error().message));
  CHECK(parsed->uri() == "custom_beta/foo/1");
  CHECK(parsed->well("B1")->xDimension == 8);
  CHECK(parsed->well("A1")->diameter == 6);
  CHECK(parsed->well("Z9") == nullptr);
  CHECK(parsed->raw == sampleDefinition());
}

TEST_CASE("FromJsonErrorsNameTheJsonPath") {
  const std::string where = "labwareDefinitions[\"custom_beta/foo/1\"]";
  SUBCASE("a well depth that is a string") {
    json j = sampleDefinition();
    j["wells"]["A1"]["depth"] = "x";
    CHECK(parseError(j) == where + ".wells.A1.depth: expected a number, got \"x\"");
  }
  SUBCASE("a circular well without a diameter") {
    json j = sampleDefinition();
    j["wells"]["A1"].erase("diameter");
    CHECK(parseError(j) == where + ".wells.A1.diameter: missing required field");
  }
  SUBCASE("a rectangular well without yDimension") {
    json j = sampleDefinition();
    j["wells"]["B1"].erase("yDimension");
    CHECK(parseError(j) == where + ".wells.B1.yDimension: missing required field");
  }
  SUBCASE("an unknown well shape") {
    json j = sampleDefinition();
    j["wells"]["A1"]["shape"] = "hexagonal";
    CHECK(parseError(j) == where + ".wells.A1.shape: expected \"circular\" or \"rectangular\", got \"hexagonal\"");
  }
  SUBCASE("ordering names a well that does not exist") {
    json j = sampleDefinition();
    j["ordering"][0][1] = "C1";
    std::string message = parseError(j);
    CHECK(message.find(where + ".ordering[0][1]: names well \"C1\", which is not in wells") == 0);
  }
  SUBCASE("missing parameters.loadName") {
    json j = sampleDefinition();
    j["parameters"].erase("loadName");
    CHECK(parseError(j) == where + ".parameters.loadName: missing required field");
  }
  SUBCASE("a tip rack without tipLength") {
    json j = sampleDefinition();
    j["parameters"]["isTiprack"] = true;
    CHECK(parseError(j) == where + ".parameters.tipLength: missing required field");
  }
  SUBCASE("isTiprack that is not a boolean") {
    json j = sampleDefinition();
    j["parameters"]["isTiprack"] = "yes";
    CHECK(parseError(j) == where + ".parameters.isTiprack: expected true or false, got \"yes\"");
  }
  SUBCASE("a non-integer version") {
    json j = sampleDefinition();
    j["version"] = 1.5;
    CHECK(parseError(j) == where + ".version: expected an integer >= 1, got 1.5");
  }
  SUBCASE("schemaVersion 1") {
    json j = sampleDefinition();
    j["schemaVersion"] = 1;
    CHECK(parseError(j) == where + ".schemaVersion: expected 2, got 1");
  }
  SUBCASE("wells that is an array") {
    json j = sampleDefinition();
    j["wells"] = json::array();
    CHECK(parseError(j).find(where + ".wells: expected an object, got an array") == 0);
  }
  SUBCASE("cornerOffsetFromSlot.z missing") {
    json j = sampleDefinition();
    j["cornerOffsetFromSlot"].erase("z");
    CHECK(parseError(j) == where + ".cornerOffsetFromSlot.z: missing required field");
  }
  SUBCASE("not an object at all") {
    CHECK(parseError(json(42)) == where + ": expected an object, got 42");
  }
  SUBCASE("several errors are all listed in details") {
    json j = sampleDefinition();
    j["wells"]["A1"]["x"] = nullptr;
    j["dimensions"].erase("zDimension");
    auto parsed = LabwareDefinition::fromJson(j, where);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().details["errors"].size() == 2);
    CHECK(parsed.error().message.find("(and 1 more)") != std::string::npos);
  }
}

TEST_CASE("LibraryPrefersProtocolDefinitionsThenDirectoryThenBuiltIns") {
  LabwareLibrary library;
  auto builtin = library.find("opentrons/opentrons_96_tiprack_300ul/1");
  REQUIRE(builtin);
  CHECK((*builtin)->displayName == "Opentrons OT-2 96 Tip Rack 300 µL");

  // Directory layout loadName/version.json overrides the built-in.
  auto dir = runrec::test::tempDir("labware-dir");
  json overridden = (*builtin)->raw;
  overridden["metadata"]["displayName"] = "From directory";
  std::filesystem::create_directories(dir / "opentrons_96_tiprack_300ul");
  std::ofstream(dir / "opentrons_96_tiprack_300ul" / "1.json") << overridden.dump();
  REQUIRE(library.addDirectory(dir));
  CHECK((*library.find("opentrons", "opentrons_96_tiprack_300ul", 1))->displayName == "From directory");

  // A protocol's own definition overrides both.
  overridden["metadata"]["displayName"] = "From protocol";
  REQUIRE(library.add(overridden, "labwareDefinitions[0]"));
  CHECK((*library.find("opentrons/opentrons_96_tiprack_300ul/1"))->displayName == "From protocol");

  // Other libraries are unaffected.
  LabwareLibrary fresh;
  CHECK((*fresh.find("opentrons/opentrons_96_tiprack_300ul/1"))->displayName == "Opentrons OT-2 96 Tip Rack 300 µL");
}

TEST_CASE("LibraryReportsUnknownUrisAndBadDirectories") {
  LabwareLibrary library;
  auto missing = library.find("opentrons/no_such_labware/1");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(missing.error().message.find("opentrons/no_such_labware/1") != std::string::npos);
  CHECK_FALSE(library.find("not-a-uri"));

  auto dir = runrec::test::tempDir("labware-bad");
  std::filesystem::create_directories(dir / "foo");
  std::ofstream(dir / "foo" / "2.json") << sampleDefinition().dump();  // says version 1
  auto status = library.addDirectory(dir);
  REQUIRE_FALSE(status);
  CHECK(status.error().code == ErrorCode::kInvalidDefinition);

  auto bad = runrec::test::tempDir("labware-bad-json");
  std::filesystem::create_directories(bad / "foo");
  std::ofstream(bad / "foo" / "1.json") << "{ not json";
  CHECK_FALSE(library.addDirectory(bad));
  CHECK(library.addDirectory(bad / "nope").error().code == ErrorCode::kNotFound);

  json invalid = sampleDefinition();
  invalid["wells"]["A1"]["depth"] = "x";
  auto added = library.add(invalid, "labwareDefinitions[\"custom_beta/foo/1\"]");
  REQUIRE_FALSE(added);
  CHECK(added.error().message.rfind("labwareDefinitions[\"custom_beta/foo/1\"].wells.A1.depth", 0) == 0);
}

TEST_CASE("FindGivesEachBuiltInByItsExactUriAndTheSameDefinitionAsBuiltIns") {
  LabwareLibrary library;
  // Looked up first (generated on its own), then listed: one shared definition.
  auto trash = library.find("opentrons/opentrons_1_trash_1100ml_fixed/1");
  REQUIRE(trash);
  const auto& all = LabwareLibrary::builtIns();
  CHECK(std::find(all.begin(), all.end(), *trash) != all.end());
  for (const auto& def : all) {
    CAPTURE(def->uri());
    auto found = library.find(def->uri());
    REQUIRE(found);
    CHECK(*found == def);
  }
  // Only the exact URI: no leading zeros, no other namespace, no unknown version.
  CHECK_FALSE(library.find("opentrons/opentrons_1_trash_1100ml_fixed/01"));
  CHECK_FALSE(library.find("custom_beta/opentrons_1_trash_1100ml_fixed/1"));
  CHECK_FALSE(library.find("opentrons/opentrons_1_trash_1100ml_fixed/2"));
  auto missing = library.find("opentrons/no_such_labware/1");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find(std::to_string(all.size()) + " built-in") != std::string::npos);
}
