// The embedded CPython that runs Opentrons Python protocols, and `_runrec`, the small
// extension module through which the project's `opentrons` package (runner/python) sends
// commands on the bus and looks up labware and pipettes.
//
// Python objects never leave this file; Python exceptions are turned into Error values at
// its edge. The interpreter is initialised once per process (isolated: no PYTHON* variables,
// no user site, no signal handlers: runrec owns SIGINT) and the GIL is released whenever
// C++ waits on the bus, so a watcher thread can interrupt a protocol stuck in its own loop.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "runrec/hardware/geometry.hpp"
#include "runrec/hardware/labware.hpp"
#include "runrec/hardware/pipettes.hpp"
#include "runrec/runner/python.hpp"

#ifndef RUNREC_PYTHON_SOURCE_DIR
#define RUNREC_PYTHON_SOURCE_DIR ""
#endif

namespace runrec::runner {

using nlohmann::json;

namespace {

std::string sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// ---- the state of the run in progress (one per process) ----------------------------------

struct SentCommand {
  std::uint64_t seq;
  std::string commandType;
  int line;  // line in the protocol file of the call that sent it (0: unknown)
};

struct Session {
  bus::CommandClient* client = nullptr;
  const RunOptions* options = nullptr;
  std::string fileName;  // the protocol's file name as compiled (to find its frames)
  std::chrono::steady_clock::time_point start;
  Progress progress;
  std::deque<SentCommand> recent;  // the commands still without an outcome (at most the window + 1)
  // The first failed outcome, once known.
  bool failed = false;
  json failure;
  SentCommand failedCommand{};
  bool ended = false;  // the engine ended the run (stop, or after a failure)
  std::atomic<std::uint64_t> calls{0};  // API calls so far (the watcher's sign of life)
  std::atomic<bool> stopRequested{false};
  unsigned long threadId = 0;  // the protocol thread, for PyThreadState_SetAsyncExc
  hardware::LabwareLibrary library;
};

Session* gSession = nullptr;
PyObject* gCommandFailed = nullptr;  // _runrec.CommandFailedError (RuntimeError)
PyObject* gRunStopped = nullptr;     // _runrec.RunStopped (BaseException: `except Exception` does not swallow it)

// The line of the innermost frame that belongs to the protocol file.
int protocolLine() {
  if (!gSession) return 0;
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed
  if (!frame) return 0;
  Py_INCREF(frame);
  int line = 0;
  while (frame) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    const char* file = PyUnicode_AsUTF8(code->co_filename);
    bool ours = file && gSession->fileName == file;
    Py_DECREF(code);
    if (ours) {
      line = PyFrame_GetLineNumber(frame);
      Py_DECREF(frame);
      break;
    }
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  if (PyErr_Occurred()) PyErr_Clear();
  return line;
}

std::string describeCommand(const SentCommand& c) {
  std::string s = c.commandType + " (command " + std::to_string(c.seq);
  if (c.line > 0) s += ", sent by line " + std::to_string(c.line);
  return s + ")";
}

// Raises CommandFailedError for the recorded failure at the current call.
PyObject* raiseFailure() {
  const json& err = gSession->failure;
  std::string type = err.is_object() ? err.value("errorType", std::string("Error")) : "Error";
  std::string message = err.is_object() ? err.value("message", std::string()) : "";
  int here = protocolLine();
  std::string text = describeCommand(gSession->failedCommand) + " failed: " + type + ": " + message +
                     " [raised at a later API call";
  if (here > 0) text += ", line " + std::to_string(here);
  text += ": the runner had already moved on when the outcome arrived]";
  PyErr_SetString(gCommandFailed, text.c_str());
  return nullptr;
}

PyObject* raiseStopped() {
  PyErr_SetString(gRunStopped, "the run was stopped");
  return nullptr;
}

void onOutcome(const bus::Message& m) {
  Session& s = *gSession;
  SentCommand cmd{m.seq, "?", 0};
  while (!s.recent.empty() && s.recent.front().seq < m.seq) s.recent.pop_front();
  if (!s.recent.empty() && s.recent.front().seq == m.seq) {
    cmd = s.recent.front();
    s.recent.pop_front();
  }
  auto status = m.body.find("status");
  if ((status == m.body.end() || *status != "succeeded") && !s.failed) {
    s.failed = true;
    s.failure = m.body.value("error", json::object());
    s.failedCommand = cmd;
  }
  if (s.options && s.options->onProgress) {
    s.progress.completed = s.client->completed();
    s.progress.inFlight = s.client->inFlight();
    s.progress.elapsedSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.start).count();
    s.options->onProgress(s.progress);
  }
}

// ---- the _runrec module ---------------------------------------------------------------

// _runrec.send(commandType, paramsJson): sends one command (blocking on credit).
PyObject* pySend(PyObject*, PyObject* args) {
  const char* type = nullptr;
  const char* params = nullptr;
  Py_ssize_t paramsLen = 0;
  if (!PyArg_ParseTuple(args, "ss#", &type, &params, &paramsLen)) return nullptr;
  if (!gSession) {
    PyErr_SetString(PyExc_RuntimeError, "no run is in progress (the opentrons API only works inside run())");
    return nullptr;
  }
  Session& s = *gSession;
  s.calls.fetch_add(1, std::memory_order_relaxed);
  if (s.failed) return raiseFailure();
  if (s.ended || s.stopRequested.load()) return raiseStopped();
  json command;
  try {
    command = {{"commandType", type}, {"params", json::parse(std::string_view(params, paramsLen))}};
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_ValueError, (std::string("_runrec.send: bad params: ") + e.what()).c_str());
    return nullptr;
  }
  s.recent.push_back({s.client->sent() + 1, type, protocolLine()});
  bus::Status st;
  Py_BEGIN_ALLOW_THREADS st = s.client->send(command, s.options ? s.options->timeout : std::nullopt);
  Py_END_ALLOW_THREADS
  if (!st) {
    s.recent.pop_back();
    if (s.failed) return raiseFailure();
    if (st.error().code == bus::ErrorCode::kRejected) {
      s.ended = true;
      return raiseStopped();
    }
    PyErr_SetString(PyExc_RuntimeError, ("bus: " + st.error().message).c_str());
    return nullptr;
  }
  if (s.failed) return raiseFailure();
  Py_RETURN_NONE;
}

