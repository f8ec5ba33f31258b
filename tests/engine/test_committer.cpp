// The engine's log thread (engine/src/committer.hpp), on its own: a group handed over is
// appended and committed on the thread, the wake descriptor says when, and a group that
// cannot be written comes back whole, with the error, for the engine to retry.
#include <doctest/doctest.h>
#include <poll.h>

#include "../../engine/src/committer.hpp"
#include "runrec/engine/state.hpp"
#include "support.hpp"
#include "support/event_log.hpp"

using namespace runrec;

namespace {

std::vector<engine::PendingEvent> group(const std::string& run, std::int64_t firstSeq, int n) {
  std::vector<engine::PendingEvent> out;
  for (int i = 0; i < n; ++i) {
    engine::Event e{run, firstSeq + i, "comment", engine::nowTimestamp(), "", nlohmann::json::object()};
    out.push_back({std::move(e), "{\"n\":" + std::to_string(firstSeq + i) + "}"});
  }
  return out;
}

std::int64_t committedSeq(const std::filesystem::path& db, const std::string& run) {
  auto reader = test::openLog(db, engine::LogOptions{engine::Sync::kNormal, true, false});
  auto last = reader->lastSeq(run);
  REQUIRE(last.has_value());
  return *last;
}

}  // namespace

TEST_CASE("the log thread commits a group, signals its descriptor, and hands the connection back") {
  auto db = test::tempDir("committer") / "log.db";
  auto log = test::openLog(db);
  test::createRun(*log, "run-1");
  // What ran after each commit, on the log thread, and how much of it was committed then.
  std::vector<std::pair<std::size_t, std::int64_t>> after;
  engine::Committer committer(*log, [&](const std::vector<engine::PendingEvent>& g) {
    after.emplace_back(g.size(), committedSeq(db, "run-1"));
  });
  CHECK_FALSE(committer.inFlight());
  CHECK_FALSE(committer.take(false).has_value());  // nothing in flight

  committer.submit(group("run-1", 1, 5), true);
  CHECK(committer.inFlight());
  CHECK(committer.inFlightEvents() == 5);
  pollfd p{committer.wakeFd(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10'000) == 1);  // readable once the group is committed
  auto done = committer.take(false);
  REQUIRE(done.has_value());
  CHECK(done->status.has_value());
  CHECK(done->events.size() == 5);
  CHECK_FALSE(committer.inFlight());
  CHECK(committedSeq(db, "run-1") == 5);  // committed: another connection sees it
  REQUIRE(after.size() == 1);                // the after-commit step ran once the group was in
  CHECK(after[0] == std::make_pair(std::size_t{5}, std::int64_t{5}));
  // take() read the descriptor: it does not stay readable.
  p.revents = 0;
  CHECK(::poll(&p, 1, 0) == 0);

  // The connection is the caller's again: it appends itself, then hands over the next group.
  engine::Event own{"run-1", 6, "comment", engine::nowTimestamp(), "", nlohmann::json::object()};
  REQUIRE(log->begin());
  REQUIRE(log->append(own, "{}"));
  REQUIRE(log->commit());
  committer.submit(group("run-1", 7, 3));
  auto next = committer.take(true);
  REQUIRE(next.has_value());
  CHECK(next->status.has_value());
  CHECK(committedSeq(db, "run-1") == 9);
  CHECK(after.size() == 1);  // not asked for this group
}

TEST_CASE("a group the log refuses comes back whole with the error; nothing of it is committed") {
  auto db = test::tempDir("committer") / "refused.db";
  auto log = test::openLog(db);
  test::createRun(*log, "run-1");
  int after = 0;
  engine::Committer committer(*log, [&](const std::vector<engine::PendingEvent>&) { ++after; });
  committer.submit(group("run-1", 1, 2), true);
  REQUIRE(committer.take(true)->status.has_value());
  CHECK(after == 1);
  // seq 4 after 2: the schema's gapless trigger refuses the second event of this group.
  auto bad = group("run-1", 3, 1);
  auto gap = group("run-1", 5, 1);
  bad.push_back(std::move(gap.front()));
  committer.submit(std::move(bad), true);
  auto done = committer.take(true);
  REQUIRE(done.has_value());
  REQUIRE_FALSE(done->status.has_value());
  CHECK(done->status.error().message.find("append event 5") != std::string::npos);
  REQUIRE(done->events.size() == 2);
  CHECK(done->events[0].event.seq == 3);
  CHECK(done->events[1].payload == "{\"n\":5}");
  CHECK(after == 1);  // nothing runs after a commit that failed
  REQUIRE(log->rollback());
  CHECK(committedSeq(db, "run-1") == 2);
}
