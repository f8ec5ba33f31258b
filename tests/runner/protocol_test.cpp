// Protocol loading: every Opentrons fixture loads and normalises; each bad file fails with an
// exact `path: problem` message and nothing else happens.
#include "runrec/runner/protocol.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "support.hpp"

namespace runrec::runner {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The code's name; (runner::toString returns const char*, which doctest's ADL-found
// stringification cannot use, so codes are compared by name.)
std::string codeOf(const Error& error) { return toString(error.code); }

std::vector<fs::path> fixturePaths(const fs::path& shared) {
  std::vector<fs::path> out;
  for (const char* dir : {"v6", "v7", "v8"}) {
    for (const auto& entry : fs::directory_iterator(shared / "protocols" / "json" / dir)) {
      if (entry.path().extension() == ".json") out.push_back(entry.path());
    }
  }
  out.push_back(shared / "gcode" / "no_mods" / "protocol.json");
  std::sort(out.begin(), out.end());
  return out;
}

// A fixture as JSON, for mutation; nullopt (and a skip) without the shared data.
std::optional<json> fixture(const std::string& relative) {
  auto shared = test::requireShared();
  if (!shared) return std::nullopt;
  return test::readJson(*shared / "protocols" / "json" / relative);
}

// The error message for `doc`, parsed under the name "bad.json"; "" if it unexpectedly loads.
std::string errorFor(const json& doc) {
  auto result = parseProtocol(doc.dump(2), "bad.json");
  if (result) return "";
  CHECK(codeOf(result.error()) == "invalid protocol");
  return result.error().message;
}

std::size_t indexOf(const json& doc, const std::string& type, std::size_t nth = 0) {
  const json& commands = doc["commands"];
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (commands[i]["commandType"] == type && nth-- == 0) return i;
  }
  FAIL("no command " << type);
  return 0;
}

// A small valid v8 protocol written out here (no fixture needed).
json tinyV8() {
  return json::parse(R"({
    "$otSharedSchema": "#/protocol/schemas/8",
    "schemaVersion": 8,
    "metadata": {"protocolName": "Tiny"},
    "robot": {"model": "OT-2 Standard", "deckId": "ot2_standard"},
    "labwareDefinitionSchemaId": "opentronsLabwareSchemaV2",
    "labwareDefinitions": {
      "custom/tiny_2_plate/1": {
        "namespace": "custom", "version": 1, "parameters": {"loadName": "tiny_2_plate"},
        "ordering": [["A1", "B1"]],
        "wells": {"A1": {"depth": 10}, "B1": {"depth": 10}}
      }
    },
    "commandSchemaId": "opentronsCommandSchemaV8",
    "commands": [
      {"commandType": "loadPipette", "key": "k0",
       "params": {"pipetteId": "p", "pipetteName": "p300_single_gen2", "mount": "left"}},
      {"commandType": "loadLabware",
       "params": {"labwareId": "plate", "loadName": "tiny_2_plate", "namespace": "custom",
                  "version": 1, "location": {"slotName": "1"}}},
      {"commandType": "loadLabware",
       "params": {"labwareId": "tips", "loadName": "opentrons_96_tiprack_300ul",
                  "namespace": "opentrons", "version": 1, "location": {"slotName": "2"}}},
      {"commandType": "pickUpTip", "params": {"pipetteId": "p", "labwareId": "tips", "wellName": "A1"}},
      {"commandType": "aspirate",
       "params": {"pipetteId": "p", "labwareId": "plate", "wellName": "B1", "volume": 10,
                  "flowRate": 46.4, "wellLocation": {"origin": "bottom", "offset": {"z": 1}}}},
      {"commandType": "pause", "params": {"message": "check"}},
      {"commandType": "dropTip", "params": {"pipetteId": "p", "labwareId": "fixedTrash", "wellName": "A1"}}
    ],
    "commandAnnotationSchemaId": "opentronsCommandAnnotationSchemaV1",
    "commandAnnotations": [],
    "liquidSchemaId": "opentronsLiquidSchemaV1",
    "liquids": {}
  })");
}

