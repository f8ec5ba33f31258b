// `runrec smoothie` (the virtual Smoothie on a pseudo-terminal) and `runrec gcode` (the
// G-code the driver sends for a protocol, run through the normal pipeline).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "cli_common.hpp"
#include "cli_modules.hpp"
#include "runrec/bus/channel.hpp"
#include "runrec/engine/engine.hpp"
#include "runrec/hardware/pipettes.hpp"
#include "runrec/hardware/smoothie.hpp"
#include "runrec/runner/protocol.hpp"
#include "runrec/runner/python.hpp"
#include "runrec/runner/runner.hpp"

namespace runrec::cli {

namespace {

std::atomic<bool> gStop{false};
void onStopSignal(int) { gStop.store(true); }

// Checks a pipette model name for the virtual board ("" is fine: no instrument).
bool checkModel(const std::string& model, int& exitCode) {
  if (model.empty()) return true;
  auto spec = hardware::findPipette(model);
  if (!spec || (*spec)->model != model) {
    exitCode = error(kBadInput, "unknown pipette model \"" + model + "\" (e.g. p300_multi_v2.1, p20_single_v2.0)");
    return false;
  }
  return true;
}

// Splits a command line into its G-codes ("M907 A0.1 G4 P0.005" -> two).
void splitCodes(std::string_view line, std::vector<std::string>& out) {
  std::string current;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t end = line.find(' ', i);
    if (end == std::string_view::npos) end = line.size();
    std::string_view tok = line.substr(i, end - i);
    i = end;
    if (tok.empty()) continue;
    bool code = tok.size() >= 2 && (tok[0] == 'G' || tok[0] == 'M') && tok[1] >= '0' && tok[1] <= '9';
    if (code && !current.empty()) {
      out.push_back(std::move(current));
      current.clear();
    }
    if (!current.empty()) current += ' ';
    current += tok;
  }
  if (!current.empty()) out.push_back(std::move(current));
}

}  // namespace

