"""opentrons.types: Point, Location, Mount, as in the Opentrons Protocol API."""
import enum
from typing import NamedTuple, Optional, Union


class Point(NamedTuple):
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0

    def __add__(self, other):
        if not isinstance(other, Point):
            return NotImplemented
        return Point(self.x + other.x, self.y + other.y, self.z + other.z)

    def __sub__(self, other):
        if not isinstance(other, Point):
            return NotImplemented
        return Point(self.x - other.x, self.y - other.y, self.z - other.z)

    def __mul__(self, other):
        if not isinstance(other, (float, int)):
            return NotImplemented
        return Point(self.x * other, self.y * other, self.z * other)

    __rmul__ = __mul__

    def __abs__(self):
        return Point(abs(self.x), abs(self.y), abs(self.z))

    def magnitude_to(self, other: "Point") -> float:
        return ((self.x - other.x) ** 2 + (self.y - other.y) ** 2 + (self.z - other.z) ** 2) ** 0.5

    def __str__(self):
        return f"({self.x}, {self.y}, {self.z})"


class Mount(enum.Enum):
    LEFT = enum.auto()
    RIGHT = enum.auto()
    EXTENSION = enum.auto()

    def __str__(self):
        return self.name

    @classmethod
    def ot2_mounts(cls):
        return [cls.LEFT, cls.RIGHT]

    @classmethod
    def string_to_mount(cls, mount: str) -> "Mount":
        return cls[mount.upper()]


class MountType(str, enum.Enum):
    LEFT = "left"
    RIGHT = "right"
    EXTENSION = "extension"


class LabwareLike:
    """What a Location refers to: a well, a labware, a module, a slot name, or nothing."""

    def __init__(self, obj):
        self._obj = obj

    @property
    def object(self):
        return self._obj

    @property
    def is_well(self) -> bool:
        from .protocol_api._api import Well
        return isinstance(self._obj, Well)

    @property
    def is_labware(self) -> bool:
        from .protocol_api._api import Labware
        return isinstance(self._obj, Labware)

    @property
    def is_slot(self) -> bool:
        return isinstance(self._obj, str)

    @property
    def has_parent(self) -> bool:
        return self.is_well or self.is_labware

    def as_well(self):
        return self._obj

    def as_labware(self):
        if self.is_well:
            return self._obj.parent
        return self._obj

    @property
    def parent(self):
        return LabwareLike(getattr(self._obj, "parent", None))

    def get_parent_labware_and_well(self):
        if self.is_well:
            return self._obj.parent, self._obj
        if self.is_labware:
            return self._obj, None
        return None, None

    def __eq__(self, other):
        return isinstance(other, LabwareLike) and other._obj == self._obj

    def __str__(self):
        return str(self._obj)


class Location:
    """A point in deck coordinates, and what it is in (a Well, a Labware, or None).

    runrec keeps, for locations made from a well (``well.top(z)``, ``well.bottom(z)``,
    ``well.center()`` and their ``move()``), the well origin and offset they were made from,
    so a command names the well and the offset as Opentrons' engine does."""

    __slots__ = ("_point", "_labware", "_origin", "_offset")

    def __init__(self, point: Point, labware, _origin: Optional[str] = None, _offset: Optional[Point] = None):
        self._point = point
        self._labware = labware if isinstance(labware, LabwareLike) else LabwareLike(labware)
        self._origin = _origin
        self._offset = _offset

    @property
    def point(self) -> Point:
        return self._point

    @property
    def labware(self) -> LabwareLike:
        return self._labware

    def __iter__(self):
        return iter((self._point, self._labware.object))

    def __eq__(self, other):
        return isinstance(other, Location) and other._point == self._point and other._labware == self._labware

    def move(self, point: Point) -> "Location":
        offset = None if self._offset is None else self._offset + point
        return Location(self._point + point, self._labware, self._origin, offset)

    def __repr__(self):
        return f"Location(point={repr(self._point)}, labware={self._labware})"


class TransferTipPolicy(enum.Enum):
    ONCE = enum.auto()
    NEVER = enum.auto()
    ALWAYS = enum.auto()


DeckLocation = Union[int, str]