TEST_CASE("EveryOpentronsFixtureLoadsWithAllItsCommands") {
  auto shared = test::requireShared();
  if (!shared) return;
  auto paths = fixturePaths(*shared);
  CHECK(paths.size() == 9);
  for (const auto& path : paths) {
    CAPTURE(path);
    auto result = loadProtocol(path);
    if (!result) FAIL_CHECK(result.error().message);
    if (!result) continue;
    const json doc = test::readJson(path);
    CHECK(result->path == path);
    CHECK(result->schemaVersion == doc["schemaVersion"].get<int>());
    CHECK(result->commands.size() == doc["commands"].size());
    CHECK(result->text == test::readText(path));
    CHECK(result->sha256.size() == 64);
    CHECK(result->name() == doc["metadata"]["protocolName"].get<std::string>());
    CHECK(result->labwareDefinitions.size() == doc["labwareDefinitions"].size());
    for (std::size_t i = 0; i < result->commands.size(); ++i) {
      const json& command = result->commands[i];
      CAPTURE(i);
      for (auto it = command.begin(); it != command.end(); ++it) {
        CHECK((it.key() == "commandType" || it.key() == "params" || it.key() == "key"));
      }
      const std::string type = command["commandType"];
      CHECK(type != "delay");
      CHECK(type != "pause");
      if (type == "loadPipette") CHECK(command["params"].contains("pipetteName"));
      if (type == "loadModule") CHECK(command["params"].contains("model"));
      if (type == "loadLabware") {
        const json& p = command["params"];
        CHECK(p["loadName"].is_string());
        CHECK(p["namespace"].is_string());
        CHECK(p["version"].is_number_integer());
      }
      // Keys survive unchanged, in order.
      if (doc["commands"][i].contains("key")) CHECK(command["key"] == doc["commands"][i]["key"]);
    }
  }
}

TEST_CASE("V6CommandsAreNormalisedToV8Shapes") {
  auto doc = fixture("v6/simpleV6.json");
  if (!doc) return;
  auto result = parseProtocol(doc->dump(), "simpleV6.json");
  REQUIRE_MESSAGE(result, result.error().message);
  const auto& commands = result->commands;

  CHECK(commands[0] == json::parse(R"({"commandType": "loadPipette", "key": "0abc123",
      "params": {"pipetteId": "pipetteId", "mount": "left", "pipetteName": "p10_single"}})"));
  CHECK(commands[1] == json::parse(R"({"commandType": "loadModule", "key": "1abc123",
      "params": {"moduleId": "magneticModuleId", "location": {"slotName": "3"},
                 "model": "magneticModuleV2"}})"));
  CHECK(commands[3] == json::parse(R"({"commandType": "loadLabware", "key": "3abc123",
      "params": {"labwareId": "sourcePlateId", "location": {"moduleId": "temperatureModuleId"},
                 "loadName": "foo_8_plate_33ul", "namespace": "example", "version": 1,
                 "displayName": "Source Plate"}})"));
  const std::size_t delay = indexOf(*doc, "delay");
  CHECK(commands[delay] == json::parse(R"({"commandType": "waitForDuration", "key": "10abc123",
      "params": {"seconds": 42}})"));

  // The definition keyed "example/plate/1" in the file is indexed by its URI, with a warning.
  CHECK(result->labwareDefinitions.count("example/foo_8_plate_33ul/1") == 1);
  CHECK(result->labwareDefinitions.count("example/plate/1") == 0);
  REQUIRE(result->warnings.size() == 1);
  CHECK(result->warnings[0] ==
        "labwareDefinitions[\"example/plate/1\"]: key differs from the definition's URI "
        "\"example/foo_8_plate_33ul/1\"; indexed by the URI");

  CHECK(result->path.empty());
  CHECK(result->source == "simpleV6.json");
  CHECK(result->metadata["protocolName"] == "Simple test protocol");
  CHECK(result->robot["model"] == "OT-2 Standard");
  CHECK(result->liquids.contains("waterId"));
}

TEST_CASE("V6DelayUntilResumedBecomesWaitForResumeWithItsMessage") {
  auto doc = fixture("v6/simpleV6.json");
  if (!doc) return;
  const std::size_t i = indexOf(*doc, "delay");
  (*doc)["commands"][i]["params"] = {{"waitForResume", true}, {"message", "swap the plate"}};
  auto result = parseProtocol(doc->dump(), "simpleV6.json");
  REQUIRE_MESSAGE(result, result.error().message);
  CHECK(result->commands[i] == json::parse(R"({"commandType": "waitForResume", "key": "10abc123",
      "params": {"message": "swap the plate"}})"));

  (*doc)["commands"][i]["params"] = {{"seconds", 1.5}, {"message", "settle"}};
  result = parseProtocol(doc->dump(), "simpleV6.json");
  REQUIRE_MESSAGE(result, result.error().message);
  CHECK(result->commands[i]["params"] == json::parse(R"({"seconds": 1.5, "message": "settle"})"));
}