void addHardwareCommands(CLI::App& app, Globals& g, int& exitCode) {
  (void)g;
  addModuleCommand(app, exitCode);  // runrec module --pty (docs/modules.md)
  {
    struct Opts {
      bool pty = false;
      std::string left, right, leftId, rightId;
      double timeScale = 0;
      std::vector<std::string> faults;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("smoothie", "Serve runrec's virtual OT-2 Smoothie board on a pseudo-terminal");
    cmd->description(
        "Start the virtual Smoothie on a pseudo-terminal, print its device path on stdout and\n"
        "answer G-code until Ctrl-C / SIGTERM. Drive it with `runrec run --robot serial:PATH`.\n"
        "Faults: KIND@N with KIND error, alarm, drop, garbage, silent or disconnect, on the Nth motion line.");
    cmd->add_flag("--pty", o->pty, "Serve on a pseudo-terminal (the only transport so far)")->required();
    cmd->add_option("--left", o->left, "Pipette model the board reports on the left mount (e.g. p300_multi_v2.1)");
    cmd->add_option("--right", o->right, "Pipette model the board reports on the right mount (e.g. p20_single_v2.0)");
    cmd->add_option("--left-id", o->leftId, "Serial number reported for the left pipette");
    cmd->add_option("--right-id", o->rightId, "Serial number reported for the right pipette");
    cmd->add_option("--time-scale", o->timeScale, "Motion time: 1 real time, 0 instant")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--fault", o->faults, "Inject a fault, e.g. alarm@3 (repeatable)");
    cmd->callback([o, &exitCode] {
      if (!checkModel(o->left, exitCode) || !checkModel(o->right, exitCode)) return;
      hardware::VirtualSmoothieOptions vo;
      vo.timeScale = o->timeScale;
      vo.leftModel = o->left;
      vo.rightModel = o->right;
      vo.leftId = !o->leftId.empty() || o->left.empty() ? o->leftId : "VIRTUAL-L";
      vo.rightId = !o->rightId.empty() || o->right.empty() ? o->rightId : "VIRTUAL-R";
      for (auto& f : o->faults) {
        auto fault = hardware::parseSmoothieFault(f);
        if (!fault) {
          exitCode = error(kBadInput, fault.error().message);
          return;
        }
        vo.faults.push_back(*fault);
      }
      hardware::VirtualSmoothie board(vo);
      auto pty = hardware::PtySmoothie::open(board);
      if (!pty) {
        exitCode = error(kSystemError, pty.error().message);
        return;
      }
      std::cout << (*pty)->path() << std::endl;
      std::signal(SIGINT, onStopSignal);
      std::signal(SIGTERM, onStopSignal);
      auto st = (*pty)->serve(gStop);
      std::cerr << "runrec smoothie: " << board.lines() << " lines, " << board.moves() << " motion lines, "
                << board.simulatedSeconds() << " s of simulated motion\n";
      if (!st) exitCode = error(kSystemError, st.error().message);
    });
  }
  {
    struct Opts {
      std::string protocol, left, right, postRun = "home";
      bool withM400 = true;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("gcode", "Print the G-code the Smoothie driver sends for a protocol");
    cmd->description(
        "Run PROTOCOL through the normal pipeline (runner, bus, engine) on the in-process\n"
        "virtual Smoothie and print every G-code the driver sends, one per line, in order.\n"
        "--left/--right name the pipette models the virtual board reports.");
    cmd->add_option("protocol", o->protocol, "Opentrons protocol: JSON, or Python (Protocol API v2, .py)")->required();
    cmd->add_option("--left", o->left, "Pipette model on the left mount (e.g. p300_multi_v2.1)");
    cmd->add_option("--right", o->right, "Pipette model on the right mount (e.g. p20_single_v2.0)");
    cmd->add_option("--post-run", o->postRun,
                    "After the run: home (stop the board as Opentrons does, then home), or stay")
        ->check(CLI::IsMember({"home", "stay"}))
        ->capture_default_str();
    cmd->callback([o, &exitCode] {
      if (!checkModel(o->left, exitCode) || !checkModel(o->right, exitCode)) return;
      std::optional<runner::PythonProtocol> python;
      runner::Result<runner::Protocol> protocol = tl::unexpected(runner::Error{runner::ErrorCode::kIo, ""});
      std::string head;
      {
        std::ifstream in(o->protocol, std::ios::binary);
        head.resize(4096);
        in.read(head.data(), static_cast<std::streamsize>(head.size()));
        head.resize(static_cast<std::size_t>(in.gcount()));
      }
      if (runner::looksLikePython(o->protocol, head)) {
        auto p = runner::loadPythonProtocol(o->protocol);
        if (!p) {
          exitCode = error(kBadInput, p.error().message);
          return;
        }
        python = std::move(*p);
      } else {
        protocol = runner::loadProtocol(o->protocol);
        if (!protocol) {
          exitCode = error(kBadInput, protocol.error().message);
          return;
        }
      }
      hardware::VirtualSmoothieOptions vo;
      vo.leftModel = o->left;
      vo.rightModel = o->right;
      // Opentrons' emulator answers every M369 with this id; so does ours, for parity.
      vo.leftId = o->left.empty() ? "" : "P20SV202020070101";
      vo.rightId = o->right.empty() ? "" : "P20SV202020070101";
      auto lines = std::make_shared<std::vector<std::string>>();
      lines->reserve(4096);
      bool verify = !o->left.empty() || !o->right.empty();
      auto robot = hardware::makeSimulatedSmoothieRobot(
          vo, [lines](std::string_view line) { splitCodes(line, *lines); }, verify);
      auto dir = std::filesystem::temp_directory_path() / ("runrec-gcode-" + std::to_string(::getpid()));
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      bus::Context ctx;
      engine::EngineOptions eo;
      eo.dbPath = (dir / "gcode.db").string();
      eo.endpoint = "inproc://runrec-gcode-" + std::to_string(::getpid());
      eo.maxRuns = 1;
      eo.postRun = o->postRun == "stay" ? engine::EngineOptions::PostRun::kStay : engine::EngineOptions::PostRun::kHome;
      auto created = engine::Engine::create(ctx, eo, std::move(robot));
      if (!created) {
        std::filesystem::remove_all(dir, ec);
        exitCode = error(kSystemError, created.error().message);
        return;
      }
      auto& eng = *created;
      eng->start();
      auto client = bus::CommandClient::connect(ctx, eo.endpoint, eo.channel);
      if (!client) {
        eng->requestShutdown();
        (void)eng->wait();
        std::filesystem::remove_all(dir, ec);
        exitCode = error(kSystemError, client.error().message);
        return;
      }
      auto result = python ? runner::runPythonProtocol(**client, *python) : runner::runProtocol(**client, *protocol);
      client->reset();
      if (!result) eng->requestShutdown();
      auto st = eng->wait();
      eng.reset();
      std::filesystem::remove_all(dir, ec);
      std::string out;
      out.reserve(lines->size() * 24);
      for (auto& l : *lines) {
        out += l;
        out += '\n';
      }
      std::cout << out << std::flush;
      if (!st) {
        exitCode = error(kSystemError, "engine: " + st.error().message);
      } else if (!result) {
        exitCode = error(kSystemError, result.error().message);
      } else if (!result->succeeded()) {
        const auto& s = result->summary;
        std::string why = s.contains("error") && s["error"].is_object() ? s["error"].value("message", "") : "";
        exitCode = error(kRunNotSucceeded, "the run did not succeed" + (why.empty() ? "" : ": " + why));
      }
    });
  }
}

}  // namespace runrec::cli
