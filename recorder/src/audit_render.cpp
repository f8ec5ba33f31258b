// Rendering an audit as plain text and as one self-contained HTML page.
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "runrec/recorder/audit.hpp"

#include "timestamps.hpp"

namespace runrec::recorder {

using nlohmann::json;

namespace {

std::string num(const json& j) {
  if (j.is_number_integer() || j.is_number_unsigned()) return j.dump();
  if (!j.is_number()) return j.is_null() ? "-" : j.is_string() ? j.get<std::string>() : j.dump();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", j.get<double>());
  std::string s = buf;
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : j.is_null() ? "-" : j.dump(); }

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  return o;
}

std::string ptrToken(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '~') o += "~0";
    else if (c == '/') o += "~1";
    else o += c;
  }
  return o;
}

std::string contentsText(const json& c) {
  std::string s;
  for (auto& [k, v] : c.items()) s += (s.empty() ? "" : ", ") + k + " " + num(v);
  return s.empty() ? "-" : s;
}

// A value shown on the page, tagged with its JSON pointer into the audit.
std::string cell(const std::string& ptr, const json& v) {
  return "<span data-audit=\"" + esc(ptr) + "\">" + esc(num(v)) + "</span>";
}

std::string contentsHtml(const std::string& ptr, const json& c) {
  std::string s;
  for (auto& [k, v] : c.items()) s += (s.empty() ? "" : ", ") + esc(k) + " " + cell(ptr + "/" + ptrToken(k), v);
  return s.empty() ? "&ndash;" : s;
}

}  // namespace

std::string auditText(const json& a) {
  std::ostringstream o;
  const json& s = a["summary"];
  const json& t = a["totals"];
  o << "Run          " << str(a["runId"]) << "\n"
    << "Protocol     " << str(s["protocolName"]) << "\n"
    << "Status       " << str(s["status"]) << " (" << str(s["reason"]) << ")\n"
    << "Robot        " << str(s["robot"]) << "\n"
    << "Started      " << str(s["startedAt"]) << "\n"
    << "Duration     " << num(s["durationSeconds"]) << " s\n"
    << "Commands     " << num(t["commands"]) << " (" << num(t["protocolCommands"]) << " protocol, "
    << num(t["cleanupCommands"]) << " cleanup, " << num(t["failedCommands"]) << " failed), " << num(t["events"])
    << " events\n"
    << "Fingerprint  " << str(a["fingerprint"]["sha256"]) << " (" << str(a["fingerprint"]["algorithm"]) << ", "
    << num(a["fingerprint"]["events"]) << " events)\n\n";
  o << "Time per command type\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-22s %8s %12s %10s %10s %7s\n", "TYPE", "COUNT", "TOTAL ms", "MEAN ms", "MAX ms",
                "SHARE");
  o << line;
  for (auto& r : a["timeByType"]) {
    std::snprintf(line, sizeof line, "  %-22s %8s %12s %10s %10s %6s%%\n", str(r["commandType"]).c_str(),
                  num(r["count"]).c_str(), num(r["totalMs"]).c_str(), num(r["meanMs"]).c_str(), num(r["maxMs"]).c_str(),
                  num(r["sharePercent"]).c_str());
    o << line;
  }
  o << "\nTips (" << num(t["tipsUsed"]) << " used)\n";
  for (auto& r : a["tips"]["racks"])
    o << "  rack " << str(r["labwareId"]) << " (" << str(r["displayName"]) << ", slot " << str(r["slotName"])
      << "): " << num(r["used"]) << " of " << num(r["tips"]) << " used\n";
  for (auto& u : a["tips"]["uses"]) {
    o << "  " << str(u["pipetteId"]) << " took " << str(u["labwareId"]) << ":" << str(u["wellName"]) << " at seq "
      << num(u["pickUpSeq"]) << " (" << str(u["pickedUpAt"]) << "), aspirated " << num(u["volumeAspirated"]) << " µL, ";
    if (u["status"] == "dropped")
      o << "dropped into " << str(u["droppedTo"]["labwareId"]) << ":" << str(u["droppedTo"]["wellName"]) << " at seq "
        << num(u["dropSeq"]) << (detail::text(u, "dropIntent") == "cleanup" ? " (cleanup)" : "") << "\n";
    else
      o << "still " << str(u["status"]) << " at the end\n";
  }
  o << "\nLiquids\n";
  for (auto& [l, v] : a["liquids"]["totals"].items())
    o << "  " << l << ": loaded " << num(v["loaded"]) << ", in " << num(v["in"]) << ", out " << num(v["out"])
      << ", left in wells " << num(v["finalInWells"]) << ", in pipettes " << num(v["inPipettes"]) << " µL\n";
  for (auto& w : a["liquids"]["wells"])
    o << "  " << str(w["labwareId"]) << ":" << str(w["wellName"]) << "  loaded " << contentsText(w["loaded"])
      << "; in " << contentsText(w["in"]) << "; out " << contentsText(w["out"]) << "; left "
      << contentsText(w["final"]) << "\n";
  o << "\nControl actions\n";
  if (a["control"].empty()) o << "  none\n";
  for (auto& c : a["control"])
    o << "  seq " << num(c["seq"]) << " " << str(c["type"]) << " at " << str(c["ts"]) << " by "
      << str(c.value("requestedBy", json())) << (c.contains("message") ? " (" + str(c["message"]) + ")" : "") << "\n";
  o << "\nErrors\n";
  if (a["errors"].empty()) o << "  none\n";
  for (auto& e : a["errors"])
    o << "  seq " << num(e["seq"]) << " " << str(e["kind"])
      << (e.contains("commandId") ? " " + str(e["commandId"]) + " " + str(e["commandType"]) + ": " +
                                        str(e["errorType"]) + ": " + str(e["message"])
                                  : ": " + str(e.value("message", e.value("count", json()))))
      << "\n";
  o << "\nCleanup\n";
  if (!a["cleanup"].is_object())
    o << "  none\n";
  else {
    const json& c = a["cleanup"];
    o << "  seq " << num(c["seq"]) << ": " << str(c.value("reason", json())) << "; "
      << c["commands"].size() << " commands";
    for (auto& x : c["commands"]) o << " " << str(x["commandType"]) << "(" << str(x["status"]) << ")";
    o << "\n";
  }
  if (!a["foldIssues"].empty()) {
    o << "\nFold anomalies\n";
    for (auto& i : a["foldIssues"]) o << "  seq " << num(i["seq"]) << ": " << str(i["message"]) << "\n";
  }
  return o.str();
}

