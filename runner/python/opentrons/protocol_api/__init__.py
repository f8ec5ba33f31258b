"""opentrons.protocol_api: the Protocol API v2, as runrec implements it (docs/python-protocols.md)."""
from ._api import (  # noqa: F401
    APIVersion,
    CommandFailedError,
    Deck,
    HeaterShakerContext,
    InstrumentContext,
    Labware,
    LabwareNotFoundError,
    Liquid,
    MagneticModuleContext,
    MAX_SUPPORTED_VERSION,
    MIN_SUPPORTED_VERSION,
    ModuleContext,
    NoTipAttachedError,
    OutOfTipsError,
    PipetteNotFoundError,
    ProtocolContext,
    RunStopped,
    TemperatureModuleContext,
    ThermocyclerContext,
    TipAttachedError,
    UnimplementedAPIError,
    Well,
)
from ..types import Location, Mount, Point  # noqa: F401

ProtocolCommandFailedError = CommandFailedError
OFF_DECK = "offDeck"


def __getattr__(name):
    raise UnimplementedAPIError(
        f"opentrons.protocol_api.{name} is not implemented by runrec yet (see docs/python-protocols.md)")