// _runrec.check(): raises if a command has failed or the run was stopped (no command sent).
PyObject* pyCheck(PyObject*, PyObject*) {
  if (!gSession) Py_RETURN_NONE;
  gSession->calls.fetch_add(1, std::memory_order_relaxed);
  if (gSession->failed) return raiseFailure();
  if (gSession->ended || gSession->stopRequested.load()) return raiseStopped();
  Py_RETURN_NONE;
}

// _runrec.labware_definition(loadName, namespace|None, version|None) -> JSON text.
PyObject* pyLabware(PyObject*, PyObject* args) {
  const char* loadName = nullptr;
  PyObject* nsObj = Py_None;
  PyObject* versionObj = Py_None;
  if (!PyArg_ParseTuple(args, "s|OO", &loadName, &nsObj, &versionObj)) return nullptr;
  std::string ns = nsObj != Py_None && PyUnicode_Check(nsObj) ? PyUnicode_AsUTF8(nsObj) : "";
  int version = versionObj != Py_None ? static_cast<int>(PyLong_AsLong(versionObj)) : 0;
  if (PyErr_Occurred()) return nullptr;
  hardware::LabwareDefinitionPtr best;
  // Built-ins are all in namespace "opentrons": pick the version by id, then generate only it.
  int bestVersion = 0;
  if (ns.empty() || ns == "opentrons")
    for (const auto& [name, v] : hardware::LabwareLibrary::builtInIds())
      if (name == loadName && (version <= 0 || v == version)) bestVersion = std::max(bestVersion, v);
  if (bestVersion > 0)
    if (auto found = hardware::LabwareLibrary().find("opentrons", loadName, bestVersion)) best = *found;
  if (!best && gSession) {
    // Custom folders: try the namespaces Opentrons uses for custom labware.
    for (std::string tryNs : {ns.empty() ? std::string("custom_beta") : ns, std::string("opentrons")}) {
      for (int v = version > 0 ? version : 1; v <= (version > 0 ? version : 3) && !best; ++v) {
        auto found = gSession->library.find(tryNs, loadName, v);
        if (found) best = *found;
      }
      if (best) break;
    }
  }
  if (!best) Py_RETURN_NONE;
  std::string text = best->raw.dump();
  return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
}

