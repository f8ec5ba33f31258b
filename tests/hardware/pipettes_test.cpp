// Pipettes: the project's table against every pipette definition in the reference folder,
// and the µL/mm, plunger and flow-rate arithmetic.
#include "doctest_hardware.hpp"

#include <cmath>
#include <map>
#include <set>

#include "runrec/hardware/pipettes.hpp"
#include "support.hpp"

using namespace runrec::hardware;
using nlohmann::json;

namespace {

std::vector<UlPerMmRow> rows(const json& table) {
  std::vector<UlPerMmRow> out;
  for (const auto& r : table) out.push_back({r[0].get<double>(), r[1].get<double>(), r[2].get<double>()});
  return out;
}

void checkTable(const std::vector<UlPerMmRow>& ours, const std::vector<UlPerMmRow>& ref) {
  REQUIRE(ours.size() == ref.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    CHECK(ours[i].maxVolume == doctest::Approx(ref[i].maxVolume));
    CHECK(ours[i].slope == doctest::Approx(ref[i].slope));
    CHECK(ours[i].intercept == doctest::Approx(ref[i].intercept));
  }
}

bool isOt2Model(const std::string& model, const json& config) {
  std::string name = config["name"].get<std::string>();
  if (name.find("flex") != std::string::npos || name.find("96") != std::string::npos) return false;
  return model.find("_v1") != std::string::npos || model.find("_v2.") != std::string::npos;
}

}  // namespace

TEST_CASE("TableMatchesEveryV2PipetteDefinition") {
  auto shared = runrec::test::requireShared();
  if (!shared) return;
  auto v2 = *shared / "definitions" / "pipettes" / "v2";
  int compared = 0;
  for (const char* channels : {"single_channel", "eight_channel"}) {
    for (const auto& size : std::filesystem::directory_iterator(v2 / "general" / channels)) {
      for (const auto& file : std::filesystem::directory_iterator(size.path())) {
        std::string p = size.path().filename().string();
        std::string version = file.path().stem().string();  // "2_1"
        version[version.find('_')] = '.';
        std::string model = p + (std::string(channels) == "single_channel" ? "_single_v" : "_multi_v") + version;
        CAPTURE(model);
        auto spec = findPipette(model);
        REQUIRE_MESSAGE(spec, "no table entry for " << model);
        const PipetteSpec& s = **spec;
        ++compared;
        json general = runrec::test::readJson(file.path());
        json geometry = runrec::test::readJson(v2 / "geometry" / channels / p / file.path().filename());
        json liquid = runrec::test::readJson(v2 / "liquid" / channels / p / "default" / file.path().filename());

        CHECK(s.displayName == general["displayName"].get<std::string>());
        CHECK(s.channels == general["channels"].get<int>());
        for (int i = 0; i < 3; ++i) CHECK(s.nozzleOffset[i] == doctest::Approx(geometry["nozzleOffset"][i].get<double>()));
        const json& plunger = general["plungerPositionsConfigurations"]["default"];
        CHECK(s.plungerTop == plunger["top"].get<double>());
        CHECK(s.plungerBottom == plunger["bottom"].get<double>());
        CHECK(s.plungerBlowOut == plunger["blowout"].get<double>());
        CHECK(s.plungerDropTip == plunger["drop"].get<double>());
        CHECK(s.plungerCurrent == general["plungerMotorConfigurations"]["run"].get<double>());
        CHECK(s.dropTipCurrent == general["dropTipConfigurations"]["plungerEject"]["current"].get<double>());
        CHECK(s.dropTipSpeed == general["dropTipConfigurations"]["plungerEject"]["speed"].get<double>());
        const json& pressFit = general["pickUpTipConfigurations"]["pressFit"];
        const json& byMap = pressFit["configurationsByNozzleMap"];
        const json& pickUp = (byMap.contains("Full") ? byMap["Full"] : byMap["SingleA1"])["default"];
        CHECK(s.pickUpCurrent == pickUp["current"].get<double>());
        CHECK(s.pickUpSpeed == pickUp["speed"].get<double>());
        CHECK(s.pickUpDistance == pickUp["distance"].get<double>());
        CHECK(s.pickUpPresses == pressFit["presses"].get<int>());
        CHECK(s.pickUpIncrement == pressFit["increment"].get<double>());
        const json& overlaps = pickUp["tipOverlaps"]["v0"];
        CHECK(s.defaultTipOverlap == overlaps["default"].get<double>());
        for (const auto& [uri, overlap] : overlaps.items()) {
          if (uri != "default") CHECK(s.tipOverlapFor(uri) == overlap.get<double>());
        }
        CHECK(s.maxVolume == liquid["maxVolume"].get<double>());
        CHECK(s.minVolume == liquid["minVolume"].get<double>());
        const json& tip = liquid["supportedTips"].begin().value();
        checkTable(s.aspirateUlPerMm, rows(tip["aspirate"]["default"]["1"]));
        checkTable(s.dispenseUlPerMm, rows(tip["dispense"]["default"]["1"]));
        CHECK(s.defaultTipLength == tip["defaultTipLength"].get<double>());
        for (const auto& [level, value] : tip["defaultAspirateFlowRate"]["valuesByApiLevel"].items()) {
          int major = std::stoi(level.substr(0, level.find('.')));
          int minor = std::stoi(level.substr(level.find('.') + 1));
          CHECK(s.defaultFlowRates(major, minor).aspirate == value.get<double>());
        }
      }
    }
  }
  CHECK(compared == 12);
}

