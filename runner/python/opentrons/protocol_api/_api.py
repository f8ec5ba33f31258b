"""The Protocol API v2 classes, implemented over runrec's runner.

Every call that acts sends the JSON-protocol command the engine already executes
(pickUpTip, aspirate, touchTip, moveToWell, ...), so motion is planned in one place (the
engine). What the API returns (wells, has_tip, current_volume, well positions) is computed
here from the labware definitions, consistently with what has been sent.
"""
import difflib
import json
import math
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import _runrec

from ..types import Location, LabwareLike, Mount, Point

CommandFailedError = _runrec.CommandFailedError
RunStopped = _runrec.RunStopped

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_send_raw = _runrec.send


def _send(command_type: str, params: dict) -> None:
    _send_raw(command_type, _dumps(params))


class APIVersion(NamedTuple):
    major: int
    minor: int

    @classmethod
    def from_string(cls, text: str) -> "APIVersion":
        major, minor = text.split(".")
        return cls(int(major), int(minor))

    def __str__(self):
        return f"{self.major}.{self.minor}"


MAX_SUPPORTED_VERSION = APIVersion(2, _runrec.MAX_API_MINOR)
# From this level on Opentrons runs touch tip through its protocol engine (6 points, ending
# at the centre); below it, through the legacy core.
_ENGINE_TOUCH_TIP = APIVersion(2, 14)
MIN_SUPPORTED_VERSION = APIVersion(2, 0)


class UnimplementedAPIError(AttributeError):
    """An API this implementation does not provide (yet)."""


class LabwareNotFoundError(ValueError):
    pass


class PipetteNotFoundError(ValueError):
    pass


class OutOfTipsError(RuntimeError):
    pass


class NoTipAttachedError(RuntimeError):
    pass


class TipAttachedError(RuntimeError):
    pass


def _unimplemented(owner: str, name: str):
    raise UnimplementedAPIError(
        f"{owner}.{name} is not implemented by runrec yet (see docs/python-protocols.md for the supported API)")