TEST_CASE("V6ResultsCarriedByCommandsAreDropped") {
  auto doc = fixture("v6/multipleTipracks.json");
  if (!doc) return;
  REQUIRE((*doc)["commands"][0].contains("result"));
  auto result = parseProtocol(doc->dump(), "multipleTipracks.json");
  REQUIRE_MESSAGE(result, result.error().message);
  CHECK_FALSE(result->commands[0].contains("result"));
  CHECK(result->commands[0]["params"]["pipetteName"] == "p300_single_gen2");
}

TEST_CASE("V8ProtocolKeepsItsShapesAndPauseBecomesWaitForResume") {
  auto result = parseProtocol(tinyV8().dump(), "tiny.json");
  REQUIRE_MESSAGE(result, result.error().message);
  CHECK(result->schemaVersion == 8);
  CHECK(result->name() == "Tiny");
  REQUIRE(result->commands.size() == 7);
  CHECK(result->commands[0] == json::parse(R"({"commandType": "loadPipette", "key": "k0",
      "params": {"pipetteId": "p", "pipetteName": "p300_single_gen2", "mount": "left"}})"));
  CHECK(result->commands[5] ==
        json::parse(R"({"commandType": "waitForResume", "params": {"message": "check"}})"));
  CHECK(result->warnings.empty());
}

TEST_CASE("Sha256IsTheLowercaseHexDigestOfTheText") {
  const std::string text = tinyV8().dump();
  auto a = parseProtocol(text, "tiny.json");
  auto b = parseProtocol(text + "\n", "tiny.json");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->sha256.size() == 64);
  CHECK(a->sha256.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a->sha256 != b->sha256);
  CHECK(a->text == text);
  // Known digest: sha256 of a fixed text.
  auto fixed = parseProtocol(R"({"$otSharedSchema": "#/protocol/schemas/7", "schemaVersion": 7,
 "metadata": {}, "robot": {"model": "OT-2 Standard", "deckId": "ot2_standard"},
 "labwareDefinitions": {}, "commands": []}
)",
                             "fixed.json");
  REQUIRE_MESSAGE(fixed, fixed.error().message);
  CHECK(fixed->sha256 == "04fc6911ef189af6bf8538221f033e17992a842e66fce705928b79339059b13a");
  CHECK(fixed->name() == "fixed");  // no protocolName: the file stem
}

TEST_CASE("LoadProtocolReportsAnUnreadableFileWithTheOsReason") {
  auto dir = test::tempDir("protocol-io");
  auto missing = dir / "nope.json";
  auto result = loadProtocol(missing);
  REQUIRE_FALSE(result);
  CHECK(codeOf(result.error()) == "io");
  CHECK(result.error().message == "cannot read " + missing.string() + ": No such file or directory");

  result = loadProtocol(dir);
  REQUIRE_FALSE(result);
  CHECK(codeOf(result.error()) == "io");
  CHECK(result.error().message == "cannot read " + dir.string() + ": Is a directory");
}

TEST_CASE("NotJsonIsRejectedWithLineAndColumn") {
  auto result = parseProtocol("{\n  \"schemaVersion\": 6,\n  oops\n}\n", "bad.json");
  REQUIRE_FALSE(result);
  CHECK(codeOf(result.error()) == "invalid protocol");
  CHECK(result.error().message ==
        "bad.json:3:3: invalid JSON: syntax error while parsing object key - invalid literal; "
        "last read: '6,<U+000A>  o'; expected string literal");

  result = parseProtocol("", "empty.json");
  REQUIRE_FALSE(result);
  CHECK(result.error().message ==
        "empty.json:1:1: invalid JSON: syntax error while parsing value - unexpected end of "
        "input; expected '[', '{', or a literal");

  result = parseProtocol("[1, 2", "short.json");
  REQUIRE_FALSE(result);
  CHECK(result.error().message.rfind("short.json:1:6: invalid JSON: ", 0) == 0);
}

