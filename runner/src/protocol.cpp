// Opentrons JSON protocols (schemas 6-8): read, validate completely, then normalise to v8 shapes.
//
// Validation stops at the first problem and names it by JSON path; nothing here throws (the
// nlohmann exceptions are caught at the edge of loadProtocol/parseProtocol).
#include "runrec/runner/protocol.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "runrec/bus/message.hpp"

namespace runrec::runner {

// An unnamed temporary file (O_TMPFILE, or unlinked as soon as it was made) holding a streamed
// protocol's normalised commands: one compact JSON text per line, as the validation emitted
// them. Only this process can reach it (through `fd`), so nothing can change it between the
// validation and the send; it is gone when the last Protocol holding it is.
struct CommandSpool {
  int fd = -1;
  std::size_t commands = 0;
  CommandSpool() = default;
  CommandSpool(const CommandSpool&) = delete;
  CommandSpool& operator=(const CommandSpool&) = delete;
  ~CommandSpool() {
    if (fd >= 0) ::close(fd);
  }
};

const char* toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInvalidProtocol: return "invalid protocol";
    case ErrorCode::kBus: return "bus";
    case ErrorCode::kRunFailed: return "run failed";
  }
  return "unknown";
}

const std::vector<std::string>& supportedCommandTypes() {
  static const std::vector<std::string> kTypes = {
      "loadPipette",
      "loadLabware",
      "loadLiquid",
      "loadModule",
      "home",
      "pickUpTip",
      "dropTip",
      "aspirate",
      "dispense",
      "blowout",
      "touchTip",
      "moveToWell",
      "moveToCoordinates",
      "moveRelative",
      "savePosition",
      "waitForDuration",
      "delay",
      "waitForResume",
      "pause",
      "comment",
      "temperatureModule/setTargetTemperature",
      "temperatureModule/waitForTemperature",
      "temperatureModule/deactivate",
      "magneticModule/engage",
      "magneticModule/disengage",
      "thermocycler/setTargetBlockTemperature",
      "thermocycler/waitForBlockTemperature",
      "thermocycler/setTargetLidTemperature",
      "thermocycler/waitForLidTemperature",
      "thermocycler/deactivateBlock",
      "thermocycler/deactivateLid",
      "thermocycler/openLid",
      "thermocycler/closeLid",
      "thermocycler/runProfile",
      "heaterShaker/setTargetTemperature",
      "heaterShaker/waitForTemperature",
      "heaterShaker/deactivateHeater",
      "heaterShaker/setAndWaitForShakeSpeed",
      "heaterShaker/deactivateShaker",
      "heaterShaker/openLabwareLatch",
      "heaterShaker/closeLabwareLatch",
  };
  return kTypes;
}

std::string Protocol::name() const {
  auto it = metadata.find("protocolName");
  if (it != metadata.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
    return it->get<std::string>();
  }
  if (!path.empty()) return path.stem().string();
  return std::filesystem::path(source).stem().string();
}

namespace {

using json = nlohmann::json;

constexpr std::string_view kFixedTrashId = "fixedTrash";
constexpr std::string_view kFixedTrashSlot = "12";
constexpr std::string_view kFixedTrashUri = "opentrons/opentrons_1_trash_1100ml_fixed/1";
constexpr std::string_view kOt2Model = "OT-2 Standard";
constexpr std::string_view kFlexModel = "OT-3 Standard";

using Choices = std::vector<std::string_view>;

const Choices kMounts = {"left", "right"};
const Choices kOt2Decks = {"ot2_standard", "ot2_short_trash"};
const Choices kWellOrigins = {"top", "bottom", "center"};
const Choices kDropTipOrigins = {"top", "bottom", "center", "default"};
const Choices kMovementAxes = {"x", "y", "z"};
const Choices kMotorAxes = {"x", "y", "leftZ", "rightZ", "leftPlunger", "rightPlunger"};
// PipetteNameType in command-8.json (the Flex names included: Opentrons' own OT-2 fixtures use
// them; whether the robot has such a pipette is the engine's question).
const Choices kPipetteNames = {
    "p10_single",        "p10_multi",         "p20_single_gen2",   "p20_multi_gen2",
    "p50_single",        "p50_multi",         "p50_single_flex",   "p50_multi_flex",
    "p300_single",       "p300_multi",        "p300_single_gen2",  "p300_multi_gen2",
    "p1000_single",      "p1000_single_gen2", "p1000_single_flex", "p1000_multi_flex",
    "p1000_96"};
// ModuleModel in command-8.json, less the Flex-only magnetic block and absorbance reader.
const Choices kModuleModels = {"temperatureModuleV1",  "temperatureModuleV2",
                               "magneticModuleV1",     "magneticModuleV2",
                               "thermocyclerModuleV1", "thermocyclerModuleV2",
                               "heaterShakerModuleV1"};
// The OT-2 deck: slots "1".."12"; an OT-2 thermocycler in slot 7 also covers 8, 10 and 11.
const Choices kOt2Slots = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"};

bool contains(const Choices& choices, std::string_view value) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

std::string dumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string quote(std::string_view s) { return dumpJson(json(std::string(s))); }

// How a value is named in "got ..." messages: scalars as JSON, containers by kind.
std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::discarded: return "nothing";
    default: break;
  }
  std::string text = dumpJson(value);
  if (text.size() > 64) text = text.substr(0, 60) + "...";
  return text;
}

