// Mount names as Opentrons spells them in protocols and records ("left" / "right").
#include "runrec/hardware/robot.hpp"

namespace runrec::hardware {

const char* toString(Mount mount) { return mount == Mount::kLeft ? "left" : "right"; }

std::optional<Mount> parseMount(std::string_view text) {
  if (text == "left") return Mount::kLeft;
  if (text == "right") return Mount::kRight;
  return std::nullopt;
}

}  // namespace runrec::hardware