// _runrec.labware_names() -> list of built-in load names (for suggestions).
PyObject* pyLabwareNames(PyObject*, PyObject*) {
  PyObject* list = PyList_New(0);
  for (const auto& [name, version] : hardware::LabwareLibrary::builtInIds()) {
    PyObject* s = PyUnicode_FromString(name.c_str());
    PyList_Append(list, s);
    Py_DECREF(s);
  }
  return list;
}

// _runrec.pipette(name, apiMajor, apiMinor) -> dict, or None if unknown.
PyObject* pyPipette(PyObject*, PyObject* args) {
  const char* name = nullptr;
  int major = 2, minor = 14;
  if (!PyArg_ParseTuple(args, "s|ii", &name, &major, &minor)) return nullptr;
  auto spec = hardware::findPipette(name);
  if (!spec) Py_RETURN_NONE;
  const hardware::PipetteSpec& p = **spec;
  auto rates = p.defaultFlowRates(major, minor);
  return Py_BuildValue("{s:s,s:s,s:s,s:i,s:d,s:d,s:d,s:d,s:d,s:d}", "name", p.name.c_str(), "model", p.model.c_str(),
                       "display_name", p.displayName.c_str(), "channels", p.channels, "min_volume", p.minVolume,
                       "max_volume", p.maxVolume, "aspirate", rates.aspirate, "dispense", rates.dispense, "blow_out",
                       rates.blowOut, "return_tip_height", p.returnTipHeight);
}

// _runrec.pipette_names() -> list of known names and models.
PyObject* pyPipetteNames(PyObject*, PyObject*) {
  PyObject* list = PyList_New(0);
  for (const auto& p : hardware::allPipettes()) {
    PyObject* s = PyUnicode_FromString(p.name.c_str());
    PyList_Append(list, s);
    Py_DECREF(s);
  }
  return list;
}

// _runrec.slot_origin(slotName) -> (x, y, z), or None.
PyObject* pySlotOrigin(PyObject*, PyObject* args) {
  const char* slot = nullptr;
  if (!PyArg_ParseTuple(args, "s", &slot)) return nullptr;
  auto o = hardware::slotOrigin(slot);
  if (!o) Py_RETURN_NONE;
  return Py_BuildValue("(ddd)", o->x, o->y, o->z);
}