TEST_CASE("TopLevelProblemsNameTheField") {
  auto doc = fixture("v6/simpleV6.json");
  if (!doc) return;

  SUBCASE("not an object") {
    CHECK(errorFor(json::array()) == "bad.json: (root): expected an object, got an array");
  }
  SUBCASE("unsupported schemaVersion") {
    (*doc)["schemaVersion"] = 5;
    (*doc)["$otSharedSchema"] = "#/protocol/schemas/5";
    CHECK(errorFor(*doc) ==
          "bad.json: schemaVersion: unsupported schema version 5 (supported: 6, 7, 8)");
  }
  SUBCASE("schemaVersion disagrees with $otSharedSchema") {
    (*doc)["schemaVersion"] = 7;
    CHECK(errorFor(*doc) ==
          "bad.json: $otSharedSchema: \"#/protocol/schemas/6\" does not match schemaVersion 7");
  }
  SUBCASE("schemaVersion is not an integer") {
    (*doc)["schemaVersion"] = "6";
    CHECK(errorFor(*doc) == "bad.json: schemaVersion: expected an integer, got \"6\"");
  }
  SUBCASE("a Flex protocol") {
    (*doc)["robot"]["model"] = "OT-3 Standard";
    CHECK(errorFor(*doc) ==
          "bad.json: robot.model: \"OT-3 Standard\" is an Opentrons Flex protocol; only OT-2 "
          "protocols (\"OT-2 Standard\") can be run");
  }
  SUBCASE("a deck that is not an OT-2's") {
    (*doc)["robot"]["deckId"] = "ot3_standard";
    CHECK(errorFor(*doc) ==
          "bad.json: robot.deckId: expected \"ot2_standard\" or \"ot2_short_trash\", got "
          "\"ot3_standard\"");
  }
  SUBCASE("missing commands") {
    doc->erase("commands");
    CHECK(errorFor(*doc) == "bad.json: commands: missing");
  }
  SUBCASE("commands not an array") {
    (*doc)["commands"] = json::object();
    CHECK(errorFor(*doc) == "bad.json: commands: expected an array, got an object");
  }
  SUBCASE("metadata not an object") {
    (*doc)["metadata"] = "x";
    CHECK(errorFor(*doc) == "bad.json: metadata: expected an object, got \"x\"");
  }
  SUBCASE("an unknown top-level field (a typo)") {
    (*doc)["comands"] = json::array();
    CHECK(errorFor(*doc).rfind(
              "bad.json: comands: unknown top-level field for schema 6 (allowed: $otSharedSchema, ",
              0) == 0);
  }
  SUBCASE("labwareDefinitions key that names another definition") {
    json def = (*doc)["labwareDefinitions"]["opentrons/opentrons_96_tiprack_10ul/1"];
    (*doc)["labwareDefinitions"].erase("opentrons/opentrons_96_tiprack_10ul/1");
    (*doc)["labwareDefinitions"]["opentrons/opentrons_96_tiprack_10ul/2"] = def;
    CHECK(errorFor(*doc) ==
          "bad.json: labwareDefinitions[\"opentrons/opentrons_96_tiprack_10ul/2\"]: key does not "
          "match the definition's URI \"opentrons/opentrons_96_tiprack_10ul/1\" "
          "(namespace/parameters.loadName/version)");
  }
  SUBCASE("labware definition without wells") {
    (*doc)["labwareDefinitions"]["example/plate/1"].erase("wells");
    CHECK(errorFor(*doc) == "bad.json: labwareDefinitions[\"example/plate/1\"].wells: missing");
  }
  SUBCASE("labware definition ordering names a well it lacks") {
    (*doc)["labwareDefinitions"]["example/plate/1"]["ordering"][0].push_back("Z9");
    CHECK(errorFor(*doc).find("]: well \"Z9\" is not in wells") != std::string::npos);
  }
  SUBCASE("v6 labware whose definitionId is not in labwareDefinitions") {
    (*doc)["labware"]["tipRackId"]["definitionId"] = "opentrons/opentrons_96_tiprack_20ul/1";
    CHECK(errorFor(*doc) ==
          "bad.json: labware.tipRackId.definitionId: \"opentrons/opentrons_96_tiprack_20ul/1\" is "
          "not a key of labwareDefinitions");
  }
  SUBCASE("v6 pipette without a name") {
    (*doc)["pipettes"]["pipetteId"].erase("name");
    CHECK(errorFor(*doc) == "bad.json: pipettes.pipetteId.name: missing");
  }
  SUBCASE("v6 module with an unknown model") {
    (*doc)["modules"]["magneticModuleId"]["model"] = "magneticBlockV1";
    CHECK(errorFor(*doc).rfind(
              "bad.json: modules.magneticModuleId.model: expected one of \"temperatureModuleV1\"",
              0) == 0);
  }
  SUBCASE("liquid without a displayName") {
    (*doc)["liquids"]["waterId"].erase("displayName");
    CHECK(errorFor(*doc) == "bad.json: liquids.waterId.displayName: missing");
  }
}