// `"left" or "right"` / `one of "a", "b", "c"`.
std::string describeChoices(const Choices& choices) {
  std::string out;
  if (choices.size() == 2) return quote(choices[0]) + " or " + quote(choices[1]);
  out = "one of ";
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (i) out += ", ";
    out += quote(choices[i]);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

bool isIdentifier(std::string_view key) {
  if (key.empty()) return false;
  auto head = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
  };
  if (!head(key[0])) return false;
  return std::all_of(key.begin(), key.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

// JSON paths as written in messages: `commands[3].params.volume`, `labwareDefinitions["a/b/1"]`.
std::string member(const std::string& path, std::string_view key) {
  if (isIdentifier(key)) return path.empty() ? std::string(key) : path + "." + std::string(key);
  return path + "[" + quote(key) + "]";
}
std::string element(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string uriOf(const json& definition) {
  return definition.at("namespace").get<std::string>() + "/" +
         definition.at("parameters").at("loadName").get<std::string>() + "/" +
         std::to_string(definition.at("version").get<std::int64_t>());
}

enum class Need { kOptional, kRequired };
enum class Bound { kAny, kNonNegative, kPositive };

// Typed access to JSON members that records the first problem, by path. Once a problem is
// recorded every accessor returns "absent", so validation code reads straight through.
class Checker {
 public:
  bool failed() const { return error_.has_value(); }
  const std::string& error() const { return *error_; }

  bool fail(const std::string& path, const std::string& problem) {
    if (!error_) error_ = (path.empty() ? std::string("(root)") : path) + ": " + problem;
    return false;
  }

  // Whether `value` has `type` (number_float: any number); `what` names the type.
  static bool hasType(const json& value, json::value_t type, const char** what) {
    switch (type) {
      case json::value_t::object: *what = "an object"; return value.is_object();
      case json::value_t::array: *what = "an array"; return value.is_array();
      case json::value_t::string: *what = "a string"; return value.is_string();
      case json::value_t::boolean: *what = "a boolean"; return value.is_boolean();
      case json::value_t::number_float: *what = "a number"; return value.is_number();
      case json::value_t::number_integer: *what = "an integer"; return value.is_number_integer();
      default: *what = ""; return false;
    }
  }

  bool expectType(const json& value, const std::string& path, json::value_t type) {
    if (failed()) return false;
    const char* what = "";
    if (!hasType(value, type, &what)) return fail(path, std::string("expected ") + what + ", got " + describe(value));
    return true;
  }

  // The member, or nullptr when absent (a problem if required) or when a problem is recorded.
  // Paths are only built for messages: a valid file builds none here (the runner validates
  // each command again as it sends it).
  const json* field(const json& obj, const std::string& path, std::string_view key, Need need,
                    json::value_t type) {
    if (failed()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (need == Need::kRequired) fail(member(path, key), "missing");
      return nullptr;
    }
    const char* what = "";
    if (!hasType(*it, type, &what)) {
      fail(member(path, key), std::string("expected ") + what + ", got " + describe(*it));
      return nullptr;
    }
    return &*it;
  }

  const json* object(const json& obj, const std::string& path, std::string_view key, Need need) {
    return field(obj, path, key, need, json::value_t::object);
  }
  const json* array(const json& obj, const std::string& path, std::string_view key, Need need) {
    return field(obj, path, key, need, json::value_t::array);
  }
  const std::string* string(const json& obj, const std::string& path, std::string_view key,
                            Need need) {
    const json* v = field(obj, path, key, need, json::value_t::string);
    return v ? &v->get_ref<const std::string&>() : nullptr;
  }
  std::optional<bool> boolean(const json& obj, const std::string& path, std::string_view key,
                              Need need) {
    const json* v = field(obj, path, key, need, json::value_t::boolean);
    if (!v) return std::nullopt;
    return v->get<bool>();
  }
  std::optional<std::int64_t> integer(const json& obj, const std::string& path,
                                      std::string_view key, Need need) {
    const json* v = field(obj, path, key, need, json::value_t::number_integer);
    if (!v) return std::nullopt;
    return v->get<std::int64_t>();
  }
  std::optional<double> number(const json& obj, const std::string& path, std::string_view key,
                               Need need, Bound bound = Bound::kAny) {
    const json* v = field(obj, path, key, need, json::value_t::number_float);
    if (!v) return std::nullopt;
    double x = v->get<double>();
    if (bound == Bound::kAny || (bound == Bound::kNonNegative && x >= 0) || (bound == Bound::kPositive && x > 0)) {
      return x;
    }
    return checkBound(*v, member(path, key), bound);
  }
  std::optional<double> checkBound(const json& v, const std::string& path, Bound bound) {
    double x = v.get<double>();
    if (bound == Bound::kNonNegative && x < 0) {
      fail(path, "must be >= 0, got " + describe(v));
      return std::nullopt;
    }
    if (bound == Bound::kPositive && !(x > 0)) {
      fail(path, "must be > 0, got " + describe(v));
      return std::nullopt;
    }
    return x;
  }
  const std::string* choice(const json& obj, const std::string& path, std::string_view key,
                            Need need, const Choices& choices) {
    if (failed()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (need == Need::kRequired) fail(member(path, key), "missing");
      return nullptr;
    }
    if (!it->is_string() || !contains(choices, it->get_ref<const std::string&>())) {
      fail(member(path, key), "expected " + describeChoices(choices) + ", got " + describe(*it));
      return nullptr;
    }
    return &it->get_ref<const std::string&>();
  }

  // Every member of `obj` must be in `allowed` (typos are errors, not ignored).
  bool onlyKeys(const json& obj, const std::string& path, const Choices& allowed,
                std::string_view what) {
    if (failed()) return false;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (contains(allowed, it.key())) continue;
      std::vector<std::string> names(allowed.begin(), allowed.end());
      std::sort(names.begin(), names.end());
      std::string problem = "unknown " + std::string(what);
      problem += names.empty() ? " (it takes none)" : " (allowed: " + join(names, ", ") + ")";
      return fail(member(path, it.key()), problem);
    }
    return true;
  }

 private:
  std::optional<std::string> error_;
};

// Parameters each command type takes (command-8.json), as written in files. v6 load commands
// and `delay` have their own sets (see paramsFor).
const std::vector<std::pair<std::string_view, Choices>>& commandParams() {
  static const std::vector<std::pair<std::string_view, Choices>> kParams = {
      {"loadPipette",
       {"pipetteId", "pipetteName", "mount", "tipOverlapNotAfterVersion", "liquidPresenceDetection"}},
      {"loadLabware", {"labwareId", "location", "loadName", "namespace", "version", "displayName"}},
      {"loadLiquid", {"liquidId", "labwareId", "volumeByWell"}},
      {"loadModule", {"moduleId", "model", "location"}},
      {"home", {"axes", "skipIfMountPositionOk"}},
      {"pickUpTip", {"pipetteId", "labwareId", "wellName", "wellLocation"}},
      {"dropTip",
       {"pipetteId", "labwareId", "wellName", "wellLocation", "homeAfter", "alternateDropLocation"}},
      {"aspirate", {"pipetteId", "labwareId", "wellName", "wellLocation", "volume", "flowRate"}},
      {"dispense",
       {"pipetteId", "labwareId", "wellName", "wellLocation", "volume", "flowRate", "pushOut"}},
      {"blowout", {"pipetteId", "labwareId", "wellName", "wellLocation", "flowRate"}},
      {"touchTip", {"pipetteId", "labwareId", "wellName", "wellLocation", "radius", "speed"}},
      {"moveToWell",
       {"pipetteId", "labwareId", "wellName", "wellLocation", "minimumZHeight", "forceDirect",
        "speed"}},
      {"moveToCoordinates",
       {"pipetteId", "coordinates", "minimumZHeight", "forceDirect", "speed"}},
      {"moveRelative", {"pipetteId", "axis", "distance"}},
      {"savePosition", {"pipetteId", "positionId", "failOnNotHomed"}},
      {"waitForDuration", {"seconds", "message"}},
      {"delay", {"seconds", "waitForResume", "message"}},
      {"waitForResume", {"message"}},
      {"pause", {"message"}},
      {"comment", {"message"}},
      {"temperatureModule/setTargetTemperature", {"moduleId", "celsius"}},
      {"temperatureModule/waitForTemperature", {"moduleId", "celsius"}},
      {"temperatureModule/deactivate", {"moduleId"}},
      {"magneticModule/engage", {"moduleId", "height"}},
      {"magneticModule/disengage", {"moduleId"}},
      {"thermocycler/setTargetBlockTemperature",
       {"moduleId", "celsius", "blockMaxVolumeUl", "holdTimeSeconds"}},
      {"thermocycler/waitForBlockTemperature", {"moduleId"}},
      {"thermocycler/setTargetLidTemperature", {"moduleId", "celsius"}},
      {"thermocycler/waitForLidTemperature", {"moduleId"}},
      {"thermocycler/deactivateBlock", {"moduleId"}},
      {"thermocycler/deactivateLid", {"moduleId"}},
      {"thermocycler/openLid", {"moduleId"}},
      {"thermocycler/closeLid", {"moduleId"}},
      {"thermocycler/runProfile", {"moduleId", "profile", "blockMaxVolumeUl"}},
      {"heaterShaker/setTargetTemperature", {"moduleId", "celsius"}},
      {"heaterShaker/waitForTemperature", {"moduleId", "celsius"}},
      {"heaterShaker/deactivateHeater", {"moduleId"}},
      {"heaterShaker/setAndWaitForShakeSpeed", {"moduleId", "rpm"}},
      {"heaterShaker/deactivateShaker", {"moduleId"}},
      {"heaterShaker/openLabwareLatch", {"moduleId"}},
      {"heaterShaker/closeLabwareLatch", {"moduleId"}},
  };
  return kParams;
}

const Choices* paramsFor(std::string_view type, int schemaVersion) {
  static const Choices kV6LoadPipette = {"pipetteId", "mount"};
  static const Choices kV6LoadLabware = {"labwareId", "location"};
  static const Choices kV6LoadModule = {"moduleId", "location"};
  if (schemaVersion == 6) {
    if (type == "loadPipette") return &kV6LoadPipette;
    if (type == "loadLabware") return &kV6LoadLabware;
    if (type == "loadModule") return &kV6LoadModule;
  }
  for (const auto& [name, params] : commandParams()) {
    if (name == type) return &params;
  }
  return nullptr;
}

// The module model prefix a module command family needs ("thermocycler/x" -> thermocyclerModule).
std::optional<std::string> moduleFamily(std::string_view type) {
  auto slash = type.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string family(type.substr(0, slash));
  if (family == "thermocycler") return "thermocyclerModule";
  if (family == "heaterShaker") return "heaterShakerModule";
  return family;  // temperatureModule, magneticModule
}

std::string moduleNoun(const std::string& family) {
  if (family == "temperatureModule") return "temperature module";
  if (family == "magneticModule") return "magnetic module";
  if (family == "thermocyclerModule") return "thermocycler";
  if (family == "heaterShakerModule") return "heater-shaker";
  return family;
}

std::string at(std::size_t commandIndex) { return "commands[" + std::to_string(commandIndex) + "]"; }

// Checks and normalises a protocol in two steps, so that the commands never need to be in
// memory together: validateTop() on the document with the commands array left empty, then
// command() for each element of `commands`, in order, as the file is read again. One
// instance per pass over a file.
class Validator {
 public:
  using Emit = std::function<void(json&&)>;
  Validator(const json& doc, Protocol& out, Emit emit) : doc_(doc), out_(out), emit_(std::move(emit)) {}

  // Everything but the commands. Empty on success; else the first problem, `path: problem`.
  std::optional<std::string> top() {
    validateTop();
    if (c_.failed()) return c_.error();
    return std::nullopt;
  }
  // The next command (commands[index]); emits it normalised if it is valid.
  std::optional<std::string> command(const json& command, std::size_t index) {
    validateCommand(command, index);
    if (c_.failed()) return c_.error();
    return std::nullopt;
  }

 private:
  struct LoadedLabware {
    const json* definition = nullptr;  // null when built-in (not in the file)
    std::string uri;
    std::string origin;  // "commands[3]" or "pre-loaded"
  };
  struct LoadedPipette {
    std::string mount;
    std::string origin;
  };
  struct LoadedModule {
    std::string model;
    std::string origin;
  };

  // ---- top level -------------------------------------------------------------------------

  void validateTop() {
    if (!c_.expectType(doc_, "", json::value_t::object)) return;
    if (!detectSchema()) return;
    version_ = out_.schemaVersion;

    static const Choices kV6Keys = {"$otSharedSchema", "schemaVersion",       "metadata",
                                    "designerApplication", "robot",           "pipettes",
                                    "labwareDefinitions", "labware",          "liquids",
                                    "modules",         "commands",            "commandAnnotations"};
    static const Choices kV7Keys = {"$otSharedSchema",    "schemaVersion", "metadata",
                                    "designerApplication", "robot",        "labwareDefinitions",
                                    "liquids",            "commands",      "commandAnnotations"};
    static const Choices kV8Keys = {"$otSharedSchema",
                                    "schemaVersion",
                                    "metadata",
                                    "designerApplication",
                                    "robot",
                                    "labwareDefinitions",
                                    "labwareDefinitionSchemaId",
                                    "commands",
                                    "commandSchemaId",
                                    "commandAnnotations",
                                    "commandAnnotationSchemaId",
                                    "liquids",
                                    "liquidSchemaId"};
    static const Choices kV6Required = {"$otSharedSchema", "schemaVersion", "metadata", "robot",
                                        "pipettes",        "labware",       "labwareDefinitions",
                                        "commands"};
    static const Choices kV7Required = {"$otSharedSchema", "schemaVersion",      "metadata",
                                        "robot",           "labwareDefinitions", "commands"};
    const Choices& keys = version_ == 6 ? kV6Keys : version_ == 7 ? kV7Keys : kV8Keys;
    const Choices& required = version_ == 6 ? kV6Required : version_ == 7 ? kV7Required : kV8Keys;
    if (!c_.onlyKeys(doc_, "", keys, "top-level field for schema " + std::to_string(version_))) {
      return;
    }
    for (std::string_view key : required) {
      if (key == "designerApplication") continue;  // optional in every schema
      if (!doc_.contains(key)) {
        c_.fail(member("", key), "missing");
        return;
      }
    }

    if (const json* m = c_.object(doc_, "", "metadata", Need::kRequired)) {
      c_.string(*m, "metadata", "protocolName", Need::kOptional);
      c_.string(*m, "metadata", "author", Need::kOptional);
      if (!c_.failed()) out_.metadata = *m;
    }
    validateRobot();
    c_.object(doc_, "", "designerApplication", Need::kOptional);
    for (std::string_view id : {"labwareDefinitionSchemaId", "commandSchemaId",
                                "commandAnnotationSchemaId", "liquidSchemaId"}) {
      c_.string(doc_, "", id, Need::kOptional);
    }
    validateLabwareDefinitions();
    validateLiquids();
    if (version_ == 6) validateV6Maps();
    if (const json* annotations = c_.array(doc_, "", "commandAnnotations", Need::kOptional)) {
      for (std::size_t i = 0; i < annotations->size(); ++i) {
        c_.expectType((*annotations)[i], element("commandAnnotations", i), json::value_t::object);
      }
    }
    // The elements are checked by command() as they are read (the array is empty here).
    if (c_.array(doc_, "", "commands", Need::kRequired)) beginCommands();
  }

  bool detectSchema() {
    const json* version = nullptr;
    if (auto it = doc_.find("schemaVersion"); it != doc_.end()) version = &*it;
    std::optional<int> fromShared;
    if (auto it = doc_.find("$otSharedSchema"); it != doc_.end()) {
      static constexpr std::string_view kPrefix = "#/protocol/schemas/";
      const std::string* s = it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
      if (!s || s->rfind(kPrefix, 0) != 0 || s->size() == kPrefix.size() ||
          !std::all_of(s->begin() + kPrefix.size(), s->end(),
                       [](char ch) { return ch >= '0' && ch <= '9'; }) ||
          s->size() > kPrefix.size() + 6) {
        return c_.fail("$otSharedSchema",
                       "expected \"#/protocol/schemas/<version>\", got " + describe(*it));
      }
      fromShared = std::stoi(s->substr(kPrefix.size()));
    }
    int v = 0;
    if (version) {
      if (!version->is_number_integer()) {
        return c_.fail("schemaVersion", "expected an integer, got " + describe(*version));
      }
      std::int64_t raw = version->get<std::int64_t>();
      v = raw > 1000 || raw < -1000 ? -1 : static_cast<int>(raw);
      if (fromShared && *fromShared != v) {
        return c_.fail("$otSharedSchema", quote(doc_["$otSharedSchema"].get<std::string>()) +
                                              " does not match schemaVersion " +
                                              std::to_string(raw));
      }
    } else if (fromShared) {
      v = *fromShared;
    } else {
      return c_.fail("schemaVersion",
                     "missing (not an Opentrons JSON protocol? Python protocols are not "
                     "supported)");
    }
    if (v < 6 || v > 8) {
      std::string shown = version ? describe(*version) : std::to_string(v);
      return c_.fail(version ? "schemaVersion" : "$otSharedSchema",
                     "unsupported schema version " + shown + " (supported: 6, 7, 8)");
    }
    out_.schemaVersion = v;
    return true;
  }

  void validateRobot() {
    const json* robot = c_.object(doc_, "", "robot", Need::kRequired);
    if (!robot) return;
    const std::string* model = c_.string(*robot, "robot", "model", Need::kRequired);
    if (!model) return;
    if (*model == kFlexModel) {
      c_.fail("robot.model", quote(*model) +
                                 " is an Opentrons Flex protocol; only OT-2 protocols (\"" +
                                 std::string(kOt2Model) + "\") can be run");
      return;
    }
    if (*model != kOt2Model) {
      c_.fail("robot.model", "expected \"" + std::string(kOt2Model) + "\", got " + quote(*model));
      return;
    }
    c_.choice(*robot, "robot", "deckId", Need::kRequired, kOt2Decks);
    if (!c_.failed()) out_.robot = *robot;
  }

  void validateLabwareDefinitions() {
    const json* defs = c_.object(doc_, "", "labwareDefinitions", Need::kRequired);
    if (!defs) return;
    for (auto it = defs->begin(); it != defs->end() && !c_.failed(); ++it) {
      const std::string path = member("labwareDefinitions", it.key());
      const json& def = it.value();
      if (!c_.expectType(def, path, json::value_t::object)) return;
      const std::string* ns = c_.string(def, path, "namespace", Need::kRequired);
      const json* params = c_.object(def, path, "parameters", Need::kRequired);
      if (params) c_.string(*params, member(path, "parameters"), "loadName", Need::kRequired);
      c_.integer(def, path, "version", Need::kRequired);
      const json* wells = c_.object(def, path, "wells", Need::kRequired);
      const json* ordering = c_.array(def, path, "ordering", Need::kRequired);
      if (c_.failed()) return;
      if (wells->empty()) {
        c_.fail(member(path, "wells"), "expected at least one well");
        return;
      }
      for (auto w = wells->begin(); w != wells->end(); ++w) {
        if (!c_.expectType(w.value(), member(member(path, "wells"), w.key()),
                           json::value_t::object)) {
          return;
        }
      }
      const std::string orderingPath = member(path, "ordering");
      for (std::size_t col = 0; col < ordering->size(); ++col) {
        const json& column = (*ordering)[col];
        if (!c_.expectType(column, element(orderingPath, col), json::value_t::array)) return;
        for (std::size_t row = 0; row < column.size(); ++row) {
          const std::string wellPath = element(element(orderingPath, col), row);
          if (!c_.expectType(column[row], wellPath, json::value_t::string)) return;
          if (!wells->contains(column[row].get_ref<const std::string&>())) {
            c_.fail(wellPath, "well " + describe(column[row]) + " is not in wells");
            return;
          }
        }
      }

      // The key should be the definition's URI. Opentrons' own fixtures key a definition by an
      // alias differing only in the loadName ("example/plate/1"); that is accepted with a
      // warning. A different namespace or version means the key names another definition.
      const std::string uri = uriOf(def);
      if (it.key() != uri) {
        std::string key = it.key();
        auto first = key.find('/');
        auto last = key.rfind('/');
        bool alias = first != std::string::npos && last != first &&
                     key.substr(0, first) == *ns &&
                     key.substr(last + 1) == std::to_string(def["version"].get<std::int64_t>());
        if (!alias) {
          c_.fail(path, "key does not match the definition's URI " + quote(uri) +
                            " (namespace/parameters.loadName/version)");
          return;
        }
        out_.warnings.push_back(path + ": key differs from the definition's URI " + quote(uri) +
                                "; indexed by the URI");
      }
      auto [pos, inserted] = out_.labwareDefinitions.emplace(uri, def);
      if (!inserted && pos->second != def) {
        c_.fail(path, "a different definition with the same URI " + quote(uri) +
                          " is also in labwareDefinitions");
        return;
      }
      definitionsByKey_[it.key()] = &def;
    }
  }

  void validateLiquids() {
    const json* liquids = c_.object(doc_, "", "liquids", Need::kOptional);
    if (!liquids) return;
    for (auto it = liquids->begin(); it != liquids->end() && !c_.failed(); ++it) {
      const std::string path = member("liquids", it.key());
      if (!c_.expectType(it.value(), path, json::value_t::object)) return;
      c_.string(it.value(), path, "displayName", Need::kRequired);
      c_.string(it.value(), path, "description", Need::kRequired);
      c_.string(it.value(), path, "displayColor", Need::kOptional);
    }
    if (!c_.failed()) out_.liquids = *liquids;
  }

  void validateV6Maps() {
    if (const json* pipettes = c_.object(doc_, "", "pipettes", Need::kRequired)) {
      for (auto it = pipettes->begin(); it != pipettes->end() && !c_.failed(); ++it) {
        const std::string path = member("pipettes", it.key());
        if (!c_.expectType(it.value(), path, json::value_t::object)) return;
        if (!c_.onlyKeys(it.value(), path, {"name"}, "field")) return;
        c_.choice(it.value(), path, "name", Need::kRequired, kPipetteNames);
      }
    }
    if (const json* labware = c_.object(doc_, "", "labware", Need::kRequired)) {
      for (auto it = labware->begin(); it != labware->end() && !c_.failed(); ++it) {
        const std::string path = member("labware", it.key());
        if (!c_.expectType(it.value(), path, json::value_t::object)) return;
        if (!c_.onlyKeys(it.value(), path, {"definitionId", "displayName"}, "field")) return;
        const std::string* id = c_.string(it.value(), path, "definitionId", Need::kRequired);
        c_.string(it.value(), path, "displayName", Need::kOptional);
        if (id && !definitionsByKey_.count(*id)) {
          c_.fail(member(path, "definitionId"),
                  quote(*id) + " is not a key of labwareDefinitions");
          return;
        }
      }
    }
    if (const json* modules = c_.object(doc_, "", "modules", Need::kOptional)) {
      for (auto it = modules->begin(); it != modules->end() && !c_.failed(); ++it) {
        const std::string path = member("modules", it.key());
        if (!c_.expectType(it.value(), path, json::value_t::object)) return;
        if (!c_.onlyKeys(it.value(), path, {"model"}, "field")) return;
        c_.choice(it.value(), path, "model", Need::kRequired, kModuleModels);
      }
    }
  }

  // ---- commands ----------------------------------------------------------------------------

  void beginCommands() {
    // The engine pre-loads the OT-2's fixed trash; its wells are checkable when the file
    // carries the definition (v6: through the labware map; v7/v8: by URI).
    LoadedLabware trash;
    trash.origin = "pre-loaded";
    trash.uri = std::string(kFixedTrashUri);
    if (version_ == 6) {
      const json& lw = doc_["labware"];
      if (auto it = lw.find(kFixedTrashId); it != lw.end()) {
        const json* def = definitionsByKey_.at(it->at("definitionId").get<std::string>());
        trash.definition = def;
        trash.uri = uriOf(*def);
      }
    } else if (auto it = out_.labwareDefinitions.find(trash.uri);
               it != out_.labwareDefinitions.end()) {
      trash.definition = &it->second;
    }
    labware_[std::string(kFixedTrashId)] = trash;
    slots_[std::string(kFixedTrashSlot)] = "labware \"fixedTrash\" (pre-loaded)";
  }

  void validateCommand(const json& command, std::size_t index) {
    const std::string path = at(index);
    if (!c_.expectType(command, path, json::value_t::object)) return;
    if (!c_.onlyKeys(command, path, {"commandType", "params", "key", "intent", "result"},
                     "field")) {
      return;
    }
    const std::string* type = c_.string(command, path, "commandType", Need::kRequired);
    if (!type) return;
    const Choices* allowed = paramsFor(*type, version_);
    if (!allowed) {
      c_.fail(member(path, "commandType"), "unknown command type " + quote(*type) +
                                               " (supported: " +
                                               join(supportedCommandTypes(), ", ") + ")");
      return;
    }
    if (*type == "delay" && version_ != 6) {
      c_.fail(member(path, "commandType"),
              "\"delay\" exists only in schema 6; use waitForDuration or waitForResume");
      return;
    }
    const std::string* key = c_.string(command, path, "key", Need::kOptional);
    const json* params = c_.object(command, path, "params", Need::kRequired);
    if (!params) return;
    const std::string paramsPath = member(path, "params");
    if (!c_.onlyKeys(*params, paramsPath, *allowed, "parameter for " + *type)) return;

    Cmd cmd{*type, *params, paramsPath, index, json::object()};
    cmd.out = *params;
    dispatch(cmd);
    if (c_.failed()) return;

    json normalised = json::object();
    normalised["commandType"] = cmd.type;
    normalised["params"] = std::move(cmd.out);
    if (key) normalised["key"] = *key;
    emit_(std::move(normalised));
  }

  // One command being validated: `params` as read, `out` the normalised params.
  struct Cmd {
    std::string type;
    const json& params;
    std::string path;  // commands[i].params
    std::size_t index;
    json out;
  };

  void dispatch(Cmd& cmd) {
    const std::string& t = cmd.type;
    if (t == "loadPipette") return loadPipette(cmd);
    if (t == "loadLabware") return loadLabware(cmd);
    if (t == "loadLiquid") return loadLiquid(cmd);
    if (t == "loadModule") return loadModule(cmd);
    if (t == "home") return home(cmd);
    if (t == "pickUpTip" || t == "dropTip" || t == "aspirate" || t == "dispense" ||
        t == "blowout" || t == "touchTip" || t == "moveToWell") {
      return wellCommand(cmd);
    }
    if (t == "moveToCoordinates") return moveToCoordinates(cmd);
    if (t == "moveRelative") {
      pipetteRef(cmd);
      c_.choice(cmd.params, cmd.path, "axis", Need::kRequired, kMovementAxes);
      c_.number(cmd.params, cmd.path, "distance", Need::kRequired);
      return;
    }
    if (t == "savePosition") {
      pipetteRef(cmd);
      c_.string(cmd.params, cmd.path, "positionId", Need::kOptional);
      c_.boolean(cmd.params, cmd.path, "failOnNotHomed", Need::kOptional);
      return;
    }
    if (t == "waitForDuration") {
      c_.number(cmd.params, cmd.path, "seconds", Need::kRequired, Bound::kNonNegative);
      c_.string(cmd.params, cmd.path, "message", Need::kOptional);
      return;
    }
    if (t == "delay") return delay(cmd);
    if (t == "waitForResume" || t == "pause") {
      c_.string(cmd.params, cmd.path, "message", Need::kOptional);
      cmd.type = "waitForResume";
      return;
    }
    if (t == "comment") {
      c_.string(cmd.params, cmd.path, "message", Need::kRequired);
      return;
    }
    return moduleCommand(cmd);
  }

  // ---- load commands -------------------------------------------------------------------

  void loadPipette(Cmd& cmd) {
    const std::string* id = c_.string(cmd.params, cmd.path, "pipetteId", Need::kRequired);
    if (!id) return;
    std::string name;
    if (version_ == 6) {
      const json& map = doc_["pipettes"];
      auto it = map.find(*id);
      if (it == map.end()) {
        c_.fail(member(cmd.path, "pipetteId"), quote(*id) + " is not a key of pipettes");
        return;
      }
      name = it->at("name").get<std::string>();
      cmd.out["pipetteName"] = name;
    } else {
      const std::string* n =
          c_.choice(cmd.params, cmd.path, "pipetteName", Need::kRequired, kPipetteNames);
      if (!n) return;
    }
    const std::string* mount = c_.choice(cmd.params, cmd.path, "mount", Need::kRequired, kMounts);
    c_.string(cmd.params, cmd.path, "tipOverlapNotAfterVersion", Need::kOptional);
    c_.boolean(cmd.params, cmd.path, "liquidPresenceDetection", Need::kOptional);
    if (c_.failed()) return;
    if (auto it = pipettes_.find(*id); it != pipettes_.end()) {
      c_.fail(member(cmd.path, "pipetteId"),
              "pipette " + quote(*id) + " is already loaded (" + it->second.origin + ")");
      return;
    }
    for (const auto& [otherId, other] : pipettes_) {
      if (other.mount == *mount) {
        c_.fail(member(cmd.path, "mount"), "mount " + quote(*mount) + " already has pipette " +
                                               quote(otherId) + " (" + other.origin + ")");
        return;
      }
    }
    pipettes_[*id] = LoadedPipette{*mount, at(cmd.index)};
  }

  void loadLabware(Cmd& cmd) {
    const std::string* id = c_.string(cmd.params, cmd.path, "labwareId", Need::kRequired);
    if (!id) return;
    LoadedLabware loaded;
    loaded.origin = at(cmd.index);
    if (version_ == 6) {
      const json& map = doc_["labware"];
      auto it = map.find(*id);
      if (it == map.end()) {
        c_.fail(member(cmd.path, "labwareId"), quote(*id) + " is not a key of labware");
        return;
      }
      const json* def = definitionsByKey_.at(it->at("definitionId").get<std::string>());
      loaded.definition = def;
      loaded.uri = uriOf(*def);
      cmd.out["loadName"] = def->at("parameters").at("loadName");
      cmd.out["namespace"] = def->at("namespace");
      cmd.out["version"] = def->at("version");
      if (auto name = it->find("displayName"); name != it->end()) cmd.out["displayName"] = *name;
    } else {
      const std::string* loadName = c_.string(cmd.params, cmd.path, "loadName", Need::kRequired);
      const std::string* ns = c_.string(cmd.params, cmd.path, "namespace", Need::kRequired);
      std::optional<std::int64_t> v = c_.integer(cmd.params, cmd.path, "version", Need::kRequired);
      c_.string(cmd.params, cmd.path, "displayName", Need::kOptional);
      if (c_.failed()) return;
      loaded.uri = *ns + "/" + *loadName + "/" + std::to_string(*v);
      if (auto def = out_.labwareDefinitions.find(loaded.uri);
          def != out_.labwareDefinitions.end()) {
        loaded.definition = &def->second;
      }
    }
    const json* location = cmd.params.contains("location") ? &cmd.params["location"] : nullptr;
    if (!location) {
      c_.fail(member(cmd.path, "location"), "missing");
      return;
    }
    const bool isTrash = *id == kFixedTrashId;
    auto previous = labware_.find(*id);
    if (previous != labware_.end() && !(isTrash && previous->second.origin == "pre-loaded")) {
      c_.fail(member(cmd.path, "labwareId"),
              "labware " + quote(*id) + " is already loaded (" + previous->second.origin + ")");
      return;
    }
    const std::string what = "labware " + quote(*id) + " (" + at(cmd.index) + ")";
    if (!labwareLocation(cmd, *location, member(cmd.path, "location"), what, isTrash)) return;
    labware_[*id] = std::move(loaded);
  }

  // Where labware goes: a slot, a module, other labware, "offDeck" or an addressable area
  // (v7/v8). Records slot and module occupancy.
  bool labwareLocation(Cmd& cmd, const json& location, const std::string& path,
                       const std::string& what, bool isTrash) {
    if (location.is_string() && version_ != 6 && location.get_ref<const std::string&>() == "offDeck") {
      return true;
    }
    if (!location.is_object() || location.size() != 1) {
      std::string expected = version_ == 6 ? "{\"slotName\"} or {\"moduleId\"}"
                                           : "{\"slotName\"}, {\"moduleId\"}, {\"labwareId\"}, "
                                             "{\"addressableAreaName\"} or \"offDeck\"";
      return c_.fail(path, "expected " + expected + ", got " + describe(location));
    }
    const std::string& kind = location.begin().key();
    if (kind == "slotName") {
      const std::string* slot = c_.choice(location, path, "slotName", Need::kRequired, kOt2Slots);
      if (!slot) return false;
      if (isTrash) {
        if (*slot != kFixedTrashSlot) {
          return c_.fail(member(path, "slotName"),
                         "labware \"fixedTrash\" is the OT-2's fixed trash, in slot \"12\"");
        }
        slots_[*slot] = what;
        return true;
      }
      return occupySlot(*slot, member(path, "slotName"), what);
    }
    if (kind == "moduleId") {
      const std::string* moduleId = moduleRef(cmd, location, path, std::nullopt);
      if (!moduleId) return false;
      if (auto it = moduleContents_.find(*moduleId); it != moduleContents_.end()) {
        return c_.fail(member(path, "moduleId"), "module " + quote(*moduleId) +
                                                     " already holds " + it->second);
      }
      moduleContents_[*moduleId] = what;
      return true;
    }
    if (version_ != 6 && kind == "labwareId") {
      const std::string* below = c_.string(location, path, "labwareId", Need::kRequired);
      if (below && !labware_.count(*below)) {
        return c_.fail(member(path, "labwareId"), "labware " + quote(*below) +
                                                      " has not been loaded by an earlier "
                                                      "loadLabware");
      }
      return !c_.failed();
    }
    if (version_ != 6 && kind == "addressableAreaName") {
      return c_.string(location, path, "addressableAreaName", Need::kRequired) != nullptr;
    }
    return c_.fail(member(path, kind), "unknown location kind");
  }

  bool occupySlot(const std::string& slot, const std::string& path, const std::string& what) {
    if (auto it = slots_.find(slot); it != slots_.end()) {
      return c_.fail(path, "slot " + quote(slot) + " is already occupied by " + it->second);
    }
    slots_[slot] = what;
    return true;
  }

  void loadModule(Cmd& cmd) {
    const std::string* id = c_.string(cmd.params, cmd.path, "moduleId", Need::kRequired);
    if (!id) return;
    std::string model;
    if (version_ == 6) {
      const json* map = doc_.contains("modules") ? &doc_["modules"] : nullptr;
      auto it = map ? map->find(*id) : json::const_iterator{};
      if (!map || it == map->end()) {
        c_.fail(member(cmd.path, "moduleId"), quote(*id) + " is not a key of modules");
        return;
      }
      model = it->at("model").get<std::string>();
      cmd.out["model"] = model;
    } else {
      const std::string* m =
          c_.choice(cmd.params, cmd.path, "model", Need::kRequired, kModuleModels);
      if (!m) return;
      model = *m;
    }
    const json* location = c_.object(cmd.params, cmd.path, "location", Need::kRequired);
    if (!location) return;
    const std::string locPath = member(cmd.path, "location");
    if (!c_.onlyKeys(*location, locPath, {"slotName"}, "field")) return;
    const std::string* slot = c_.choice(*location, locPath, "slotName", Need::kRequired, kOt2Slots);
    if (!slot) return;
    if (auto it = modules_.find(*id); it != modules_.end()) {
      c_.fail(member(cmd.path, "moduleId"),
              "module " + quote(*id) + " is already loaded (" + it->second.origin + ")");
      return;
    }
    const std::string what = "module " + quote(*id) + " (" + at(cmd.index) + ")";
    const std::string slotPath = member(locPath, "slotName");
    if (model.rfind("thermocyclerModule", 0) == 0) {
      // The OT-2 thermocycler spans slots 7, 8, 10 and 11 and is loaded in slot 7.
      if (*slot != "7") {
        c_.fail(slotPath, "an OT-2 thermocycler goes in slot \"7\", got " + quote(*slot));
        return;
      }
      for (const char* s : {"7", "8", "10", "11"}) {
        if (!occupySlot(s, slotPath, what)) return;
      }
    } else if (!occupySlot(*slot, slotPath, what)) {
      return;
    }
    modules_[*id] = LoadedModule{model, at(cmd.index)};
  }

  void loadLiquid(Cmd& cmd) {
    const std::string* liquidId = c_.string(cmd.params, cmd.path, "liquidId", Need::kRequired);
    if (liquidId && !out_.liquids.contains(*liquidId)) {
      c_.fail(member(cmd.path, "liquidId"),
              "liquid " + quote(*liquidId) + " is not declared in liquids");
      return;
    }
    const LoadedLabware* lw = labwareRef(cmd);
    const json* volumes = c_.object(cmd.params, cmd.path, "volumeByWell", Need::kRequired);
    if (!volumes || !lw) return;
    const std::string volumesPath = member(cmd.path, "volumeByWell");
    for (auto it = volumes->begin(); it != volumes->end(); ++it) {
      const std::string wellPath = member(volumesPath, it.key());
      if (!c_.expectType(it.value(), wellPath, json::value_t::number_float)) return;
      if (!c_.checkBound(it.value(), wellPath, Bound::kNonNegative)) return;
      if (!wellExists(*lw, cmd, it.key(), wellPath)) return;
    }
  }

  // ---- references ----------------------------------------------------------------------

  const LoadedPipette* pipetteRef(Cmd& cmd) {
    const std::string* id = c_.string(cmd.params, cmd.path, "pipetteId", Need::kRequired);
    if (!id) return nullptr;
    auto it = pipettes_.find(*id);
    if (it == pipettes_.end()) {
      c_.fail(member(cmd.path, "pipetteId"),
              "pipette " + quote(*id) + " has not been loaded by an earlier loadPipette");
      return nullptr;
    }
    return &it->second;
  }

  const LoadedLabware* labwareRef(Cmd& cmd) {
    const std::string* id = c_.string(cmd.params, cmd.path, "labwareId", Need::kRequired);
    if (!id) return nullptr;
    auto it = labware_.find(*id);
    if (it == labware_.end()) {
      c_.fail(member(cmd.path, "labwareId"),
              "labware " + quote(*id) + " has not been loaded by an earlier loadLabware");
      return nullptr;
    }
    return &it->second;
  }

  // `family`: the module kind the command needs (e.g. "thermocyclerModule"), if any.
  const std::string* moduleRef(Cmd& cmd, const json& obj, const std::string& path,
                               const std::optional<std::string>& family) {
    const std::string* id = c_.string(obj, path, "moduleId", Need::kRequired);
    if (!id) return nullptr;
    auto it = modules_.find(*id);
    if (it == modules_.end()) {
      c_.fail(member(path, "moduleId"),
              "module " + quote(*id) + " has not been loaded by an earlier loadModule");
      return nullptr;
    }
    if (family && it->second.model.rfind(*family, 0) != 0) {
      c_.fail(member(path, "moduleId"), "module " + quote(*id) + " is a " + it->second.model +
                                            ", but " + cmd.type + " needs a " +
                                            moduleNoun(*family));
      return nullptr;
    }
    return id;
  }

  bool wellExists(const LoadedLabware& lw, const Cmd& cmd, const std::string& well,
                  const std::string& path) {
    if (!lw.definition) return true;  // built-in labware: the engine checks against its own
    if (lw.definition->at("wells").contains(well)) return true;
    std::string labwareId = cmd.params.value("labwareId", std::string());
    return c_.fail(path, "well " + quote(well) + " is not in labware " + quote(labwareId) + " (" +
                             lw.uri + ")");
  }

  // ---- motion and liquid handling ------------------------------------------------------

  void wellCommand(Cmd& cmd) {
    const bool isDropTip = cmd.type == "dropTip";
    pipetteRef(cmd);
    const LoadedLabware* lw = labwareRef(cmd);
    const std::string* well = c_.string(cmd.params, cmd.path, "wellName", Need::kRequired);
    if (!lw || !well) return;
    const bool known = !lw->definition || lw->definition->at("wells").contains(*well);
    if (!known && !wellExists(*lw, cmd, *well, member(cmd.path, "wellName"))) return;
    if (const json* loc = c_.object(cmd.params, cmd.path, "wellLocation", Need::kOptional)) {
      wellLocation(*loc, member(cmd.path, "wellLocation"),
                   isDropTip ? kDropTipOrigins : kWellOrigins);
    }
    const json& p = cmd.params;
    c_.number(p, cmd.path, "volume", Need(cmd.type == "aspirate" || cmd.type == "dispense"),
              Bound::kNonNegative);
    c_.number(p, cmd.path, "flowRate",
              Need(cmd.type == "aspirate" || cmd.type == "dispense" || cmd.type == "blowout"),
              Bound::kPositive);
    c_.number(p, cmd.path, "pushOut", Need::kOptional, Bound::kNonNegative);
    c_.number(p, cmd.path, "radius", Need::kOptional, Bound::kPositive);
    c_.number(p, cmd.path, "speed", Need::kOptional, Bound::kPositive);
    c_.number(p, cmd.path, "minimumZHeight", Need::kOptional, Bound::kNonNegative);
    c_.boolean(p, cmd.path, "forceDirect", Need::kOptional);
    c_.boolean(p, cmd.path, "homeAfter", Need::kOptional);
    c_.boolean(p, cmd.path, "alternateDropLocation", Need::kOptional);
  }

  void wellLocation(const json& loc, const std::string& path, const Choices& origins) {
    if (!c_.onlyKeys(loc, path, {"origin", "offset"}, "field")) return;
    c_.choice(loc, path, "origin", Need::kOptional, origins);
    if (const json* offset = c_.object(loc, path, "offset", Need::kOptional)) {
      const std::string offsetPath = member(path, "offset");
      if (!c_.onlyKeys(*offset, offsetPath, {"x", "y", "z"}, "field")) return;
      for (const char* axis : {"x", "y", "z"}) c_.number(*offset, offsetPath, axis, Need::kOptional);
    }
  }

  void moveToCoordinates(Cmd& cmd) {
    pipetteRef(cmd);
    if (const json* xyz = c_.object(cmd.params, cmd.path, "coordinates", Need::kRequired)) {
      const std::string xyzPath = member(cmd.path, "coordinates");
      if (!c_.onlyKeys(*xyz, xyzPath, {"x", "y", "z"}, "field")) return;
      for (const char* axis : {"x", "y", "z"}) c_.number(*xyz, xyzPath, axis, Need::kRequired);
    }
    c_.number(cmd.params, cmd.path, "minimumZHeight", Need::kOptional, Bound::kNonNegative);
    c_.boolean(cmd.params, cmd.path, "forceDirect", Need::kOptional);
    c_.number(cmd.params, cmd.path, "speed", Need::kOptional, Bound::kPositive);
  }

  void home(Cmd& cmd) {
    if (const json* axes = c_.array(cmd.params, cmd.path, "axes", Need::kOptional)) {
      const std::string axesPath = member(cmd.path, "axes");
      for (std::size_t i = 0; i < axes->size() && !c_.failed(); ++i) {
        const json& axis = (*axes)[i];
        if (!axis.is_string() || !contains(kMotorAxes, axis.get_ref<const std::string&>())) {
          c_.fail(element(axesPath, i),
                  "expected " + describeChoices(kMotorAxes) + ", got " + describe(axis));
        }
      }
    }
    c_.choice(cmd.params, cmd.path, "skipIfMountPositionOk", Need::kOptional, kMounts);
  }

  // v6 delay: {seconds, message?} -> waitForDuration; {waitForResume: true, message?} ->
  // waitForResume.
  void delay(Cmd& cmd) {
    const bool hasSeconds = cmd.params.contains("seconds");
    const bool hasResume = cmd.params.contains("waitForResume");
    if (hasSeconds == hasResume) {
      c_.fail(cmd.path, "a delay takes either \"seconds\" or \"waitForResume\": true");
      return;
    }
    const std::string* message = c_.string(cmd.params, cmd.path, "message", Need::kOptional);
    json out = json::object();
    if (hasSeconds) {
      auto seconds = c_.number(cmd.params, cmd.path, "seconds", Need::kRequired,
                               Bound::kNonNegative);
      if (!seconds) return;
      out["seconds"] = cmd.params["seconds"];
      cmd.type = "waitForDuration";
    } else {
      const json& resume = cmd.params["waitForResume"];
      if (resume != json(true)) {
        c_.fail(member(cmd.path, "waitForResume"), "expected true, got " + describe(resume));
        return;
      }
      cmd.type = "waitForResume";
    }
    if (message) out["message"] = *message;
    cmd.out = std::move(out);
  }

  // ---- modules ---------------------------------------------------------------------------

  void moduleCommand(Cmd& cmd) {
    const std::string& t = cmd.type;
    if (!moduleRef(cmd, cmd.params, cmd.path, moduleFamily(t))) return;
    const json& p = cmd.params;
    const bool setsTemperature = t == "temperatureModule/setTargetTemperature" ||
                                 t == "thermocycler/setTargetBlockTemperature" ||
                                 t == "thermocycler/setTargetLidTemperature" ||
                                 t == "heaterShaker/setTargetTemperature";
    c_.number(p, cmd.path, "celsius", Need(setsTemperature));
    c_.number(p, cmd.path, "height", Need(t == "magneticModule/engage"));
    c_.number(p, cmd.path, "rpm", Need(t == "heaterShaker/setAndWaitForShakeSpeed"),
              Bound::kNonNegative);
    c_.number(p, cmd.path, "blockMaxVolumeUl", Need::kOptional, Bound::kNonNegative);
    c_.number(p, cmd.path, "holdTimeSeconds", Need::kOptional, Bound::kNonNegative);
    if (t == "thermocycler/runProfile") {
      const json* profile = c_.array(p, cmd.path, "profile", Need::kRequired);
      if (!profile) return;
      const std::string profilePath = member(cmd.path, "profile");
      for (std::size_t i = 0; i < profile->size() && !c_.failed(); ++i) {
        const json& step = (*profile)[i];
        const std::string stepPath = element(profilePath, i);
        if (!c_.expectType(step, stepPath, json::value_t::object)) return;
        if (!c_.onlyKeys(step, stepPath, {"celsius", "holdSeconds"}, "field")) return;
        c_.number(step, stepPath, "celsius", Need::kRequired);
        c_.number(step, stepPath, "holdSeconds", Need::kRequired, Bound::kNonNegative);
      }
    }
  }

  const json& doc_;
  Protocol& out_;
  Emit emit_;
  Checker c_;
  int version_ = 0;
  std::map<std::string, const json*> definitionsByKey_;  // file key -> definition
  std::map<std::string, LoadedPipette> pipettes_;
  std::map<std::string, LoadedLabware> labware_;
  std::map<std::string, LoadedModule> modules_;
  std::map<std::string, std::string> slots_;           // slot -> what occupies it
  std::map<std::string, std::string> moduleContents_;  // moduleId -> labware on it
};

std::string hex(const unsigned char* digest, unsigned int length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  return hex(digest, length);
}

// A file read in 1 MiB pieces for nlohmann's stream parser, hashed (SHA-256) as it is read:
// a pass over a protocol file holds one piece of it, never the whole text.
class HashingFileBuf : public std::streambuf {
 public:
  explicit HashingFileBuf(const std::filesystem::path& path)
      : file_(std::fopen(path.c_str(), "rb"), &std::fclose), ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    openErrno_ = file_ ? 0 : errno;
    if (ctx_) EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
    buffer_.resize(std::size_t{1} << 20);
  }
  // 0, or the errno of a failed open or read.
  int error() const { return openErrno_ ? openErrno_ : readErrno_; }
  // Reads (and hashes) the rest of the file without parsing it.
  void readToEnd() {
    while (underflow() != traits_type::eof()) setg(egptr(), egptr(), egptr());
  }
  // The digest of everything read so far (call once, after the whole file was read).
  std::string hexDigest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!ctx_ || EVP_DigestFinal_ex(ctx_.get(), digest, &length) != 1) return {};
    return hex(digest, length);
  }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (!file_) return traits_type::eof();
    std::size_t n = std::fread(buffer_.data(), 1, buffer_.size(), file_.get());
    if (n == 0) {
      if (std::ferror(file_.get())) readErrno_ = errno ? errno : EIO;
      return traits_type::eof();
    }
    if (ctx_) EVP_DigestUpdate(ctx_.get(), buffer_.data(), n);
    setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
  std::vector<char> buffer_;
  int openErrno_ = 0, readErrno_ = 0;
};

