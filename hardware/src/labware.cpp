// Labware definitions: strict schema-v2 validation (errors name the JSON path) and lookup.
#include "runrec/hardware/labware.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>

#include "builtin_labware.hpp"

namespace runrec::hardware {
namespace {

using nlohmann::json;

// Describes a JSON value for "expected X, got Y" messages; long values are shortened.
std::string describe(const json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// Member access in a path: `.name` for identifier-like keys, `["key"]` otherwise.
std::string member(const std::string& path, const std::string& key) {
  static const std::regex identifier("^[A-Za-z_][A-Za-z0-9_]*$");
  if (std::regex_match(key, identifier)) return path + "." + key;
  return path + "[" + json(key).dump() + "]";
}

// Walks a definition collecting every violation, each prefixed with its JSON path.
class Checker {
 public:
  std::vector<std::string> errors;

  void error(const std::string& path, const std::string& what) { errors.push_back(path + ": " + what); }

  // Returns the member if present (else records "missing").
  const json* field(const json& object, const std::string& path, const std::string& key) {
    auto it = object.find(key);
    if (it == object.end()) {
      error(member(path, key), "missing required field");
      return nullptr;
    }
    return &*it;
  }
  const json* object(const json& parent, const std::string& path, const std::string& key) {
    const json* value = field(parent, path, key);
    if (value && !value->is_object()) {
      error(member(path, key), "expected an object, got " + describe(*value));
      return nullptr;
    }
    return value;
  }
  std::optional<double> number(const json& parent, const std::string& path, const std::string& key) {
    const json* value = field(parent, path, key);
    if (!value) return std::nullopt;
    if (!value->is_number()) {
      error(member(path, key), "expected a number, got " + describe(*value));
      return std::nullopt;
    }
    return value->get<double>();
  }
  std::optional<std::string> string(const json& parent, const std::string& path, const std::string& key) {
    const json* value = field(parent, path, key);
    if (!value) return std::nullopt;
    if (!value->is_string()) {
      error(member(path, key), "expected a string, got " + describe(*value));
      return std::nullopt;
    }
    return value->get<std::string>();
  }
  std::optional<bool> boolean(const json& parent, const std::string& path, const std::string& key) {
    const json* value = field(parent, path, key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) {
      error(member(path, key), "expected true or false, got " + describe(*value));
      return std::nullopt;
    }
    return value->get<bool>();
  }
};

bool safeString(const std::string& text) {
  static const std::regex pattern("^[a-z0-9._]+$");
  return std::regex_match(text, pattern);
}

}  // namespace

std::string LabwareDefinition::uri() const { return ns + "/" + loadName + "/" + std::to_string(version); }

const WellDefinition* LabwareDefinition::well(std::string_view name) const {
  auto it = wells.find(std::string(name));
  return it == wells.end() ? nullptr : &it->second;
}

std::vector<std::string> LabwareDefinition::wellsInOrder() const {
  std::vector<std::string> names;
  for (const auto& column : ordering) names.insert(names.end(), column.begin(), column.end());
  return names;
}

Result<LabwareDefinition> LabwareDefinition::fromJson(const json& j, const std::string& where) {
  Checker c;
  LabwareDefinition d;
  if (!j.is_object()) {
    return fail(ErrorCode::kInvalidDefinition, where + ": expected an object, got " + describe(j));
  }
  const std::string& root = where;

  if (const json* schema = c.field(j, root, "schemaVersion")) {
    if (!schema->is_number() || schema->get<double>() != 2) {
      c.error(member(root, "schemaVersion"), "expected 2, got " + describe(*schema));
    }
  }
  if (const json* version = c.field(j, root, "version")) {
    if (!version->is_number_integer() || version->get<long long>() < 1 || version->get<long long>() > 1000000) {
      c.error(member(root, "version"), "expected an integer >= 1, got " + describe(*version));
    } else {
      d.version = version->get<int>();
    }
  }
  if (auto ns = c.string(j, root, "namespace")) {
    if (!safeString(*ns)) c.error(member(root, "namespace"), "expected lowercase [a-z0-9._]+, got " + json(*ns).dump());
    d.ns = *ns;
  }

  if (const json* metadata = c.object(j, root, "metadata")) {
    std::string path = member(root, "metadata");
    if (auto v = c.string(*metadata, path, "displayName")) d.displayName = *v;
    if (auto v = c.string(*metadata, path, "displayCategory")) d.displayCategory = *v;
    c.string(*metadata, path, "displayVolumeUnits");
  }
  if (const json* brand = c.object(j, root, "brand")) c.string(*brand, member(root, "brand"), "brand");

  if (const json* parameters = c.object(j, root, "parameters")) {
    std::string path = member(root, "parameters");
    c.string(*parameters, path, "format");
    c.boolean(*parameters, path, "isMagneticModuleCompatible");
    if (auto v = c.string(*parameters, path, "loadName")) {
      if (!safeString(*v)) c.error(member(path, "loadName"), "expected lowercase [a-z0-9._]+, got " + json(*v).dump());
      d.loadName = *v;
    }
    if (auto v = c.boolean(*parameters, path, "isTiprack")) d.isTiprack = *v;
    if (d.isTiprack) {
      if (auto v = c.number(*parameters, path, "tipLength")) {
        if (*v <= 0) c.error(member(path, "tipLength"), "expected a positive number, got " + describe((*parameters)["tipLength"]));
        d.tipLength = *v;
      }
    }
    if (parameters->contains("tipOverlap")) {
      if (auto v = c.number(*parameters, path, "tipOverlap")) d.tipOverlap = *v;
    }
    if (auto it = parameters->find("quirks"); it != parameters->end()) {
      if (!it->is_array()) {
        c.error(member(path, "quirks"), "expected an array of strings, got " + describe(*it));
      } else {
        for (size_t i = 0; i < it->size(); ++i) {
          if (!(*it)[i].is_string()) {
            c.error(member(path, "quirks") + "[" + std::to_string(i) + "]", "expected a string, got " + describe((*it)[i]));
          } else {
            d.quirks.push_back((*it)[i].get<std::string>());
          }
        }
      }
    }
  }

  if (const json* corner = c.object(j, root, "cornerOffsetFromSlot")) {
    std::string path = member(root, "cornerOffsetFromSlot");
    const char* axes[] = {"x", "y", "z"};
    for (int i = 0; i < 3; ++i) {
      if (auto v = c.number(*corner, path, axes[i])) d.cornerOffset[i] = *v;
    }
  }
  if (const json* dims = c.object(j, root, "dimensions")) {
    std::string path = member(root, "dimensions");
    if (auto v = c.number(*dims, path, "xDimension")) d.xDimension = *v;
    if (auto v = c.number(*dims, path, "yDimension")) d.yDimension = *v;
    if (auto v = c.number(*dims, path, "zDimension")) d.zDimension = *v;
  }

  if (const json* wells = c.object(j, root, "wells")) {
    std::string path = member(root, "wells");
    static const std::regex wellName("^[A-Z]+[0-9]+$");
    if (wells->empty()) c.error(path, "expected at least one well");
    for (const auto& [name, w] : wells->items()) {
      std::string wpath = member(path, name);
      if (!std::regex_match(name, wellName)) c.error(wpath, "well names look like A1 ([A-Z]+[0-9]+)");
      if (!w.is_object()) {
        c.error(wpath, "expected an object, got " + describe(w));
        continue;
      }
      WellDefinition well;
      well.name = name;
      if (auto v = c.number(w, wpath, "x")) well.x = *v;
      if (auto v = c.number(w, wpath, "y")) well.y = *v;
      if (auto v = c.number(w, wpath, "z")) well.z = *v;
      if (auto v = c.number(w, wpath, "depth")) {
        if (*v < 0) c.error(member(wpath, "depth"), "expected a number >= 0, got " + describe(w["depth"]));
        well.depth = *v;
      }
      if (auto v = c.number(w, wpath, "totalLiquidVolume")) well.totalLiquidVolume = *v;
      if (auto shape = c.string(w, wpath, "shape")) {
        well.shape = *shape;
        if (*shape == "circular") {
          if (auto v = c.number(w, wpath, "diameter")) well.diameter = *v;
          if (w.contains("xDimension") || w.contains("yDimension")) {
            c.error(wpath, "a circular well has a diameter, not xDimension/yDimension");
          }
        } else if (*shape == "rectangular") {
          if (auto v = c.number(w, wpath, "xDimension")) well.xDimension = *v;
          if (auto v = c.number(w, wpath, "yDimension")) well.yDimension = *v;
          if (w.contains("diameter")) c.error(wpath, "a rectangular well has xDimension/yDimension, not a diameter");
        } else {
          c.error(member(wpath, "shape"), "expected \"circular\" or \"rectangular\", got " + json(*shape).dump());
        }
      }
      d.wells.emplace(name, std::move(well));
    }
  }

  if (const json* ordering = c.field(j, root, "ordering")) {
    std::string path = member(root, "ordering");
    if (!ordering->is_array() || ordering->empty()) {
      c.error(path, "expected a non-empty array of columns, got " + describe(*ordering));
    } else {
      std::set<std::string> seen;
      for (size_t col = 0; col < ordering->size(); ++col) {
        const json& column = (*ordering)[col];
        std::string cpath = path + "[" + std::to_string(col) + "]";
        if (!column.is_array()) {
          c.error(cpath, "expected an array of well names, got " + describe(column));
          continue;
        }
        std::vector<std::string> names;
        for (size_t row = 0; row < column.size(); ++row) {
          std::string rpath = cpath + "[" + std::to_string(row) + "]";
          if (!column[row].is_string()) {
            c.error(rpath, "expected a well name, got " + describe(column[row]));
            continue;
          }
          std::string name = column[row].get<std::string>();
          if (j.contains("wells") && j["wells"].is_object() && !j["wells"].contains(name)) {
            c.error(rpath, "names well " + json(name).dump() + ", which is not in wells");
          }
          if (!seen.insert(name).second) c.error(rpath, "well " + json(name).dump() + " appears twice");
          names.push_back(std::move(name));
        }
        d.ordering.push_back(std::move(names));
      }
      if (j.contains("wells") && j["wells"].is_object()) {
        for (const auto& [name, _] : j["wells"].items()) {
          if (!seen.count(name)) c.error(path, "well " + json(name).dump() + " is missing from ordering");
        }
      }
    }
  }

  if (const json* groups = c.field(j, root, "groups")) {
    std::string path = member(root, "groups");
    if (!groups->is_array()) {
      c.error(path, "expected an array, got " + describe(*groups));
    } else {
      for (size_t i = 0; i < groups->size(); ++i) {
        std::string gpath = path + "[" + std::to_string(i) + "]";
        const json& group = (*groups)[i];
        if (!group.is_object()) {
          c.error(gpath, "expected an object, got " + describe(group));
          continue;
        }
        c.object(group, gpath, "metadata");
        if (const json* gw = c.field(group, gpath, "wells"); gw && !gw->is_array()) {
          c.error(member(gpath, "wells"), "expected an array of well names, got " + describe(*gw));
        }
      }
    }
  }

  if (!c.errors.empty()) {
    std::string message = c.errors.front();
    if (c.errors.size() > 1) message += " (and " + std::to_string(c.errors.size() - 1) + " more)";
    return fail(ErrorCode::kInvalidDefinition, message, {{"errors", c.errors}});
  }
  d.raw = j;
  return d;
}

// ---- LabwareLibrary

namespace {

struct ParsedUri {
  std::string ns, loadName;
  int version = 0;
};

std::optional<ParsedUri> parseUri(std::string_view uri) {
  auto first = uri.find('/');
  auto last = uri.rfind('/');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  ParsedUri parsed{std::string(uri.substr(0, first)), std::string(uri.substr(first + 1, last - first - 1)), 0};
  auto version = uri.substr(last + 1);
  if (version.empty() || version.size() > 6 ||
      !std::all_of(version.begin(), version.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return std::nullopt;
  }
  parsed.version = std::stoi(std::string(version));
  return parsed;
}

// One built-in, generated and validated the first time it is asked for (a run needs two or
// three of them; generating all of them costs tens of millions of instructions), then kept
// for the life of the process. nullptr if there is no such built-in. Thread-safe.
LabwareDefinitionPtr builtIn(std::string_view loadName, int version) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, int>, LabwareDefinitionPtr, std::less<>> made;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(std::string(loadName), version);
  if (auto it = made.find(key); it != made.end()) return it->second;
  auto j = detail::builtinLabwareJson(loadName, version);
  if (!j) return nullptr;
  auto parsed = LabwareDefinition::fromJson(*j, "builtin");
  // A built-in that does not validate is a bug in builtin_labware.cpp; the tests catch it.
  if (!parsed) return nullptr;
  auto def = std::make_shared<const LabwareDefinition>(std::move(*parsed));
  made.emplace(std::move(key), def);
  return def;
}

}  // namespace

LabwareLibrary::LabwareLibrary() = default;

const std::vector<LabwareDefinitionPtr>& LabwareLibrary::builtIns() {
  static const std::vector<LabwareDefinitionPtr> all = [] {
    std::vector<LabwareDefinitionPtr> defs;
    for (const auto& [loadName, version] : builtInIds())
      if (auto def = builtIn(loadName, version)) defs.push_back(std::move(def));
    return defs;
  }();
  return all;
}

Status LabwareLibrary::add(const nlohmann::json& definition, const std::string& where) {
  auto parsed = LabwareDefinition::fromJson(definition, where);
  if (!parsed) return tl::unexpected(parsed.error());
  auto ptr = std::make_shared<const LabwareDefinition>(std::move(*parsed));
  custom_[ptr->uri()] = std::move(ptr);
  return {};
}

Status LabwareLibrary::addDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return fail(ErrorCode::kNotFound, "labware directory " + dir.string() + " does not exist",
                {{"path", dir.string()}});
  }
  std::vector<std::filesystem::path> files;
  for (const auto& sub : std::filesystem::directory_iterator(dir, ec)) {
    if (!sub.is_directory()) continue;
    for (const auto& file : std::filesystem::directory_iterator(sub.path(), ec)) {
      if (file.path().extension() == ".json") files.push_back(file.path());
    }
  }
  if (ec) return fail(ErrorCode::kCommunication, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return fail(ErrorCode::kInvalidDefinition, file.string() + ": not valid JSON", {{"path", file.string()}});
    }
    auto parsed = LabwareDefinition::fromJson(j, file.string());
    if (!parsed) return tl::unexpected(parsed.error());
    std::string expectedLoadName = file.parent_path().filename().string();
    std::string expectedVersion = file.stem().string();
    if (parsed->loadName != expectedLoadName || std::to_string(parsed->version) != expectedVersion) {
      return fail(ErrorCode::kInvalidDefinition,
                  file.string() + ": file is laid out as " + expectedLoadName + "/" + expectedVersion +
                      ".json but defines " + parsed->loadName + " version " + std::to_string(parsed->version),
                  {{"path", file.string()}});
    }
    auto ptr = std::make_shared<const LabwareDefinition>(std::move(*parsed));
    directory_[ptr->uri()] = std::move(ptr);
  }
  return {};
}

