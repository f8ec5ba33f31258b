// Python protocols are checked before anything runs: syntax (with the line), a run()
// function, a supported apiLevel. And `runrec run` tells Python from JSON.
#include <doctest/doctest.h>

#include "runrec/runner/python.hpp"

using runrec::runner::parsePythonProtocol;

namespace {
std::string loadError(const std::string& text) {
  auto p = parsePythonProtocol(text, "p.py");
  REQUIRE_FALSE(p.has_value());
  CHECK(p.error().code == runrec::runner::ErrorCode::kInvalidProtocol);
  return p.error().message;
}
}  // namespace

TEST_CASE("PythonProtocolMetadataAndApiLevelAreReadWithoutRunningIt") {
  auto p = parsePythonProtocol(
      "raise SystemExit('never executed at load')\n"
      "metadata = {'protocolName': 'demo', 'apiLevel': '2.13'}\n"
      "requirements = {'robotType': 'OT-2', 'apiLevel': '2.19'}\n"
      "def run(protocol):\n    pass\n",
      "demo.py");
  REQUIRE_MESSAGE(p.has_value(), (p ? "" : p.error().message));
  CHECK(p->apiLevel == "2.19");  // requirements win
  CHECK(p->apiMinor == 19);
  CHECK(p->name() == "demo");
  CHECK(p->sha256.size() == 64);
}

TEST_CASE("PythonSyntaxErrorNamesTheLine") {
  auto msg = loadError("metadata = {'apiLevel': '2.13'}\ndef run(protocol):\n    x = (1,\n\n");
  CHECK(msg.find("p.py:3") != std::string::npos);
  CHECK(msg.find("syntax error") != std::string::npos);
}

TEST_CASE("PythonProtocolWithoutRunIsRejected") {
  auto msg = loadError("metadata = {'apiLevel': '2.13'}\ndef main(protocol):\n    pass\n");
  CHECK(msg.find("no run() function") != std::string::npos);
}

TEST_CASE("PythonUnsupportedApiLevelIsRejected") {
  CHECK(loadError("metadata = {'apiLevel': '2.99'}\ndef run(p):\n    pass\n").find("apiLevel \"2.99\" is not supported") !=
        std::string::npos);
  CHECK(loadError("metadata = {'apiLevel': '3.0'}\ndef run(p):\n    pass\n").find("is not supported") != std::string::npos);
  CHECK(loadError("metadata = {}\ndef run(p):\n    pass\n").find("no apiLevel") != std::string::npos);
  CHECK(loadError("requirements = {'robotType': 'Flex', 'apiLevel': '2.19'}\ndef run(p):\n    pass\n")
            .find("robotType \"Flex\"") != std::string::npos);
}

TEST_CASE("PythonIsToldFromJsonByExtensionOrContent") {
  CHECK(runrec::runner::looksLikePython("a.py", "{}"));
  CHECK_FALSE(runrec::runner::looksLikePython("a.json", "def run(p): pass"));
  CHECK(runrec::runner::looksLikePython("protocol", "from opentrons import types\ndef run(p):\n  pass\n"));
  CHECK_FALSE(runrec::runner::looksLikePython("protocol", "  {\"schemaVersion\": 8}"));
}