// 1-based line and column of the byte at 1-based offset `byte` (nlohmann's parse_error::byte,
// the last character read).
std::pair<std::size_t, std::size_t> lineColumn(const std::string& text, std::size_t byte) {
  std::size_t end = std::min(byte == 0 ? 0 : byte - 1, text.size());
  std::size_t line = 1;
  std::size_t lineStart = 0;
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      lineStart = i + 1;
    }
  }
  return {line, end - lineStart + 1};
}

// The same for a file, read again up to `byte` (only on the error path).
std::pair<std::size_t, std::size_t> lineColumn(const std::filesystem::path& path, std::size_t byte) {
  std::size_t end = byte == 0 ? 0 : byte - 1;
  std::size_t line = 1, lineStart = 0, i = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return {0, 0};
  char buffer[1 << 16];
  while (i < end) {
    std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    if (n == 0) break;
    for (std::size_t k = 0; k < n && i < end; ++k, ++i) {
      if (buffer[k] == '\n') {
        ++line;
        lineStart = i + 1;
      }
    }
  }
  return {line, std::min(end, i) - lineStart + 1};
}

// nlohmann's message less its "[json.exception...] parse error at line L, column C: " prefix.
std::string parseReason(const std::string& what) {
  auto column = what.find("column ");
  auto colon = column == std::string::npos ? what.find(": ") : what.find(": ", column);
  if (colon == std::string::npos) return what;
  return what.substr(colon + 2);
}

