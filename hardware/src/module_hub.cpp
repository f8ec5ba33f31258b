// ModuleHub: which device serves which loaded module: bindings from the command line
// (`--module MODEL[@SLOT]=serial:DEVICE|sim[:FAULT,...]`) and in-process virtual modules
// for the rest. Devices stay open across runs; module ids are mapped again every run.
#include "runrec/hardware/modules.hpp"

namespace runrec::hardware {

Result<ModuleBinding> parseModuleBinding(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == text.size())
    return fail(ErrorCode::kInvalidArgument, "--module " + std::string(text) +
                                                 ": expected MODEL[@SLOT]=serial:DEVICE or MODEL[@SLOT]=sim[:FAULT,...]");
  ModuleBinding b;
  std::string_view left = text.substr(0, eq), right = text.substr(eq + 1);
  auto at = left.find('@');
  b.model = std::string(left.substr(0, at));
  if (at != std::string_view::npos) b.slot = std::string(left.substr(at + 1));
  if (!findModuleModel(b.model)) {
    std::string known;
    for (auto& m : moduleModels()) known += (known.empty() ? "" : ", ") + m.model;
    return fail(ErrorCode::kInvalidArgument, "--module " + std::string(text) + ": unknown module model \"" + b.model +
                                                 "\" (known: " + known + ")");
  }
  if (!b.slot.empty())
    if (auto o = slotOrigin(b.slot); !o)
      return fail(ErrorCode::kInvalidArgument, "--module " + std::string(text) + ": " + o.error().message);
  if (right.rfind("serial:", 0) == 0 && right.size() > 7) {
    b.device = std::string(right);
    return b;
  }
  if (right == "sim" || right.rfind("sim:", 0) == 0) {
    b.device = "sim";
    std::string_view faults = right.size() > 4 ? right.substr(4) : std::string_view();
    while (!faults.empty()) {
      auto comma = faults.find(',');
      auto f = parseModuleFault(faults.substr(0, comma));
      if (!f) return fail(ErrorCode::kInvalidArgument, "--module " + std::string(text) + ": " + f.error().message);
      b.faults.push_back(*f);
      if (comma == std::string_view::npos) break;
      faults.remove_prefix(comma + 1);
    }
    return b;
  }
  return fail(ErrorCode::kInvalidArgument,
              "--module " + std::string(text) + ": the device must be serial:DEVICE or sim[:FAULT,...]");
}

struct ModuleHub::Device {
  const ModuleModel* model = nullptr;
  std::string slot;     // the binding's slot, or the slot a simulated module was made for
  const ModuleBinding* binding = nullptr;
  std::unique_ptr<VirtualModule> sim;
  std::unique_ptr<ModuleDriver> driver;
  bool inUse = false;   // attached to a module id in this run
};

ModuleHub::ModuleHub(ModuleHubOptions options) : options_(std::move(options)) {}
ModuleHub::~ModuleHub() = default;

void ModuleHub::beginRun() {
  byModuleId_.clear();
  for (auto& d : devices_) d->inUse = false;
}

ModuleDriver* ModuleHub::find(const std::string& moduleId) {
  auto it = byModuleId_.find(moduleId);
  return it == byModuleId_.end() ? nullptr : it->second->driver.get();
}

VirtualModule* ModuleHub::virtualModule(const std::string& moduleId) {
  auto it = byModuleId_.find(moduleId);
  return it == byModuleId_.end() ? nullptr : it->second->sim.get();
}

Result<ModuleDriver*> ModuleHub::attach(const std::string& moduleId, const std::string& modelName, const std::string& slot) {
  if (auto* d = find(moduleId)) return d;
  const ModuleModel* model = findModuleModel(modelName);
  if (!model) return fail(ErrorCode::kNotFound, "unknown module model \"" + modelName + "\"", {{"model", modelName}});
  // A binding for this model (and slot, if it names one) that no module of this run uses yet.
  const ModuleBinding* binding = nullptr;
  for (const auto& b : options_.bindings) {
    if (b.model != modelName || (!b.slot.empty() && b.slot != slot)) continue;
    bool used = false;
    for (auto& d : devices_)
      if (d->binding == &b && d->inUse) used = true;
    if (!used) {
      binding = &b;
      break;
    }
  }
  Device* device = nullptr;
  for (auto& d : devices_) {
    if (d->inUse || d->model != model) continue;
    if (binding ? d->binding == binding : (!d->binding && d->slot == slot)) {
      device = d.get();
      break;
    }
  }
  if (!device) {
    if (!binding && !options_.simulateUnbound)
      return fail(ErrorCode::kNotFound,
                  "no " + model->displayName + " is connected for slot " + slot + " (use --module " + modelName +
                      "=serial:DEVICE, or --modules sim)",
                  {{"model", modelName}, {"slotName", slot}});
    auto d = std::make_unique<Device>();
    d->model = model;
    d->binding = binding;
    d->slot = binding ? binding->slot : slot;
    if (binding && binding->device.rfind("serial:", 0) == 0) {
      auto port = openSerialPort(binding->device.substr(7));
      if (!port)
        return fail(ErrorCode::kCommunication,
                    model->displayName + " on " + binding->device.substr(7) + ": " + port.error().message,
                    {{"model", modelName}, {"device", binding->device}});
      d->driver = std::make_unique<ModuleDriver>(*model, std::move(*port), options_.driver);
    } else {
      VirtualModuleOptions vo = options_.sim;
      if (binding) vo.faults = binding->faults;
      d->sim = std::make_unique<VirtualModule>(model->model, model->type, vo);
      d->driver = std::make_unique<ModuleDriver>(*model, makeModuleLoopbackPort(*d->sim), options_.driver);
    }
    devices_.push_back(std::move(d));
    device = devices_.back().get();
  }
  device->inUse = true;
  byModuleId_[moduleId] = device;
  return device->driver.get();
}

std::string ModuleHub::describe() const {
  std::string out = options_.simulateUnbound ? "sim" : "none";
  for (const auto& b : options_.bindings) out += " " + b.model + (b.slot.empty() ? "" : "@" + b.slot) + "=" + b.device;
  return out;
}

}  // namespace runrec::hardware