TEST_CASE("CommandProblemsNameTheExactPath") {
  auto doc = fixture("v6/simpleV6.json");
  if (!doc) return;
  json& commands = (*doc)["commands"];
  const std::size_t aspirate = indexOf(*doc, "aspirate");
  const std::string at = "bad.json: commands[" + std::to_string(aspirate) + "]";

  SUBCASE("command not an object") {
    commands[3] = 42;
    CHECK(errorFor(*doc) == "bad.json: commands[3]: expected an object, got 42");
  }
  SUBCASE("command without commandType") {
    commands[3].erase("commandType");
    CHECK(errorFor(*doc) == "bad.json: commands[3].commandType: missing");
  }
  SUBCASE("unknown commandType") {
    commands[12]["commandType"] = "fooBar";
    std::string supported;
    for (const auto& type : supportedCommandTypes()) {
      supported += (supported.empty() ? "" : ", ") + type;
    }
    CHECK(errorFor(*doc) ==
          "bad.json: commands[12].commandType: unknown command type \"fooBar\" (supported: " +
              supported + ")");
    CHECK(supported.rfind("loadPipette, loadLabware, loadLiquid, loadModule, home, ", 0) == 0);
  }
  SUBCASE("params missing") {
    commands[aspirate].erase("params");
    CHECK(errorFor(*doc) == at + ".params: missing");
  }
  SUBCASE("volume is not a number") {
    commands[aspirate]["params"]["volume"] = "ten";
    CHECK(errorFor(*doc) == at + ".params.volume: expected a number, got \"ten\"");
  }
  SUBCASE("negative volume") {
    commands[aspirate]["params"]["volume"] = -1;
    CHECK(errorFor(*doc) == at + ".params.volume: must be >= 0, got -1");
  }
  SUBCASE("zero flowRate") {
    commands[aspirate]["params"]["flowRate"] = 0;
    CHECK(errorFor(*doc) == at + ".params.flowRate: must be > 0, got 0");
  }
  SUBCASE("missing pipetteId") {
    commands[aspirate]["params"].erase("pipetteId");
    CHECK(errorFor(*doc) == at + ".params.pipetteId: missing");
  }
  SUBCASE("a pipette never loaded") {
    commands[aspirate]["params"]["pipetteId"] = "ghost";
    CHECK(errorFor(*doc) == at +
                                ".params.pipetteId: pipette \"ghost\" has not been loaded by an "
                                "earlier loadPipette");
  }
  SUBCASE("a pipette loaded only later") {
    commands.insert(commands.begin(), commands[aspirate]);
    CHECK(errorFor(*doc) ==
          "bad.json: commands[0].params.pipetteId: pipette \"pipetteId\" has not been loaded by "
          "an earlier loadPipette");
  }
  SUBCASE("labware never loaded") {
    commands[aspirate]["params"]["labwareId"] = "nowhere";
    CHECK(errorFor(*doc) == at +
                                ".params.labwareId: labware \"nowhere\" has not been loaded by an "
                                "earlier loadLabware");
  }
  SUBCASE("wellName not in the definition") {
    commands[aspirate]["params"]["wellName"] = "H12";
    CHECK(errorFor(*doc) == at +
                                ".params.wellName: well \"H12\" is not in labware "
                                "\"sourcePlateId\" (example/foo_8_plate_33ul/1)");
  }
  SUBCASE("bad wellLocation origin") {
    commands[aspirate]["params"]["wellLocation"]["origin"] = "side";
    CHECK(errorFor(*doc) == at +
                                ".params.wellLocation.origin: expected one of \"top\", "
                                "\"bottom\", \"center\", got \"side\"");
  }
  SUBCASE("offset component not a number") {
    commands[aspirate]["params"]["wellLocation"]["offset"]["z"] = "2";
    CHECK(errorFor(*doc) == at + ".params.wellLocation.offset.z: expected a number, got \"2\"");
  }
  SUBCASE("unknown parameter (a typo)") {
    commands[aspirate]["params"]["volum"] = 5;
    CHECK(errorFor(*doc) == at +
                                ".params.volum: unknown parameter for aspirate (allowed: "
                                "flowRate, labwareId, pipetteId, volume, wellLocation, wellName)");
  }
  SUBCASE("key not a string") {
    commands[aspirate]["key"] = 9;
    CHECK(errorFor(*doc) == at + ".key: expected a string, got 9");
  }
  SUBCASE("mount neither left nor right") {
    commands[0]["params"]["mount"] = "middle";
    CHECK(errorFor(*doc) ==
          "bad.json: commands[0].params.mount: expected \"left\" or \"right\", got \"middle\"");
  }
  SUBCASE("v6 loadPipette of an id missing from pipettes") {
    commands[0]["params"]["pipetteId"] = "other";
    CHECK(errorFor(*doc) ==
          "bad.json: commands[0].params.pipetteId: \"other\" is not a key of pipettes");
  }
  SUBCASE("two pipettes on one mount") {
    (*doc)["pipettes"]["second"] = {{"name", "p300_single_gen2"}};
    commands.insert(commands.begin() + 1,
                    json{{"commandType", "loadPipette"},
                         {"params", {{"pipetteId", "second"}, {"mount", "left"}}}});
    CHECK(errorFor(*doc) ==
          "bad.json: commands[1].params.mount: mount \"left\" already has pipette \"pipetteId\" "
          "(commands[0])");
  }
  SUBCASE("two things in one slot") {
    const std::size_t tipRack = indexOf(*doc, "loadLabware", 2);
    commands[tipRack]["params"]["location"]["slotName"] = "3";
    CHECK(errorFor(*doc) == "bad.json: commands[" + std::to_string(tipRack) +
                                "].params.location.slotName: slot \"3\" is already occupied by "
                                "module \"magneticModuleId\" (commands[1])");
  }
  SUBCASE("a module command on the wrong kind of module") {
    auto temp = fixture("v6/tempAndMagModuleCommands.json");
    const std::size_t i = indexOf(*temp, "temperatureModule/setTargetTemperature");
    (*temp)["commands"][i]["params"]["moduleId"] = "magneticModuleId";
    CHECK(errorFor(*temp) == "bad.json: commands[" + std::to_string(i) +
                                 "].params.moduleId: module \"magneticModuleId\" is a "
                                 "magneticModuleV2, but temperatureModule/setTargetTemperature "
                                 "needs a temperature module");
  }
  SUBCASE("a module command's number is not a number") {
    auto temp = fixture("v6/tempAndMagModuleCommands.json");
    const std::size_t i = indexOf(*temp, "magneticModule/engage");
    (*temp)["commands"][i]["params"]["height"] = "high";
    CHECK(errorFor(*temp) == "bad.json: commands[" + std::to_string(i) +
                                 "].params.height: expected a number, got \"high\"");
  }
  SUBCASE("a module never loaded") {
    auto temp = fixture("v6/tempAndMagModuleCommands.json");
    const std::size_t i = indexOf(*temp, "magneticModule/disengage");
    (*temp)["commands"][i]["params"]["moduleId"] = "tc";
    CHECK(errorFor(*temp) == "bad.json: commands[" + std::to_string(i) +
                                 "].params.moduleId: module \"tc\" has not been loaded by an "
                                 "earlier loadModule");
  }
  SUBCASE("loadLiquid of an undeclared liquid") {
    const std::size_t i = indexOf(*doc, "loadLiquid");
    commands[i]["params"]["liquidId"] = "wine";
    CHECK(errorFor(*doc) == "bad.json: commands[" + std::to_string(i) +
                                "].params.liquidId: liquid \"wine\" is not declared in liquids");
  }
  SUBCASE("v6 delay with neither seconds nor waitForResume") {
    const std::size_t i = indexOf(*doc, "delay");
    commands[i]["params"] = {{"message", "hm"}};
    CHECK(errorFor(*doc) == "bad.json: commands[" + std::to_string(i) +
                                "].params: a delay takes either \"seconds\" or \"waitForResume\": "
                                "true");
  }
}