Error invalid(const std::string& source, const std::string& message) {
  return Error{ErrorCode::kInvalidProtocol, source.empty() ? message : source + ": " + message};
}

Error changedAfterValidation(const std::string& name) {
  return invalid(name, "the file changed after it was validated; nothing was run");
}

Error ioError(const std::filesystem::path& path, int err) {
  return Error{ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(err)};
}

// Where a protocol's text is: in memory, or a file read again on each pass.
struct Source {
  std::string name;                  // for messages: the path, or the name given
  const std::string* text = nullptr;  // in memory
  std::filesystem::path path;         // else this file
};

// Thrown by a parser callback to end a pass early (a command failed validation, or the
// caller stopped taking commands). Never leaves this file.
struct StopPass {};

using Callback = json::parser_callback_t;

// One pass of nlohmann's parser over the source with `callback`. `sha256`: set to the
// digest of what was read (files only; the parser reads to the end to reject trailing text).
Result<json> parsePass(const Source& src, const Callback& callback, std::string* sha256) {
  std::string where = src.name.empty() ? std::string("(text)") : src.name;
  std::unique_ptr<HashingFileBuf> buf;
  try {
    if (src.text) return json::parse(*src.text, callback);
    buf = std::make_unique<HashingFileBuf>(src.path);
    if (buf->error()) return tl::make_unexpected(ioError(src.path, buf->error()));
    std::istream in(buf.get());
    json doc = json::parse(in, callback);
    if (buf->error()) return tl::make_unexpected(ioError(src.path, buf->error()));
    if (sha256) *sha256 = buf->hexDigest();
    return doc;
  } catch (const json::parse_error& e) {
    if (buf && buf->error()) return tl::make_unexpected(ioError(src.path, buf->error()));
    auto [line, column] = src.text ? lineColumn(*src.text, e.byte) : lineColumn(src.path, e.byte);
    return tl::make_unexpected(Error{ErrorCode::kInvalidProtocol, where + ":" + std::to_string(line) + ":" +
                                                                      std::to_string(column) +
                                                                      ": invalid JSON: " + parseReason(e.what())});
  } catch (const json::out_of_range& e) {  // out_of_range.406: a number beyond a double's range
    std::string what = e.what();
    auto bracket = what.find("] ");
    return tl::make_unexpected(Error{ErrorCode::kInvalidProtocol,
                                     where + ": invalid JSON: " +
                                         (bracket == std::string::npos ? what : what.substr(bracket + 2))});
  }
}