PyMethodDef kMethods[] = {
    {"send", pySend, METH_VARARGS, "send(commandType, paramsJson): send one command on the bus"},
    {"check", pyCheck, METH_NOARGS, "raise if a command has failed or the run was stopped"},
    {"labware_definition", pyLabware, METH_VARARGS, "labware_definition(loadName, namespace, version) -> JSON or None"},
    {"labware_names", pyLabwareNames, METH_NOARGS, "built-in labware load names"},
    {"pipette", pyPipette, METH_VARARGS, "pipette(name, apiMajor, apiMinor) -> dict or None"},
    {"pipette_names", pyPipetteNames, METH_NOARGS, "known pipette names"},
    {"slot_origin", pySlotOrigin, METH_VARARGS, "slot_origin(slot) -> (x, y, z) or None"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_runrec", "runrec's bridge from the opentrons package to the runner",
                       -1, kMethods, nullptr, nullptr, nullptr, nullptr};

PyObject* initModule() {
  PyObject* m = PyModule_Create(&kModule);
  if (!m) return nullptr;
  gCommandFailed = PyErr_NewExceptionWithDoc("_runrec.CommandFailedError",
                                             "A command sent by the protocol failed on the robot.",
                                             PyExc_RuntimeError, nullptr);
  gRunStopped = PyErr_NewExceptionWithDoc("_runrec.RunStopped", "The run was stopped (runrec control stop, Ctrl-C).",
                                          PyExc_BaseException, nullptr);
  Py_INCREF(gCommandFailed);
  Py_INCREF(gRunStopped);
  PyModule_AddObject(m, "CommandFailedError", gCommandFailed);
  PyModule_AddObject(m, "RunStopped", gRunStopped);
  PyModule_AddIntConstant(m, "MAX_API_MINOR", kMaxPythonApiMinor);
  return m;
}

// ---- the interpreter --------------------------------------------------------------------

std::mutex gInitMutex;
bool gInitialised = false;
std::string gInitError;

std::filesystem::path executableDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

// Initialises CPython once; afterwards no thread holds the GIL.
bool ensureInterpreter(std::string& error) {
  std::lock_guard lk(gInitMutex);
  if (gInitialised) return gInitError.empty() || (error = gInitError, false);
  gInitialised = true;
  if (PyImport_AppendInittab("_runrec", &initModule) == -1) {
    gInitError = "cannot register the _runrec module";
    error = gInitError;
    return false;
  }
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.install_signal_handlers = 0;
  config.write_bytecode = 0;  // never litter the package folder (it may be read-only)
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, "runrec");
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    gInitError = std::string("cannot start the embedded Python: ") + (status.err_msg ? status.err_msg : "unknown error");
    error = gInitError;
    return false;
  }
  // sys.path: the opentrons package first.
  std::string dir = pythonPackageDir().string();
  PyObject* sysPath = PySys_GetObject("path");  // borrowed
  PyObject* d = PyUnicode_FromString(dir.c_str());
  if (sysPath && d) PyList_Insert(sysPath, 0, d);
  Py_XDECREF(d);
  PyEval_SaveThread();  // release the GIL; every entry takes it with PyGILState_Ensure
  return true;
}

struct Gil {
  PyGILState_STATE state;
  Gil() : state(PyGILState_Ensure()) {}
  ~Gil() { PyGILState_Release(state); }
};

std::string str(PyObject* o) {
  if (!o) return "";
  PyObject* s = PyObject_Str(o);
  if (!s) {
    PyErr_Clear();
    return "?";
  }
  const char* c = PyUnicode_AsUTF8(s);
  std::string out = c ? c : "?";
  Py_DECREF(s);
  return out;
}

// Calls opentrons._host.<fn>(*args); returns a new reference or nullptr with the error set.
PyObject* callHost(const char* fn, PyObject* args) {
  PyObject* host = PyImport_ImportModule("opentrons._host");
  if (!host) return nullptr;
  PyObject* f = PyObject_GetAttrString(host, fn);
  Py_DECREF(host);
  if (!f) return nullptr;
  PyObject* r = PyObject_CallObject(f, args);
  Py_DECREF(f);
  return r;
}

// Converts via json.dumps: small dicts of literals only.
json fromPython(PyObject* o) {
  PyObject* mod = PyImport_ImportModule("json");
  if (!mod) return json();
  PyObject* r = PyObject_CallMethod(mod, "dumps", "O", o);
  Py_DECREF(mod);
  if (!r) {
    PyErr_Clear();
    return json();
  }
  json j = json::parse(PyUnicode_AsUTF8(r), nullptr, false);
  Py_DECREF(r);
  return j.is_discarded() ? json() : j;
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------

std::filesystem::path pythonPackageDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("RUNREC_PYTHONPATH"); env && *env) return env;
  fs::path installed = executableDir() / ".." / "share" / "runrec" / "python";
  if (fs::exists(installed / "opentrons" / "__init__.py", ec)) return fs::weakly_canonical(installed, ec);
  return RUNREC_PYTHON_SOURCE_DIR;
}

std::string PythonProtocol::name() const {
  auto it = metadata.find("protocolName");
  if (it != metadata.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) return it->get<std::string>();
  if (!path.empty()) return path.stem().string();
  return std::filesystem::path(source).stem().string();
}