class _Unimplemented:
    """Base for API classes: any attribute that is not defined names itself in the error."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        _unimplemented(type(self).__name__, name)


_ids: Dict[str, int] = {}


def _reset_ids():
    _ids.clear()


def _new_id(kind: str) -> str:
    _ids[kind] = _ids.get(kind, 0) + 1
    return f"{kind}-{_ids[kind]}"


def _p(point: Point) -> dict:
    return {"x": point.x, "y": point.y, "z": point.z}


# ---- labware ------------------------------------------------------------------------------

_ROW_RE = re.compile(r"^([A-Z]+)(\d+)$")


class Well(_Unimplemented):
    """One well of a labware. Positions are deck coordinates, as the engine computes them."""

    def __init__(self, parent: "Labware", name: str, definition: dict):
        self._parent = parent
        self._name = name
        self._def = definition
        self._has_tip = parent.is_tiprack
        self._volume = 0.0  # µL, as far as this protocol has loaded, aspirated and dispensed
        self._liquid = None
        base = parent._origin
        c = parent._corner
        self._bottom = Point(base.x + c.x + definition["x"], base.y + c.y + definition["y"], base.z + c.z + definition["z"])

    # identity
    @property
    def parent(self) -> "Labware":
        return self._parent

    @property
    def well_name(self) -> str:
        return self._name

    @property
    def display_name(self) -> str:
        return f"{self._name} of {self._parent}"

    def __repr__(self):
        return self.display_name

    def __eq__(self, other):
        return isinstance(other, Well) and other._parent is self._parent and other._name == self._name

    def __hash__(self):
        return hash((id(self._parent), self._name))

    @property
    def api_version(self) -> APIVersion:
        return self._parent.api_version

    # geometry
    @property
    def depth(self) -> float:
        return self._def["depth"]

    @property
    def diameter(self) -> Optional[float]:
        return self._def.get("diameter") if self._def.get("shape") == "circular" else None

    @property
    def length(self) -> Optional[float]:
        return self._def.get("xDimension") if self._def.get("shape") == "rectangular" else None

    @property
    def width(self) -> Optional[float]:
        return self._def.get("yDimension") if self._def.get("shape") == "rectangular" else None

    @property
    def max_volume(self) -> float:
        return self._def.get("totalLiquidVolume", 0)

    @property
    def shape(self) -> str:
        return self._def.get("shape", "circular")

    @property
    def has_tip(self) -> bool:
        return self._has_tip

    @has_tip.setter
    def has_tip(self, value: bool):
        self._has_tip = bool(value)

    def top(self, z: float = 0.0) -> Location:
        return Location(self._bottom + Point(0, 0, self.depth + z), self, "top", Point(0, 0, z))

    def bottom(self, z: float = 0.0) -> Location:
        return Location(self._bottom + Point(0, 0, z), self, "bottom", Point(0, 0, z))

    def center(self) -> Location:
        return Location(self._bottom + Point(0, 0, self.depth / 2), self, "center", Point(0, 0, 0))

    def from_center_cartesian(self, x: float, y: float, z: float) -> Point:
        half_x = (self.diameter or self.length or 0) / 2
        half_y = (self.diameter or self.width or 0) / 2
        c = self.center().point
        return Point(c.x + x * half_x, c.y + y * half_y, c.z + z * self.depth / 2)

    # liquids
    def load_liquid(self, liquid: "Liquid", volume: float) -> None:
        _send("loadLiquid", {"liquidId": liquid._id, "labwareId": self._parent._id,
                             "volumeByWell": {self._name: float(volume)}})
        self._liquid = liquid
        self._volume = float(volume)

    def load_empty(self) -> None:
        _send("loadLiquid", {"liquidId": "EMPTY", "labwareId": self._parent._id, "volumeByWell": {self._name: 0}})
        self._volume = 0.0

    def current_liquid_volume(self) -> float:
        """The volume in the well as far as this protocol knows (loaded, minus aspirated, plus dispensed)."""
        return self._volume


class Labware(_Unimplemented):
    def __init__(self, ctx: "ProtocolContext", definition: dict, labware_id: str, parent, origin: Point,
                 label: Optional[str] = None):
        self._ctx = ctx
        self._definition = definition
        self._id = labware_id
        self._parent = parent
        self._origin = origin
        co = definition.get("cornerOffsetFromSlot", {})
        self._corner = Point(co.get("x", 0), co.get("y", 0), co.get("z", 0))
        self._label = label
        params = definition["parameters"]
        self._load_name = params["loadName"]
        self._is_tiprack = bool(params.get("isTiprack"))
        self._tip_length = params.get("tipLength", 0)
        self._columns = [list(col) for col in definition["ordering"]]
        self._wells: Dict[str, Well] = {}
        for col in self._columns:
            for name in col:
                self._wells[name] = Well(self, name, definition["wells"][name])
        self._ordered = [self._wells[n] for col in self._columns for n in col]
        rows: Dict[str, List[str]] = {}
        for col in self._columns:
            for name in col:
                m = _ROW_RE.match(name)
                rows.setdefault(m.group(1) if m else name, []).append(name)
        self._rows = rows

    def __repr__(self):
        where = self._parent if isinstance(self._parent, str) else repr(self._parent)
        return f"{self._definition['metadata'].get('displayName', self._load_name)} on {where}"

    @property
    def api_version(self) -> APIVersion:
        return self._ctx.api_version

    @property
    def load_name(self) -> str:
        return self._load_name

    @property
    def name(self) -> str:
        return self._label or self._load_name

    @property
    def uri(self) -> str:
        return f"{self._definition['namespace']}/{self._load_name}/{self._definition['version']}"

    @property
    def parent(self):
        return self._parent

    @property
    def parameters(self) -> dict:
        return self._definition["parameters"]

    @property
    def quirks(self) -> List[str]:
        return list(self._definition["parameters"].get("quirks", []))

    @property
    def magdeck_engage_height(self) -> Optional[float]:
        return self._definition["parameters"].get("magneticModuleEngageHeight")

    @property
    def is_tiprack(self) -> bool:
        return self._is_tiprack

    @property
    def is_adapter(self) -> bool:
        return False

    @property
    def tip_length(self) -> float:
        return self._tip_length

    @property
    def highest_z(self) -> float:
        return self._origin.z + self._corner.z + self._definition["dimensions"]["zDimension"]

    @property
    def calibrated_offset(self) -> Point:
        return self._origin + self._corner

    def set_offset(self, x: float, y: float, z: float) -> None:
        """Labware position check offsets: runrec records none (the engine plans from definitions)."""
        if (x, y, z) != (0, 0, 0):
            _unimplemented("Labware", "set_offset (with a non-zero offset)")

    # wells
    def well(self, idx: Union[int, str]) -> Well:
        return self[idx]

    def __getitem__(self, key: Union[int, str]) -> Well:
        if isinstance(key, str):
            try:
                return self._wells[key]
            except KeyError:
                raise KeyError(f"{self} has no well {key!r}") from None
        return self._ordered[key]

    def wells(self, *args: Union[str, int]) -> List[Well]:
        if not args:
            return list(self._ordered)
        return [self[a] for a in args]

    def wells_by_name(self) -> Dict[str, Well]:
        return dict(self._wells)

    wells_by_index = wells_by_name

    def rows(self, *args) -> List[List[Well]]:
        rows = [[self._wells[n] for n in names] for names in self._rows.values()]
        if not args:
            return rows
        keys = list(self._rows)
        return [rows[a] if isinstance(a, int) else rows[keys.index(a)] for a in args]

    def rows_by_name(self) -> Dict[str, List[Well]]:
        return {k: [self._wells[n] for n in names] for k, names in self._rows.items()}

    rows_by_index = rows_by_name

    def columns(self, *args) -> List[List[Well]]:
        cols = [[self._wells[n] for n in col] for col in self._columns]
        if not args:
            return cols
        keys = self._column_keys()
        return [cols[a] if isinstance(a, int) else cols[keys.index(str(a))] for a in args]

    def _column_keys(self) -> List[str]:
        keys = []
        for col in self._columns:
            m = _ROW_RE.match(col[0])
            keys.append(m.group(2) if m else col[0])
        return keys

    def columns_by_name(self) -> Dict[str, List[Well]]:
        return {k: [self._wells[n] for n in col] for k, col in zip(self._column_keys(), self._columns)}

    columns_by_index = columns_by_name

    # tips
    def reset(self) -> None:
        if self._is_tiprack:
            for w in self._ordered:
                w._has_tip = True

    def next_tip(self, num_tips: int = 1, starting_tip: Optional[Well] = None) -> Optional[Well]:
        if not self._is_tiprack:
            raise ValueError(f"{self} is not a tip rack")
        start = 0 if starting_tip is None else self._ordered.index(starting_tip)
        if num_tips == 1:
            for w in self._ordered[start:]:
                if w._has_tip:
                    return w
            return None
        for col in self._columns:
            wells = [self._wells[n] for n in col]
            if self._ordered.index(wells[0]) < start:
                continue
            for i in range(0, len(wells) - num_tips + 1):
                if all(w._has_tip for w in wells[i:i + num_tips]):
                    return wells[i]
        return None

    def use_tips(self, start_well: Well, num_channels: int = 1) -> None:
        if num_channels == 1:
            start_well._has_tip = False
            return
        col = next(c for c in self._columns if start_well._name in c)
        i = col.index(start_well._name)
        for n in col[i:i + num_channels]:
            self._wells[n]._has_tip = False

    def previous_tip(self, num_tips: int = 1) -> Optional[Well]:
        used = [w for w in self._ordered if not w._has_tip]
        return used[-1] if used else None

    def return_tips(self, start_well: Well, num_channels: int = 1) -> None:
        if num_channels == 1:
            start_well._has_tip = True
            return
        col = next(c for c in self._columns if start_well._name in c)
        i = col.index(start_well._name)
        for n in col[i:i + num_channels]:
            self._wells[n]._has_tip = True

    def load_labware(self, *args, **kwargs):
        _unimplemented("Labware", "load_labware (stacking labware on an adapter)")


class Liquid:
    def __init__(self, liquid_id: str, name: str, description: Optional[str], display_color: Optional[str]):
        self._id = liquid_id
        self.name = name
        self.description = description
        self.display_color = display_color

    def __repr__(self):
        return f"Liquid({self.name!r})"


# ---- modules ------------------------------------------------------------------------------

_MODULE_MODELS = {
    "magdeck": "magneticModuleV1", "magnetic module": "magneticModuleV1", "magneticmodulev1": "magneticModuleV1",
    "magnetic module gen2": "magneticModuleV2", "magneticmodulev2": "magneticModuleV2",
    "tempdeck": "temperatureModuleV1", "temperature module": "temperatureModuleV1",
    "temperaturemodulev1": "temperatureModuleV1",
    "temperature module gen2": "temperatureModuleV2", "temperaturemodulev2": "temperatureModuleV2",
    "thermocycler": "thermocyclerModuleV1", "thermocycler module": "thermocyclerModuleV1",
    "thermocyclermodulev1": "thermocyclerModuleV1",
    "thermocycler module gen2": "thermocyclerModuleV2", "thermocyclermodulev2": "thermocyclerModuleV2",
    "heatershakermodulev1": "heaterShakerModuleV1", "heater-shaker module": "heaterShakerModuleV1",
}


class ModuleContext(_Unimplemented):
    def __init__(self, ctx: "ProtocolContext", module_id: str, model: str, slot: str):
        self._ctx = ctx
        self._id = module_id
        self._model = model
        self._slot = slot
        self._labware: Optional[Labware] = None

    def __repr__(self):
        return f"{type(self).__name__} at {self._model} on {self._slot} lw {self._labware}"

    @property
    def api_version(self):
        return self._ctx.api_version

    @property
    def model(self) -> str:
        return self._model

    @property
    def labware(self) -> Optional[Labware]:
        return self._labware

    @property
    def parent(self) -> str:
        return self._slot

    def load_labware(self, name: str, label: Optional[str] = None, namespace: Optional[str] = None,
                     version: Optional[int] = None, **kwargs) -> Labware:
        definition = self._ctx._definition(name, namespace, version)
        lid = _new_id("labware")
        _send("loadLabware", {"labwareId": lid, "loadName": name, "namespace": definition["namespace"],
                              "version": definition["version"], "location": {"moduleId": self._id},
                              **({"displayName": label} if label else {})})
        origin = Point(*_runrec.slot_origin(self._slot))
        lw = Labware(self._ctx, definition, lid, self, origin, label)
        self._labware = lw
        self._ctx._labware_by_slot[self._slot] = lw
        return lw

    load_labware_by_name = load_labware

    def _cmd(self, kind: str, **params):
        _send(kind, {"moduleId": self._id, **params})


class TemperatureModuleContext(ModuleContext):
    _target = None

    def set_temperature(self, celsius: float) -> None:
        self._cmd("temperatureModule/setTargetTemperature", celsius=celsius)
        self._cmd("temperatureModule/waitForTemperature", celsius=celsius)
        self._target = celsius

    def start_set_temperature(self, celsius: float) -> None:
        self._cmd("temperatureModule/setTargetTemperature", celsius=celsius)
        self._target = celsius

    def await_temperature(self, celsius: float) -> None:
        self._cmd("temperatureModule/waitForTemperature", celsius=celsius)

    def deactivate(self) -> None:
        self._cmd("temperatureModule/deactivate")
        self._target = None

    @property
    def target(self):
        return self._target

    @property
    def temperature(self):
        return self._target if self._target is not None else 23.0

    @property
    def status(self) -> str:
        return "holding at target" if self._target is not None else "idle"


class MagneticModuleContext(ModuleContext):
    _engaged = False

    def engage(self, height: Optional[float] = None, offset: Optional[float] = None,
               height_from_base: Optional[float] = None) -> None:
        if height_from_base is not None:
            h = height_from_base
        elif height is not None:
            h = height
        else:
            base = self._labware.magdeck_engage_height if self._labware else None
            if base is None:
                raise ValueError("magnetic module: no engage height given and the labware defines none")
            h = base + (offset or 0)
        self._cmd("magneticModule/engage", height=h)
        self._engaged = True

    def disengage(self) -> None:
        self._cmd("magneticModule/disengage")
        self._engaged = False

    @property
    def status(self) -> str:
        return "engaged" if self._engaged else "disengaged"


class ThermocyclerContext(ModuleContext):
    _lid = "open"

    def open_lid(self) -> str:
        self._cmd("thermocycler/openLid")
        self._lid = "open"
        return self._lid

    def close_lid(self) -> str:
        self._cmd("thermocycler/closeLid")
        self._lid = "closed"
        return self._lid

    @property
    def lid_position(self) -> str:
        return self._lid

    def set_block_temperature(self, temperature: float, hold_time_seconds: Optional[float] = None,
                              hold_time_minutes: Optional[float] = None, ramp_rate: Optional[float] = None,
                              block_max_volume: Optional[float] = None) -> None:
        params: Dict[str, Any] = {"celsius": temperature}
        hold = (hold_time_seconds or 0) + 60 * (hold_time_minutes or 0)
        if hold:
            params["holdTimeSeconds"] = hold
        if block_max_volume is not None:
            params["blockMaxVolumeUl"] = block_max_volume
        self._cmd("thermocycler/setTargetBlockTemperature", **params)
        self._cmd("thermocycler/waitForBlockTemperature")

    def set_lid_temperature(self, temperature: float) -> None:
        self._cmd("thermocycler/setTargetLidTemperature", celsius=temperature)
        self._cmd("thermocycler/waitForLidTemperature")

    def execute_profile(self, steps: List[dict], repetitions: int, block_max_volume: Optional[float] = None) -> None:
        profile = []
        for _ in range(repetitions):
            for s in steps:
                hold = s.get("hold_time_seconds", 0) + 60 * s.get("hold_time_minutes", 0)
                profile.append({"celsius": s["temperature"], "holdSeconds": hold})
        params: Dict[str, Any] = {"profile": profile}
        if block_max_volume is not None:
            params["blockMaxVolumeUl"] = block_max_volume
        self._cmd("thermocycler/runProfile", **params)

    def deactivate_lid(self) -> None:
        self._cmd("thermocycler/deactivateLid")

    def deactivate_block(self) -> None:
        self._cmd("thermocycler/deactivateBlock")

    def deactivate(self) -> None:
        self.deactivate_lid()
        self.deactivate_block()


class HeaterShakerContext(ModuleContext):
    def set_target_temperature(self, celsius: float) -> None:
        self._cmd("heaterShaker/setTargetTemperature", celsius=celsius)

    def wait_for_temperature(self) -> None:
        self._cmd("heaterShaker/waitForTemperature")

    def set_and_wait_for_temperature(self, celsius: float) -> None:
        self.set_target_temperature(celsius)
        self.wait_for_temperature()

    def set_and_wait_for_shake_speed(self, rpm: int) -> None:
        self._cmd("heaterShaker/setAndWaitForShakeSpeed", rpm=rpm)

    def deactivate_heater(self) -> None:
        self._cmd("heaterShaker/deactivateHeater")

    def deactivate_shaker(self) -> None:
        self._cmd("heaterShaker/deactivateShaker")

    def open_labware_latch(self) -> None:
        self._cmd("heaterShaker/openLabwareLatch")

    def close_labware_latch(self) -> None:
        self._cmd("heaterShaker/closeLabwareLatch")


_MODULE_CLASSES = {"temperature": TemperatureModuleContext, "magnetic": MagneticModuleContext,
                   "thermocycler": ThermocyclerContext, "heaterShaker": HeaterShakerContext}


# ---- instruments --------------------------------------------------------------------------

class FlowRates:
    def __init__(self, aspirate: float, dispense: float, blow_out: float):
        self.aspirate = aspirate
        self.dispense = dispense
        self.blow_out = blow_out

    def __repr__(self):
        return f"FlowRates(aspirate={self.aspirate}, dispense={self.dispense}, blow_out={self.blow_out})"


class Clearances:
    def __init__(self, aspirate: float = 1.0, dispense: float = 1.0):
        self.aspirate = aspirate
        self.dispense = dispense


class PlungerSpeeds:
    def __init__(self, flow: FlowRates, ul_per_mm: float):
        self._flow = flow
        self._ul_per_mm = ul_per_mm

    def __getattr__(self, name):
        if name in ("aspirate", "dispense", "blow_out"):
            return getattr(self._flow, name) / self._ul_per_mm
        raise AttributeError(name)


def _flatten(x) -> list:
    if isinstance(x, (Well, Location)):
        return [x]
    out = []
    for item in x:
        out.extend(_flatten(item))
    return out


class InstrumentContext(_Unimplemented):
    def __init__(self, ctx: "ProtocolContext", spec: dict, pipette_id: str, mount: str, tip_racks: List[Labware],
                 requested_name: str):
        self._ctx = ctx
        self._spec = spec
        self._id = pipette_id
        self._mount = mount
        self._tip_racks = list(tip_racks)
        self._name = requested_name
        self._has_tip = False
        self._volume = 0.0
        self._tip_well: Optional[Well] = None
        self._last_well: Optional[Well] = None
        self._last_wl: Optional[dict] = None
        self._starting_tip: Optional[Well] = None
        self.flow_rate = FlowRates(spec["aspirate"], spec["dispense"], spec["blow_out"])
        self.well_bottom_clearance = Clearances()
        self.default_speed = 400.0
        self._trash = ctx.fixed_trash

    def __repr__(self):
        return f"{self._spec['display_name']} on {self._mount} mount"

    # properties
    @property
    def api_version(self):
        return self._ctx.api_version

    @property
    def name(self) -> str:
        return self._spec["name"]

    @property
    def model(self) -> str:
        return self._spec["model"]

    @property
    def mount(self) -> str:
        return self._mount

    @property
    def channels(self) -> int:
        return self._spec["channels"]

    @property
    def type(self) -> str:
        return "multi" if self.channels > 1 else "single"

    @property
    def max_volume(self) -> float:
        return self._spec["max_volume"]

    @property
    def min_volume(self) -> float:
        return self._spec["min_volume"]

    @property
    def has_tip(self) -> bool:
        return self._has_tip

    @property
    def current_volume(self) -> float:
        return self._volume

    @property
    def tip_racks(self) -> List[Labware]:
        return self._tip_racks

    @tip_racks.setter
    def tip_racks(self, racks: List[Labware]):
        self._tip_racks = list(racks)

    @property
    def starting_tip(self) -> Optional[Well]:
        return self._starting_tip

    @starting_tip.setter
    def starting_tip(self, well: Optional[Well]):
        self._starting_tip = well

    @property
    def trash_container(self):
        return self._trash

    @trash_container.setter
    def trash_container(self, trash):
        self._trash = trash

    @property
    def hw_pipette(self) -> dict:
        return {"name": self.name, "model": self.model, "channels": self.channels, "max_volume": self.max_volume,
                "min_volume": self.min_volume, "has_tip": self._has_tip, "current_volume": self._volume,
                "pipette_id": self._id}

    @property
    def return_height(self) -> float:
        return self._spec["return_tip_height"]

    def reset_tipracks(self) -> None:
        for rack in self._tip_racks:
            rack.reset()

    # helpers
    def _params(self, **extra) -> dict:
        return {"pipetteId": self._id, **extra}

    def _need_tip(self, action: str):
        if not self._has_tip:
            raise NoTipAttachedError(f"Cannot {action} without a tip attached ({self})")

    def _target(self, location, default_origin: str, default_z: float, action: str):
        """(well, wellLocation) for a Well or a Location in a well; None location: where the
        pipette last was."""
        if location is None:
            if self._last_well is None:
                raise RuntimeError(f"Cannot {action}: no location given and the pipette has not been to a well yet")
            return self._last_well, self._last_wl
        if isinstance(location, Well):
            return location, {"origin": default_origin, "offset": {"x": 0, "y": 0, "z": default_z}}
        if isinstance(location, Location):
            obj = location.labware.object
            if isinstance(obj, Well):
                if location._origin is not None:
                    return obj, {"origin": location._origin, "offset": _p(location._offset)}
                return obj, {"origin": "top", "offset": _p(location.point - obj.top().point)}
            if isinstance(obj, Labware):
                first = obj.wells()[0]
                return first, {"origin": "top", "offset": _p(location.point - first.top().point)}
            raise ValueError(f"Cannot {action} at {location}: runrec needs a location in a well")
        if isinstance(location, Labware):
            first = location.wells()[0]
            return first, {"origin": default_origin, "offset": {"x": 0, "y": 0, "z": default_z}}
        raise TypeError(f"Cannot {action} at {location!r}: expected a Well or a Location")

    def _at(self, well: Well, wl: dict):
        self._last_well, self._last_wl = well, wl

    # tips
    def pick_up_tip(self, location=None, presses=None, increment=None, prep_after=None) -> "InstrumentContext":
        if self._has_tip:
            raise TipAttachedError(f"Cannot pick up a tip: {self} already has one")
        if location is None:
            well = None
            racks = self._tip_racks
            if not racks:
                raise OutOfTipsError(f"{self} has no tip racks: pass tip_racks to load_instrument or a location")
            start_rack = self._starting_tip.parent if self._starting_tip is not None else None
            started = start_rack is None
            for rack in racks:
                if not started and rack is not start_rack:
                    continue
                started = True
                well = rack.next_tip(self.channels if self.channels > 1 else 1,
                                     self._starting_tip if rack is start_rack else None)
                if well is not None:
                    break
            if well is None:
                raise OutOfTipsError(f"{self}: no tips left in {', '.join(str(r) for r in racks)}")
        elif isinstance(location, Labware):
            well = location.next_tip(self.channels)
            if well is None:
                raise OutOfTipsError(f"no tips left in {location}")
        elif isinstance(location, Well):
            well = location
        elif isinstance(location, Location) and isinstance(location.labware.object, Well):
            well = location.labware.object
        else:
            raise TypeError(f"pick_up_tip: expected a tip rack, a Well or a Location, got {location!r}")
        _send("pickUpTip", self._params(labwareId=well.parent._id, wellName=well.well_name))
        well.parent.use_tips(well, self.channels)
        self._has_tip = True
        self._volume = 0.0
        self._tip_well = well
        self._at(well, {"origin": "top", "offset": {"x": 0, "y": 0, "z": 0}})
        return self

    def drop_tip(self, location=None, home_after=None) -> "InstrumentContext":
        if location is None:
            trash = self._trash
            well = trash.wells()[0] if isinstance(trash, Labware) else trash
            params = self._params(labwareId=well.parent._id, wellName=well.well_name)
        else:
            well, wl = self._target(location, "top", 0.0, "drop a tip")
            params = self._params(labwareId=well.parent._id, wellName=well.well_name)
            if not isinstance(location, Well):
                params["wellLocation"] = wl
        _send("dropTip", params)
        if isinstance(location, Well) and location.parent.is_tiprack:
            location.parent.return_tips(location, self.channels)
        self._has_tip = False
        self._volume = 0.0
        self._tip_well = None
        self._at(well, {"origin": "top", "offset": {"x": 0, "y": 0, "z": 0}})
        return self

    def return_tip(self, home_after=None) -> "InstrumentContext":
        if not self._has_tip:
            raise NoTipAttachedError(f"Cannot return a tip: {self} has none")
        if self._tip_well is None:
            raise RuntimeError("Cannot return a tip: where it came from is unknown")
        well = self._tip_well
        return self.drop_tip(well, home_after)

    # liquid handling
    def aspirate(self, volume: Optional[float] = None, location=None, rate: float = 1.0) -> "InstrumentContext":
        self._need_tip("aspirate")
        well, wl = self._target(location, "bottom", self.well_bottom_clearance.aspirate, "aspirate")
        if volume is None or volume == 0:
            volume = self.max_volume - self._volume
        volume = float(volume)
        if self._volume + volume > self.max_volume + 1e-6:
            raise ValueError(f"Cannot aspirate {volume} µL: {self} holds {self._volume} µL of at most {self.max_volume} µL")
        _send("aspirate", self._params(labwareId=well.parent._id, wellName=well.well_name, wellLocation=wl,
                                       volume=volume, flowRate=self.flow_rate.aspirate * rate))
        self._volume += volume
        well._volume = max(0.0, well._volume - volume)
        self._at(well, wl)
        return self

    def dispense(self, volume: Optional[float] = None, location=None, rate: float = 1.0,
                 push_out: Optional[float] = None) -> "InstrumentContext":
        self._need_tip("dispense")
        well, wl = self._target(location, "bottom", self.well_bottom_clearance.dispense, "dispense")
        if volume is None or (volume == 0 and self._ctx.api_version < APIVersion(2, 16)) or volume > self._volume:
            volume = self._volume
        volume = float(volume)
        _send("dispense", self._params(labwareId=well.parent._id, wellName=well.well_name, wellLocation=wl,
                                       volume=volume, flowRate=self.flow_rate.dispense * rate))
        self._volume -= volume
        well._volume += volume
        self._at(well, wl)
        return self

    def mix(self, repetitions: int = 1, volume: Optional[float] = None, location=None,
            rate: float = 1.0) -> "InstrumentContext":
        self._need_tip("mix")
        if volume is None or volume == 0:
            volume = self.max_volume - self._volume
        if location is None and self._last_well is not None and self._last_wl is not None:
            location = None
        for _ in range(repetitions):
            self.aspirate(volume, location, rate)
            self.dispense(volume, None, rate)
        return self

    def blow_out(self, location=None) -> "InstrumentContext":
        well, wl = self._target(location, "top", 0.0, "blow out")
        _send("blowout", self._params(labwareId=well.parent._id, wellName=well.well_name, wellLocation=wl,
                                      flowRate=self.flow_rate.blow_out))
        self._volume = 0.0
        self._at(well, wl)
        return self

    def touch_tip(self, location=None, radius: float = 1.0, v_offset: float = -1.0,
                  speed: float = 60.0) -> "InstrumentContext":
        self._need_tip("touch tip")
        if location is None:
            if self._last_well is None:
                raise RuntimeError("Cannot touch tip: no location given and the pipette has not been to a well yet")
            well = self._last_well
        elif isinstance(location, Well):
            well = location
        elif isinstance(location, Location) and isinstance(location.labware.object, Well):
            well = location.labware.object
        else:
            raise TypeError(f"touch_tip: expected a Well, got {location!r}")
        if "touchTipDisabled" in well.parent.quirks:
            return self  # as Opentrons does: ignored, nothing moves
        speed = min(max(float(speed), 1.0), 80.0)
        wl = {"origin": "top", "offset": {"x": 0, "y": 0, "z": v_offset}}
        params = {"pipetteId": self._id, "labwareId": well._parent._id, "wellName": well._name,
                  "wellLocation": wl, "radius": radius, "speed": speed}
        if self._ctx.api_version < _ENGINE_TOUCH_TIP:
            # Opentrons' legacy points (no return to the centre; none at all before 2.4):
            # the engine follows the level it is given (docs/event-log.md, touchTip paths).
            params["apiLevel"] = str(self._ctx.api_version)
        _send("touchTip", params)
        self._last_well, self._last_wl = well, wl
        return self

    def air_gap(self, volume: Optional[float] = None, height: Optional[float] = None) -> "InstrumentContext":
        self._need_tip("air gap")
        if self._last_well is None:
            raise RuntimeError("Cannot air gap: the pipette has not been to a well yet")
        h = 5.0 if height is None else height
        well = self._last_well
        wl = {"origin": "top", "offset": {"x": 0, "y": 0, "z": h}}
        if volume is None or volume == 0:
            volume = self.max_volume - self._volume
        volume = float(volume)
        if self._volume + volume > self.max_volume + 1e-6:
            raise ValueError(f"Cannot air gap {volume} µL: {self} holds {self._volume} µL of at most {self.max_volume} µL")
        _send("aspirate", self._params(labwareId=well.parent._id, wellName=well.well_name, wellLocation=wl,
                                       volume=volume, flowRate=self.flow_rate.aspirate))
        self._volume += volume
        self._at(well, wl)
        return self

    def move_to(self, location: Location, force_direct: bool = False, minimum_z_height: Optional[float] = None,
                speed: Optional[float] = None, publish: bool = True) -> "InstrumentContext":
        params = self._params()
        if force_direct:
            params["forceDirect"] = True
        if minimum_z_height is not None:
            params["minimumZHeight"] = minimum_z_height
        if speed is not None:
            params["speed"] = speed
        obj = location.labware.object if isinstance(location, Location) else location
        if isinstance(obj, (Well, Labware)):
            well, wl = self._target(location, "top", 0.0, "move")
            params.update(labwareId=well.parent._id, wellName=well.well_name, wellLocation=wl)
            _send("moveToWell", params)
            self._at(well, wl)
        elif isinstance(location, Location):
            params["coordinates"] = _p(location.point)
            _send("moveToCoordinates", params)
            self._last_well = self._last_wl = None
        else:
            raise TypeError(f"move_to: expected a Location, got {location!r}")
        return self

    def home(self) -> "InstrumentContext":
        _send("home", {"axes": ["leftZ" if self._mount == "left" else "rightZ",
                                "leftPlunger" if self._mount == "left" else "rightPlunger"]})
        self._last_well = self._last_wl = None
        return self

    def prepare_to_aspirate(self) -> None:
        _runrec.check()

    # complex liquid handling
    def transfer(self, volume, source, dest, **kwargs) -> "InstrumentContext":
        return self._complex("transfer", volume, source, dest, kwargs)

    def distribute(self, volume, source, dest, **kwargs) -> "InstrumentContext":
        kwargs.setdefault("disposal_volume", self.min_volume)
        return self._complex("distribute", volume, source, dest, kwargs)

    def consolidate(self, volume, source, dest, **kwargs) -> "InstrumentContext":
        return self._complex("consolidate", volume, source, dest, kwargs)

    _KNOWN_OPTIONS = {"new_tip", "trash", "touch_tip", "blow_out", "blowout_location", "mix_before", "mix_after",
                      "disposal_volume", "air_gap", "carryover", "gradient", "rate"}

    def _complex(self, mode: str, volume, source, dest, kw: dict) -> "InstrumentContext":
        unknown = set(kw) - self._KNOWN_OPTIONS
        if unknown:
            _unimplemented("InstrumentContext", f"{mode} option {sorted(unknown)[0]}")
        if kw.get("gradient"):
            _unimplemented("InstrumentContext", f"{mode} option gradient")
        new_tip = kw.get("new_tip", "once")
        if new_tip not in ("once", "always", "never"):
            raise ValueError(f"new_tip must be 'once', 'always' or 'never', got {new_tip!r}")
        trash = kw.get("trash", True)
        touch = kw.get("touch_tip", False)
        blow = kw.get("blow_out", False)
        blow_where = kw.get("blowout_location")
        mix_before = kw.get("mix_before")
        mix_after = kw.get("mix_after")
        air = kw.get("air_gap", 0) or 0
        disposal = kw.get("disposal_volume", 0) or 0
        carryover = kw.get("carryover", True)
        sources = _flatten(source)
        dests = _flatten(dest)
        max_vol = self.max_volume - air
        if max_vol <= 0:
            raise ValueError(f"{mode}: the air gap leaves no room in the tip")

        # (volume, source, dest) steps, as Opentrons pairs them.
        if mode == "distribute" or (mode == "transfer" and len(sources) == 1 and len(dests) > 1):
            pairs = [(sources[0], d) for d in dests]
        elif mode == "consolidate" or (mode == "transfer" and len(dests) == 1 and len(sources) > 1):
            pairs = [(s, dests[0]) for s in sources]
        else:
            if len(sources) != len(dests):
                raise ValueError(f"{mode}: {len(sources)} sources and {len(dests)} destinations do not pair up")
            pairs = list(zip(sources, dests))
        vols = list(volume) if isinstance(volume, (list, tuple)) else [volume] * len(pairs)
        if len(vols) != len(pairs):
            raise ValueError(f"{mode}: {len(vols)} volumes for {len(pairs)} transfers")

        def chunks(v):
            if not carryover:
                if v > max_vol:
                    raise ValueError(f"{mode}: {v} µL does not fit in {max_vol} µL and carryover is off")
                return [v]
            out = []
            while v > max_vol * 2:
                out.append(max_vol)
                v -= max_vol
            if v > max_vol:
                out += [v / 2, v / 2]
            else:
                out.append(v)
            return out

        def get_tip():
            if not self._has_tip:
                self.pick_up_tip()

        def done_tip():
            if trash:
                self.drop_tip()
            else:
                self.return_tip()

        def do_mix(spec, where):
            if spec:
                reps, v = spec
                self.mix(reps, v, where)

        def do_blow(src, dst):
            if not blow:
                return
            if blow_where == "source well":
                self.blow_out(src.top() if isinstance(src, Well) else src)
            elif blow_where == "destination well":
                self.blow_out(dst.top() if isinstance(dst, Well) else dst)
            else:
                self.blow_out(self._trash.wells()[0] if isinstance(self._trash, Labware) else self._trash)

        def aspirate_from(v, src):
            do_mix(mix_before, src)
            self.aspirate(v, src)
            if touch:
                self.touch_tip(src if isinstance(src, Well) else None)
            if air:
                self.air_gap(air)

        if new_tip == "once":
            get_tip()
        if new_tip == "never" and not self._has_tip:
            raise NoTipAttachedError(f"{mode} with new_tip='never' needs a tip attached ({self})")

        if mode == "distribute":
            self._distribute(pairs, vols, max_vol, disposal, new_tip, get_tip, done_tip, aspirate_from, touch, air,
                             mix_after, do_mix, do_blow)
        elif mode == "consolidate":
            self._consolidate(pairs, vols, max_vol, new_tip, get_tip, done_tip, aspirate_from, touch, air, mix_after,
                              do_mix, do_blow)
        else:
            for (src, dst), v in zip(pairs, vols):
                for part in chunks(v):
                    if new_tip == "always":
                        get_tip()
                    aspirate_from(part, src)
                    self.dispense(part + air, dst)
                    do_mix(mix_after, dst)
                    if touch:
                        self.touch_tip(dst if isinstance(dst, Well) else None)
                    do_blow(src, dst)
                    if new_tip == "always":
                        done_tip()
        if new_tip == "once" and self._has_tip:
            done_tip()
        return self

    def _distribute(self, pairs, vols, max_vol, disposal, new_tip, get_tip, done_tip, aspirate_from, touch, air,
                    mix_after, do_mix, do_blow):
        src = pairs[0][0]
        i = 0
        while i < len(pairs):
            if new_tip == "always":
                get_tip()
            batch, total = [], disposal
            while i < len(pairs) and (total + vols[i] + air * (len(batch) + 1) <= max_vol + air or not batch):
                batch.append((pairs[i][1], vols[i]))
                total += vols[i]
                i += 1
            aspirate_from(total, src)
            for n, (dst, v) in enumerate(batch):
                if air and n > 0:
                    self.air_gap(air)
                self.dispense(v + (air if air else 0), dst)
                if touch:
                    self.touch_tip(dst if isinstance(dst, Well) else None)
            if self._volume > 1e-9:  # the disposal volume: blown out (to the trash unless told otherwise)
                where = blow_where if blow_where in ("source well", "destination well") else None
                if where == "source well":
                    self.blow_out(src.top() if isinstance(src, Well) else src)
                elif where == "destination well":
                    self.blow_out(batch[-1][0].top() if isinstance(batch[-1][0], Well) else batch[-1][0])
                else:
                    self.blow_out(self._trash.wells()[0] if isinstance(self._trash, Labware) else self._trash)
            elif blow:
                do_blow(src, batch[-1][0])
            if new_tip == "always":
                done_tip()

    def _consolidate(self, pairs, vols, max_vol, new_tip, get_tip, done_tip, aspirate_from, touch, air, mix_after,
                     do_mix, do_blow):
        dst = pairs[0][1]
        i = 0
        while i < len(pairs):
            if new_tip == "always":
                get_tip()
            total = 0.0
            first = True
            while i < len(pairs) and (total + vols[i] <= max_vol or first):
                aspirate_from(vols[i], pairs[i][0])
                total += vols[i] + (air or 0)
                first = False
                i += 1
            self.dispense(total, dst)
            do_mix(mix_after, dst)
            if touch:
                self.touch_tip(dst if isinstance(dst, Well) else None)
            do_blow(pairs[i - 1][0], dst)
            if new_tip == "always":
                done_tip()


# ---- the protocol context -----------------------------------------------------------------

class Deck(dict):
    """Slot name (as int and str) -> labware or module."""

    def __getitem__(self, key):
        return dict.get(self, str(key))

    def __contains__(self, key):
        return dict.__contains__(self, str(key))


class ProtocolContext(_Unimplemented):
    def __init__(self, api_version: APIVersion):
        self._api_version = api_version
        self._labware_by_slot: Dict[str, Any] = {}
        self._instruments: Dict[str, InstrumentContext] = {}
        self._modules: Dict[str, ModuleContext] = {}
        self._liquids: List[Liquid] = []
        self._rail_lights = False
        trash_def = self._definition("opentrons_1_trash_1100ml_fixed", "opentrons", 1)
        self._fixed_trash = Labware(self, trash_def, "fixedTrash", "12", Point(*_runrec.slot_origin("12")))
        self._labware_by_slot["12"] = self._fixed_trash
        self.max_speeds: Dict[str, float] = {}
        self.bundled_data: Dict[str, bytes] = {}
        self.params = None

    @property
    def api_version(self) -> APIVersion:
        return self._api_version

    def is_simulating(self) -> bool:
        return False

    @property
    def fixed_trash(self) -> Labware:
        return self._fixed_trash

    @property
    def deck(self) -> Deck:
        d = Deck()
        for slot in (str(i) for i in range(1, 13)):
            d[slot] = self._labware_by_slot.get(slot) or self._modules.get(slot)
        return d

    @property
    def loaded_labwares(self) -> Dict[int, Labware]:
        out = {}
        for slot, lw in self._labware_by_slot.items():
            out[int(slot)] = lw
        return out

    @property
    def loaded_instruments(self) -> Dict[str, InstrumentContext]:
        return dict(self._instruments)

    @property
    def loaded_modules(self) -> Dict[int, ModuleContext]:
        return {int(s): m for s, m in self._modules.items()}

    @property
    def rail_lights_on(self) -> bool:
        return self._rail_lights

    @property
    def door_closed(self) -> bool:
        return True

    def _slot(self, location) -> str:
        slot = str(location.value if hasattr(location, "value") else location)
        if _runrec.slot_origin(slot) is None:
            raise ValueError(f"no deck slot {location!r} on the OT-2 (slots are 1-12)")
        return slot

    def _definition(self, load_name: str, namespace: Optional[str] = None, version: Optional[int] = None) -> dict:
        text = _runrec.labware_definition(load_name, namespace, version)
        if text is None:
            names = sorted(set(_runrec.labware_names()))
            close = difflib.get_close_matches(load_name, names, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            what = f"{namespace}/{load_name}" if namespace else load_name
            if version:
                what += f" version {version}"
            raise LabwareNotFoundError(f"unknown labware {what!r}: runrec has no such definition{hint}")
        return json.loads(text)

    def load_labware(self, load_name: str, location, label: Optional[str] = None, namespace: Optional[str] = None,
                     version: Optional[int] = None, adapter: Optional[str] = None, lid: Optional[str] = None) -> Labware:
        if adapter is not None:
            _unimplemented("ProtocolContext", "load_labware(adapter=...)")
        if lid is not None:
            _unimplemented("ProtocolContext", "load_labware(lid=...)")
        slot = self._slot(location)
        definition = self._definition(load_name, namespace, version)
        if slot in self._labware_by_slot and slot != "12":
            raise ValueError(f"slot {slot} already holds {self._labware_by_slot[slot]}")
        lid_ = _new_id("labware")
        params = {"labwareId": lid_, "loadName": load_name, "namespace": definition["namespace"],
                  "version": definition["version"], "location": {"slotName": slot}}
        if label:
            params["displayName"] = label
        _send("loadLabware", params)
        lw = Labware(self, definition, lid_, slot, Point(*_runrec.slot_origin(slot)), label)
        self._labware_by_slot[slot] = lw
        return lw

    def load_labware_by_name(self, load_name: str, location, label: Optional[str] = None,
                             namespace: Optional[str] = None, version: Optional[int] = None) -> Labware:
        return self.load_labware(load_name, location, label, namespace, version)

    def load_instrument(self, instrument_name: str, mount, tip_racks: Optional[Sequence[Labware]] = None,
                        replace: bool = False, liquid_presence_detection: Optional[bool] = None) -> InstrumentContext:
        if isinstance(mount, Mount):
            mount_name = mount.name.lower()
        else:
            mount_name = str(mount).lower()
        if mount_name not in ("left", "right"):
            raise ValueError(f"mount must be 'left' or 'right' (or types.Mount), got {mount!r}")
        spec = _runrec.pipette(instrument_name, self._api_version.major, self._api_version.minor)
        if spec is None:
            names = sorted(set(_runrec.pipette_names()))
            raise PipetteNotFoundError(f"unknown pipette {instrument_name!r}: runrec knows {', '.join(names)}")
        if mount_name in self._instruments and not replace:
            raise RuntimeError(f"the {mount_name} mount already holds {self._instruments[mount_name]}")
        pid = _new_id("pipette")
        _send("loadPipette", {"pipetteId": pid, "pipetteName": instrument_name, "mount": mount_name})
        instr = InstrumentContext(self, spec, pid, mount_name, list(tip_racks or []), instrument_name)
        self._instruments[mount_name] = instr
        return instr

    def load_module(self, module_name: str, location=None, configuration: Optional[str] = None):
        model = _MODULE_MODELS.get(module_name.lower(), module_name if module_name in _MODULE_MODELS.values() else None)
        if model is None:
            raise ValueError(f"unknown module {module_name!r}: runrec knows {', '.join(sorted(_MODULE_MODELS))}")
        if configuration is not None:
            _unimplemented("ProtocolContext", "load_module(configuration=...)")
        if location is None:
            if not model.startswith("thermocycler"):
                raise ValueError(f"load_module({module_name!r}) needs a location")
            location = 7
        slot = self._slot(location)
        mid = _new_id("module")
        _send("loadModule", {"moduleId": mid, "model": model, "location": {"slotName": slot}})
        family = next(k for k in _MODULE_CLASSES if model.startswith(k))
        module = _MODULE_CLASSES[family](self, mid, model, slot)
        self._modules[slot] = module
        return module

    def home(self) -> None:
        _send("home", {})
        for instr in self._instruments.values():
            instr._last_well = instr._last_wl = None

    def pause(self, msg: Optional[str] = None) -> None:
        _send("waitForResume", {"message": msg} if msg else {})

    def resume(self) -> None:
        _runrec.check()

    def comment(self, msg: str) -> None:
        _send("comment", {"message": str(msg)})

    def delay(self, seconds: float = 0, minutes: float = 0, msg: Optional[str] = None) -> None:
        params: Dict[str, Any] = {"seconds": float(seconds) + 60.0 * float(minutes)}
        if msg:
            params["message"] = msg
        _send("waitForDuration", params)

    def define_liquid(self, name: str, description: Optional[str] = None,
                      display_color: Optional[str] = None) -> Liquid:
        liquid = Liquid(_new_id("liquid"), name, description, display_color)
        self._liquids.append(liquid)
        return liquid

    def set_rail_lights(self, on: bool) -> None:
        """No command exists for the rail lights in runrec's engine: remembered, not sent."""
        _runrec.check()
        self._rail_lights = bool(on)