// The SHA-256 of a file, read in 1 MiB pieces.
Result<std::string> fileSha256(const std::filesystem::path& path) {
  HashingFileBuf buf(path);
  if (buf.error()) return tl::make_unexpected(ioError(path, buf.error()));
  buf.readToEnd();
  if (buf.error()) return tl::make_unexpected(ioError(path, buf.error()));
  return buf.hexDigest();
}

// Validates the whole source in two passes over it and emits each normalised command, in
// order, as soon as it is known to be valid (so nothing is emitted for a protocol whose
// top level is invalid; commands after an invalid one are never emitted):
//  1. the document with every element of `commands` skipped (a syntax error anywhere is
//     found here, before any validation), then everything but the commands is validated;
//  2. the file again, building one element of `commands` at a time: validated, emitted,
//     dropped.
// Memory: the document less its commands, and one command. `sha256`: digest of pass 1's text
// (files). `sha256After`: of pass 2's (files), to tell a file that changed during the passes.
// `stopped`: set when `emit` returned false (the caller wanted no more). `expectSha256`: pass 1's
// digest must be this (the file validated before), else nothing is emitted.
Result<void> validatePasses(const Source& src, Protocol& out, const std::function<bool(json&&)>& emit,
                            std::string* sha256, std::string* sha256After, bool* stopped = nullptr,
                            const std::string* expectSha256 = nullptr,
                            std::shared_ptr<const json> knownTop = nullptr,
                            std::shared_ptr<const json>* topOut = nullptr) {
  using Event = json::parse_event_t;
  // Pass 1: everything but the command elements.
  int commandsMembers = 0;
  bool inCommands = false;
  auto skipCommands = [&](int depth, Event event, json& parsed) -> bool {
    if (depth == 1 && event == Event::key) {
      inCommands = parsed.is_string() && parsed.get_ref<const std::string&>() == "commands";
      if (inCommands) ++commandsMembers;
      return true;
    }
    if (inCommands && depth == 2 &&
        (event == Event::object_start || event == Event::array_start || event == Event::value)) {
      return false;
    }
    return true;
  };
  std::shared_ptr<const json> doc = knownTop;
  if (doc) {
    // The top level was parsed when the file was validated: only its digest is checked now
    // (hashing is far cheaper than lexing every command a second time).
    if (auto digest = fileSha256(src.path); !digest) {
      return tl::make_unexpected(digest.error());
    } else if (sha256) {
      *sha256 = *digest;
    }
  } else {
    auto parsed = parsePass(src, skipCommands, sha256);
    if (!parsed) return tl::make_unexpected(parsed.error());
    if (commandsMembers > 1) return tl::make_unexpected(invalid(src.name, "commands: appears more than once"));
    doc = std::make_shared<const json>(std::move(*parsed));
  }
  if (expectSha256 && sha256 && *sha256 != *expectSha256)
    return tl::make_unexpected(changedAfterValidation(src.name));
  if (topOut) *topOut = doc;

  bool emitStopped = false;
  Validator validator(*doc, out, [&](json&& command) {
    if (!emit(std::move(command))) {
      emitStopped = true;
      throw StopPass{};
    }
  });
  if (auto problem = validator.top()) return tl::make_unexpected(invalid(src.name, *problem));
  if (!doc->is_object() || !doc->contains("commands") || !doc->at("commands").is_array()) return {};  // top() checked

  // Pass 2: one command at a time. Other top-level members are skipped unbuilt.
  std::size_t index = 0;
  std::optional<std::string> problem;
  inCommands = false;
  auto eachCommand = [&](int depth, Event event, json& parsed) -> bool {
    if (depth == 1 && event == Event::key) {
      inCommands = parsed.is_string() && parsed.get_ref<const std::string&>() == "commands";
      return inCommands;
    }
    if (!inCommands || depth != 2) return true;
    if (event == Event::object_end || event == Event::array_end || event == Event::value) {
      problem = validator.command(parsed, index++);
      if (problem) throw StopPass{};
      return false;  // dropped: the array stays empty
    }
    return true;
  };
  try {
    auto again = parsePass(src, eachCommand, sha256After);
    if (!again) return tl::make_unexpected(again.error());
  } catch (const StopPass&) {
    if (stopped) *stopped = emitStopped;
    if (problem) return tl::make_unexpected(invalid(src.name, *problem));
  }
  return {};
}