TEST_CASE("TableMatchesEveryOt2ModelInTheV1Specs") {
  auto shared = runrec::test::requireShared();
  if (!shared) return;
  auto v1 = *shared / "definitions" / "pipettes" / "v1";
  json models = runrec::test::readJson(v1 / "pipetteModelSpecs.json")["config"];
  json names = runrec::test::readJson(v1 / "pipetteNameSpecs.json");
  int compared = 0;
  for (const auto& [model, c] : models.items()) {
    if (!isOt2Model(model, c)) continue;
    const std::string modelName = model;  // clang cannot capture a structured binding (C++20)
    CAPTURE(modelName);
    auto spec = findPipette(model);
    REQUIRE_MESSAGE(spec, "no table entry for " << modelName);
    const PipetteSpec& s = **spec;
    ++compared;
    const json& n = names[c["name"].get<std::string>()];
    CHECK(s.name == c["name"].get<std::string>());
    CHECK(s.channels == n["channels"].get<int>());
    CHECK(s.maxVolume == n["maxVolume"].get<double>());
    CHECK(s.minVolume == n["minVolume"].get<double>());
    // The table holds the v1 nozzleOffset, which is the v2 number. For every model but the
    // GEN1 multi-channels that is also the v1 modelOffset + 25 mm in z (GEN1 multis:
    // modelOffset z -25.8, nozzleOffset z 0.8, and Opentrons' v2 geometry says 0.8).
    bool gen1Multi = model.find("_multi_v1") != std::string::npos;
    for (int i = 0; i < 3; ++i) {
      CHECK(s.nozzleOffset[i] == doctest::Approx(c["nozzleOffset"][i].get<double>()));
      double viaModelOffset = c["modelOffset"][i].get<double>() + (i == 2 ? 25.0 : 0.0);
      if (!gen1Multi || i < 2) CHECK(s.nozzleOffset[i] == doctest::Approx(viaModelOffset));
    }
    CHECK(s.plungerTop == c["top"]["value"].get<double>());
    CHECK(s.plungerBottom == c["bottom"]["value"].get<double>());
    CHECK(s.plungerBlowOut == c["blowout"]["value"].get<double>());
    CHECK(s.plungerDropTip == c["dropTip"]["value"].get<double>());
    CHECK(s.plungerCurrent == c["plungerCurrent"]["value"].get<double>());
    CHECK(s.pickUpCurrent == c["pickUpCurrent"]["value"].get<double>());
    CHECK(s.pickUpDistance == c["pickUpDistance"]["value"].get<double>());
    CHECK(s.pickUpSpeed == c["pickUpSpeed"]["value"].get<double>());
    CHECK(s.pickUpPresses == c["pickUpPresses"]["value"].get<int>());
    CHECK(s.dropTipCurrent == c["dropTipCurrent"]["value"].get<double>());
    CHECK(s.dropTipSpeed == c["dropTipSpeed"]["value"].get<double>());
    CHECK(s.defaultTipOverlap == c["tipOverlap"]["default"].get<double>());
    CHECK(s.defaultTipLength == c["tipLength"]["value"].get<double>());
    CHECK(s.returnTipHeight == c.value("returnTipHeight", 0.5));
    CHECK(s.quirks == c["quirks"].get<std::vector<std::string>>());
    for (const auto& [uri, overlap] : c["tipOverlap"].items()) {
      if (uri != "default") CHECK(s.tipOverlapFor(uri) == overlap.get<double>());
    }
    // µL/mm: the newest calibration. One known difference: for p20_multi_v2.0 the v2
    // liquid file (which the table follows, like the current Opentrons stack) has a
    // revised aspirate table.
    const json& latest = c["ulPerMm"].back();
    if (model != "p20_multi_v2.0") checkTable(s.aspirateUlPerMm, rows(latest["aspirate"]));
    checkTable(s.dispenseUlPerMm, rows(latest["dispense"]));
    for (const auto& [level, value] : n["defaultAspirateFlowRate"]["valuesByApiLevel"].items()) {
      int major = std::stoi(level.substr(0, level.find('.')));
      int minor = std::stoi(level.substr(level.find('.') + 1));
      CHECK(s.defaultFlowRates(major, minor).aspirate == value.get<double>());
      CHECK(s.defaultFlowRates(major, minor).dispense == n["defaultDispenseFlowRate"]["valuesByApiLevel"][level].get<double>());
      CHECK(s.defaultFlowRates(major, minor).blowOut == n["defaultBlowOutFlowRate"]["valuesByApiLevel"][level].get<double>());
    }
  }
  CHECK(compared == static_cast<int>(allPipettes().size()));
}