std::string auditHtml(const json& a) {
  std::ostringstream o;
  const json& s = a["summary"];
  const json& t = a["totals"];
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>runrec audit: "
    << esc(str(s["protocolName"])) << "</title>\n<style>\n"
    << "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
       "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;"
       "text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}"
       "code{font-size:12px}.failed{color:#b00}.ok{color:#070}svg text{font:11px sans-serif}"
       ".lane{fill:#f4f4f4}.bar{fill:#3b78c2}.bar.failed{fill:#c0392b}.bar.cleanup{fill:#999}"
       ".slot{fill:#fafafa;stroke:#888}.tip{fill:#fff;stroke:#888}.tip.used{fill:#e67e22;stroke:#a0521b}"
       ".ctl{stroke:#8e44ad;stroke-width:2}\n</style></head><body>\n";
  o << "<h1>Run audit: " << esc(str(s["protocolName"])) << "</h1>\n<table>"
    << "<tr><th>Run</th><td><code data-audit=\"/runId\">" << esc(str(a["runId"])) << "</code></td></tr>"
    << "<tr><th>Status</th><td data-audit=\"/summary/status\" class=\""
    << (s["status"] == "succeeded" ? "ok" : "failed") << "\">" << esc(str(s["status"])) << "</td></tr>"
    << "<tr><th>Reason</th><td>" << esc(str(s["reason"])) << "</td></tr>"
    << "<tr><th>Robot</th><td>" << esc(str(s["robot"])) << "</td></tr>"
    << "<tr><th>Started</th><td>" << esc(str(s["startedAt"])) << "</td></tr>"
    << "<tr><th>Duration (s)</th><td class=\"n\">" << cell("/summary/durationSeconds", s["durationSeconds"]) << "</td></tr>"
    << "<tr><th>Events</th><td class=\"n\">" << cell("/totals/events", t["events"]) << "</td></tr>"
    << "<tr><th>Commands</th><td class=\"n\">" << cell("/totals/commands", t["commands"]) << "</td></tr>"
    << "<tr><th>Protocol commands</th><td class=\"n\">" << cell("/totals/protocolCommands", t["protocolCommands"]) << "</td></tr>"
    << "<tr><th>Cleanup commands</th><td class=\"n\">" << cell("/totals/cleanupCommands", t["cleanupCommands"]) << "</td></tr>"
    << "<tr><th>Failed commands</th><td class=\"n\">" << cell("/totals/failedCommands", t["failedCommands"]) << "</td></tr>"
    << "<tr><th>Tips used</th><td class=\"n\">" << cell("/totals/tipsUsed", t["tipsUsed"]) << "</td></tr>"
    << "<tr><th>Fingerprint</th><td><code data-audit=\"/fingerprint/sha256\">" << esc(str(a["fingerprint"]["sha256"]))
    << "</code> (" << esc(str(a["fingerprint"]["algorithm"])) << ", " << cell("/fingerprint/events", a["fingerprint"]["events"])
    << " events)</td></tr></table>\n";

  // Timeline chart: one lane per command type, a bar per command.
  const json& tl = a["timeline"];
  double span = 0;
  for (auto& c : tl)
    span = std::max(span, c["offsetSeconds"].get<double>() + (c["durationMs"].is_number() ? c["durationMs"].get<double>() / 1000 : 0));
  if (span <= 0) span = 1;
  std::map<std::string, int> lane;
  for (auto& r : a["timeByType"]) lane.emplace(str(r["commandType"]), static_cast<int>(lane.size()));
  for (auto& c : tl) lane.emplace(str(c["commandType"]), static_cast<int>(lane.size()));
  const int left = 140, width = 900, laneH = 18;
  int height = static_cast<int>(lane.size()) * laneH + 30;
  o << "<h2>Timeline</h2>\n<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + width + 10
    << "\" height=\"" << height << "\" role=\"img\" aria-label=\"command timeline\">\n";
  for (auto& [name, i] : lane)
    o << "<rect class=\"lane\" x=\"" << left << "\" y=\"" << i * laneH << "\" width=\"" << width << "\" height=\""
      << laneH - 2 << "\"/><text x=\"4\" y=\"" << i * laneH + 12 << "\">" << esc(name) << "</text>\n";
  const size_t maxBars = 20000;
  size_t bars = 0;
  for (auto& c : tl) {
    if (bars >= maxBars) break;
    double x = left + c["offsetSeconds"].get<double>() / span * width;
    double w = std::max(0.5, (c["durationMs"].is_number() ? c["durationMs"].get<double>() / 1000 : 0) / span * width);
    std::string cls = c["status"] == "failed" ? "bar failed" : c["intent"] == "cleanup" ? "bar cleanup" : "bar";
    char buf[160];
    std::snprintf(buf, sizeof buf, "<rect class=\"%s\" x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\">", cls.c_str(), x,
                  lane[str(c["commandType"])] * laneH + 2, w, laneH - 6);
    o << buf << "<title>" << esc(str(c["id"]) + " " + str(c["commandType"]) + " " + str(c["status"]) + " " +
                                  num(c["durationMs"]) + " ms at +" + num(c["offsetSeconds"]) + " s")
      << "</title></rect>\n";
    bars++;
  }
  for (auto& c : a["control"]) {
    double x = left + c["offsetSeconds"].get<double>() / span * width;
    o << "<line class=\"ctl\" x1=\"" << x << "\" x2=\"" << x << "\" y1=\"0\" y2=\"" << height - 30 << "\"><title>"
      << esc(str(c["type"]) + " by " + str(c.value("requestedBy", json()))) << "</title></line>\n";
  }
  o << "<text x=\"" << left << "\" y=\"" << height - 12 << "\">0 s</text><text x=\"" << left + width - 60 << "\" y=\""
    << height - 12 << "\">" << num(span) << " s</text></svg>\n";
  if (tl.size() > maxBars) o << "<p>The chart shows the first " << maxBars << " of " << tl.size() << " commands.</p>\n";
  o << "<p id=\"js-check\" data-bars=\"\" data-type-ms=\"\"></p>\n";

  o << "<h2>Time per command type</h2>\n<table id=\"time-by-type\"><tr><th>Type</th><th>Count</th><th>Total ms</th>"
       "<th>Mean ms</th><th>Max ms</th><th>Share %</th></tr>\n";
  for (size_t i = 0; i < a["timeByType"].size(); ++i) {
    const json& r = a["timeByType"][i];
    std::string p = "/timeByType/" + std::to_string(i) + "/";
    o << "<tr><td>" << esc(str(r["commandType"])) << "</td><td class=\"n\">" << cell(p + "count", r["count"])
      << "</td><td class=\"n type-ms\">" << cell(p + "totalMs", r["totalMs"]) << "</td><td class=\"n\">"
      << cell(p + "meanMs", r["meanMs"]) << "</td><td class=\"n\">" << cell(p + "maxMs", r["maxMs"])
      << "</td><td class=\"n\">" << cell(p + "sharePercent", r["sharePercent"]) << "</td></tr>\n";
  }
  o << "<tr><th>All</th><td></td><td class=\"n\">" << cell("/totals/commandMs", t["commandMs"])
    << "</td><td></td><td></td><td></td></tr></table>\n";

  // Deck map: the OT-2's 12 slots, back row (10-12) at the top.
  o << "<h2>Deck</h2>\n<svg id=\"deck\" xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"440\" role=\"img\" "
       "aria-label=\"deck map\">\n";
  const int sw = 190, sh = 100;
  for (int slot = 1; slot <= 12; ++slot) {
    int col = (slot - 1) % 3, row = 3 - (slot - 1) / 3;
    int x = 5 + col * (sw + 8), y = 5 + row * (sh + 8);
    std::string key = std::to_string(slot);
    o << "<g class=\"deck-slot\" data-slot=\"" << slot << "\"><rect class=\"slot\" x=\"" << x << "\" y=\"" << y
      << "\" width=\"" << sw << "\" height=\"" << sh << "\" rx=\"4\"/><text x=\"" << x + 4 << "\" y=\"" << y + 13
      << "\" font-weight=\"bold\">" << slot << "</text>\n";
    int line = 0;
    for (auto& item : a["deck"][key]) {
      std::string label = item["kind"] == "module" ? str(item["model"]) + " (module)" : str(item["displayName"]);
      if (label.size() > 30) label = label.substr(0, 29) + "…";
      o << "<text class=\"deck-label\" x=\"" << x + 20 << "\" y=\"" << y + 13 + 12 * line++ << "\"><title>"
        << esc(str(item.value("labwareId", item.value("moduleId", json())))) << "</title>" << esc(label) << "</text>\n";
      if (item.value("isTipRack", false) && item["columns"].is_array()) {
        std::set<std::string> used;
        for (auto& w : item["usedTips"]) used.insert(w.get<std::string>());
        const json& cols = item["columns"];
        for (size_t c = 0; c < cols.size(); ++c)
          for (size_t r = 0; r < cols[c].size(); ++r) {
            std::string w = cols[c][r].get<std::string>();
            o << "<circle class=\"tip" << (used.count(w) ? " used" : "") << "\" data-well=\"" << esc(w) << "\" cx=\""
              << x + 22 + 13 * c << "\" cy=\"" << y + 34 + 8 * r << "\" r=\"3.2\"><title>" << esc(w)
              << (used.count(w) ? " used" : "") << "</title></circle>\n";
          }
      }
    }
    o << "</g>\n";
  }
  o << "</svg>\n";

  o << "<h2>Tips</h2>\n<table id=\"tip-racks\"><tr><th>Rack</th><th>Slot</th><th>Used</th><th>Of</th><th>Wells</th></tr>\n";
  for (size_t i = 0; i < a["tips"]["racks"].size(); ++i) {
    const json& r = a["tips"]["racks"][i];
    std::string p = "/tips/racks/" + std::to_string(i) + "/";
    std::string wells;
    for (auto& w : r["usedTips"]) wells += (wells.empty() ? "" : " ") + w.get<std::string>();
    o << "<tr><td>" << esc(str(r["labwareId"])) << " (" << esc(str(r["displayName"])) << ")</td><td>"
      << esc(str(r["slotName"])) << "</td><td class=\"n\">" << cell(p + "used", r["used"]) << "</td><td class=\"n\">"
      << cell(p + "tips", r["tips"]) << "</td><td>" << esc(wells) << "</td></tr>\n";
  }
  o << "</table>\n<table id=\"tip-uses\"><tr><th>Pipette</th><th>Tip</th><th>Picked up (seq)</th><th>Aspirated µL</th>"
       "<th>Went to</th><th>Dropped (seq)</th></tr>\n";
  const auto& uses = a["tips"]["uses"];
  for (size_t i = 0; i < uses.size() && i < 5000; ++i) {
    const json& u = uses[i];
    std::string p = "/tips/uses/" + std::to_string(i) + "/";
    o << "<tr><td>" << esc(str(u["pipetteId"])) << "</td><td>" << esc(str(u["labwareId"]) + ":" + str(u["wellName"]))
      << "</td><td class=\"n\">" << cell(p + "pickUpSeq", u["pickUpSeq"]) << "</td><td class=\"n\">"
      << cell(p + "volumeAspirated", u["volumeAspirated"]) << "</td><td>"
      << (u["status"] == "dropped" ? esc(str(u["droppedTo"]["labwareId"]) + ":" + str(u["droppedTo"]["wellName"])) +
                                          (detail::text(u, "dropIntent") == "cleanup" ? " (cleanup)" : "")
                                    : "still " + esc(str(u["status"])))
      << "</td><td class=\"n\">" << (u["dropSeq"].is_null() ? "&ndash;" : cell(p + "dropSeq", u["dropSeq"]))
      << "</td></tr>\n";
  }
  o << "</table>\n";

  o << "<h2>Liquids</h2>\n<table id=\"liquid-totals\"><tr><th>Liquid</th><th>Loaded µL</th><th>In µL</th><th>Out µL</th>"
       "<th>Left in wells µL</th><th>In pipettes µL</th></tr>\n";
  for (auto& [l, v] : a["liquids"]["totals"].items()) {
    std::string p = "/liquids/totals/" + ptrToken(l) + "/";
    o << "<tr><td>" << esc(l) << "</td>";
    for (auto* k : {"loaded", "in", "out", "finalInWells", "inPipettes"})
      o << "<td class=\"n\">" << cell(p + k, v[k]) << "</td>";
    o << "</tr>\n";
  }
  o << "</table>\n<table id=\"liquid-wells\"><tr><th>Well</th><th>Loaded</th><th>In</th><th>Out</th><th>Left</th></tr>\n";
  const auto& wells = a["liquids"]["wells"];
  for (size_t i = 0; i < wells.size() && i < 5000; ++i) {
    const json& w = wells[i];
    std::string p = "/liquids/wells/" + std::to_string(i) + "/";
    o << "<tr><td>" << esc(str(w["labwareId"]) + ":" + str(w["wellName"])) << "</td><td>"
      << contentsHtml(p + "loaded", w["loaded"]) << "</td><td>" << contentsHtml(p + "in", w["in"]) << "</td><td>"
      << contentsHtml(p + "out", w["out"]) << "</td><td>" << contentsHtml(p + "final", w["final"]) << "</td></tr>\n";
  }
  o << "</table>\n";

  o << "<h2>Control actions</h2>\n<table id=\"control\"><tr><th>Seq</th><th>Event</th><th>Time</th><th>Requested by</th>"
       "<th>Note</th></tr>\n";
  for (size_t i = 0; i < a["control"].size(); ++i) {
    const json& c = a["control"][i];
    o << "<tr><td class=\"n\">" << cell("/control/" + std::to_string(i) + "/seq", c["seq"]) << "</td><td>"
      << esc(str(c["type"])) << "</td><td>" << esc(str(c["ts"])) << "</td><td>"
      << esc(str(c.value("requestedBy", json()))) << "</td><td>" << esc(str(c.value("message", json()))) << "</td></tr>\n";
  }
  o << "</table>\n<h2>Errors</h2>\n<table id=\"errors\"><tr><th>Seq</th><th>What</th><th>Message</th></tr>\n";
  for (size_t i = 0; i < a["errors"].size(); ++i) {
    const json& e = a["errors"][i];
    std::string what = str(e["kind"]);
    if (e.contains("commandId")) what += " " + str(e["commandId"]) + " " + str(e["commandType"]) + " " + str(e["errorType"]);
    o << "<tr><td class=\"n\">" << cell("/errors/" + std::to_string(i) + "/seq", e["seq"]) << "</td><td>" << esc(what)
      << "</td><td>" << esc(str(e.value("message", e.value("count", json())))) << "</td></tr>\n";
  }
  o << "</table>\n<h2>Cleanup</h2>\n";
  if (a["cleanup"].is_object()) {
    const json& c = a["cleanup"];
    o << "<p>At seq " << cell("/cleanup/seq", c["seq"]) << ": " << esc(str(c.value("reason", json()))) << ". Commands:";
    for (auto& x : c["commands"]) o << " " << esc(str(x["commandType"]) + " (" + str(x["status"]) + ")");
    o << "</p>\n";
  } else {
    o << "<p>None.</p>\n";
  }
  if (!a["foldIssues"].empty()) {
    o << "<h2>Fold anomalies</h2><ul>\n";
    for (auto& i : a["foldIssues"]) o << "<li>seq " << num(i["seq"]) << ": " << esc(str(i["message"])) << "</li>\n";
    o << "</ul>\n";
  }
  // Filled in by the browser: proves the page rendered and its numbers add up.
  o << "<script>\n(function(){var e=document.getElementById('js-check');"
       "e.setAttribute('data-bars',document.querySelectorAll('#timeline rect.bar').length);"
       "var s=0;document.querySelectorAll('#time-by-type td.type-ms span').forEach(function(x){s+=parseFloat(x.textContent)});"
       "e.setAttribute('data-type-ms',s.toFixed(3));"
       "e.textContent='Rendered '+e.getAttribute('data-bars')+' timeline bars.';})();\n</script>\n";
  o << "</body></html>\n";
  return o.str();
}

}  // namespace runrec::recorder