Result<Protocol> parse(const Source& src) {
  try {
    Protocol protocol;
    protocol.source = src.name;
    std::string sha;
    auto st = validatePasses(
        src, protocol,
        [&](json&& command) {
          protocol.commands.push_back(std::move(command));
          return true;
        },
        &sha, nullptr);
    if (!st) return tl::make_unexpected(st.error());
    protocol.commandCount = protocol.commands.size();
    protocol.sha256 = src.text ? sha256Hex(*src.text) : sha;
    return protocol;
  } catch (const std::exception& e) {
    return tl::make_unexpected(invalid(src.name, std::string("internal error: ") + e.what()));
  } catch (...) {
    return tl::make_unexpected(invalid(src.name, "internal error"));
  }
}

}  // namespace

Result<Protocol> parseProtocol(std::string text, const std::string& name) {
  Source src{name, &text, {}};
  auto protocol = parse(src);
  if (protocol) protocol->text = std::move(text);
  return protocol;
}

Result<Protocol> loadProtocol(const std::filesystem::path& path) {
  std::string text;
  try {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                         &std::fclose);
    if (!file) return tl::make_unexpected(ioError(path, errno));
    char buffer[1 << 16];
    while (true) {
      std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
      text.append(buffer, n);
      if (n < sizeof buffer) break;
    }
    if (std::ferror(file.get())) return tl::make_unexpected(ioError(path, errno));
  } catch (const std::exception& e) {
    return tl::make_unexpected(
        Error{ErrorCode::kIo, "cannot read " + path.string() + ": " + e.what()});
  }
  auto protocol = parseProtocol(std::move(text), path.string());
  if (protocol) protocol->path = path;
  return protocol;
}

