// Module options shared by `runrec run` and `runrec engine` (--modules, --module,
// --module-time-scale), and `runrec module` (a virtual module on a pseudo-terminal).
// docs/modules.md describes them.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runrec/engine/engine.hpp"

namespace runrec::cli {

struct ModuleFlags {
  std::string modules = "sim";
  std::vector<std::string> bindings;
  double timeScale = 0;
  bool given() const { return modules != "sim" || !bindings.empty() || timeScale != 0; }
};
void addModuleOptions(CLI::App* cmd, ModuleFlags& flags);
// Builds the engine's module hub into eo.modules. Returns kOk, or prints the problem and
// returns the exit code.
int configureModules(const ModuleFlags& flags, engine::EngineOptions& eo);

void addModuleCommand(CLI::App& app, int& exitCode);

}  // namespace runrec::cli