TEST_CASE("FixedTrashNeedsNoLoadCommand") {
  json doc = tinyV8();
  REQUIRE(doc["commands"].back()["params"]["labwareId"] == "fixedTrash");
  // The trash definition is not in this file, so its wells are the engine's to check.
  doc["commands"].back()["params"]["wellName"] = "A1";
  CHECK(parseProtocol(doc.dump(), "tiny.json"));

  // Loading it explicitly is allowed once, in slot 12.
  doc["commands"].push_back(json::parse(R"({"commandType": "loadLabware",
      "params": {"labwareId": "fixedTrash", "loadName": "opentrons_1_trash_1100ml_fixed",
                 "namespace": "opentrons", "version": 1, "location": {"slotName": "12"}}})"));
  CHECK(parseProtocol(doc.dump(), "tiny.json"));
  doc["commands"].push_back(doc["commands"].back());
  CHECK(errorFor(doc) ==
        "bad.json: commands[8].params.labwareId: labware \"fixedTrash\" is already loaded "
        "(commands[7])");
}

TEST_CASE("V8ProblemsNameTheExactPath") {
  json doc = tinyV8();
  SUBCASE("v6-only delay") {
    doc["commands"].push_back({{"commandType", "delay"}, {"params", {{"seconds", 1}}}});
    CHECK(errorFor(doc) ==
          "bad.json: commands[7].commandType: \"delay\" exists only in schema 6; use "
          "waitForDuration or waitForResume");
  }
  SUBCASE("loadPipette without a pipetteName") {
    doc["commands"][0]["params"].erase("pipetteName");
    CHECK(errorFor(doc) == "bad.json: commands[0].params.pipetteName: missing");
  }
  SUBCASE("loadLabware with a fractional version") {
    doc["commands"][1]["params"]["version"] = 1.5;
    CHECK(errorFor(doc) == "bad.json: commands[1].params.version: expected an integer, got 1.5");
  }
  SUBCASE("a Flex slot") {
    doc["commands"][1]["params"]["location"]["slotName"] = "D1";
    CHECK(errorFor(doc).rfind(
              "bad.json: commands[1].params.location.slotName: expected one of \"1\", \"2\"", 0) ==
          0);
  }
  SUBCASE("well of a definition in the file") {
    doc["commands"][4]["params"]["wellName"] = "C1";
    CHECK(errorFor(doc) ==
          "bad.json: commands[4].params.wellName: well \"C1\" is not in labware \"plate\" "
          "(custom/tiny_2_plate/1)");
  }
  SUBCASE("a required v8 top-level field") {
    doc.erase("liquids");
    CHECK(errorFor(doc) == "bad.json: liquids: missing");
  }
  SUBCASE("$otSharedSchema malformed") {
    doc["$otSharedSchema"] = "#/protocol/schemas/eight";
    CHECK(errorFor(doc) ==
          "bad.json: $otSharedSchema: expected \"#/protocol/schemas/<version>\", got "
          "\"#/protocol/schemas/eight\"");
  }
  SUBCASE("waitForDuration with negative seconds") {
    doc["commands"].push_back({{"commandType", "waitForDuration"}, {"params", {{"seconds", -2}}}});
    CHECK(errorFor(doc) == "bad.json: commands[7].params.seconds: must be >= 0, got -2");
  }
  SUBCASE("thermocycler profile step") {
    doc["commands"].push_back(json::parse(R"({"commandType": "loadModule",
        "params": {"moduleId": "tc", "model": "thermocyclerModuleV2", "location": {"slotName": "7"}}})"));
    doc["commands"].push_back(json::parse(R"({"commandType": "thermocycler/runProfile",
        "params": {"moduleId": "tc", "profile": [{"celsius": 95, "holdSeconds": 30},
                                                  {"celsius": "cold", "holdSeconds": 30}]}})"));
    CHECK(errorFor(doc) ==
          "bad.json: commands[8].params.profile[1].celsius: expected a number, got \"cold\"");
    doc["commands"][8]["params"]["profile"][1]["celsius"] = 4;
    CHECK(parseProtocol(doc.dump(), "tc.json"));
    doc["commands"][1]["params"]["location"]["slotName"] = "10";
    CHECK(errorFor(doc) ==
          "bad.json: commands[7].params.location.slotName: slot \"10\" is already occupied by "
          "labware \"plate\" (commands[1])");
  }
}