const std::vector<std::pair<std::string, int>>& LabwareLibrary::builtInIds() {
  static const std::vector<std::pair<std::string, int>> ids = detail::builtinLabwareIds();
  return ids;
}

Result<LabwareDefinitionPtr> LabwareLibrary::find(std::string_view uri) const {
  if (auto it = custom_.find(uri); it != custom_.end()) return it->second;
  if (auto it = directory_.find(uri); it != directory_.end()) return it->second;
  auto parsed = parseUri(uri);
  // Built-ins are all "opentrons/<loadName>/<version>", the version without leading zeros.
  if (parsed && parsed->ns == "opentrons")
    if (auto def = builtIn(parsed->loadName, parsed->version); def && def->uri() == uri) return def;
  if (!parsed) {
    return fail(ErrorCode::kNotFound,
                "labware URI \"" + std::string(uri) + "\" is not of the form namespace/loadName/version",
                {{"uri", std::string(uri)}});
  }
  return fail(ErrorCode::kNotFound,
              "no labware definition \"" + std::string(uri) + "\" (searched " + std::to_string(custom_.size()) +
                  " protocol definitions, " + std::to_string(directory_.size()) + " from directories, " +
                  std::to_string(builtInIds().size()) + " built-in)",
              {{"uri", std::string(uri)}});
}

Result<LabwareDefinitionPtr> LabwareLibrary::find(std::string_view ns, std::string_view loadName,
                                                  int version) const {
  return find(std::string(ns) + "/" + std::string(loadName) + "/" + std::to_string(version));
}

}  // namespace runrec::hardware