namespace {

constexpr std::size_t kSpoolPiece = std::size_t{1} << 18;  // 256 KiB: about 2,000 seed commands

// An unnamed temporary file in $TMPDIR if set, else /var/tmp (disk, by convention), else /tmp.
// -1 and `why` if none could be made.
int openTemporaryFile(std::string* why) {
  std::vector<std::string> dirs;
  if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) {
    dirs.emplace_back(tmp);
  } else {
    dirs = {"/var/tmp", "/tmp"};
  }
  for (const auto& dir : dirs) {
#ifdef O_TMPFILE
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
#endif
    std::string name = dir + "/runrec-commands-XXXXXX";
    int named = ::mkostemp(name.data(), O_CLOEXEC);
    if (named >= 0) {
      ::unlink(name.c_str());
      return named;
    }
    *why = dir + ": " + std::strerror(errno);
  }
  return -1;
}

// Writes the commands emitted by openProtocol's validation to a CommandSpool, in 256 KiB pieces.
// A failure (no temporary directory, a full disk) is not an error of the protocol: the
// spool is dropped and the commands are validated again as they are sent.
class SpoolWriter {
 public:
  SpoolWriter() : spool_(std::make_shared<CommandSpool>()) {
    spool_->fd = openTemporaryFile(&why_);
    if (spool_->fd < 0) spool_.reset();
    else buffer_.reserve(kSpoolPiece + 4096);
  }
  void add(const json& command) {
    if (!spool_) return;
    buffer_ += dumpJson(command);  // the text bus::encode would write for it
    buffer_ += '\n';
    ++spool_->commands;
    if (buffer_.size() >= kSpoolPiece) flush();
  }
  // The spool, or null (and why()) if it could not be written.
  std::shared_ptr<const CommandSpool> finish() {
    flush();
    return spool_;
  }
  const std::string& why() const { return why_; }

