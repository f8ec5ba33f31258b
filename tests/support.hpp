// Helpers shared by the tests: where the shared reference data is, temporary folders.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace runrec::test {

// Sanitizer builds run at -O0 with instrumentation, several times slower than the plain
// build. Stress loops that repeat the same check many times run `rounds(full, sanitized)`
// times: the full count in the plain build, fewer under the sanitizers (whose fuzz targets
// cover the same inputs).
#ifdef RUNREC_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
constexpr int rounds(int full, int sanitized) { return kSanitized ? sanitized : full; }

// ../shared/opentrons beside the source tree, or nullopt. When it is missing the caller
// should skip (MESSAGE) — but under CI=true that is a failure (requireShared()).
std::optional<std::filesystem::path> sharedOpentrons();
// Returns the path, or fails the current test case under CI=true / skips with a message.
// Use: `auto dir = requireShared(); if (!dir) return;`
std::optional<std::filesystem::path> requireShared();

// A fresh empty directory under the build tree's test scratch area; removed at exit.
std::filesystem::path tempDir(const std::string& name);

nlohmann::json readJson(const std::filesystem::path& path);
std::string readText(const std::filesystem::path& path);

// The G-code lines of an Opentrons trace file, and how many lines of two listings match
// in order (longest common subsequence; G0 lines match when every target is within 0.01 mm).
std::vector<std::string> gcodeTraceLines(const std::filesystem::path& file);
std::size_t gcodeLinesMatched(const std::vector<std::string>& a, const std::vector<std::string>& b);

}  // namespace runrec::test
