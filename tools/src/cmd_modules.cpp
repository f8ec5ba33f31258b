// Module options (--modules, --module, --module-time-scale) and `runrec module --pty`.
#include <csignal>
#include <iostream>

#include "cli_common.hpp"
#include "cli_modules.hpp"
#include "runrec/hardware/modules.hpp"

namespace runrec::cli {
namespace {
std::atomic<bool> gModuleStop{false};
void onModuleStopSignal(int) { gModuleStop = true; }
}  // namespace

void addModuleOptions(CLI::App* cmd, ModuleFlags& flags) {
  cmd->add_option("--modules", flags.modules,
                  "Modules the protocol loads: sim (in-process virtual modules) or none (only those "
                  "bound with --module)")
      ->check(CLI::IsMember({"sim", "none"}))
      ->capture_default_str();
  cmd->add_option("--module", flags.bindings,
                  "Bind a module model (optionally in one slot) to a device, repeatable: "
                  "MODEL[@SLOT]=serial:DEVICE or MODEL[@SLOT]=sim[:FAULT,...], e.g. "
                  "temperatureModuleV2=serial:/dev/ttyACM1, heaterShakerModuleV1@1=sim:error@3 "
                  "(docs/modules.md)");
  cmd->add_option("--module-time-scale", flags.timeScale,
                  "Virtual modules: 1 = temperatures ramp and holds last in real time, 0 = instant")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

int configureModules(const ModuleFlags& flags, engine::EngineOptions& eo) {
  hardware::ModuleHubOptions ho;
  ho.simulateUnbound = flags.modules == "sim";
  ho.sim.timeScale = flags.timeScale;
  for (const auto& text : flags.bindings) {
    auto b = hardware::parseModuleBinding(text);
    if (!b) return error(kBadInput, b.error().message);
    ho.bindings.push_back(std::move(*b));
  }
  eo.modules = std::make_shared<hardware::ModuleHub>(std::move(ho));
  return kOk;
}

void addModuleCommand(CLI::App& app, int& exitCode) {
  struct Opts {
    bool pty = false;
    std::string model;
    double timeScale = 0;
    double rate = 2.0;
    std::vector<std::string> faults;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("module", "Serve one of runrec's virtual OT-2 modules on a pseudo-terminal");
  std::string models;
  for (auto& m : hardware::moduleModels()) models += (models.empty() ? "" : ", ") + m.model;
  cmd->description(
      "Start a virtual module on a pseudo-terminal, print its device path on stdout and answer\n"
      "its G-code until Ctrl-C / SIGTERM. Drive it with `runrec run --module MODEL=serial:PATH`.\n"
      "Models: " + models + ".\n"
      "Faults: KIND@N with KIND error, drop, garbage or silent, on the Nth command line.");
  cmd->add_flag("--pty", o->pty, "Serve on a pseudo-terminal (the only transport so far)")->required();
  cmd->add_option("--model", o->model, "Module model, e.g. temperatureModuleV2")->required();
  cmd->add_option("--time-scale", o->timeScale, "Temperature ramps and holds: 1 real time, 0 instant")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--rate", o->rate, "Heating and cooling rate, °C per second")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--fault", o->faults, "Inject a fault, e.g. error@3 (repeatable)");
  cmd->callback([o, &exitCode] {
    const auto* model = hardware::findModuleModel(o->model);
    if (!model) {
      exitCode = error(kBadInput, "--model: unknown module model \"" + o->model + "\"");
      return;
    }
    hardware::VirtualModuleOptions vo;
    vo.timeScale = o->timeScale;
    vo.degreesPerSecond = o->rate;
    for (auto& f : o->faults) {
      auto fault = hardware::parseModuleFault(f);
      if (!fault) {
        exitCode = error(kBadInput, fault.error().message);
        return;
      }
      vo.faults.push_back(*fault);
    }
    hardware::VirtualModule module(model->model, model->type, vo);
    auto pty = hardware::PtyModule::open(module);
    if (!pty) {
      exitCode = error(kSystemError, pty.error().message);
      return;
    }
    std::cout << (*pty)->path() << std::endl;
    std::signal(SIGINT, onModuleStopSignal);
    std::signal(SIGTERM, onModuleStopSignal);
    auto st = (*pty)->serve(gModuleStop);
    std::cerr << "runrec module: " << model->model << ", " << module.commands() << " command lines\n";
    if (!st) exitCode = error(kSystemError, st.error().message);
  });
}

}  // namespace runrec::cli