TEST_CASE("AFileThatFailsValidationChangesNothing") {
  auto doc = fixture("v6/simpleV6.json");
  if (!doc) return;
  const std::size_t aspirate = indexOf(*doc, "aspirate");
  (*doc)["commands"][aspirate]["params"]["volume"] = "ten";
  auto dir = test::tempDir("protocol-pure");
  auto path = dir / "bad.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << doc->dump(2);
  }
  const std::string before = test::readText(path);
  auto first = loadProtocol(path);
  auto second = loadProtocol(path);
  REQUIRE_FALSE(first);
  REQUIRE_FALSE(second);
  CHECK(codeOf(first.error()) == "invalid protocol");
  CHECK(first.error().message == path.string() + ": commands[" + std::to_string(aspirate) +
                                     "].params.volume: expected a number, got \"ten\"");
  CHECK(second.error().message == first.error().message);
  // Only the file itself is there, unchanged.
  std::set<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(dir)) entries.insert(entry.path());
  CHECK(entries == std::set<fs::path>{path});
  CHECK(test::readText(path) == before);
}

}  // namespace
}  // namespace runrec::runner

namespace runrec::runner {
namespace {

// Every value in a file, replaced in turn by each wrong kind of value: the loader answers with
// a value (loaded or a `path: problem` error), never an exception or an internal error.
void replaceEachValue(const json& doc, const std::string& name, json& node,
                      std::size_t& attempts) {
  static const std::vector<json> kWrong = {nullptr, "x", -1, 0.5, json::array(), json::object()};
  if (node.is_object() || node.is_array()) {
    for (auto& child : node) replaceEachValue(doc, name, child, attempts);
  }
  if (node.is_object() && node.size() > 40) return;  // skip whole wells maps: they are large
  json saved = node;
  for (const json& wrong : kWrong) {
    // Under the sanitizers every twelfth replacement (test::rounds): the fuzz target covers
    // the loader there.
    static std::size_t visited = 0;
    if (visited++ % static_cast<std::size_t>(test::rounds(1, 12)) != 0) continue;
    node = wrong;
    auto result = parseProtocol(doc.dump(), name);
    ++attempts;
    if (!result) {
      CHECK(result.error().message.find("internal error") == std::string::npos);
      CHECK(result.error().message.rfind(name + ": ", 0) == 0);
    }
  }
  node = saved;
}

TEST_CASE("AnyWrongValueGivesAnErrorValueNeverAnException") {
  for (const char* file : {"v6/simpleV6.json", "v8/simpleV8.json"}) {
    auto doc = fixture(file);
    if (!doc) return;
    // Commands and the small top-level maps; labware definitions only at their top level.
    json defs = (*doc)["labwareDefinitions"];
    std::size_t attempts = 0;
    for (auto it = doc->begin(); it != doc->end(); ++it) {
      if (it.key() == "labwareDefinitions") continue;
      replaceEachValue(*doc, file, it.value(), attempts);
    }
    for (auto it = (*doc)["labwareDefinitions"].begin(); it != (*doc)["labwareDefinitions"].end();
         ++it) {
      for (auto field = it->begin(); field != it->end(); ++field) {
        json saved = field.value();
        for (const json& wrong : {json(nullptr), json("x"), json(json::array())}) {
          static std::size_t visited = 0;
          if (visited++ % static_cast<std::size_t>(test::rounds(1, 12)) != 0) continue;
          field.value() = wrong;
          auto result = parseProtocol(doc->dump(), file);
          ++attempts;
          if (!result) CHECK(result.error().message.find("internal error") == std::string::npos);
        }
        field.value() = saved;
      }
    }
    CHECK((*doc)["labwareDefinitions"] == defs);
    CHECK(attempts > static_cast<std::size_t>(500 / test::rounds(1, 12)));
  }
}

}  // namespace
}  // namespace runrec::runner