bool looksLikePython(const std::filesystem::path& path, const std::string& text) {
  if (path.extension() == ".py") return true;
  if (path.extension() == ".json") return false;
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] == '{' || text[first] == '[') return false;
  return text.find("def run(") != std::string::npos;
}

Result<PythonProtocol> parsePythonProtocol(std::string text, const std::string& name) {
  std::string error;
  if (!ensureInterpreter(error)) return tl::unexpected(Error{ErrorCode::kInvalidProtocol, name + ": " + error});
  PythonProtocol p;
  p.source = name;
  p.text = std::move(text);
  p.sha256 = sha256Hex(p.text);
  Gil gil;
  PyObject* args = Py_BuildValue("(ss)", p.text.c_str(), name.c_str());
  PyObject* r = args ? callHost("inspect", args) : nullptr;
  Py_XDECREF(args);
  if (!r) {
    // _host.inspect raises ValueError with a complete message for the protocol's problems.
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    bool userError = type && PyErr_GivenExceptionMatches(type, PyExc_ValueError);
    std::string msg = userError ? str(value)
                                : std::string("cannot inspect the protocol: ") +
                                      (type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "Error") + ": " + str(value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return tl::unexpected(Error{ErrorCode::kInvalidProtocol, userError ? msg : name + ": " + msg});
  }
  json info = fromPython(r);
  Py_DECREF(r);
  if (!info.is_object()) return tl::unexpected(Error{ErrorCode::kInvalidProtocol, name + ": cannot inspect the protocol"});
  p.metadata = info.value("metadata", json::object());
  p.requirements = info.value("requirements", json::object());
  p.apiLevel = info.value("apiLevel", std::string());
  p.apiMajor = info.value("apiMajor", 2);
  p.apiMinor = info.value("apiMinor", 0);
  if (!p.metadata.contains("apiLevel") && !p.apiLevel.empty()) p.metadata["apiLevel"] = p.apiLevel;
  return p;
}

Result<PythonProtocol> loadPythonProtocol(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected(Error{ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(errno)});
  std::stringstream ss;
  ss << in.rdbuf();
  auto p = parsePythonProtocol(ss.str(), path.string());
  if (p) p->path = path;
  return p;
}

nlohmann::json runDescription(const PythonProtocol& protocol) {
  return {{"protocol",
           {{"name", protocol.name()},
            {"fileName", protocol.path.empty() ? json() : json(protocol.path.filename().string())},
            {"sha256", protocol.sha256},
            {"schemaVersion", nullptr},
            {"language", "python"},
            {"apiLevel", protocol.apiLevel},
            {"commandCount", nullptr},
            {"metadata", protocol.metadata},
            {"text", protocol.text}}},
          {"labwareDefinitions", json::object()},
          {"liquids", json::object()}};
}

Result<RunResult> runPythonProtocol(bus::CommandClient& client, const PythonProtocol& protocol,
                                    const PythonRunOptions& options) {
  std::string error;
  if (!ensureInterpreter(error)) return tl::unexpected(Error{ErrorCode::kInvalidProtocol, protocol.source + ": " + error});
  auto start = std::chrono::steady_clock::now();
  RunResult result;
  auto opened = client.open(runDescription(protocol), options.timeout.value_or(std::chrono::hours(24 * 365)));
  if (!opened) return tl::unexpected(Error{ErrorCode::kBus, "cannot open a run: " + opened.error().message});
  result.runId = *opened;

  Session session;
  session.client = &client;
  session.options = &options;
  session.fileName = protocol.path.empty() ? protocol.source : protocol.path.string();
  session.start = start;
  for (const auto& dir : options.labwareDirs)
    if (auto st = session.library.addDirectory(dir); !st) spdlog::warn("runner: {}", st.error().message);
  client.onOutcome(onOutcome);

  json endBody = {{"reason", "complete"}};
  {
    Gil gil;
    gSession = &session;
    session.threadId = PyThread_get_thread_ident();

    // The watcher: while the protocol makes no API call, ask whether the run was stopped,
    // and if so raise RunStopped in the protocol's thread.
    std::mutex wm;
    std::condition_variable wcv;
    bool done = false;
    std::thread watcher;
    if (options.stopRequested) {
      watcher = std::thread([&] {
        std::uint64_t seen = session.calls.load();
        std::unique_lock lk(wm);
        while (!wcv.wait_for(lk, options.idlePoll, [&] { return done; })) {
          std::uint64_t now = session.calls.load();
          if (now != seen) {
            seen = now;
            continue;
          }
          lk.unlock();
          bool stop = options.stopRequested(result.runId);
          lk.lock();
          if (stop && !done) {
            session.stopRequested.store(true);
            PyGILState_STATE g = PyGILState_Ensure();
            PyThreadState_SetAsyncExc(session.threadId, gRunStopped);
            PyGILState_Release(g);
            break;
          }
        }
      });
    }

    PyObject* args = Py_BuildValue("(ssiiO)", protocol.text.c_str(), session.fileName.c_str(), protocol.apiMajor,
                                   protocol.apiMinor, Py_None);
    PyObject* r = args ? callHost("execute", args) : nullptr;
    Py_XDECREF(args);
    {
      std::lock_guard lk(wm);
      done = true;
    }
    wcv.notify_all();
    if (watcher.joinable()) {
      Py_BEGIN_ALLOW_THREADS watcher.join();
      Py_END_ALLOW_THREADS
    }
    // A RunStopped raised just as the protocol returned must not surface in a later call.
    if (session.stopRequested.load()) PyThreadState_SetAsyncExc(session.threadId, nullptr);
    if (r) {
      Py_DECREF(r);
      // An async RunStopped may still be pending if it arrived right at the end.
      if (session.stopRequested.load()) endBody["reason"] = "stopped";
    } else {
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      if (tb && value) PyException_SetTraceback(value, tb);
      if (type && PyErr_GivenExceptionMatches(type, gRunStopped)) {
        endBody["reason"] = "stopped";
      } else if (session.failed && type && PyErr_GivenExceptionMatches(type, gCommandFailed)) {
        endBody["reason"] = "commandFailed";
      } else {
        // The protocol's own exception (or sys.exit): the run fails with its traceback.
        PyObject* fargs = Py_BuildValue("(Os)", value ? value : Py_None, session.fileName.c_str());
        PyObject* described = fargs ? callHost("describe_exception", fargs) : nullptr;
        Py_XDECREF(fargs);
        json err = described ? fromPython(described) : json();
        Py_XDECREF(described);
        if (!err.is_object()) {
          if (PyErr_Occurred()) PyErr_Clear();
          err = {{"errorType", "PythonError"},
                 {"message", std::string(type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "Error") + ": " +
                                 str(value)},
                 {"details", json::object()}};
        }
        endBody["reason"] = "protocolError";
        endBody["error"] = err;
        // The traceback also goes to stderr: the user sees where their protocol failed.
        std::string tb = err.contains("details") && err["details"].is_object()
                             ? err["details"].value("traceback", std::string())
                             : std::string();
        spdlog::error("protocol: {}\n{}", err.value("message", std::string()), tb);
      }
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
    }
    gSession = nullptr;
  }
  endBody["commands"] = client.sent();
  endBody["sent"] = client.sent();
  // The protocol may have stopped early while commands are in flight: finish() collects
  // their outcomes (onOutcome still points at this session, which outlives the call).
  gSession = &session;
  spdlog::debug("runner: end {}", endBody.dump());
  auto summary = client.finish(endBody, options.timeout);
  gSession = nullptr;
  client.onOutcome(nullptr);
  result.sent = client.sent();
  result.maxInFlight = client.maxInFlight();
  result.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!summary) return tl::unexpected(Error{ErrorCode::kBus, "run " + result.runId + ": " + summary.error().message});
  result.summary = std::move(*summary);
  // The protocol's own error, as sent with `end`: in the summary even if the engine's
  // summary does not carry it.
  if (endBody.contains("error") && !(result.summary.contains("error") && result.summary["error"].is_object()))
    result.summary["error"] = endBody["error"];
  return result;
}

}  // namespace runrec::runner