 private:
  void flush() {
    std::size_t done = 0;
    while (spool_ && done < buffer_.size()) {
      ssize_t n = ::write(spool_->fd, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        why_ = std::string("write: ") + std::strerror(n < 0 ? errno : EIO);
        spool_.reset();
      } else {
        done += static_cast<std::size_t>(n);
      }
    }
    buffer_.clear();
  }

  std::shared_ptr<CommandSpool> spool_;
  std::string buffer_;
  std::string why_;
};

// Gives each line of the spool to `visit` (without the newline) until it returns false.
Result<void> readSpool(const CommandSpool& spool, const std::string& name,
                       const std::function<bool(std::string_view)>& visit) {
  std::vector<char> buffer(kSpoolPiece);
  std::size_t start = 0, end = 0, given = 0;
  off_t offset = 0;
  for (;;) {
    while (start < end) {
      const char* line = buffer.data() + start;
      const void* newline = std::memchr(line, '\n', end - start);
      if (!newline) break;
      const std::size_t length = static_cast<std::size_t>(static_cast<const char*>(newline) - line);
      ++given;
      if (!visit(std::string_view(line, length))) return {};
      start += length + 1;
    }
    if (start > 0) {  // keep the partial line at the front
      std::memmove(buffer.data(), buffer.data() + start, end - start);
      end -= start;
      start = 0;
    }
    if (end == buffer.size()) buffer.resize(buffer.size() * 2);  // a command longer than the buffer
    ssize_t n = ::pread(spool.fd, buffer.data() + end, buffer.size() - end, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return tl::make_unexpected(Error{ErrorCode::kIo, "cannot read the temporary copy of " + name +
                                                           "'s commands: " + std::strerror(errno)});
    if (n == 0) break;
    end += static_cast<std::size_t>(n);
    offset += n;
  }
  if (end != 0 || given != spool.commands)
    return tl::make_unexpected(Error{ErrorCode::kIo, "the temporary copy of " + name + "'s commands is incomplete (" +
                                                         std::to_string(given) + " of " +
                                                         std::to_string(spool.commands) + " commands)"});
  return {};
}

}  // namespace

Result<Protocol> openProtocol(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return tl::make_unexpected(ioError(path, EISDIR));
  Source src{path.string(), nullptr, path};
  try {
    Protocol protocol;
    protocol.source = src.name;
    protocol.path = path;
    protocol.streamed = true;
    std::size_t count = 0;
    std::string sha, shaAfter;
    SpoolWriter spool;
    auto st = validatePasses(
        src, protocol,
        [&](json&& command) {
          spool.add(command);
          ++count;
          return true;
        },
        &sha, &shaAfter, nullptr, nullptr, nullptr, &protocol.document);
    if (!st) return tl::make_unexpected(st.error());
    if (sha != shaAfter) return tl::make_unexpected(invalid(src.name, "the file changed while it was being read"));
    protocol.commandCount = count;
    protocol.sha256 = sha;
    protocol.spool = spool.finish();
    if (!protocol.spool) {
      spdlog::warn("cannot keep the validated commands of {} in a temporary file ({}); each is validated again as it "
                   "is sent",
                   src.name, spool.why());
    }
    return protocol;
  } catch (const std::exception& e) {
    return tl::make_unexpected(invalid(src.name, std::string("internal error: ") + e.what()));
  } catch (...) {
    return tl::make_unexpected(invalid(src.name, "internal error"));
  }
}

Result<void> forEachCommandText(const Protocol& protocol, const std::function<bool(std::string_view)>& visit,
                                FileCheck check) {
  try {
    if (!protocol.streamed || !protocol.spool) {
      return forEachCommand(protocol, [&](json& command) { return visit(dumpJson(command)); });
    }
    if (check == FileCheck::kDigest) {
      auto digest = fileSha256(protocol.path);
      if (!digest) return tl::make_unexpected(digest.error());
      if (*digest != protocol.sha256) return tl::make_unexpected(changedAfterValidation(protocol.source));
    }
    return readSpool(*protocol.spool, protocol.source, visit);
  } catch (const std::exception& e) {
    return tl::make_unexpected(invalid(protocol.source, std::string("internal error: ") + e.what()));
  }
}

Result<void> forEachCommand(const Protocol& protocol, const std::function<bool(nlohmann::json&)>& visit,
                            FileCheck check) {
  if (!protocol.streamed) {
    for (const json& command : protocol.commands) {
      json copy = command;
      if (!visit(copy)) break;
    }
    return {};
  }
  if (protocol.spool) {
    std::optional<std::string> bad;
    auto st = forEachCommandText(
        protocol,
        [&](std::string_view text) {
          json command;
          std::string error;
          if (!bus::parseJson(text, command, error)) {
            bad = error;
            return false;
          }
          return visit(command);
        },
        check);
    if (!st) return st;
    if (bad) return tl::make_unexpected(invalid(protocol.source, "internal error: a spooled command: " + *bad));
    return {};
  }
  Source src{protocol.source, nullptr, protocol.path};
  try {
    // No spool: validated again as it is read. A file changed since openProtocol is caught by
    // its digest (hashed whole first) before any command is given to `visit`; a change
    // during the run can only make a later command fail validation (it is then not given)
    // or differ from what was validated, which the second digest reports at the end.
    Protocol again;
    again.source = protocol.source;
    std::string sha, shaAfter;
    bool stopped = false;
    auto st = validatePasses(
        src, again, [&](json&& command) { return visit(command); }, &sha, &shaAfter, &stopped, &protocol.sha256,
        protocol.document);
    if (!st) return tl::make_unexpected(st.error());
    if (!stopped && shaAfter != protocol.sha256)
      return tl::make_unexpected(invalid(src.name, "the file changed while it was being run"));
    return {};
  } catch (const std::exception& e) {
    return tl::make_unexpected(invalid(src.name, std::string("internal error: ") + e.what()));
  }
}

}  // namespace runrec::runner
