// A small engine loop for the bus tests: a thread that serves a real CommandServer, answering
// open -> opened, command -> outcome, end -> finished, and recording what arrived.
// Knobs: hold (stop receiving once a run is open, until release()), fail command k (outcome
// "failed" then finished at once), refuse opens.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runrec/bus/channel.hpp"
#include "support.hpp"

namespace runrec::bus::test {

using namespace std::chrono_literals;

// Note: CHECK(e.code == ErrorCode::kX) does not compile: doctest stringifies operands with an
// unqualified toString(), which finds runrec::bus::toString (const char*) by ADL. Use these.
inline bool codeIs(const Error& e, ErrorCode expected) {
  if (e.code != expected) {
    MESSAGE("error code " << toString(e.code) << ", expected " << toString(expected) << ": "
                          << e.message);
  }
  return e.code == expected;
}
inline std::string typeOf(const Message& m) { return toString(m.type); }

// What the engine saw of one run.
struct SeenRun {
  std::string id;
  std::vector<std::uint64_t> seqs;     // command seq numbers, in arrival order
  std::vector<std::int64_t> indices;   // command body params.i, in arrival order
  bool ended = false;                  // kEnd received (or ended early by failAt)
  bool endedEarly = false;
  nlohmann::json endBody;
};

class TestEngine {
 public:
  struct Knobs {
    bool hold = false;          // once a run is open, receive nothing until release()
    std::uint64_t failAt = 0;   // command seq to fail (0: none); the run then finishes early
    bool refuseOpen = false;
  };

  TestEngine(CommandServer& server, Knobs knobs) : server_(server), knobs_(knobs) {
    hold_ = knobs.hold;
    thread_ = std::thread([this] { loop(); });
  }
  explicit TestEngine(CommandServer& server) : TestEngine(server, Knobs{}) {}
  ~TestEngine() { stop(); }
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  void release() { hold_ = false; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Commands that arrived for the current run so far (safe while running).
  std::uint64_t received() const { return received_; }

  // Read after stop().
  const std::deque<SeenRun>& runs() const { return runs_; }
  const std::vector<std::string>& problems() const { return problems_; }
  const std::vector<Error>& malformed() const { return malformed_; }
  std::uint64_t stale() const { return stale_; }

 private:
  void problem(std::string p) { problems_.push_back(std::move(p)); }

  void answer(const Message& m) {
    if (auto s = server_.reply(m, 5s); !s) problem("reply failed: " + s.error().message);
  }

  void loop() {
    SeenRun* current = nullptr;
    while (!stop_) {
      if (hold_ && current && !current->ended) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      auto r = server_.receive(10ms);
      if (!r) {
        if (r.error().code == ErrorCode::kMalformed) {
          malformed_.push_back(r.error());
        } else {
          problem("receive failed: " + r.error().message);
        }
        continue;
      }
      if (!*r) continue;
      Message& m = **r;
      switch (m.type) {
        case MessageType::kOpen: {
          if (knobs_.refuseOpen) {
            answer(Message{MessageType::kRefused, "", 0, {{"message", "engine busy"}}});
            break;
          }
          runs_.emplace_back();
          runs_.back().id = "run-" + std::to_string(runs_.size());
          current = &runs_.back();
          received_ = 0;
          answer(Message{MessageType::kOpened, current->id, 0, {{"runId", current->id}}});
          break;
        }
        case MessageType::kCommand: {
          if (!current || current->ended || m.runId != current->id) {
            ++stale_;
            break;
          }
          current->seqs.push_back(m.seq);
          current->indices.push_back(m.body["params"].value("i", std::int64_t{-1}));
          ++received_;
          if (m.seq != current->seqs.size()) {
            problem(current->id + ": command seq " + std::to_string(m.seq) + " arrived as #" +
                    std::to_string(current->seqs.size()));
          }
          if (knobs_.failAt != 0 && m.seq == knobs_.failAt) {
            answer(Message{MessageType::kOutcome, current->id, m.seq,
                           {{"status", "failed"},
                            {"error",
                             {{"errorType", "TestFailure"}, {"message", "failed on purpose"},
                              {"details", nlohmann::json::object()}}}}});
            current->ended = current->endedEarly = true;
            answer(Message{MessageType::kFinished, current->id, m.seq,
                           {{"status", "failed"}, {"commands", current->seqs.size()}}});
          } else {
            answer(Message{MessageType::kOutcome, current->id, m.seq, {{"status", "succeeded"}}});
          }
          break;
        }
        case MessageType::kEnd: {
          if (!current || current->ended || m.runId != current->id) {
            ++stale_;
            break;
          }
          current->ended = true;
          current->endBody = m.body;
          answer(Message{MessageType::kFinished, current->id, m.seq,
                         {{"status", "succeeded"}, {"commands", current->seqs.size()}}});
          break;
        }
        default:
          problem(std::string("unexpected ") + toString(m.type) + " on the command channel");
      }
    }
  }

  CommandServer& server_;
  Knobs knobs_;
  std::atomic<bool> hold_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0};
  std::deque<SeenRun> runs_;  // deque: `current` stays valid as runs are added
  std::vector<std::string> problems_;
  std::vector<Error> malformed_;
  std::uint64_t stale_ = 0;
  std::thread thread_;
};

// A TCP port P on 127.0.0.1 such that P and P+1 are both free right now.
inline int freeTcpPortPair() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int a = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(a, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(a);
      continue;
    }
    int port = ntohs(addr.sin_port);
    int b = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in next = addr;
    next.sin_port = htons(static_cast<std::uint16_t>(port + 1));
    bool ok = port < 65534 && ::bind(b, reinterpret_cast<sockaddr*>(&next), sizeof next) == 0;
    ::close(b);
    ::close(a);
    if (ok) return port;
  }
  FAIL("no free pair of TCP ports");
  return 0;
}

enum class Transport { kInproc, kIpc, kTcp };

inline const char* name(Transport t) {
  switch (t) {
    case Transport::kInproc: return "inproc";
    case Transport::kIpc: return "ipc";
    case Transport::kTcp: return "tcp";
  }
  return "?";
}

// A fresh endpoint on the given transport, unused so far in this process.
inline std::string freshEndpoint(Transport t) {
  static std::atomic<int> counter{0};
  int n = ++counter;
  switch (t) {
    case Transport::kInproc: return "inproc://bus-test-" + std::to_string(n);
    case Transport::kIpc:
      return "ipc://" + (runrec::test::tempDir("bus") / ("e" + std::to_string(n))).string();
    case Transport::kTcp: return "tcp://127.0.0.1:" + std::to_string(freeTcpPortPair());
  }
  return "";
}

inline nlohmann::json command(std::int64_t i) {
  return {{"commandType", "comment"}, {"params", {{"i", i}}}, {"key", "k" + std::to_string(i)}};
}

}  // namespace runrec::bus::test
