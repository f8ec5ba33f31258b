// VirtualSmoothie's G-code parser on its own: how a line splits into codes and arguments,
// which numbers it accepts (and that they parse to exactly the double the text names), and
// the replies to malformed or unknown input.
#include "doctest_hardware.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "runrec/hardware/virtual_smoothie.hpp"

using namespace runrec::hardware;

namespace {

// Sends one line and returns the board's whole reply.
std::string send(VirtualSmoothie& board, std::string_view line) {
  std::string out;
  board.receive(std::string(line) + "\r\n", out);
  return out;
}

constexpr std::string_view kAck = "ok\r\nok\r\n";

double parsed(const std::string& text) {
  double v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

}  // namespace

TEST_CASE("EveryCodeOfALineRunsInOrderWithItsArguments") {
  VirtualSmoothie board;
  CHECK(send(board, "M907 A0.1 B0.05 C0.05 X1.25 Y0.3 Z0.1 G4 P0.005 G0 X20 Y30.5 Z-3.525 M400") == kAck);
  CHECK(board.position()[VirtualSmoothie::kX] == 20);
  CHECK(board.position()[VirtualSmoothie::kY] == 30.5);
  CHECK(board.position()[VirtualSmoothie::kZ] == -3.525);
  CHECK(board.lines() == 1);
  CHECK(board.moves() == 1);
  // Relative mode between G91 and G90, several G0 on one line, extra spaces.
  CHECK(send(board, "  G91   G0 X-1.5  G0 X0.5 Y1   G90 ") == kAck);
  CHECK(board.position()[VirtualSmoothie::kX] == 19);
  CHECK(board.position()[VirtualSmoothie::kY] == 31.5);
  CHECK(send(board, "G0 F600 X1") == kAck);
  CHECK(board.position()[VirtualSmoothie::kX] == 1);
}

TEST_CASE("NumbersParseToTheDoubleTheirTextNames") {
  VirtualSmoothie board;
  // Plain decimals of up to 15 digits, then longer ones, exponents and other forms.
  for (std::string text : {"0.1", "123.456", "-3.525", "217.999", "0.005", "-12345678901234.5", "0.30000000000000004",
                           "1.23456789012345678", "0.0000000000000000000000001", "1e2", "-0.0", "5", "007.50"}) {
    CAPTURE(text);
    CHECK(send(board, std::string("G0 Z") + text) == kAck);
    CHECK(board.position()[VirtualSmoothie::kZ] == parsed(text));
  }
  CHECK(send(board, "G0 Z+2.5") == kAck);  // a leading + is accepted
  CHECK(board.position()[VirtualSmoothie::kZ] == 2.5);
}

TEST_CASE("MalformedArgumentsAndUnknownCodesAreErrors") {
  VirtualSmoothie board;
  CHECK(send(board, "G0 X1.2.3") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 Q1") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X1 garbage") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 Xnan") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X1e999") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X--1") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "M907 X-1") == "error:Bad M907 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G4 Q1") == "error:Bad G4 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X1 Y") == "error:Bad G0 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G28.2") == "error:Bad G28.2 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "G28.2 X5") == "error:Bad G28.2 arguments\r\nok\r\nok\r\n");
  CHECK(send(board, "FOO BAR") == "error:Unsupported command FOO\r\nok\r\nok\r\n");
  CHECK(send(board, "M400 G5") == "error:Unsupported command G5\r\nok\r\nok\r\n");
  // The line stops at its first error: the move after it is not made.
  CHECK(send(board, "G0 X1 M123 G0 X2") == "error:Unsupported command M123\r\nok\r\nok\r\n");
  CHECK(board.position()[VirtualSmoothie::kX] == 1);
  CHECK(send(board, "G0 X500") == "ALARM: Hard limit +X\r\nok\r\nok\r\n");
  CHECK(send(board, "G0 X1") == "error:Alarm lock\r\nok\r\nok\r\n");
  CHECK(send(board, "M999") == kAck);
}

TEST_CASE("PositionAndHomingRepliesListEveryAxis") {
  VirtualSmoothie board;
  CHECK(send(board, "G28.2 X Y") == kAck);
  CHECK(send(board, "G0 Y100.25") == kAck);
  CHECK(send(board, "M114.2") == "ok MCS: A:0.000 B:0.000 C:0.000 X:418.000 Y:100.250 Z:0.000\r\nok\r\nok\r\n");
  CHECK(send(board, "G28.6") == "ok Homing status: A:0 B:0 C:0 X:1 Y:1 Z:0\r\nok\r\nok\r\n");
}

TEST_CASE("FaultsCountMotionLinesOnly") {
  VirtualSmoothieOptions o;
  o.faults = {*parseSmoothieFault("error@2")};
  VirtualSmoothie board(o);
  CHECK(send(board, "M907 X1 G4 P0.005 M400") == kAck);    // not a move
  CHECK(send(board, "G0 F24000.0 M400") == kAck);          // a G0 without an axis is not either
  CHECK(send(board, "G0 X10 M400") == kAck);               // move 1
  CHECK(send(board, "G28.2 Y M400") == "error:Injected fault on move 2\r\nok\r\nok\r\n");
  CHECK(board.moves() == 2);
}