TEST_CASE("NamesResolveToTheirDefaultModel") {
  CHECK((*findPipette("p300_single_gen2"))->model == "p300_single_v2.1");
  CHECK((*findPipette("p20_single_gen2"))->model == "p20_single_v2.2");
  CHECK((*findPipette("p20_multi_gen2"))->model == "p20_multi_v2.1");
  CHECK((*findPipette("p300_multi_gen2"))->model == "p300_multi_v2.1");
  CHECK((*findPipette("p1000_single_gen2"))->model == "p1000_single_v2.2");
  CHECK((*findPipette("p10_multi"))->model == "p10_multi_v1.6");
  CHECK((*findPipette("p300_single"))->model == "p300_single_v1.5");
  CHECK((*findPipette("p50_multi"))->channels == 8);
  CHECK((*findPipette("p20_single_v2.0"))->model == "p20_single_v2.0");
  std::set<std::string> names;
  for (const auto& s : allPipettes()) names.insert(s.name);
  CHECK(names == std::set<std::string>{"p10_single", "p10_multi", "p20_single_gen2", "p20_multi_gen2", "p50_single",
                                       "p50_multi", "p300_single", "p300_single_gen2", "p300_multi",
                                       "p300_multi_gen2", "p1000_single", "p1000_single_gen2"});
}

TEST_CASE("UnknownPipetteListsTheKnownNames") {
  auto missing = findPipette("p5000_single");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(missing.error().message.find("p5000_single") != std::string::npos);
  CHECK(missing.error().message.find("p300_single_gen2") != std::string::npos);
  CHECK(missing.error().message.find("p10_multi") != std::string::npos);
}

TEST_CASE("Ot2FactsForTheP300SingleGen2") {
  const PipetteSpec& s = **findPipette("p300_single_gen2");
  CHECK(s.displayName == "P300 Single-Channel GEN2");
  CHECK(s.minVolume == 20);
  CHECK(s.maxVolume == 300);
  CHECK(s.nozzleOffset[2] == 29.45);
  CHECK(s.plungerTop == 19.5);
  CHECK(s.plungerBottom == -14.5);
  CHECK(s.plungerBlowOut == -19.0);
  CHECK(s.plungerDropTip == -37.0);
  CHECK(s.pickUpPresses == 1);
  CHECK(s.pickUpDistance == 17);
  CHECK(s.pickUpSpeed == 10);
  CHECK(s.pickUpCurrent == 0.125);
  CHECK(s.dropTipSpeed == 7);
  CHECK(s.dropTipCurrent == 1.25);
  CHECK(s.plungerCurrent == 1.0);
  CHECK(s.defaultFlowRates(2, 5).aspirate == 46.43);
  CHECK(s.defaultFlowRates(2, 6).aspirate == 92.86);
  CHECK(s.defaultFlowRates(2, 14).dispense == 92.86);
  CHECK(s.defaultFlowRates(1, 0).aspirate == 46.43);  // below every level: the first
  CHECK(s.tipOverlapFor("opentrons/opentrons_96_tiprack_300ul/1") == 8.2);
  CHECK(s.tipOverlapFor("opentrons/unknown_rack/1") == 8.2);
  CHECK(59.3 - s.tipOverlapFor("opentrons/opentrons_96_tiprack_300ul/1") == doctest::Approx(51.1));
}

TEST_CASE("UlPerMmPicksTheFirstRowCoveringTheVolume") {
  PipetteSpec s;
  s.plungerBottom = -8.5;
  s.maxVolume = 20;
  s.aspirateUlPerMm = {{1, 1, 0}, {10, 0, 2}, {20, 0.1, 1}};
  s.dispenseUlPerMm = {{20, 0, 4}};
  CHECK(s.ulPerMm(0.5, false) == 0.5);
  CHECK(s.ulPerMm(1, false) == 1);  // boundary belongs to the row
  CHECK(s.ulPerMm(5, false) == 2);
  CHECK(s.ulPerMm(15, false) == doctest::Approx(2.5));
  CHECK(s.ulPerMm(25, false) == doctest::Approx(3.5));  // beyond the table: the last row
  CHECK(s.ulPerMm(5, true) == 4);
  CHECK(s.plungerPositionFor(0, false) == -8.5);
  CHECK(s.plungerPositionFor(5, false) == doctest::Approx(-8.5 + 2.5));
  CHECK(s.plungerSpeedFor(12, true) == doctest::Approx(3));
}

TEST_CASE("PlungerArithmeticMatchesTheBasicSmoothieTrace") {
  // p20_single_v2.0 aspirates 10 µL from the bottom (-8.5): the trace moves C to 4.967,
  // at F601 (7.56 µL/s at API 2.13, converted with µL/mm at max volume).
  const PipetteSpec& s = **findPipette("p20_single_v2.0");
  CHECK(std::round(s.plungerPositionFor(10, false) * 1000) / 1000 == doctest::Approx(4.967));
  CHECK(s.plungerPositionFor(0, true) == -8.5);
  double flow = s.defaultFlowRates(2, 13).aspirate;
  CHECK(flow == 7.56);
  CHECK(std::round(s.plungerSpeedFor(flow, false) * 60) == 601);
}
