// The built-in labware library: the project's own schema-v2 definitions of the common OT-2
// labware, generated from each item's published dimensions (a regular grid of identical
// wells). Facts from Opentrons' labware library (shared-data, Apache-2.0); the tests check
// every generated well against the reference definitions in ../shared/opentrons.
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "builtin_labware.hpp"

namespace runrec::hardware::detail {
namespace {

using nlohmann::json;

// One labware item: overall box, a rows x columns grid of identical wells, and metadata.
// Well A1 sits at (firstX, firstY); columns step +x by pitchX, rows step -y by pitchY.
struct GridLabware {
  std::string loadName;
  std::vector<int> versions;
  std::string displayName, displayCategory, volumeUnits;
  std::string brand;
  std::vector<std::string> brandIds;
  std::string format;  // "96Standard", "trough", "irregular", "trash"
  double xDimension, yDimension, zDimension;
  int rows, columns;
  double firstX, firstY, pitchX, pitchY;
  double wellZ;  // bottom of every well above the labware's bottom
  std::string shape;
  double diameter;                          // circular
  double wellXDimension, wellYDimension;    // rectangular
  double depth, volume;                     // mm, µL
  bool isTiprack = false;
  double tipLength = 0;
  std::optional<double> tipOverlap;
  bool magneticModuleCompatible = false;
  std::optional<double> magneticModuleEngageHeight;
  std::optional<std::vector<std::string>> quirks;
  std::optional<std::string> wellBottomShape;  // group metadata ("flat", "u", "v")
  json groupMetadataExtra = json::object();    // e.g. a tube rack's tube name
  json groupBrand = nullptr;                   // tube racks: the tubes' brand
  // Version 2 of a plate adds gripper facts (Flex); identical geometry.
  double gripForce = 0, gripHeightFromLabwareBottom = 0;
};

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// "A".."Z", then "AA".. (enough for any plate).
std::string rowName(int row) {
  std::string name;
  for (int r = row + 1; r > 0; r = (r - 1) / 26) name.insert(name.begin(), char('A' + (r - 1) % 26));
  return name;
}

json generate(const GridLabware& l, int version) {
  json wells = json::object();
  json ordering = json::array();
  json allWells = json::array();
  for (int c = 0; c < l.columns; ++c) {
    json column = json::array();
    for (int r = 0; r < l.rows; ++r) {
      std::string name = rowName(r) + std::to_string(c + 1);
      json well = {{"depth", l.depth}, {"shape", l.shape}, {"totalLiquidVolume", l.volume}};
      if (l.shape == "circular") {
        well["diameter"] = l.diameter;
      } else {
        well["xDimension"] = l.wellXDimension;
        well["yDimension"] = l.wellYDimension;
      }
      well["x"] = round3(l.firstX + c * l.pitchX);
      well["y"] = round3(l.firstY - r * l.pitchY);
      well["z"] = l.wellZ;
      wells[name] = std::move(well);
      column.push_back(name);
      allWells.push_back(name);
    }
    ordering.push_back(std::move(column));
  }
  json parameters = {{"format", l.format},
                     {"isTiprack", l.isTiprack},
                     {"isMagneticModuleCompatible", l.magneticModuleCompatible},
                     {"loadName", l.loadName}};
  if (l.isTiprack) parameters["tipLength"] = l.tipLength;
  if (l.tipOverlap) parameters["tipOverlap"] = *l.tipOverlap;
  if (l.magneticModuleEngageHeight) parameters["magneticModuleEngageHeight"] = *l.magneticModuleEngageHeight;
  if (l.quirks) parameters["quirks"] = *l.quirks;

  json groupMetadata = l.groupMetadataExtra;
  if (l.wellBottomShape) groupMetadata["wellBottomShape"] = *l.wellBottomShape;
  json group = {{"metadata", groupMetadata}, {"wells", allWells}};
  if (!l.groupBrand.is_null()) group["brand"] = l.groupBrand;

  json brand = {{"brand", l.brand}};
  brand["brandId"] = l.brandIds;

  json j = {
      {"ordering", ordering},
      {"brand", brand},
      {"metadata",
       {{"displayName", l.displayName},
        {"displayCategory", l.displayCategory},
        {"displayVolumeUnits", l.volumeUnits},
        {"tags", json::array()}}},
      {"dimensions", {{"xDimension", l.xDimension}, {"yDimension", l.yDimension}, {"zDimension", l.zDimension}}},
      {"wells", wells},
      {"groups", json::array({group})},
      {"parameters", parameters},
      {"namespace", "opentrons"},
      {"version", version},
      {"schemaVersion", 2},
      {"cornerOffsetFromSlot", {{"x", 0}, {"y", 0}, {"z", 0}}},
  };
  if (version >= 2 && l.gripForce > 0) {
    j["gripForce"] = l.gripForce;
    j["gripHeightFromLabwareBottom"] = l.gripHeightFromLabwareBottom;
  }
  return j;
}

// A standard OT-2 96-tip rack: 127.76 x 85.48 footprint, 9 mm pitch.
GridLabware tipRack(std::string loadName, std::string displayName, double zDimension, double firstX,
                    double firstY, double wellZ, double diameter, double tipLength, double volume,
                    double overlap) {
  GridLabware l{};
  l.loadName = std::move(loadName);
  l.versions = {1};
  l.displayName = std::move(displayName);
  l.displayCategory = "tipRack";
  l.volumeUnits = "µL";
  l.brand = "Opentrons";
  l.format = "96Standard";
  l.xDimension = 127.76;
  l.yDimension = 85.48;
  l.zDimension = zDimension;
  l.rows = 8;
  l.columns = 12;
  l.firstX = firstX;
  l.firstY = firstY;
  l.pitchX = 9;
  l.pitchY = 9;
  l.wellZ = wellZ;
  l.shape = "circular";
  l.diameter = diameter;
  l.depth = tipLength;
  l.volume = volume;
  l.isTiprack = true;
  l.tipLength = tipLength;
  l.tipOverlap = overlap;
  return l;
}

// An SBS 96-well plate of circular wells, 9 mm pitch.
GridLabware plate96(std::string loadName, std::vector<int> versions, std::string displayName,
                    std::string brand, std::vector<std::string> brandIds, double x, double y, double z,
                    double firstX, double firstY, double wellZ, double diameter, double depth,
                    double volume, std::string bottom) {
  GridLabware l{};
  l.loadName = std::move(loadName);
  l.versions = std::move(versions);
  l.displayName = std::move(displayName);
  l.displayCategory = "wellPlate";
  l.volumeUnits = "µL";
  l.brand = std::move(brand);
  l.brandIds = std::move(brandIds);
  l.format = "96Standard";
  l.xDimension = x;
  l.yDimension = y;
  l.zDimension = z;
  l.rows = 8;
  l.columns = 12;
  l.firstX = firstX;
  l.firstY = firstY;
  l.pitchX = 9;
  l.pitchY = 9;
  l.wellZ = wellZ;
  l.shape = "circular";
  l.diameter = diameter;
  l.depth = depth;
  l.volume = volume;
  l.wellBottomShape = std::move(bottom);
  return l;
}

// A 12-column trough reservoir (one row of long rectangular wells).
GridLabware reservoir12(std::string loadName, std::string displayName, std::string brand,
                        std::vector<std::string> brandIds, double y, double z, double firstX, double firstY,
                        double pitchX, double wellZ, double wellX, double wellY, double depth, double volume) {
  GridLabware l{};
  l.loadName = std::move(loadName);
  l.versions = {1};
  l.displayName = std::move(displayName);
  l.displayCategory = "reservoir";
  l.volumeUnits = "mL";
  l.brand = std::move(brand);
  l.brandIds = std::move(brandIds);
  l.format = "trough";
  l.xDimension = 127.76;
  l.yDimension = y;
  l.zDimension = z;
  l.rows = 1;
  l.columns = 12;
  l.firstX = firstX;
  l.firstY = firstY;
  l.pitchX = pitchX;
  l.pitchY = 0;
  l.wellZ = wellZ;
  l.shape = "rectangular";
  l.wellXDimension = wellX;
  l.wellYDimension = wellY;
  l.depth = depth;
  l.volume = volume;
  l.quirks = std::vector<std::string>{"centerMultichannelOnWells", "touchTipDisabled"};
  l.wellBottomShape = "v";
  return l;
}

std::vector<GridLabware> makeCatalogue() {
  std::vector<GridLabware> all;

  // Tip racks: (zDimension, A1 x/y, well bottom z, tip diameter, tip length, volume, overlap).
  all.push_back(tipRack("opentrons_96_tiprack_10ul", "Opentrons OT-2 96 Tip Rack 10 µL", 64.69, 14.38, 74.24,
                        25.49, 3.27, 39.2, 10, 3.29));
  all.push_back(tipRack("opentrons_96_tiprack_20ul", "Opentrons OT-2 96 Tip Rack 20 µL", 64.69, 14.38, 74.24,
                        25.49, 3.27, 39.2, 20, 8.25));
  all.push_back(tipRack("opentrons_96_tiprack_300ul", "Opentrons OT-2 96 Tip Rack 300 µL", 64.49, 14.38, 74.24,
                        5.39, 5.23, 59.3, 300, 7.47));
  all.push_back(tipRack("opentrons_96_tiprack_1000ul", "Opentrons OT-2 96 Tip Rack 1000 µL", 97.47, 14.38,
                        74.24, 9.47, 7.23, 88, 1000, 7.95));
  all.push_back(tipRack("opentrons_96_filtertiprack_10ul", "Opentrons OT-2 96 Filter Tip Rack 10 µL", 64.69,
                        14.36, 74.26, 25.49, 3.27, 39.2, 10, 3.29));
  all.push_back(tipRack("opentrons_96_filtertiprack_20ul", "Opentrons OT-2 96 Filter Tip Rack 20 µL", 64.69,
                        14.36, 74.26, 25.49, 3.27, 39.2, 20, 3.29));
  all.push_back(tipRack("opentrons_96_filtertiprack_200ul", "Opentrons OT-2 96 Filter Tip Rack 200 µL", 64.49,
                        14.38, 74.24, 5.39, 5.23, 59.3, 200, 7.47));
  all.push_back(tipRack("opentrons_96_filtertiprack_1000ul", "Opentrons OT-2 96 Filter Tip Rack 1000 µL", 97.47,
                        14.36, 74.26, 9.47, 7.23, 88, 1000, 7.95));

  // Plates: (box, A1 x/y, well bottom z, diameter, depth, volume, bottom shape).
  auto biorad = plate96("biorad_96_wellplate_200ul_pcr", {1, 2}, "Bio-Rad 96 Well Plate 200 µL PCR", "Bio-Rad",
                        {"hsp9601"}, 127.76, 85.48, 16.06, 14.38, 74.24, 1.25, 5.46, 14.81, 200, "v");
  biorad.magneticModuleCompatible = true;
  biorad.magneticModuleEngageHeight = 18;
  biorad.gripForce = 15;
  biorad.gripHeightFromLabwareBottom = 10.14;
  all.push_back(biorad);

  auto corning = plate96("corning_96_wellplate_360ul_flat", {1, 2}, "Corning 96 Well Plate 360 µL Flat", "Corning",
                         {"3650", "3916", "3915", "3361", "3590", "9018", "3591", "9017", "3641", "3628",
                          "3370", "2507", "2509", "2503", "3665", "3600", "3362", "3917", "3912", "3925",
                          "3922", "3596", "3977", "3598", "3599", "3585", "3595", "3300", "3474"},
                         127.76, 85.47, 14.22, 14.38, 74.24, 3.55, 6.86, 10.67, 360, "flat");
  corning.gripForce = 15;
  corning.gripHeightFromLabwareBottom = 12.2;
  all.push_back(corning);

  auto nestPcr = plate96("nest_96_wellplate_100ul_pcr_full_skirt", {1, 2}, "NEST 96 Well Plate 100 µL PCR Full Skirt",
                         "NEST", {"402501"}, 127.76, 85.48, 15.7, 14.38, 74.24, 0.92, 5.34, 14.78, 100, "v");
  nestPcr.magneticModuleCompatible = true;
  nestPcr.magneticModuleEngageHeight = 20;
  nestPcr.gripForce = 15;
  nestPcr.gripHeightFromLabwareBottom = 10.65;
  all.push_back(nestPcr);

  // Thermo Scientific Armadillo PCR plate (Opentrons' published dimensions; used by the
  // v7/v8 JSON fixtures without a definition in the file).
  auto armadillo = plate96("armadillo_96_wellplate_200ul_pcr_full_skirt", {1},
                           "Armadillo 96 Well Plate 200 µL PCR Full Skirt", "Thermo Scientific", {"AB2396"}, 127.76,
                           85.48, 16, 14.38, 74.24, 1.05, 5.5, 14.95, 200, "v");
  armadillo.magneticModuleCompatible = true;
  all.push_back(armadillo);

  all.push_back(plate96("nest_96_wellplate_200ul_flat", {1}, "NEST 96 Well Plate 200 µL Flat", "NEST", {"701011"},
                        127.56, 85.36, 14.3, 14.28, 74.18, 3.5, 6.85, 10.8, 200, "flat"));

  auto deep = plate96("nest_96_wellplate_2ml_deep", {1, 2}, "NEST 96 Deep Well Plate 2mL", "NEST",
                      {"503001", "503501"}, 127.6, 85.3, 41, 14.3, 74.15, 3, 0, 38, 2000, "v");
  deep.shape = "rectangular";
  deep.wellXDimension = 8.2;
  deep.wellYDimension = 8.2;
  deep.magneticModuleCompatible = true;
  deep.magneticModuleEngageHeight = 6.8;
  deep.quirks = std::vector<std::string>{};
  deep.groupMetadataExtra = {{"displayName", "NEST 96 Deep Well Plate 2mL"}, {"displayCategory", "wellPlate"}};
  deep.groupBrand = {{"brand", "NEST"}, {"brandId", json::array()}};
  deep.gripForce = 15;
  deep.gripHeightFromLabwareBottom = 21.9;
  all.push_back(deep);

  // Reservoirs: (box y/z, A1 x/y, pitch, well bottom z, well x/y, depth, volume).
  all.push_back(reservoir12("usascientific_12_reservoir_22ml", "USA Scientific 12 Well Reservoir 22 mL",
                            "USA Scientific", {"1061-8150"}, 85.8, 44.45, 13.94, 42.9, 9.09, 2.29, 8.33, 71.88,
                            42.16, 22000));
  all.push_back(reservoir12("nest_12_reservoir_15ml", "NEST 12 Well Reservoir 15 mL", "NEST", {"360102"}, 85.48,
                            31.4, 14.38, 42.78, 9, 4.55, 8.2, 71.2, 26.85, 15000));

  // Tube rack: 4 x 6 tubes on a 19.89 x 19.28 mm pitch.
  GridLabware tubes{};
  tubes.loadName = "opentrons_24_tuberack_eppendorf_1.5ml_safelock_snapcap";
  tubes.versions = {1};
  tubes.displayName = "Opentrons 24 Tube Rack with Eppendorf 1.5 mL Safe-Lock Snapcap";
  tubes.displayCategory = "tubeRack";
  tubes.volumeUnits = "mL";
  tubes.brand = "Opentrons";
  tubes.format = "irregular";
  tubes.xDimension = 127.75;
  tubes.yDimension = 85.5;
  tubes.zDimension = 79.85;
  tubes.rows = 4;
  tubes.columns = 6;
  tubes.firstX = 18.21;
  tubes.firstY = 75.43;
  tubes.pitchX = 19.89;
  tubes.pitchY = 19.28;
  tubes.wellZ = 42.05;
  tubes.shape = "circular";
  tubes.diameter = 8.7;
  tubes.depth = 37.8;
  tubes.volume = 1500;
  tubes.wellBottomShape = "v";
  tubes.groupMetadataExtra = {{"displayName", "Eppendorf 24x1.5 mL Safelock Snapcap"},
                              {"displayCategory", "tubeRack"}};
  tubes.groupBrand = {{"brand", "Eppendorf"}};
  all.push_back(tubes);

  // The fixed trash in slot 12: one open well (depth 0) across the top of the bin.
  GridLabware trash{};
  trash.loadName = "opentrons_1_trash_1100ml_fixed";
  trash.versions = {1};
  trash.displayName = "Opentrons Fixed Trash";
  trash.displayCategory = "trash";
  trash.volumeUnits = "mL";
  trash.brand = "Opentrons";
  trash.format = "trash";
  trash.xDimension = 172.86;
  trash.yDimension = 165.86;
  trash.zDimension = 82;
  trash.rows = 1;
  trash.columns = 1;
  trash.firstX = 82.84;
  trash.firstY = 80;
  trash.wellZ = 82;
  trash.shape = "rectangular";
  trash.wellXDimension = 107.11;
  trash.wellYDimension = 165.67;
  trash.depth = 0;
  trash.volume = 1100000;
  trash.quirks = std::vector<std::string>{"fixedTrash", "centerMultichannelOnWells", "touchTipDisabled"};
  all.push_back(trash);
  return all;
}

// Built once; read-only after.
const std::vector<GridLabware>& catalogue() {
  static const std::vector<GridLabware> all = makeCatalogue();
  return all;
}

}  // namespace

std::optional<json> builtinLabwareJson(std::string_view loadName, int version) {
  for (const auto& labware : catalogue()) {
    if (labware.loadName != loadName) continue;
    for (int v : labware.versions)
      if (v == version) return generate(labware, version);
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, int>> builtinLabwareIds() {
  std::vector<std::pair<std::string, int>> ids;
  for (const auto& labware : catalogue())
    for (int version : labware.versions) ids.emplace_back(labware.loadName, version);
  return ids;
}

}  // namespace runrec::hardware::detail
